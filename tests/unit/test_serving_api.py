"""The prediction service through BentoML's ASGI app, with a small in-memory champion.

MLflow, MariaDB and the feature store are replaced by fakes; the integration tests run
the same service against the real ones.
"""

from __future__ import annotations

import importlib.metadata
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from mlops_platform.config import get_settings
from mlops_platform.schema import CREDIT_SCORES, FEATURES
from serving import customers
from serving.aliases import LoadedModel
from serving.customers import FeatureStoreUnavailable
from serving.schemas import EXAMPLE_RECORD, MAX_BATCH
from serving.validation import MAX_LISTED_ERRORS
from tests.serving_bodies import (
    ENVELOPE_KEYS,
    HOSTILE_BODIES,
    assert_envelope,
    record_text,
    unknown_fields_batch,
)
from tests.serving_harness import fit, labelled_frame, records
from tests.unit.test_serving_log import FakeTable, features_of, logged_features, wait_until

JSON = {"content-type": "application/json"}


class FakeSource:
    """The registry and cache of one alias: `version` is where it points (None: unset)."""

    def __init__(self, loaded: LoadedModel | None, alias: str = "champion") -> None:
        self.loaded = loaded
        self.alias, self.model_name = alias, "credit_score"
        self.version = loaded.version if loaded else None

    def startup(self) -> LoadedModel | None:
        return self.loaded

    def registered_version(self) -> str | None:
        return self.version

    def load(self, version: str) -> LoadedModel:
        assert self.loaded is not None
        return replace(self.loaded, version=version, loaded_at=datetime.now(UTC))

    def forget(self) -> None:
        self.loaded = None


class FakeCustomers:
    """The feature store's latest month per customer."""

    def __init__(self, rows: dict[str, dict]) -> None:
        self.rows = rows
        self.down = False

    def cached(self, customer_ids):
        return {}

    def fetch(self, customer_ids):
        if self.down:
            raise FeatureStoreUnavailable("the feature store is unavailable (primary: refused)")
        return {c: self.rows[c] for c in customer_ids if c in self.rows}


