"""What the serving tests, benchmark and load test share: a tiny champion, a real service.

`ServiceProcess` runs `bentoml serve` exactly as `make serve` does, in its own process
group, and stops it by signalling the group (BentoML has an arbiter and workers).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from catboost import CatBoostClassifier

from mlops_platform import registry, stack, tracking
from mlops_platform.config import PROJECT_ROOT, Settings, get_settings
from mlops_platform.data.generator import GeneratorConfig, generate_months
from mlops_platform.mariadb_server import free_port
from mlops_platform.model import (
    CATEGORICAL_POSITIONS,
    CreditScoreModel,
    classification_metrics,
    model_frame,
)
from mlops_platform.schema import CATEGORICAL_FEATURES, FEATURE_NAMES, TARGET
from tests.servers import stop_process_group

BASE_DT = "2025-03-01"


def labelled_frame(customers: int = 1_500, months: int = 2, seed: int = 7) -> pd.DataFrame:
    """Generated features with their labels, as training would read them."""
    config = GeneratorConfig(customers=customers, months=months, start=date(2025, 1, 1), seed=seed)
    return pd.concat(
        [m.features.merge(m.labels, on=["customer_id", "month"]) for m in generate_months(config)],
        ignore_index=True,
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready request records (NaN → null, numpy → Python numbers)."""
    features = frame[list(FEATURE_NAMES)]
    return json.loads(features.to_json(orient="records"))


def fit(
    frame: pd.DataFrame, iterations: int = 60, depth: int = 4, seed: int = 0
) -> CreditScoreModel:
    """A small CatBoost champion candidate (about a second)."""
    classifier = CatBoostClassifier(
        iterations=iterations, depth=depth, cat_features=list(CATEGORICAL_POSITIONS),
        random_seed=seed, thread_count=2, allow_writing_files=False, verbose=False,
    )  # fmt: skip
    classifier.fit(model_frame(frame), frame[TARGET])
    known = {c: frame[c].dropna().astype(str).unique().tolist() for c in CATEGORICAL_FEATURES}
    return CreditScoreModel.from_classifier(classifier, known)


def publish(model: CreditScoreModel, frame: pd.DataFrame) -> str:
    """Log `model` in a run (metrics on `frame` stand in for test metrics), register it.

    Returns the new version; MLflow must be configured (`tracking.configure()`).
    """
    metrics = classification_metrics(frame[TARGET], model.predict_proba(frame))
    with mlflow.start_run() as run:
        mlflow.set_tag("base_dt", BASE_DT)
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        info = model.log_to_mlflow(frame[list(FEATURE_NAMES)])
    return registry.register(info.model_uri, run.info.run_id, {"base_dt": BASE_DT})


@contextmanager
def module_settings(
    mlflow_server: str, store_url: str, prefix: str, extra: dict[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """One test module's settings, in this process's environment and for its service: its
    own model and experiments on the session's MLflow server, its store, and `extra`."""
    suffix = uuid.uuid4().hex[:10]
    values = {
        "MLFLOW_TRACKING_URI": mlflow_server,
        "MLFLOW_EXPERIMENT": f"{prefix}_{suffix}",
        "MLFLOW_MONITORING_EXPERIMENT": f"{prefix}_monitoring_{suffix}",
        "MODEL_NAME": f"{prefix}_{suffix}",
        "FEATURE_STORE_URL": store_url,
        **(extra or {}),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        tracking.configure()
        yield values
    get_settings.cache_clear()


def service_settings(directory: Path) -> dict[str, str]:
    """A test service: two workers, cache and spool in `directory`, aliases polled often."""
    return {
        "SERVING_WORKERS": "2",
        "SERVING_CACHE_DIR": str(directory / "cache"),
        "SERVING_SPOOL_DIR": str(directory / "spool"),
        "SERVING_POLL_INTERVAL_S": "0.5",
    }


def metric_total(url: str, name: str) -> float:
    """A metric's value summed over its samples (and the workers), from the service's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        exposition = response.read().decode()
    samples = re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", exposition, re.M)
    return sum(map(float, samples))


def shuffled(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its labels shuffled: a model fit on it learns nothing real."""
    return frame.assign(**{TARGET: frame[TARGET].sample(frac=1, random_state=0).to_numpy()})


def set_challenger(version: str) -> None:
    """Point `challenger` at `version`, as the gate does for a candidate it rejects."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(registry.model_name(), registry.CHALLENGER, version)


@contextmanager
def running_service(environment: dict[str, str], directory: Path) -> Iterator[str]:
    """A ready test service (`service_settings` in `directory`); its URL while it runs."""
    process = ServiceProcess(
        {**environment, **service_settings(directory)}, directory / "service.log"
    ).start()
    try:
        process.wait("/readyz")
        yield process.url
    finally:
        process.stop()


def promote(version: str, url: str) -> None:
    """Make `version` the champion, as `mlops registry promote` does."""
    registry.promote(version, reason="serving test", actor="pytest", url=url)


@dataclass
class ServiceProcess:
    """`bentoml serve serving.service:CreditScoreService` with extra environment variables."""

    environment: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bentoml_home(self) -> Path:
        """Its own, as `mlops serve` gives each service: BentoML keeps /metrics files there."""
        return Path(self.serving_environment()["BENTOML_HOME"])

    def serving_environment(self) -> dict[str, str]:
        """`mlops serve`'s environment for a service on this port, state beside the log."""
        settings = Settings(mlops_data_dir=self.log_path.parent, serving_port=self.port)
        return {**stack.serving_environment(settings), **self.environment}

    def start(self) -> ServiceProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "bentoml", "serve",
                    "serving.service:CreditScoreService", "--port", str(self.port),
                ],
                cwd=PROJECT_ROOT,
                env=self.serving_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self

    def wait(self, path: str = "/readyz", timeout: float = 90, in_a_row: int = 12) -> None:
        """Until `path` answers 200 `in_a_row` times (use /livez for a service that cannot be
        ready). Each worker answers for itself and the kernel spreads new connections, so one
        200 can come from the worker that loaded first while another still loads."""
        deadline = time.monotonic() + timeout
        answered = 0
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    answered = answered + 1 if response.status == 200 else 0
            except (urllib.error.URLError, OSError):
                answered = 0
            if answered >= in_a_row:
                return
            time.sleep(0.05 if answered else 0.25)
        raise TimeoutError(f"{path} not 200 after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the whole group (graceful: the log queue is flushed), then SIGKILL."""
        if self.process is not None:
            stop_process_group(self.process, timeout=40)

    def log_tail(self, chars: int = 4_000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]
