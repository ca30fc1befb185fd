"""By-customer feature lookups: the latest month per customer, one query, a TTL cache."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import create_engine, insert
from sqlalchemy.dialects import mysql

from mlops_platform.schema import FEATURE_NAMES
from serving import customers
from serving.customers import FEATURES, CustomerFeatures, latest_features_query


@pytest.fixture
def store(monkeypatch):
    """An in-memory table shaped like customer_features_monthly (SQLite runs the same query)."""
    engine = create_engine("sqlite://")
    columns = ", ".join(f"{name} TEXT" for name in FEATURE_NAMES)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE TABLE customer_features_monthly (customer_id TEXT, month DATE, {columns})"
        )
    monkeypatch.setattr(customers.db, "get_engine", lambda url: engine)
    return engine


def add_month(engine, customer_id: str, month: date, age: int) -> None:
    row = dict.fromkeys(FEATURE_NAMES) | {"customer_id": customer_id, "month": month, "age": age}
    with engine.begin() as connection:
        connection.execute(insert(FEATURES), [row])


def test_each_customer_gets_their_latest_month_and_unknown_ids_are_left_out(store) -> None:
    add_month(store, "CUS_0x1", date(2025, 1, 1), 30)
    add_month(store, "CUS_0x1", date(2025, 2, 1), 31)
    add_month(store, "CUS_0x2", date(2025, 1, 1), 50)

    found = CustomerFeatures("unused", ttl_s=60).fetch(["CUS_0x1", "CUS_0x2", "CUS_0x9"])

    assert {c: (str(row["month"]), row["age"]) for c, row in found.items()} == {
        "CUS_0x1": ("2025-02-01", "31"),
        "CUS_0x2": ("2025-01-01", "50"),
    }


def test_fetched_customers_are_reused_until_the_ttl_runs_out(store, monkeypatch) -> None:
    add_month(store, "CUS_0x1", date(2025, 1, 1), 30)
    clock = [1_000.0]
    monkeypatch.setattr(customers.time, "monotonic", lambda: clock[0])
    lookups = CustomerFeatures("unused", ttl_s=60)

    lookups.fetch(["CUS_0x1"])
    assert lookups.cached(["CUS_0x1", "CUS_0x2"]).keys() == {"CUS_0x1"}
    clock[0] += 61
    assert lookups.cached(["CUS_0x1"]) == {}


def test_ids_travel_as_bound_parameters() -> None:
    hostile = "CUS_0x1'; DROP TABLE customers; --"

    compiled = latest_features_query([hostile]).compile(dialect=mysql.dialect())
    assert "DROP" not in str(compiled)
    assert list(compiled.params.values()) == [[hostile]]
