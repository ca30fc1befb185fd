"""Lineage of one prediction: the request, each model version that scored it, the MLflow
run, the snapshot build and Airflow runs behind that version, its commit and deployments.

Also the one place that knows which snapshot builds registered versions depend on, so
pruning (`prune_snapshots`) never deletes rows a version was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.errors import InvalidInput, NotFound
from mlops_platform.features import SnapshotBuild, get_build, prune_builds, stored_rows
from mlops_platform.logstore import PROBABILITY_COLUMNS, SHADOW_ROLE
from mlops_platform.registry import Deployment
from mlops_platform.schema import CREDIT_SCORES, FEATURE_NAMES

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Model version tags that training writes (training.train_candidate) and lineage follows.
BUILD_TAG, HASH_TAG, BASE_DT_TAG = "snapshot_build_id", "snapshot_hash", "base_dt"
DAG_TAG, DAG_RUN_TAG, COMMIT_TAG = "airflow_dag_id", "airflow_dag_run_id", "git_commit"
MAX_REQUEST_ID_CHARS = 36


class UnknownRequest(NotFound):
    """No prediction was logged under the request id."""


@dataclass(frozen=True)
class DagRun:
    """One Airflow DAG run; `dag_id` is None when only the run id was recorded."""

    dag_id: str | None
    run_id: str


@dataclass(frozen=True)
class TrainingRun:
    """The MLflow run that trained a version, with its test metrics and a UI link."""

    run_id: str
    run_name: str | None
    experiment_id: str
    experiment_name: str | None
    status: str
    started_at: datetime
    link: str
    metrics: dict[str, float]
    trigger_reason: str | None


@dataclass(frozen=True)
class SnapshotLineage:
    """The snapshot build a version was trained on, and whether its rows are still there.

    Resolvable means: the build exists, its rows were not pruned, as many rows are stored
    as it recorded, they hash to its content hash, and that is the hash the version recorded.
    """

    base_dt: date | None
    build_id: int | None
    recorded_hash: str | None
    content_hash: str | None
    row_count: int | None
    rows_present: int
    built_at: datetime | None
    pruned_at: datetime | None
    built_by: DagRun | None
    resolvable: bool
    problem: str | None


@dataclass(frozen=True)
class ScoredBy:
    """One model version that scored the request: `champion` or `canary` answered the
    client, `shadow` scored it beside the champion without answering."""

    role: str
    model_name: str
    model_version: str
    predicted_class: str
    probabilities: dict[str, float]
    unseen_categories: tuple[str, ...]
    latency_ms: float
    logged_at: datetime
    registered: bool
    run: TrainingRun | None
    snapshot: SnapshotLineage | None
    training_dag_run: DagRun | None
    git_commit: str | None
    deployments: tuple[Deployment, ...]


@dataclass(frozen=True)
class RequestLineage:
    """A logged request and, for each version that scored it, where that version came from."""

    request_id: str
    created_at: datetime
    customer_id: str | None
    feature_month: date | None
    features: dict[str, float | str | None]
    scored_by: tuple[ScoredBy, ...]

    def to_json(self) -> str:
        """The whole structure as JSON (dates in ISO form)."""
        return json.dumps(asdict(self), indent=2, default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def trace(request_id: str, url: str | None = None) -> RequestLineage:
    """The lineage of the prediction logged under `request_id`; raises UnknownRequest."""
    if not request_id or len(request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidInput(
            f"request_id: must be 1 to {MAX_REQUEST_ID_CHARS} characters, got {len(request_id)}"
        )
    with db.transaction(url) as connection:
        # The request id is indexed (migration 009), so this is not a log scan.
        rows = connection.execute(
            text("SELECT * FROM prediction_log WHERE request_id = :request_id"),
            {"request_id": request_id},
        ).mappings().all()  # fmt: skip
        if not rows:
            raise UnknownRequest(f"no prediction is logged under request id {request_id!r}")
        # The served row (champion or canary) first, then the shadow's.
        rows = sorted(rows, key=lambda row: row["role"] == SHADOW_ROLE)
        client = _mlflow_client()
        scored_by = tuple(_scored_by(connection, client, row) for row in rows)
    first = rows[0]
    return RequestLineage(
        request_id=request_id,
        created_at=first["created_at"],
        customer_id=first["customer_id"],
        feature_month=first["feature_month"],
        features={name: first[f"f_{name}"] for name in FEATURE_NAMES},
        scored_by=scored_by,
    )


def registered_build_ids() -> set[int]:
    """Snapshot builds that some registered model version (of any model) was trained on."""
    client = _mlflow_client()
    builds: set[int] = set()
    token = None
    while True:
        page = client.search_model_versions(max_results=1_000, page_token=token)
        builds |= {int(v.tags[BUILD_TAG]) for v in page if v.tags.get(BUILD_TAG, "").isdigit()}
        token = page.token
        if not token:
            return builds


def prune_snapshots(
    build_ids: tuple[int, ...] = (),
    *,
    retention_days: int | None = None,
    dry_run: bool = False,
    url: str | None = None,
) -> list[SnapshotBuild]:
    """Prune snapshot builds under the retention policy, keeping every build a registered
    version names (read from MLflow first: if it is unreachable, nothing is pruned)."""
    return prune_builds(
        registered_build_ids(),
        build_ids=build_ids,
        retention_days=retention_days,
        dry_run=dry_run,
        url=url,
    )


def _mlflow_client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=get_settings().mlflow_tracking_uri)


def _scored_by(connection: Connection, client: MlflowClient, row: Mapping[str, Any]) -> ScoredBy:
    from mlflow.exceptions import MlflowException

    name, version = row["model_name"], row["model_version"]
    try:
        model_version = client.get_model_version(name, version)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        model_version = None
    run = None
    tags: dict[str, str] = {}
    if model_version is not None and model_version.run_id:
        mlflow_run = client.get_run(model_version.run_id)
        run = _training_run(client, mlflow_run)
        tags = dict(mlflow_run.data.tags)
    if model_version is not None:
        tags |= model_version.tags  # registered with the lineage; they win over the run's
    unseen = row["unseen_categories"]
    return ScoredBy(
        role=row["role"],
        model_name=name,
        model_version=version,
        predicted_class=row["predicted_class"],
        probabilities={
            score: row[column]
            for score, column in zip(CREDIT_SCORES, PROBABILITY_COLUMNS, strict=True)
        },
        unseen_categories=tuple(unseen.split(",")) if unseen else (),
        latency_ms=row["latency_ms"],
        logged_at=row["created_at"],
        registered=model_version is not None,
        run=run,
        snapshot=_snapshot(connection, tags) if model_version is not None else None,
        training_dag_run=_dag_run(tags.get(DAG_TAG), tags.get(DAG_RUN_TAG)),
        git_commit=tags.get(COMMIT_TAG) or None,
        deployments=_deployments(connection, name, version),
    )


def _training_run(client: MlflowClient, run: Any) -> TrainingRun:
    experiment_id = run.info.experiment_id
    experiment = client.get_experiment(experiment_id)
    base = get_settings().mlflow_tracking_uri.rstrip("/")
    return TrainingRun(
        run_id=run.info.run_id,
        run_name=run.info.run_name,
        experiment_id=experiment_id,
        experiment_name=experiment.name if experiment else None,
        status=run.info.status,
        started_at=datetime.fromtimestamp(run.info.start_time / 1000, UTC),
        link=f"{base}/#/experiments/{experiment_id}/runs/{run.info.run_id}",
        metrics={k: v for k, v in sorted(run.data.metrics.items()) if k.startswith("test_")},
        trigger_reason=run.data.tags.get("trigger_reason"),
    )


def _dag_run(dag_id: str | None, run_id: str | None) -> DagRun | None:
    return DagRun(dag_id or None, run_id) if run_id else None


def _snapshot(connection: Connection, tags: Mapping[str, str]) -> SnapshotLineage:
    """Look the version's build up and check its stored rows against the recorded hash."""
    recorded = tags.get(HASH_TAG) or None
    base_dt = date.fromisoformat(tags[BASE_DT_TAG]) if tags.get(BASE_DT_TAG) else None
    build_id = int(tags[BUILD_TAG]) if tags.get(BUILD_TAG, "").isdigit() else None
    build = None if build_id is None else get_build(connection, build_id)
    present = stored_rows(connection, build_id) if build is not None else None
    if build_id is None:
        problem = "the version records no snapshot build"
    elif build is None:
        problem = f"snapshot build {build_id} does not exist in this store"
    elif build.pruned_at is not None:
        problem = f"the rows of build {build_id} were pruned at {build.pruned_at}"
    elif present.row_count != build.row_count:
        problem = f"{present.row_count:,} of the build's {build.row_count:,} rows are stored"
    elif present.content_hash != build.content_hash:
        problem = "the stored rows no longer hash to the build's content hash"
    elif recorded != build.content_hash:
        problem = "the hash the version recorded is not the build's content hash"
    else:
        problem = None
    return SnapshotLineage(
        base_dt=build.base_dt if build else base_dt,
        build_id=build_id,
        recorded_hash=recorded,
        content_hash=build.content_hash if build else None,
        row_count=build.row_count if build else None,
        rows_present=present.row_count if present else 0,
        built_at=build.built_at if build else None,
        pruned_at=build.pruned_at if build else None,
        built_by=_dag_run(build.airflow_dag_id, build.airflow_run_id) if build else None,
        resolvable=problem is None,
        problem=problem,
    )


def _deployments(connection: Connection, name: str, version: str) -> tuple[Deployment, ...]:
    """Every gate or manual decision about the version, oldest first."""
    rows = connection.execute(
        text(
            "SELECT deployment_id, model_name, version, previous_version, action, reason,"
            " actor, metrics, created_at FROM deployments"
            " WHERE model_name = :name AND version = :version ORDER BY deployment_id"
        ),
        {"name": name, "version": version},
    ).mappings()
    return tuple(
        Deployment(**{**row, "metrics": json.loads(row["metrics"]) if row["metrics"] else None})
        for row in rows
    )
