"""The prediction log's MariaDB sink and spool replay against a real `prediction_log`."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text

from mlops_platform import db
from serving.prediction_log import MariaDBSink, Spool


def row(**changes) -> dict:
    return {
        "request_id": str(uuid.uuid4()), "customer_id": "CUS_0x1", "feature_month": "2025-06-01",
        "model_name": "credit_score", "model_version": "3",
        "features": {"age": 30, "occupation": 'Say "hi"\tthen\nleave', "monthly_balance": None},
        "predicted_class": "Poor", "probabilities": {"Good": 0.1, "Standard": 0.2, "Poor": 0.7},
        "unseen_categories": "occupation", "latency_ms": 1.25,
        "created_at": "2025-06-02 10:11:12.123456",
    } | changes  # fmt: skip


def stored(url: str) -> list[dict]:
    with db.transaction(url) as connection:
        return [
            dict(r)
            for r in connection.execute(text("SELECT * FROM prediction_log ORDER BY log_id"))
            .mappings()
            .all()
        ]


def test_rows_round_trip_and_a_repeated_request_id_is_stored_once(store_url) -> None:
    sink = MariaDBSink(store_url)
    first = row()
    anonymous = row(customer_id=None, feature_month=None, unseen_categories=None)

    sink.write([first, anonymous])
    sink.write([first])

    [one, two] = stored(store_url)
    assert one["request_id"] == first["request_id"]
    assert json.loads(one["features"]) == first["features"]
    assert json.loads(one["probabilities"]) == first["probabilities"]
    assert (str(one["feature_month"]), one["unseen_categories"]) == ("2025-06-01", "occupation")
    assert one["created_at"].isoformat(sep=" ") == first["created_at"]
    assert (two["customer_id"], two["feature_month"], two["unseen_categories"]) == (None,) * 3


def test_a_spool_replays_into_mariadb_exactly_once(store_url, tmp_path) -> None:
    rows = [row() for _ in range(1_200)]
    spool = Spool(tmp_path)
    spool.append(rows[:700])
    spool.append(rows[700:])
    spool.seal()
    MariaDBSink(store_url).write(rows[:500])  # as if an earlier replay stopped half-way

    assert spool.replay(MariaDBSink(store_url), batch_rows=500) == 1_200
    assert [r["request_id"] for r in stored(store_url)] == [r["request_id"] for r in rows]
    assert not list(tmp_path.glob("*.jsonl"))
