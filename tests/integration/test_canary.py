"""A canary through a real `bentoml serve`, and its automatic rollback once it degrades.

A third of the customers (sticky by id) are answered by the challenger, logged as role
`canary`; the others by the champion, scored by the challenger in shadow. The challenger
here claims a test macro-F1 it does not have (it learnt shuffled labels), so once the
labels arrive its live accuracy is `degraded` and monitoring's canary check removes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from mlflow import MlflowClient
from sqlalchemy import text

from mlops_platform import db, registry
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from mlops_platform.monitoring.performance import performance
from serving.shadow import in_canary
from tests.integration.test_serving import wait_until
from tests.integration.test_shadow import customer_ids, every_worker_reports
from tests.serving_harness import (
    fit,
    labelled_frame,
    module_settings,
    promote,
    publish,
    running_service,
    set_challenger,
    shuffled,
)

CUSTOMERS = 600
SHARE = 0.3


@pytest.fixture(scope="module")
def environment(mlflow_server: str, module_store_url: str) -> Iterator[dict[str, str]]:
    load_into_store(
        GeneratorConfig(customers=CUSTOMERS, months=2, start=date(2025, 1, 1)), module_store_url
    )
    extra = {"SERVING_CANARY_SHARE": str(SHARE), "PERFORMANCE_MIN_LABELLED": "100"}
    with module_settings(mlflow_server, module_store_url, "canary", extra) as values:
        yield values


@pytest.fixture(scope="module")
def versions(environment: dict[str, str], module_store_url: str) -> dict[str, str]:
    """A good champion, and a challenger that learnt shuffled labels but claims 0.9."""
    frame = labelled_frame(customers=800, months=1)
    published = {
        "champion": publish(fit(frame, iterations=80, depth=5), frame),
        "challenger": publish(fit(shuffled(frame), iterations=30, depth=3, seed=1), frame),
    }
    promote(published["champion"], module_store_url)
    client = MlflowClient()
    run_id = client.get_model_version(registry.model_name(), published["challenger"]).run_id
    client.log_metric(run_id, "test_macro_f1", 0.9)  # an offline figure live traffic refutes
    set_challenger(published["challenger"])
    return published


@pytest.fixture(scope="module")
def service(environment, versions, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_service(environment, tmp_path_factory.mktemp("canary-service")) as url:
        yield url


def predict_everyone(url: str, customers: list[str]) -> dict[str, str]:
    """Each customer's answering version, by customer."""
    answers = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for start in range(0, len(customers), 100):
            body = {"customer_ids": customers[start : start + 100]}
            answers += http.post("/predict_by_customer", json=body).raise_for_status().json()
    return {answer["customer_id"]: answer["model_version"] for answer in answers}


def role_counts(url: str) -> dict[str, int]:
    with db.transaction(url) as connection:
        rows = connection.execute(text("SELECT role, COUNT(*) FROM prediction_log GROUP BY role"))
        return {role: count for role, count in rows}


def test_a_sticky_share_gets_the_challenger_and_a_degraded_canary_is_rolled_back(
    service: str, versions, module_store_url: str
) -> None:
    champion, challenger = versions["champion"], versions["challenger"]
    wait_until(lambda: every_worker_reports(service, champion, challenger),
               message="the workers did not load the challenger")  # fmt: skip
    customers = customer_ids(module_store_url)
    first, again = predict_everyone(service, customers), predict_everyone(service, customers)

    expected = {c: challenger if in_canary(c, SHARE) else champion for c in customers}
    assert first == again == expected
    canary = sum(version == challenger for version in first.values())
    assert 0.2 * CUSTOMERS < canary < 0.4 * CUSTOMERS
    # The champion's answers were scored in shadow too; the canary's were not.
    served_by_champion = 2 * (CUSTOMERS - canary)
    wait_until(lambda: role_counts(module_store_url) == {
        "champion": served_by_champion, "shadow": served_by_champion, "canary": 2 * canary,
    }, message=f"log roles: {role_counts(module_store_url)}")  # fmt: skip

    # The labels arrive: the canary's live accuracy is far below what it claimed.
    now = datetime.now(UTC).replace(tzinfo=None)
    with db.transaction(module_store_url) as connection:
        connection.execute(
            text("UPDATE credit_labels SET observed_at = :now"), {"now": now - timedelta(minutes=1)}
        )
    live = performance(end=now + timedelta(minutes=1), url=module_store_url)
    assert live.version(challenger).decision == "degraded"
    assert live.version(challenger).labelled == 2 * canary
    live_f1 = {v.model_version: v.metrics["macro_f1"] for v in live.versions}
    assert live_f1[champion] > live_f1[challenger] + 0.1

    stopped, why = registry.stop_degraded_canary(live.report_ids, actor="pytest")
    assert stopped == challenger, why
    aliases = MlflowClient().get_registered_model(registry.model_name()).aliases
    assert aliases[registry.CHAMPION] == champion and registry.CHALLENGER not in aliases
    (deployment, *_) = registry.deployment_history(module_store_url, limit=1)
    assert (deployment.action, deployment.version) == ("canary_rollback", challenger)
    assert deployment.reason.startswith("canary: live macro-F1")
    assert deployment.metrics["labelled"] == 2 * canary

    wait_until(lambda: every_worker_reports(service, champion, None),
               message="the workers kept the challenger")  # fmt: skip
    assert set(predict_everyone(service, customers).values()) == {champion}
    assert registry.stop_degraded_canary(live.report_ids, actor="pytest")[0] is None