@pytest.fixture(scope="module")
def champion() -> LoadedModel:
    frame = labelled_frame(customers=400, months=1)
    return LoadedModel(
        model=fit(frame, iterations=20, depth=3), model_name="credit_score", version="1",
        alias="champion", run_id="run-1", base_dt="2025-03-01", metrics={"test_macro_f1": 0.8},
        loaded_at=datetime.now(UTC), from_cache=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def challenger(champion: LoadedModel) -> LoadedModel:
    """Another model, version 2: its predictions differ from the champion's on some rows."""
    frame = labelled_frame(customers=400, months=1, seed=11)
    model = fit(frame, iterations=5, depth=2, seed=3)
    return replace(champion, model=model, version="2", alias="challenger", run_id="run-2")


@pytest.fixture
def fakes(champion: LoadedModel) -> dict:
    stored = {**EXAMPLE_RECORD, "customer_id": "CUS_0x1", "month": date(2025, 5, 1)}
    return {
        "source": FakeSource(champion),
        "challenger": FakeSource(None, "challenger"),
        "table": FakeTable(),
        "customers": FakeCustomers({"CUS_0x1": stored}),
    }


@pytest.fixture(scope="module")
def app():
    """Built once: BentoML registers its Prometheus metrics when the app is assembled."""
    import serving.service

    return serving.service.CreditScoreService.to_asgi()


@contextmanager
def running(app, monkeypatch, tmp_path, fakes) -> Iterator[TestClient]:
    """The service started (its lifespan: __init__ … shutdown) with the fakes in place."""
    import serving.service

    monkeypatch.setenv("SERVING_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("SERVING_POLL_INTERVAL_S", "0.05")
    monkeypatch.setenv("SERVING_LOG_FLUSH_INTERVAL_S", "0.02")
    get_settings.cache_clear()
    monkeypatch.setattr(
        serving.service,
        "AliasSource",
        lambda *_, alias: fakes["source"] if alias == "champion" else fakes["challenger"],
    )
    monkeypatch.setattr(serving.service, "MariaDBSink", lambda *_: fakes["table"])
    monkeypatch.setattr(serving.service, "CustomerFeatures", lambda *_: fakes["customers"])
    with TestClient(app) as test_client:
        yield test_client
    get_settings.cache_clear()


@pytest.fixture
def client(app, monkeypatch, tmp_path, fakes) -> Iterator[TestClient]:
    with running(app, monkeypatch, tmp_path, fakes) as test_client:
        yield test_client


def test_one_record_gets_one_prediction_with_probabilities_and_model(client, fakes):
    response = client.post("/predict", json=EXAMPLE_RECORD)

    assert response.status_code == 200
    body = response.json()
    assert body["predicted_class"] == max(body["probabilities"], key=body["probabilities"].get)
    assert list(body["probabilities"]) == list(CREDIT_SCORES)
    assert sum(body["probabilities"].values()) == pytest.approx(1)
    assert (body["model_name"], body["model_version"]) == ("credit_score", "1")
    assert (body["customer_id"], body["feature_month"]) == ("CUS_0x1a2b", "2025-06-01")
    assert body["unseen_categories"] == []

    wait_until(lambda: body["request_id"] in fakes["table"].rows)
    row = fakes["table"].rows[body["request_id"]]
    assert logged_features(row) == features_of(EXAMPLE_RECORD)
    assert row["feature_month"] == "2025-06-01" and row["customer_id"] == "CUS_0x1a2b"
    assert {score: float(row[f"prob_{score.lower()}"]) for score in CREDIT_SCORES} == body[
        "probabilities"
    ]
    assert datetime.strptime(row["created_at"], "%Y-%m-%d %H:%M:%S.%f")


def test_a_batch_gets_one_prediction_per_record_in_order(client, fakes):
    batch = records(labelled_frame(customers=30, months=1))
    response = client.post("/predict", json=batch)

    assert response.status_code == 200
    predictions = response.json()
    assert len(predictions) == 30 and len({p["request_id"] for p in predictions}) == 30
    wait_until(lambda: len(fakes["table"].rows) == 30)
    logged = [fakes["table"].rows[p["request_id"]] for p in predictions]
    assert [logged_features(row) for row in logged] == [features_of(r) for r in batch]


def test_an_unseen_but_well_formed_category_is_predicted_and_flagged(client, fakes):
    response = client.post("/predict", json={**EXAMPLE_RECORD, "occupation": "Astronaut"})

    assert response.status_code == 200
    request_id = response.json()["request_id"]
    assert response.json()["unseen_categories"] == ["occupation"]
    wait_until(lambda: request_id in fakes["table"].rows)
    assert fakes["table"].rows[request_id]["unseen_categories"] == "occupation"


def test_nullable_features_may_be_left_out(client):
    required = {f.name: EXAMPLE_RECORD[f.name] for f in FEATURES if not f.nullable}

    assert client.post("/predict", json=required).status_code == 200


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"age": 500}, "age", "less_than_equal"),
        ({"age": 30.5}, "age", "whole_number"),
        ({"age": "30"}, "age", "int_type"),
        ({"annual_income": None}, "annual_income", "null_not_allowed"),
        ({"interest_rate": True}, "interest_rate", "float_type"),
        ({"occupation": "!@9#%8"}, "occupation", "string_pattern_mismatch"),
        ({"type_of_loan": "Auto Loan,"}, "type_of_loan", "string_pattern_mismatch"),
        ({"type_of_loan": ",".join(["Auto Loan"] * 30)}, "type_of_loan", "string_too_long"),
        ({"month": "2025-06-15"}, "month", "first_of_month"),
        ({"month": "2025-6-1"}, "month", "date_format"),
        ({"month": 1_750_000_000}, "month", "date_type"),
        ({"customer_id": "x" * 25}, "customer_id", "string_pattern_mismatch"),
        ({"nickname": "Bob"}, "nickname", "extra_forbidden"),
    ],
)
def test_bad_fields_get_400_naming_the_field_and_the_rule(client, fakes, change, field, rule):
    response = client.post("/predict", json=[EXAMPLE_RECORD, {**EXAMPLE_RECORD, **change}])

    body = assert_envelope(response, 400)
    [error] = body["errors"]
    assert (error["loc"], error["field"], error["rule"]) == ([1, field], field, rule)
    assert body["error_count"] == 1 and body["rule"] == "validation_failed"
    assert fakes["table"].rows == {}


def test_a_null_in_a_required_field_says_it_is_required(client):
    [error] = assert_envelope(client.post("/predict", json={**EXAMPLE_RECORD, "age": None}))[
        "errors"
    ]
    assert error["message"] == "age: is required and may not be null"


def test_a_missing_required_feature_is_named(client):
    record = {k: v for k, v in EXAMPLE_RECORD.items() if k != "outstanding_debt"}

    [error] = assert_envelope(client.post("/predict", json=record), 400)["errors"]
    assert (error["loc"], error["rule"]) == (["outstanding_debt"], "missing")


