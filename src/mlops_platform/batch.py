"""Batch serving: score every active customer's latest features with the champion."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import text

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.data.loader import upsert_frame
from mlops_platform.dates import add_months, month_of
from mlops_platform.features import parse_date
from mlops_platform.schema import CREDIT_SCORES

LATEST_FEATURES_SQL = "features/latest_customer_features.sql"
ACTIVE_MONTHS = 3


@dataclass(frozen=True)
class BatchResult:
    score_date: date
    model_version: str
    rows: int
    seconds: float


def score_customers(score_date: str | date, url: str | None = None) -> BatchResult:
    """Replace the `batch_predictions` of `score_date` with a fresh scoring by the champion.

    Features are the latest month before the score date's month, so a re-run of the same
    logical date scores the same inputs; the rows are replaced in one transaction.
    """
    from mlops_platform.registry import load_champion

    started = time.perf_counter()
    day = parse_date(score_date)
    month_start = month_of(day)
    sql = (get_settings().mlops_sql_dir / LATEST_FEATURES_SQL).read_text(encoding="utf-8")
    with db.get_engine(url).connect() as connection:
        features = pd.read_sql(
            text(sql),
            connection,
            params={
                "as_of": month_start,
                "active_since": add_months(month_start, -ACTIVE_MONTHS),
            },
        )
    version, model = load_champion()
    probabilities = model.predict_proba(features) if len(features) else np.empty((0, 3))
    scored = pd.DataFrame(
        {
            "score_date": day,
            "customer_id": features["customer_id"],
            "feature_month": features["month"],
            "model_name": get_settings().model_name,
            "model_version": version,
            "predicted_class": np.array(CREDIT_SCORES)[probabilities.argmax(axis=1)],
            "prob_good": probabilities[:, 0],
            "prob_standard": probabilities[:, 1],
            "prob_poor": probabilities[:, 2],
        }
    )
    with db.transaction(url) as connection:
        connection.execute(
            text("DELETE FROM batch_predictions WHERE score_date = :day"), {"day": day}
        )
        upsert_frame(connection, "batch_predictions", scored)
    return BatchResult(day, version, len(scored), time.perf_counter() - started)


def scored_classes(score_date: str | date, url: str | None = None) -> dict[str, int]:
    """How many customers each class got in the batch of `score_date` (empty: none stored)."""
    with db.get_engine(url).connect() as connection:
        counts = connection.execute(
            text(
                "SELECT predicted_class, COUNT(*) FROM batch_predictions"
                " WHERE score_date = :day GROUP BY predicted_class"
            ),
            {"day": parse_date(score_date)},
        ).all()
    return {
        name: count for name, count in sorted(counts, key=lambda row: CREDIT_SCORES.index(row[0]))
    }
