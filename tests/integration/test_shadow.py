"""Shadow scoring through a real `bentoml serve`, then a promotion on the live evidence.

The champion is deliberately poor (trained on shuffled labels) and the challenger good,
so the paired comparison on the store's labelled customers has a clear winner. The
service (2 workers) runs against the session's MLflow server and a MariaDB database of
this module; the promotion is picked up by its alias pollers, with no restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pandas as pd
import pytest
from sqlalchemy import text

from mlops_platform import db, lineage, registry
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from mlops_platform.monitoring import runs, shadow
from serving.schemas import EXAMPLE_RECORD
from tests.integration.test_serving import wait_until
from tests.serving_harness import (
    fit,
    labelled_frame,
    metric_total,
    module_settings,
    promote,
    publish,
    running_service,
    set_challenger,
    shuffled,
)

CUSTOMERS = 600


@pytest.fixture(scope="module")
def environment(mlflow_server: str, module_store_url: str) -> Iterator[dict[str, str]]:
    """This module's registry model and store, for pytest and for the service."""
    load_into_store(
        GeneratorConfig(customers=CUSTOMERS, months=2, start=date(2025, 1, 1)), module_store_url
    )
    extra = {"SHADOW_MIN_LABELLED": "300"}
    with module_settings(mlflow_server, module_store_url, "shadow", extra) as values:
        yield values


@pytest.fixture(scope="module")
def versions(environment: dict[str, str], module_store_url: str) -> dict[str, str]:
    """A poor champion (shuffled labels) and a good challenger, both registered."""
    frame = labelled_frame(customers=800, months=1)
    published = {
        "champion": publish(fit(shuffled(frame), iterations=30, depth=3), frame),
        "challenger": publish(fit(frame, iterations=80, depth=5, seed=1), frame),
    }
    promote(published["champion"], module_store_url)
    set_challenger(published["challenger"])
    return published


@pytest.fixture(scope="module")
def service(environment, versions, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_service(environment, tmp_path_factory.mktemp("shadow-service")) as url:
        yield url


def every_worker_reports(url: str, champion: str, challenger: str | None) -> bool:
    """Whether /metadata names both versions on several new connections (workers poll alone)."""
    for _ in range(8):
        metadata = httpx.get(f"{url}/metadata", timeout=10).json()
        shadowing = (metadata["challenger"] or {}).get("version")
        if (metadata["version"], shadowing) != (champion, challenger):
            return False
    return True


def customer_ids(url: str) -> list[str]:
    with db.transaction(url) as connection:
        return list(connection.execute(text("SELECT customer_id FROM customers")).scalars())


def logged(url: str) -> pd.DataFrame:
    with db.get_engine(url).connect() as connection:
        return pd.read_sql(
            text("SELECT request_id, role, model_version, created_at FROM prediction_log"),
            connection,
        )


@pytest.fixture(scope="module")
def served(service: str, versions, module_store_url: str) -> list[str]:
    """Request ids of predictions made while the challenger scored in shadow."""
    wait_until(lambda: every_worker_reports(service, versions["champion"], versions["challenger"]),
               message="the workers did not load the challenger")  # fmt: skip
    answers = []
    with httpx.Client(base_url=service, timeout=30) as http:
        ids = customer_ids(module_store_url)
        for start in range(0, len(ids), 100):
            body = {"customer_ids": ids[start : start + 100]}
            answers += http.post("/predict_by_customer", json=body).raise_for_status().json()
        for _ in range(20):
            answers.append(http.post("/predict", json=EXAMPLE_RECORD).raise_for_status().json())
    assert {answer["model_version"] for answer in answers} == {versions["champion"]}
    return [answer["request_id"] for answer in answers]


def test_with_a_challenger_each_served_request_is_logged_twice(
    service: str, versions, served: list[str], module_store_url: str
) -> None:
    wait_until(lambda: len(logged(module_store_url)) >= 2 * len(served), timeout=30,
               message="the log never held two rows per served request")  # fmt: skip
    rows = logged(module_store_url)

    assert len(rows) == 2 * len(served) == 2 * (CUSTOMERS + 20)
    assert set(rows["request_id"]) == set(served)
    by_role = rows.groupby("role")["model_version"].agg(set).to_dict()
    assert by_role == {"champion": {versions["champion"]}, "shadow": {versions["challenger"]}}
    # Each request's two rows share its key time: one served, one in shadow.
    pairs = rows.groupby("request_id").agg(
        roles=("role", frozenset), times=("created_at", "nunique")
    )
    assert set(pairs["roles"]) == {frozenset({"champion", "shadow"})}
    assert set(pairs["times"]) == {1}
    assert metric_total(service, "mlops_shadow_predictions_total") == len(served)
    assert metric_total(service, "mlops_shadow_skipped_rows_total") == 0


def test_the_challenger_is_promoted_on_live_evidence_and_served_without_a_restart(
    service: str, versions, served: list[str], module_store_url: str
) -> None:
    wait_until(lambda: len(logged(module_store_url)) >= 2 * len(served), timeout=30)
    (comparison,) = shadow.compare(datetime.now(UTC) + timedelta(minutes=1))
    assert (comparison.champion_version, comparison.challenger_version) == (
        versions["champion"], versions["challenger"],
    )  # fmt: skip
    assert comparison.labelled == CUSTOMERS  # the example record's month has no label
    assert comparison.decision == shadow.CHALLENGER_BETTER, comparison.note
    assert comparison.challenger_only > comparison.champion_only and comparison.p_value < 1e-6

    promoted, why = registry.promote_on_live_evidence(comparison.report_id, actor="pytest")
    assert promoted == versions["challenger"], why
    wait_until(lambda: every_worker_reports(service, versions["challenger"], None),
               message="the workers did not swap in the promoted challenger")  # fmt: skip
    answer = httpx.post(f"{service}/predict", json=EXAMPLE_RECORD, timeout=10).json()
    assert answer["model_version"] == versions["challenger"]
    wait_until(lambda: answer["request_id"] in set(logged(module_store_url)["request_id"]))
    assert len(logged(module_store_url)) == 2 * len(served) + 1  # no challenger: one row

    # Promoted once: the same evidence does not promote again.
    assert registry.promote_on_live_evidence(comparison.report_id, actor="pytest")[0] is None
    (deployment, *_) = registry.deployment_history(module_store_url, limit=1)
    assert deployment.action == "promote" and deployment.reason.startswith("shadow: ")
    assert deployment.metrics["shadow_report_id"] == comparison.report_id

    traced = lineage.trace(served[0])
    assert [(s.role, s.model_version) for s in traced.scored_by] == [
        ("champion", versions["champion"]), ("shadow", versions["challenger"]),
    ]  # fmt: skip
    assert "promote" in [d.action for d in traced.scored_by[1].deployments]

    # The evidence is a point of the challenger's monitoring run in MLflow.
    keys = ("shadow/champion_macro_f1", "shadow/challenger_macro_f1", "shadow/labelled")
    (series,) = runs.version_series([versions["challenger"]], keys)
    (labelled,) = series.series["shadow/labelled"].values()
    (challenger_f1,) = series.series["shadow/challenger_macro_f1"].values()
    assert labelled == CUSTOMERS and challenger_f1 == pytest.approx(
        comparison.challenger["macro_f1"]
    )