def test_duplicate_keys_get_400_naming_the_field(client):
    body = record_text(age="-5")[:-1] + b',"age":41}'
    response = client.post("/predict", content=body, headers=JSON)

    [error] = assert_envelope(response, 400)["errors"]
    assert (error["loc"], error["field"], error["rule"]) == (["age"], "age", "duplicate_field")


def test_dataset_rows_are_normalised_and_predicted(client, fakes):
    row = {
        **EXAMPLE_RECORD,
        "type_of_loan": "Auto Loan, Credit-Builder Loan, and Personal Loan",
        "num_bank_accounts": 4.0,
        "num_of_delayed_payment": 7.0,
        "customer_id": 1234,
    }
    response = client.post("/predict", json=row)

    assert response.status_code == 200, response.text
    assert response.json()["customer_id"] == "1234"
    wait_until(lambda: response.json()["request_id"] in fakes["table"].rows)
    logged = logged_features(fakes["table"].rows[response.json()["request_id"]])
    assert logged["type_of_loan"] == "Auto Loan,Credit-Builder Loan,Personal Loan"
    assert (logged["num_bank_accounts"], logged["num_of_delayed_payment"]) == (4, 7)


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (b"{not json", "json_invalid"),
        (b"", "empty_body"),
        (b"  ", "empty_body"),
        (b"42", "body_type"),
        (json.dumps({**EXAMPLE_RECORD, "annual_income": float("nan")}).encode(), "finite_number"),
        (b"[" * 10_000, "json_too_deep"),
        (b"[]", "batch_size"),
        (json.dumps([EXAMPLE_RECORD] * (MAX_BATCH + 1)).encode(), "batch_size"),
    ],
)
def test_malformed_bodies_get_400_not_500(client, body, rule):
    response = client.post("/predict", content=body, headers=JSON)

    assert assert_envelope(response, 400)["rule"] == rule
    assert client.post("/predict", json=EXAMPLE_RECORD).status_code == 200  # still serving


def test_error_lists_are_bounded_with_a_total_count(client):
    one = assert_envelope(client.post("/predict", json={"age": "x"}), 400)["error_count"]
    response = client.post("/predict", json=[{"age": "x"}] * 1_000)

    body = assert_envelope(response, 400)
    assert (len(body["errors"]), body["error_count"]) == (MAX_LISTED_ERRORS, 1_000 * one)
    assert [error["loc"][0] for error in body["errors"]] == [0] * one + [1] * (20 - one)
    assert len(response.content) < 10_000


def test_a_body_of_more_fields_than_any_valid_one_is_refused_before_parsing(client):
    response = client.post("/predict", content=unknown_fields_batch(), headers=JSON)

    body = assert_envelope(response, 400)
    assert body["rule"] == "too_many_fields" and "200,000 fields" in body["error"]
    assert len(response.content) < 1_000


@pytest.mark.parametrize(
    ("name", "path", "body"), HOSTILE_BODIES, ids=[b[0] for b in HOSTILE_BODIES]
)
def test_every_hostile_body_gets_a_4xx_in_the_envelope(client, fakes, name, path, body):
    assert_envelope(client.post(path, content=body, headers=JSON))
    assert fakes["table"].rows == {}


def test_bodies_over_the_limit_get_413_also_when_chunked(client):
    limit = get_settings().serving_max_body_bytes
    big = b"[" + b" " * limit + b"]"

    assert_envelope(client.post("/predict", content=big), 413)
    chunked = client.post("/predict", content=iter([big[:1000], big[1000:]]))
    assert "larger than" in assert_envelope(chunked, 413)["error"]


def test_an_empty_chunked_body_is_answered_as_empty(client):
    response = client.post("/predict", content=iter([b""]), headers=JSON)

    assert assert_envelope(response, 400)["rule"] == "empty_body"


def test_bodies_that_are_not_json_get_415(client):
    assert_envelope(client.post("/predict", data={"age": "30"}), 415)


def test_oversize_headers_get_431(client):
    limit = get_settings().serving_max_header_bytes
    response = client.get("/metadata", headers={"x-padding": "a" * limit})

    assert "headers are larger" in assert_envelope(response, 431)["error"]


def test_the_frameworks_own_4xx_answers_use_the_envelope(client):
    assert "/nowhere" in assert_envelope(client.get("/nowhere"), 404)["error"]
    assert "GET is not allowed" in assert_envelope(client.get("/predict"), 405)["error"]
    assert_envelope(client.put("/metadata", json={}), 405)


