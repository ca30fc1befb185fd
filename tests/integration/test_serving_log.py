"""The prediction log's row format, MariaDB sink and spool replay against a real table."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import text

from mlops_platform import db, logstore
from mlops_platform.schema import FEATURE_NAMES
from serving.prediction_log import MariaDBSink, Spool
from serving.schemas import EXAMPLE_RECORD

LOGGED_AT = datetime(2025, 6, 2, 10, 11, 12, 123456)


def row(number: int = 0, **changes) -> tuple:
    fields = {
        "created_at": LOGGED_AT + timedelta(milliseconds=number),
        "request_id": str(uuid.uuid4()), "customer_id": "CUS_0x1",
        "feature_month": date(2025, 6, 1), "model_name": "credit_score", "model_version": "3",
        "predicted_class": "Poor", "probabilities": [0.1, 0.2, 0.7],
        "unseen_categories": ["occupation"], "latency_ms": 1.25, "features": EXAMPLE_RECORD,
    } | changes  # fmt: skip
    return logstore.log_row(**fields)


def stored(url: str) -> list[dict]:
    with db.transaction(url) as connection:
        query = text("SELECT * FROM prediction_log ORDER BY created_at, request_id")
        return [dict(r) for r in connection.execute(query).mappings().all()]


def test_rows_round_trip_with_typed_features_and_a_repeated_row_is_stored_once(
    store_url,
) -> None:
    sink = MariaDBSink(store_url)
    first = row()
    unusual = {"age": 41, "annual_income": 12_345.678, "occupation": 'Wrîter "x"\tthen\nleave'}
    sparse = row(1, customer_id=None, feature_month=None, unseen_categories=[], features=unusual)

    assert sink.write(logstore.encode([first, sparse])) == 2
    assert sink.write(logstore.encode([first])) == 0

    [one, two] = stored(store_url)
    assert one["request_id"] == first[1] and one["created_at"] == LOGGED_AT
    assert (one["prob_good"], one["prob_standard"], one["prob_poor"]) == (0.1, 0.2, 0.7)
    assert (one["feature_month"], one["unseen_categories"]) == (date(2025, 6, 1), "occupation")
    assert {name: one[f"f_{name}"] for name in FEATURE_NAMES} == {
        name: EXAMPLE_RECORD[name] for name in FEATURE_NAMES
    }
    assert (two["customer_id"], two["feature_month"], two["unseen_categories"]) == (None,) * 3
    # Left out means missing (NULL); categories keep case, accents and separators.
    assert (two["f_age"], two["f_annual_income"], two["f_monthly_balance"]) == (
        41.0, 12_345.678, None,
    )  # fmt: skip
    assert two["f_occupation"] == unusual["occupation"]


def test_a_spool_file_is_loaded_as_it_is_exactly_once_in_time_order(store_url, tmp_path) -> None:
    rows = [row(number) for number in range(1_200)]
    spool = Spool(tmp_path)
    spool.append(logstore.encode(rows[:700]))
    spool.append(logstore.encode(rows[700:]))
    spool.seal()
    MariaDBSink(store_url).write(logstore.encode(rows[:500]))  # as if a replay half-landed

    assert spool.replay(MariaDBSink(store_url)) == 700
    assert [r["request_id"] for r in stored(store_url)] == [r[1] for r in rows]
    assert not list(tmp_path.glob("*.tsv"))
