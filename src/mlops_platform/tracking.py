"""The MLflow tracking server's command line, and pointing the MLflow client at it.

`run_server()` is the one entry point the native stack, compose and the tests start,
so they all run the same server. mlflow is imported inside functions: it takes seconds.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlops_platform import db
from mlops_platform.config import Settings, get_settings

BACKEND_DATABASE = "mlflow"
# Measured here: 1 worker is 2 processes and ~500 MB RSS, 2 workers ~800 MB; one is plenty
# for a registry that a few pipelines and one model server talk to.
SERVER_WORKERS = 1
# Job execution starts extra job-runner processes (~1.4 GB) for GenAI features we do not use.
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# MLflow 3.17's UI opens an experiment without this tag in its GenAI view (traces, no Models).
CLASSIC_VIEW = {"mlflow.experimentKind": "custom_model_development"}
# A runs-page view saved as an experiment tag opens by `runs_view_link` (the UI's own
# "share view"). The runs table starts with these columns and no setting adds metrics.
SHARED_VIEW_TAG = "mlflow.sharedViewState."
DEFAULT_ATTRIBUTE_COLUMNS = ("Source", "Models", "Dataset")
TEST_METRICS_VIEW = "test-metrics"
TEST_METRIC_COLUMNS = ("test_accuracy", "test_macro_f1")


def backend_store_uri(settings: Settings | None = None) -> str:
    """MLFLOW_BACKEND_STORE_URI, or the feature store's server with database `mlflow`."""
    settings = settings or get_settings()
    if settings.mlflow_backend_store_uri:
        return settings.mlflow_backend_store_uri
    url = db.feature_store_url(settings.feature_store_url).set(database=BACKEND_DATABASE)
    return url.render_as_string(hide_password=False)


def artifacts_destination(settings: Settings | None = None) -> Path:
    """Where the server keeps artifacts: MLFLOW_ARTIFACTS_DESTINATION or the data dir."""
    settings = settings or get_settings()
    return (
        settings.mlflow_artifacts_destination or settings.mlops_data_dir / "mlflow-artifacts"
    ).resolve()


def server_command(settings: Settings | None = None) -> list[str]:
    """The `mlflow server` argv; artifacts are proxied so clients never touch server paths.

    The backend store URI holds a password, so it travels in the environment
    (`server_environment`), never in argv where `ps` would show it.
    """
    settings = settings or get_settings()
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--serve-artifacts",
        "--artifacts-destination",
        str(artifacts_destination(settings)),
        "--host",
        settings.mlflow_host,
        "--port",
        str(settings.mlflow_port),
        "--allowed-hosts",
        settings.mlflow_allowed_hosts,
        "--workers",
        str(SERVER_WORKERS),
    ]


def prepare_server(settings: Settings | None = None) -> None:
    """Create the backend database (when it lives in MariaDB) and the artifacts directory."""
    settings = settings or get_settings()
    uri = backend_store_uri(settings)
    if uri.startswith(("mysql", "mariadb")):
        db.create_database_if_missing(uri)
    artifacts_destination(settings).mkdir(parents=True, exist_ok=True)


def server_environment(settings: Settings | None = None) -> dict[str, str]:
    """The server's environment: ours, its backend store, and job execution switched off."""
    return {
        **os.environ,
        **SERVER_ENVIRONMENT,
        "MLFLOW_BACKEND_STORE_URI": backend_store_uri(settings or get_settings()),
    }


def run_server(settings: Settings | None = None) -> None:
    """Prepare, then replace this process with the MLflow server (signals reach it directly)."""
    settings = settings or get_settings()
    prepare_server(settings)
    command = server_command(settings)
    os.execvpe(command[0], command, server_environment(settings))


def configure(settings: Settings | None = None) -> None:
    """Point the MLflow client at the tracking server and the experiment (created if missing)."""
    import mlflow

    settings = settings or get_settings()
    # MLflow retries a dead server 7 times with backoff, minutes in all, while a promotion
    # may hold the champion lock; fail within seconds instead unless the user chose.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # The registry follows the tracking URI (MLflow's default), so one setting moves both.
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    views = {TEST_METRICS_VIEW: table_view(TEST_METRIC_COLUMNS)}
    mlflow.set_experiment(experiment_id=ensure_experiment(settings.mlflow_experiment, views))


def ensure_experiment(name: str, views: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The experiment's id, created if missing, tagged to open in MLflow's classic ML view.

    `views` (name → runs-page state) are saved as shared views; `runs_view_link` opens one.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    tags = dict(CLASSIC_VIEW) | {
        f"{SHARED_VIEW_TAG}{view}": json.dumps(state, sort_keys=True)
        for view, state in (views or {}).items()
    }
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags=tags)
        except MlflowException as error:  # another process created it first
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)
    for key, value in tags.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def table_view(metrics: Sequence[str]) -> dict[str, Any]:
    """A runs-page state whose table shows the default columns, then `metrics`.

    Column keys are the UI's `type.`name`` form.
    """
    return {
        "selectedColumns": [
            *(f"attributes.`{name}`" for name in DEFAULT_ATTRIBUTE_COLUMNS),
            *(f"metrics.`{name}`" for name in metrics),
        ]
    }


def runs_view_link(experiment_id: str, view: str, settings: Settings | None = None) -> str:
    """The UI address of the experiment's runs page in a view saved by `ensure_experiment`."""
    base = (settings or get_settings()).mlflow_tracking_uri.rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={view}"


def training_runs_link(settings: Settings | None = None) -> str:
    """The training experiment's runs table with the test metrics (its saved view)."""
    settings = settings or get_settings()
    experiment_id = ensure_experiment(settings.mlflow_experiment)
    return runs_view_link(experiment_id, TEST_METRICS_VIEW, settings)