def test_predict_by_customer_uses_the_latest_stored_month(client, fakes):
    response = client.post("/predict_by_customer", json={"customer_ids": ["CUS_0x1", "CUS_0x1"]})

    assert response.status_code == 200
    predictions = response.json()
    assert [(p["customer_id"], p["feature_month"]) for p in predictions] == [
        ("CUS_0x1", "2025-05-01")
    ] * 2
    wait_until(lambda: len(fakes["table"].rows) == 2)
    assert {row["feature_month"] for row in fakes["table"].rows.values()} == {"2025-05-01"}


def test_predict_by_customer_answers_404_naming_unknown_ids_and_predicts_nothing(client, fakes):
    ids = ["CUS_0x1", "CUS_0xnope", "CUS_0xgone"]
    response = client.post("/predict_by_customer", json={"customer_ids": ids})

    assert response.status_code == 404
    assert response.json()["error"].endswith("CUS_0xgone, CUS_0xnope")
    time.sleep(0.1)
    assert fakes["table"].rows == {}


def test_predict_by_customer_validates_ids_and_reports_a_store_outage_as_503(client, fakes):
    bad = client.post("/predict_by_customer", json={"customer_ids": ["CUS 1; DROP"]})
    assert assert_envelope(bad, 400)["errors"][0]["loc"] == ["customer_ids", 0]
    extra = client.post("/predict_by_customer", json={"customer_ids": ["CUS_0x1"], "x": 1})
    assert assert_envelope(extra, 400)["errors"][0]["rule"] == "extra_forbidden"

    fakes["customers"].down = True
    down = client.post("/predict_by_customer", json={"customer_ids": ["CUS_0x1"]})
    assert down.status_code == 503
    assert down.json()["error"] == "the feature store is unavailable; try again shortly"


REPLICA_LAG = "mlops_feature_store_replica_lag_seconds"


def lag_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "replica-lag"]


def test_with_a_read_replica_its_lag_is_watched_until_shutdown(app, monkeypatch, tmp_path, fakes):
    monkeypatch.setenv("FEATURE_STORE_READ_URL", "mysql+pymysql://root@replica:3306/mlops")
    monkeypatch.setattr(customers, "replica_lag_seconds", lambda url: 2.5)

    with running(app, monkeypatch, tmp_path, fakes):
        assert lag_threads()
        wait_until(lambda: REGISTRY.get_sample_value(REPLICA_LAG) == 2.5)

    assert lag_threads() == []


def test_without_a_read_replica_no_lag_thread_runs(client):
    assert lag_threads() == []


def test_metadata_describes_the_champion(client):
    metadata = client.get("/metadata").json()

    assert metadata["model_name"] == "credit_score" and metadata["version"] == "1"
    assert metadata["base_dt"] == "2025-03-01" and metadata["metrics"] == {"test_macro_f1": 0.8}
    assert metadata["from_cache"] is False and metadata["run_id"] == "run-1"


def test_a_new_champion_version_is_swapped_in_without_a_restart(client, fakes):
    fakes["source"].version = "2"

    wait_until(lambda: client.get("/metadata").json()["version"] == "2")
    assert client.post("/predict", json=EXAMPLE_RECORD).json()["model_version"] == "2"


def test_the_openapi_document_names_the_api_and_its_version(client):
    info = client.get("/docs.json").json()["info"]

    assert info["title"] == "Credit-score prediction API"
    assert info["version"] == importlib.metadata.version("mlops-platform") != "None"
    assert "POST /predict" in info["description"] and "BentoML Team" not in str(info)


def test_the_api_and_metadata_are_in_the_openapi_document(client):
    paths = client.get("/docs.json").json()["paths"]

    assert {"/predict", "/predict_by_customer", "/metadata"} <= paths.keys()
    request = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert len(request["oneOf"]) == 2  # one record, or a batch


def test_without_a_champion_the_service_is_not_ready_and_says_why(
    app, monkeypatch, tmp_path, fakes
):
    fakes["source"] = FakeSource(None)
    with running(app, monkeypatch, tmp_path, fakes) as client:
        readyz = client.get("/readyz")
        assert readyz.status_code == 503 and readyz.json().keys() == ENVELOPE_KEYS
        for response in (client.post("/predict", json=EXAMPLE_RECORD), client.get("/metadata")):
            assert response.status_code == 503 and response.json()["rule"] == "not_ready"
            assert "no champion" in response.json()["error"]


