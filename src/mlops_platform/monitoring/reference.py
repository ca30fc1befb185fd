"""The reference a model version is judged against: its training profile and test metrics."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_platform.errors import NotFound

if TYPE_CHECKING:
    from mlflow import MlflowClient

# The artifact training logs on its parent run: what "normal" traffic looks like.
REFERENCE_PROFILE = "reference_profile.json"


@dataclass(frozen=True)
class Reference:
    """What a model version was trained on: its profile, test metrics and MLflow run."""

    model_name: str
    model_version: str
    profile: Mapping[str, Any]
    test_metrics: Mapping[str, float] = field(default_factory=dict)
    run_id: str | None = None
    experiment_id: str | None = None


def mlflow_client() -> MlflowClient:
    """A client of the configured tracking server (imported here: the import is slow)."""
    from mlflow import MlflowClient

    from mlops_platform import tracking

    tracking.configure()
    return MlflowClient()


def load_reference(model_version: str | None = None) -> Reference:
    """The reference of `model_version`, or of the version holding alias `champion`."""
    from mlflow.exceptions import MlflowException

    from mlops_platform import registry

    client = mlflow_client()
    name = registry.model_name()
    try:
        version = (
            client.get_model_version(name, model_version)
            if model_version
            else client.get_model_version_by_alias(name, registry.CHAMPION)
        )
    except MlflowException as error:
        wanted = f"version {model_version}" if model_version else f"a {registry.CHAMPION}"
        raise NotFound(f"{name} has no {wanted}: {error.message}") from error
    run = client.get_run(version.run_id)
    with tempfile.TemporaryDirectory(prefix="mlops-profile-") as scratch:
        path = client.download_artifacts(version.run_id, REFERENCE_PROFILE, scratch)
        profile = json.loads(Path(path).read_text())
    return Reference(
        model_name=name,
        model_version=str(version.version),
        profile=profile,
        test_metrics={
            key.removeprefix("test_"): value
            for key, value in run.data.metrics.items()
            if key.startswith("test_")
        },
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
    )
