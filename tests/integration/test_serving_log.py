"""The prediction log's row format, MariaDB sink and spool replay against a real table."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import numpy as np
import pyarrow as pa
from sqlalchemy import text

from mlops_platform import db, logstore
from mlops_platform.schema import FEATURE_NAMES
from serving.prediction_log import MariaDBSink, Spool
from serving.schemas import EXAMPLE_RECORD

LOGGED_AT = datetime(2025, 6, 2, 10, 11, 12, 123456)


def rows(
    count: int = 1, start: int = 0, features=EXAMPLE_RECORD, unseen=("occupation",), **ids
) -> pa.Table:
    """`count` logged predictions of `features`, 1 ms apart from LOGGED_AT + `start` ms."""
    record = {**features, "customer_id": "CUS_0x1", "month": date(2025, 6, 1)} | ids
    numbers = range(start, start + count)
    predictions = logstore.ScoredBatch(
        [record] * count, np.tile([0.1, 0.2, 0.7], (count, 1)), ["Poor"] * count,
        [unseen] * count, [str(uuid.uuid4()) for _ in numbers],
        created_at=[LOGGED_AT + timedelta(milliseconds=n) for n in numbers],
        model_name="credit_score", model_version="3", latency_ms=1.25,
    )  # fmt: skip
    return logstore.table([predictions])


def stored(url: str) -> list[dict]:
    with db.transaction(url) as connection:
        query = text("SELECT * FROM prediction_log ORDER BY created_at, request_id")
        return [dict(r) for r in connection.execute(query).mappings().all()]


def test_rows_round_trip_with_typed_features_and_a_repeated_row_is_stored_once(
    store_url,
) -> None:
    sink = MariaDBSink(store_url)
    first = rows()
    unusual = {"age": 41, "annual_income": 12_345.678, "occupation": 'Wrîter "x"\tthen\nleave'}
    sparse = rows(start=1, features=unusual, unseen=(), customer_id=None, month=None)

    assert sink.write(logstore.encode(pa.concat_tables([first, sparse]))) == 2
    assert sink.write(logstore.encode(first)) == 0

    [one, two] = stored(store_url)
    assert one["request_id"] == first["request_id"][0].as_py()
    assert one["created_at"] == LOGGED_AT
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
    logged = rows(1_200)
    spool = Spool(tmp_path)
    spool.append(logstore.encode(logged[:700]))
    spool.append(logstore.encode(logged[700:]))
    spool.seal()
    MariaDBSink(store_url).write(logstore.encode(logged[:500]))  # as if a replay half-landed

    assert spool.replay(MariaDBSink(store_url)) == 700
    assert [r["request_id"] for r in stored(store_url)] == logged["request_id"].to_pylist()
    assert not list(tmp_path.glob("*.tsv"))