def test_request_ids_are_distinct_version_4_uuids() -> None:
    import uuid

    from serving.service import new_request_ids

    ids = new_request_ids(2_000)

    assert len(set(ids)) == 2_000
    parsed = [uuid.UUID(request_id) for request_id in ids]
    assert {(u.version, u.variant) for u in parsed} == {(4, uuid.RFC_4122)}
    assert [str(u) for u in parsed] == ids


def test_with_a_challenger_each_request_is_scored_in_shadow_and_the_client_gets_the_champion(
    app, monkeypatch, tmp_path, fakes, challenger
):
    fakes["challenger"] = FakeSource(challenger, "challenger")
    batch = records(labelled_frame(customers=30, months=1, seed=5))
    with running(app, monkeypatch, tmp_path, fakes) as client:
        assert client.get("/metadata").json()["challenger"]["version"] == "2"
        single = client.post("/predict", json=EXAMPLE_RECORD).json()
        predictions = [single, *client.post("/predict", json=batch).json()]
        ids = [p["request_id"] for p in predictions]
        wait_until(lambda: set(fakes["table"].shadow_rows) == set(ids) == set(fakes["table"].rows))

    assert {p["model_version"] for p in predictions} == {"1"}
    assert all(p.keys() == single.keys() for p in predictions)
    for request_id in ids:
        served, shadow = fakes["table"].rows[request_id], fakes["table"].shadow_rows[request_id]
        assert (served["role"], served["model_version"]) == ("champion", "1")
        assert (shadow["role"], shadow["model_version"]) == ("shadow", "2")
        # The pair shares its key time, and the shadow scored the very same features.
        assert shadow["created_at"] == served["created_at"]
        assert logged_features(shadow) == logged_features(served)
    shadow_classes = [fakes["table"].shadow_rows[i]["predicted_class"] for i in ids]
    assert shadow_classes != [p["predicted_class"] for p in predictions]  # another model


def test_a_removed_challenger_alias_stops_shadow_scoring(
    app, monkeypatch, tmp_path, fakes, challenger
):
    fakes["challenger"] = FakeSource(challenger, "challenger")
    with running(app, monkeypatch, tmp_path, fakes) as client:
        assert client.get("/metadata").json()["challenger"]["version"] == "2"
        fakes["challenger"].version = None
        wait_until(lambda: client.get("/metadata").json()["challenger"] is None)
        request_id = client.post("/predict", json=EXAMPLE_RECORD).json()["request_id"]
        wait_until(lambda: request_id in fakes["table"].rows)

    assert fakes["table"].shadow_rows == {}


def test_a_challenger_of_the_champions_version_scores_nothing(app, monkeypatch, tmp_path, fakes):
    fakes["challenger"] = FakeSource(fakes["source"].loaded, "challenger")
    with running(app, monkeypatch, tmp_path, fakes) as client:
        assert client.get("/metadata").json()["challenger"] is None
        request_id = client.post("/predict", json=EXAMPLE_RECORD).json()["request_id"]
        wait_until(lambda: request_id in fakes["table"].rows)

    assert fakes["table"].shadow_rows == {}


def test_canary_customers_get_the_challenger_and_the_others_the_champion_and_a_shadow(
    app, monkeypatch, tmp_path, fakes, challenger
):
    from serving.shadow import in_canary

    monkeypatch.setenv("SERVING_CANARY_SHARE", "0.5")
    fakes["challenger"] = FakeSource(challenger, "challenger")
    batch = [{**EXAMPLE_RECORD, "customer_id": f"CUS_0x{n:04x}"} for n in range(40)]
    with running(app, monkeypatch, tmp_path, fakes) as client:
        first = client.post("/predict", json=batch).json()
        again = client.post("/predict", json=batch).json()
        answered = first + again
        wait_until(lambda: len(fakes["table"].rows) == len(answered))
        shadowed = sum(p["model_version"] == "1" for p in answered)
        wait_until(lambda: len(fakes["table"].shadow_rows) == shadowed)

    canary = [in_canary(record["customer_id"], 0.5) for record in batch]
    assert 0 < sum(canary) < len(batch)
    for answers in (first, again):  # sticky: the same customers get the challenger each time
        assert [p["model_version"] == "2" for p in answers] == canary
        assert [p["customer_id"] for p in answers] == [r["customer_id"] for r in batch]
    for prediction in answered:
        row = fakes["table"].rows[prediction["request_id"]]
        expected = ("canary", "2") if prediction["model_version"] == "2" else ("champion", "1")
        assert (row["role"], row["model_version"]) == expected
        # Only the champion's answers are scored in shadow.
        assert (prediction["request_id"] in fakes["table"].shadow_rows) == (expected[1] == "1")
