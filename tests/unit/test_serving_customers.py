"""By-customer feature lookups: the latest month per customer, one query, a TTL cache,
read from the replica first and the primary when the replica fails."""

from __future__ import annotations

import socket
import threading
import time
from datetime import date

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, insert
from sqlalchemy.dialects import mysql

from mlops_platform.db import get_bounded_engine
from mlops_platform.schema import FEATURE_NAMES
from serving import customers
from serving.customers import (
    FEATURES,
    CustomerFeatures,
    FeatureStoreUnavailable,
    ReplicaLagMonitor,
    latest_features_query,
    read_urls,
)

PRIMARY = "mysql+pymysql://root@primary:3306/mlops"
REPLICA = "mysql+pymysql://root@replica:3306/mlops"
SOURCES = {"replica": REPLICA, "primary": PRIMARY}
PRIMARY_ONLY = {"primary": PRIMARY}
UNREACHABLE = create_engine("sqlite:////nonexistent/store.db")


def feature_table():
    """An in-memory table shaped like customer_features_monthly (SQLite runs the same query)."""
    engine = create_engine("sqlite://")
    columns = ", ".join(f"{name} TEXT" for name in FEATURE_NAMES)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE TABLE customer_features_monthly (customer_id TEXT, month DATE, {columns})"
        )
    return engine


@pytest.fixture
def engines(monkeypatch) -> dict:
    """URL → engine that `fetch` reads; a URL left out is a source that cannot be reached."""
    by_url: dict = {}
    monkeypatch.setattr(
        customers.db, "get_bounded_engine", lambda url, timeout_s: by_url.get(url, UNREACHABLE)
    )
    return by_url


@pytest.fixture
def store(engines):
    """The primary's table; a replica cannot be reached unless a test gives it a table too."""
    engines[PRIMARY] = feature_table()
    return engines[PRIMARY]


def add_month(engine, customer_id: str, month: date, age: int) -> None:
    row = dict.fromkeys(FEATURE_NAMES) | {"customer_id": customer_id, "month": month, "age": age}
    with engine.begin() as connection:
        connection.execute(insert(FEATURES), [row])


def test_each_customer_gets_their_latest_month_and_unknown_ids_are_left_out(store) -> None:
    add_month(store, "CUS_0x1", date(2025, 1, 1), 30)
    add_month(store, "CUS_0x1", date(2025, 2, 1), 31)
    add_month(store, "CUS_0x2", date(2025, 1, 1), 50)

    found = CustomerFeatures(PRIMARY_ONLY, ttl_s=60).fetch(["CUS_0x1", "CUS_0x2", "CUS_0x9"])

    assert {c: (str(row["month"]), row["age"]) for c, row in found.items()} == {
        "CUS_0x1": ("2025-02-01", "31"),
        "CUS_0x2": ("2025-01-01", "50"),
    }


def test_fetched_customers_are_reused_until_the_ttl_runs_out(store, monkeypatch) -> None:
    add_month(store, "CUS_0x1", date(2025, 1, 1), 30)
    clock = [1_000.0]
    monkeypatch.setattr(customers.time, "monotonic", lambda: clock[0])
    lookups = CustomerFeatures(PRIMARY_ONLY, ttl_s=60)

    lookups.fetch(["CUS_0x1"])
    assert lookups.cached(["CUS_0x1", "CUS_0x2"]).keys() == {"CUS_0x1"}
    clock[0] += 61
    assert lookups.cached(["CUS_0x1"]) == {}


def test_ids_travel_as_bound_parameters() -> None:
    hostile = "CUS_0x1'; DROP TABLE customers; --"

    compiled = latest_features_query([hostile]).compile(dialect=mysql.dialect())
    assert "DROP" not in str(compiled)
    assert list(compiled.params.values()) == [[hostile]]


def answered_by(source: str) -> float:
    return REGISTRY.get_sample_value("mlops_customer_lookups_total", {"source": source}) or 0.0


def test_the_replica_is_tried_first_and_only_configured_sources_are_tried() -> None:
    assert list(read_urls(PRIMARY, REPLICA).items()) == [("replica", REPLICA), ("primary", PRIMARY)]
    assert read_urls(PRIMARY, None) == read_urls(PRIMARY, PRIMARY) == {"primary": PRIMARY}


def test_the_replica_answers_when_it_can(engines, store) -> None:
    engines[REPLICA] = feature_table()
    add_month(engines[REPLICA], "CUS_0x1", date(2025, 1, 1), 30)
    before = answered_by("replica"), answered_by("primary")

    found = CustomerFeatures(SOURCES, ttl_s=0).fetch(["CUS_0x1"])

    assert found["CUS_0x1"]["age"] == "30"
    assert (answered_by("replica"), answered_by("primary")) == (before[0] + 1, before[1])


def test_a_failing_replica_falls_through_to_the_primary(engines, store) -> None:
    add_month(store, "CUS_0x1", date(2025, 1, 1), 30)
    before = answered_by("primary")

    found = CustomerFeatures(SOURCES, ttl_s=0).fetch(["CUS_0x1"])

    assert found["CUS_0x1"]["age"] == "30"
    assert answered_by("primary") == before + 1


def test_when_no_source_answers_the_error_names_each_cause(engines) -> None:
    before = answered_by("unavailable")

    with pytest.raises(FeatureStoreUnavailable) as raised:
        CustomerFeatures(SOURCES, ttl_s=0).fetch(["CUS_0x1"])

    assert str(raised.value).startswith("the feature store is unavailable (replica: ")
    assert "; primary: " in str(raised.value) and "unable to open database" in str(raised.value)
    assert answered_by("unavailable") == before + 1


def test_a_replica_that_accepts_but_never_answers_costs_at_most_its_timeout(engines, store) -> None:
    add_month(store, "CUS_0x1", date(2025, 1, 1), 30)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; no greeting
        replica = f"mysql+pymysql://root@127.0.0.1:{silent.getsockname()[1]}/mlops"
        engines[replica] = get_bounded_engine(replica, customers.SOURCE_TIMEOUT_S)
        started = time.monotonic()
        found = CustomerFeatures(read_urls(PRIMARY, replica), ttl_s=0).fetch(["CUS_0x1"])
        seconds = time.monotonic() - started
    engines[replica].dispose()

    assert list(found) == ["CUS_0x1"]
    assert customers.SOURCE_TIMEOUT_S <= seconds < 2 * customers.SOURCE_TIMEOUT_S + 0.5


def lag_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "replica-lag"]


def test_the_lag_monitor_sets_the_gauge_until_it_is_stopped(monkeypatch) -> None:
    lags = iter([7.0, -1.0])
    monkeypatch.setattr(customers, "replica_lag_seconds", lambda url: next(lags, 4.0))
    monitor = ReplicaLagMonitor(REPLICA, interval_s=0.01)

    monitor.start()
    assert lag_threads()
    wait_for(lambda: REGISTRY.get_sample_value("mlops_feature_store_replica_lag_seconds") == 4)
    monitor.stop()

    assert lag_threads() == []


def test_without_a_replica_no_lag_thread_starts() -> None:
    monitor = ReplicaLagMonitor(None)

    monitor.start()
    assert lag_threads() == []
    monitor.stop()


def wait_for(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
