"""The prediction service as `make serve` runs it, against real MLflow and MariaDB servers.

One `bentoml serve` subprocess (2 workers) serves the module; it starts before any
champion exists. Its feature and log store lives on a private `mariadbd` that the
outage test stops and restarts. Every successful prediction's request_id is kept in
`served`, so the tests can demand that `prediction_log` holds exactly those rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from sqlalchemy import bindparam, text

from mlops_platform import db, registry
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from mlops_platform.mariadb_server import LocalMariaDB, free_port, start_local_mariadb
from serving.schemas import EXAMPLE_RECORD
from serving.validation import MAX_LISTED_ERRORS
from tests.serving_bodies import HOSTILE_BODIES, assert_envelope, unknown_fields_batch
from tests.serving_harness import (
    ServiceProcess,
    fit,
    labelled_frame,
    metric_total,
    module_settings,
    promote,
    publish,
    records,
    service_settings,
)

CUSTOMERS = 200
JSON = {"content-type": "application/json"}
BACKLOG = "mlops_prediction_log_backlog_rows"
PREDICTIONS = "mlops_predictions_total"
LATEST_MONTH = "2025-02-01"


@dataclass
class LogStore:
    """A private mariadbd holding the feature store and the prediction log."""

    server: LocalMariaDB
    url: str

    def restart(self) -> None:
        self.server = start_local_mariadb(self.server.datadir, port=self.server.port)

    def logged_ids(self) -> set[str]:
        with db.transaction(self.url) as connection:
            return set(connection.execute(text("SELECT request_id FROM prediction_log")).scalars())

    def rows(self, request_ids: list[str]) -> dict[str, dict[str, Any]]:
        query = text("SELECT * FROM prediction_log WHERE request_id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        with db.transaction(self.url) as connection:
            rows = connection.execute(query, {"ids": request_ids}).mappings()
            return {row["request_id"]: dict(row) for row in rows}

    def customer_ids(self, count: int) -> list[str]:
        with db.transaction(self.url) as connection:
            return list(
                connection.execute(
                    text("SELECT customer_id FROM customers ORDER BY customer_id LIMIT :n"),
                    {"n": count},
                ).scalars()
            )


@dataclass
class Client:
    """Calls the service and remembers the request_id of every prediction it returned."""

    service: ServiceProcess
    served: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, path: str, payload: Any, http: httpx.Client | None = None) -> httpx.Response:
        response = (http or httpx).post(self.service.url + path, json=payload, timeout=30)
        self.remember(path, response)
        return response

    def remember(self, path: str, response: Any) -> None:
        """Keep the request ids of a successful prediction response."""
        if response.status_code == 200 and path.startswith("/predict"):
            body = response.json()
            with self.lock:
                self.served.extend(
                    p["request_id"] for p in (body if isinstance(body, list) else [body])
                )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.service.url + path, timeout=10)


def metric(client: Client, name: str) -> float:
    return metric_total(client.service.url, name)


def wait_until(condition: Callable[[], Any], timeout: float = 30, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, message or "condition not met in time"
        time.sleep(0.2)
    return result


@pytest.fixture(scope="module")
def log_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogStore]:
    server = start_local_mariadb(tmp_path_factory.mktemp("log-store") / "data")
    store = LogStore(server, server.url("mlops_serving"))
    try:
        db.upgrade(store.url)
        load_into_store(
            GeneratorConfig(customers=CUSTOMERS, months=2, start=date(2025, 1, 1)), store.url
        )
        yield store
    finally:
        db.get_engine(store.url).dispose()
        store.server.stop()


@pytest.fixture(scope="module")
def environment(mlflow_server: str, log_store: LogStore) -> Iterator[dict[str, str]]:
    """MLflow and store settings of this module, for pytest and for the service."""
    with module_settings(mlflow_server, log_store.url, "serving") as values:
        yield values


@pytest.fixture(scope="module")
def service_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="module")
def service(environment: dict[str, str], service_dir: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess(
        {
            **environment,
            **service_settings(service_dir),
            # Long enough that rows are still queued when the shutdown test stops it.
            "SERVING_LOG_FLUSH_INTERVAL_S": "2",
        },
        service_dir / "service.log",
    ).start()
    try:
        process.wait("/livez")
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(service: ServiceProcess) -> Client:
    return Client(service)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return labelled_frame(customers=800, months=1)


@pytest.fixture(scope="module")
def versions(environment, log_store: LogStore, client: Client, frame) -> dict[str, str]:
    """Two registered versions; the first is promoted and the service has picked it up."""
    published = {
        "first": publish(fit(frame, iterations=40, depth=3), frame),
        "second": publish(fit(frame, iterations=80, depth=5, seed=1), frame),
    }
    promote(published["first"], log_store.url)
    client.service.wait("/readyz", timeout=30)
    return published


def champion_version(client: Client) -> str:
    return client.get("/metadata").json()["version"]


def every_worker_reports(client: Client, version: str, asks: int = 8) -> bool:
    """Whether /metadata says `version` on several new connections (each worker polls alone)."""
    return all(champion_version(client) == version for _ in range(asks))


def assert_log_holds_exactly_what_was_served(client: Client, log_store: LogStore) -> None:
    expected = set(client.served)
    wait_until(lambda: log_store.logged_ids() == expected, timeout=30,
               message="prediction_log does not hold exactly the served predictions")  # fmt: skip
    assert len(client.served) == len(expected)  # request ids are unique


def test_without_a_champion_it_is_live_but_not_ready(client: Client) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 503
    response = client.post("/predict", EXAMPLE_RECORD)
    assert response.status_code == 503
    assert "no champion" in response.json()["error"]


def test_the_promoted_champion_is_served_with_its_metadata(client: Client, versions) -> None:
    metadata = client.get("/metadata").json()

    assert metadata["version"] == versions["first"]
    assert metadata["model_name"] == registry.model_name() and metadata["alias"] == "champion"
    assert metadata["base_dt"] == "2025-03-01" and not metadata["from_cache"]
    assert 0 < metadata["metrics"]["test_macro_f1"] <= 1
    assert metadata["run_id"]


def test_predictions_single_batch_and_by_customer_are_logged(
    client: Client, versions, log_store: LogStore, frame
) -> None:
    single = client.post("/predict", {**EXAMPLE_RECORD, "occupation": "Astronaut"})
    batch = client.post("/predict", records(frame.head(50)))
    customer_ids = log_store.customer_ids(5)
    by_customer = client.post("/predict_by_customer", {"customer_ids": customer_ids})

    assert [r.status_code for r in (single, batch, by_customer)] == [200, 200, 200]
    assert single.json()["unseen_categories"] == ["occupation"]
    assert len(batch.json()) == 50
    assert [p["customer_id"] for p in by_customer.json()] == customer_ids
    assert {p["feature_month"] for p in by_customer.json()} == {LATEST_MONTH}

    assert_log_holds_exactly_what_was_served(client, log_store)
    ids = [single.json()["request_id"], by_customer.json()[0]["request_id"]]
    logged = log_store.rows(ids)
    first, customer = logged[ids[0]], logged[ids[1]]
    assert (first["customer_id"], str(first["feature_month"])) == ("CUS_0x1a2b", "2025-06-01")
    assert first["unseen_categories"] == "occupation"
    assert first["model_version"] == versions["first"] and first["latency_ms"] > 0
    assert (customer["customer_id"], str(customer["feature_month"])) == (
        customer_ids[0], LATEST_MONTH,
    )  # fmt: skip


def test_client_mistakes_get_4xx_in_the_envelope_that_name_the_problem(
    client: Client, versions
) -> None:
    url = client.service.url
    out_of_range = client.post("/predict", [EXAMPLE_RECORD, {**EXAMPLE_RECORD, "age": 200}])
    [error] = assert_envelope(out_of_range, 400)["errors"]
    assert (error["loc"], error["field"], error["rule"]) == ([1, "age"], "age", "less_than_equal")
    [null] = assert_envelope(client.post("/predict", {**EXAMPLE_RECORD, "age": None}))["errors"]
    assert null["message"] == "age: is required and may not be null"
    duplicate = httpx.post(url + "/predict", content=b'{"age": -5, "age": 41}', headers=JSON)
    assert assert_envelope(duplicate, 400)["errors"][0]["rule"] == "duplicate_field"

    empty = httpx.post(url + "/predict", content=b"", headers=JSON)
    assert assert_envelope(empty, 400)["error"].startswith("empty body")
    malformed = httpx.post(url + "/predict", content=b"{not json", headers=JSON)
    assert assert_envelope(malformed, 400)["rule"] == "json_invalid"
    unknown = client.post("/predict_by_customer", {"customer_ids": ["CUS_0xdoesnotexist"]})
    assert "CUS_0xdoesnotexist" in assert_envelope(unknown, 404)["error"]
    extra = client.post("/predict_by_customer", {"customer_ids": ["CUS_0x1"], "limit": 5})
    assert assert_envelope(extra, 400)["errors"][0]["loc"] == ["limit"]

    assert_envelope(httpx.post(url + "/predict", content=b"[" + b" " * 3_000_000), 413)
    assert_envelope(httpx.post(url + "/predict", data={"age": "30"}), 415)
    assert_envelope(httpx.get(url + "/nowhere"), 404)
    assert_envelope(httpx.get(url + "/predict"), 405)
    # Past the body limit in a header: read by the server, refused before any handler.
    huge_header = httpx.get(url + "/metadata", headers={"x-padding": "a" * 4_000_000})
    assert "headers are larger" in assert_envelope(huge_header, 431)["error"]
    assert client.post("/predict", EXAMPLE_RECORD).status_code == 200


def test_every_hostile_body_gets_a_4xx_in_the_envelope(client: Client, versions) -> None:
    with httpx.Client(base_url=client.service.url, headers=JSON, timeout=30) as http:
        for name, path, body in HOSTILE_BODIES:
            response = http.post(path, content=body)
            try:
                assert_envelope(response)
            except AssertionError as failure:
                raise AssertionError(f"{name}: {failure}") from None
    assert client.post("/predict", EXAMPLE_RECORD).status_code == 200


def test_a_batch_of_unknown_fields_gets_a_bounded_answer(client: Client, versions) -> None:
    body = unknown_fields_batch()  # the 1.7 MB body: it got 30 MB of errors after 11.7 s
    response = httpx.post(client.service.url + "/predict", content=body, headers=JSON)
    every_record_wrong = client.post("/predict", [{"age": "x"}] * 1_000)

    assert assert_envelope(response, 400)["rule"] == "too_many_fields"
    assert len(response.content) < 1_000
    answer = assert_envelope(every_record_wrong, 400)
    assert len(answer["errors"]) == MAX_LISTED_ERRORS < 1_000 < answer["error_count"]
    assert len(every_record_wrong.content) < 10_000


def test_rows_written_as_in_the_data_set_are_normalised_and_predicted(
    client: Client, versions, log_store: LogStore
) -> None:
    row = {
        **EXAMPLE_RECORD,
        "type_of_loan": "Auto Loan, Credit-Builder Loan, and Personal Loan",
        "num_credit_card": 5.0,
        "num_credit_inquiries": 4.0,
        "customer_id": 4021,
    }
    response = client.post("/predict", row)
    fraction = client.post("/predict", {**row, "num_credit_card": 5.5})

    assert response.status_code == 200, response.text
    assert response.json()["customer_id"] == "4021"
    [error] = assert_envelope(fraction, 400)["errors"]
    assert (error["field"], error["rule"]) == ("num_credit_card", "whole_number")
    assert_log_holds_exactly_what_was_served(client, log_store)
    logged = log_store.rows([response.json()["request_id"]])[response.json()["request_id"]]
    assert logged["f_type_of_loan"] == "Auto Loan,Credit-Builder Loan,Personal Loan"
    assert (logged["f_num_credit_card"], logged["customer_id"]) == (5, "4021")


def test_a_new_champion_and_a_rollback_are_picked_up_without_a_failed_request(
    client: Client, versions, log_store: LogStore
) -> None:
    outcomes: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def keep_predicting() -> None:
        with httpx.Client() as http:
            while not stop.is_set():
                response = client.post("/predict", EXAMPLE_RECORD, http)
                version = response.json().get("model_version") if response.is_success else None
                outcomes.append((response.status_code, version))

    def serving_only(version: str) -> bool:
        return len(outcomes) > 40 and {v for _, v in outcomes[-40:]} == {version}

    loop = threading.Thread(target=keep_predicting)
    loop.start()
    try:
        promote(versions["second"], log_store.url)
        wait_until(lambda: serving_only(versions["second"]), message="new champion not served")
        wait_until(lambda: every_worker_reports(client, versions["second"]))

        registry.rollback("serving test", actor="pytest", url=log_store.url)
        wait_until(lambda: serving_only(versions["first"]), message="rollback not served")
        wait_until(lambda: every_worker_reports(client, versions["first"]))
    finally:
        stop.set()
        loop.join()

    assert {status for status, _ in outcomes} == {200}
    assert {version for _, version in outcomes} == {versions["first"], versions["second"]}
    metrics = client.get("/metrics").text
    assert 'mlops_champion_reloads_total{result="success"}' in metrics
    assert_log_holds_exactly_what_was_served(client, log_store)


def test_a_log_store_outage_loses_no_prediction(
    client: Client, versions, log_store: LogStore, service_dir: Path
) -> None:
    assert_log_holds_exactly_what_was_served(client, log_store)
    log_store.server.stop()
    try:
        during = [client.post("/predict", EXAMPLE_RECORD) for _ in range(30)]
        during.append(client.post("/predict", [EXAMPLE_RECORD] * 200))
        assert {r.status_code for r in during} == {200}
        store_down = client.post("/predict_by_customer", {"customer_ids": ["CUS_0xnotcached"]})
        assert store_down.status_code == 503
        wait_until(lambda: any((service_dir / "spool").glob("*.tsv")),
                   message="nothing was spooled")  # fmt: skip
        # 230 rows wait (more, if rows of earlier tests were not stored yet).
        wait_until(lambda: metric(client, BACKLOG) >= 230, message="the backlog reads too low")
    finally:
        log_store.restart()

    assert_log_holds_exactly_what_was_served(client, log_store)
    wait_until(lambda: metric(client, BACKLOG) == 0, message="backlog left after the replay")
    wait_until(lambda: not list((service_dir / "spool").glob("*.tsv")),
               message="spool files left after the replay")  # fmt: skip
    metrics = client.get("/metrics").text
    assert 'mlops_prediction_log_rows_total{destination="replay"}' in metrics


def test_two_services_on_one_host_keep_their_own_metrics(
    client: Client, versions, environment, service_dir: Path
) -> None:
    assert client.post("/predict", EXAMPLE_RECORD).status_code == 200
    predicted = metric(client, PREDICTIONS)
    assert predicted > 0
    other = ServiceProcess(
        {**environment, "SERVING_WORKERS": "1",
         "SERVING_CACHE_DIR": str(service_dir / "cache"),
         "SERVING_SPOOL_DIR": str(service_dir / "spool")},
        service_dir / "other.log",
    ).start()  # fmt: skip
    try:
        other.wait("/readyz")
        beside = Client(other, client.served, client.lock)
        assert metric(beside, PREDICTIONS) == 0  # before, it listed the first one's counters
        assert beside.post("/predict", [EXAMPLE_RECORD] * 3).status_code == 200

        assert metric(beside, PREDICTIONS) == 3
        assert metric(client, PREDICTIONS) == predicted  # and starting it wiped them
    finally:
        other.stop()
    assert other.bentoml_home != client.service.bentoml_home


def test_schemathesis_finds_no_server_error(client: Client, versions, log_store) -> None:
    schema = schemathesis.openapi.from_url(client.service.url + "/docs.json")
    for result in schema.get_all_operations():
        operation = result.ok()
        explore(client, operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        # Only bodies can be malformed: the GET operations here take no input at all.
        if operation.method.upper() == "POST":
            explore(client, operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    assert_log_holds_exactly_what_was_served(client, log_store)


def explore(client: Client, cases: Any) -> None:
    """Send generated requests; none may get a 5xx (the 200s are remembered as served)."""

    @given(case=cases)
    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def call(case: Any) -> None:
        response = case.call(base_url=client.service.url)
        case.validate_response(response, checks=[not_a_server_error])
        client.remember(case.path, response)

    call()


def test_shutdown_flushes_the_log_and_a_restart_without_mlflow_serves_the_cache(
    client: Client, versions, environment, log_store: LogStore, service_dir: Path
) -> None:
    client.post("/predict", [EXAMPLE_RECORD] * 300)
    client.service.stop()  # the log rows are still queued (2 s flush interval)
    assert log_store.logged_ids() == set(client.served)

    offline = ServiceProcess(
        {
            **environment,
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}",  # nothing listens
            "SERVING_WORKERS": "1",
            "SERVING_CACHE_DIR": str(service_dir / "cache"),
            "SERVING_SPOOL_DIR": str(service_dir / "spool"),
        },
        service_dir / "offline.log",
    ).start()
    try:
        offline.wait("/readyz")
        cached = Client(offline, client.served, client.lock)
        metadata = cached.get("/metadata").json()
        assert metadata["from_cache"] is True and metadata["version"] == versions["first"]
        assert cached.post("/predict", EXAMPLE_RECORD).status_code == 200
    finally:
        offline.stop()
    assert_log_holds_exactly_what_was_served(client, log_store)
