"""Drift-check speed on 1M and 10M logged predictions, live accuracy, one log batch's cost.

Seed rows are real simulated traffic; the server copies them (shifted in time, new
request ids) up to each size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import numpy as np
from catboost import CatBoostClassifier
from sqlalchemy import text

from mlops_platform import db, logstore
from mlops_platform.config import get_settings
from mlops_platform.model import CATEGORICAL_POSITIONS, CreditScoreModel, model_frame
from mlops_platform.monitoring import drift, performance
from mlops_platform.monitoring.reference import Reference
from mlops_platform.monitoring.windows import Window
from mlops_platform.schema import CATEGORICAL_FEATURES, CREDIT_SCORES
from mlops_platform.traffic import deliver_labels, simulate, traffic_month
from mlops_platform.training import reference_profile
from tests.bench.common import print_figures, stopwatch, throwaway_store, verdict

SEED_ROWS = 20_000
SPACING = timedelta(milliseconds=100)
FIRST = datetime(2026, 1, 1)
SEED_MONTH, SEED_START = date(2026, 1, 1), date(2025, 1, 1)
LOG_COLUMNS = ", ".join(logstore.COLUMNS)
# The same columns, after created_at and request_id, which every copy replaces.
COPIED_COLUMNS = ", ".join(logstore.COLUMNS[2:])
BATCH_ROWS = 500
INSERT_BATCHES = 40


def quick_model_and_profile() -> tuple[CreditScoreModel, dict]:
    """A small CatBoost fit on one month, and the reference profile of that month."""
    month = traffic_month(SEED_ROWS, date(2025, 12, 1), start=date(2025, 1, 1))
    labelled = month.features.merge(month.labels, on=["customer_id", "month"])
    classifier = CatBoostClassifier(
        iterations=30, verbose=0, thread_count=2, allow_writing_files=False,
        cat_features=list(CATEGORICAL_POSITIONS), random_seed=0,
    )  # fmt: skip
    classifier.fit(model_frame(labelled), labelled["credit_score"])
    known = {c: labelled[c].dropna().astype(str).unique().tolist() for c in CATEGORICAL_FEATURES}
    model = CreditScoreModel.from_classifier(classifier, known)
    predicted = np.array(CREDIT_SCORES)[model.predict_proba(labelled).argmax(axis=1)]
    profile = reference_profile(labelled, predicted, date(2026, 1, 1))
    return model, json.loads(json.dumps(profile))


def copy_seed(url: str, first_copy: int, last_copy: int) -> None:
    """Append copies first..last of the seed rows, each shifted by the seed's time span."""
    span_us = int(SEED_ROWS * SPACING / timedelta(microseconds=1))
    copies = [(a, min(a + 9, last_copy)) for a in range(first_copy, last_copy + 1, 10)]

    def insert(bounds: tuple[int, int]) -> None:
        # seq_A_to_B is MariaDB's sequence engine; STRAIGHT_JOIN keeps time order.
        with db.transaction(url) as connection:
            connection.execute(
                text(
                    f"INSERT INTO prediction_log ({LOG_COLUMNS})"
                    " SELECT created_at + INTERVAL (s.seq * :span) MICROSECOND, UUID(),"
                    f" {COPIED_COLUMNS}"
                    f" FROM seq_{bounds[0]}_to_{bounds[1]} s STRAIGHT_JOIN bench_seed"
                ),
                {"span": span_us},
            )

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(insert, copies))


def window_of(copies: int, offset: int = 0) -> Window:
    span = SEED_ROWS * SPACING
    return Window(FIRST + span * offset, FIRST + span * (offset + copies))


def best_of(repeats: int, action: Callable[[], object]) -> float:
    """Seconds of the fastest of `repeats` runs: the one least disturbed by other work."""
    timings = []
    for _ in range(repeats):
        with stopwatch() as elapsed:
            action()
        timings.append(elapsed[0])
    return min(timings)


def time_counts(
    reference: Reference, window: Window, url: str, repeats: int
) -> tuple[float, float]:
    """Seconds to count the window with the parallel scan and with one connection."""
    specs = drift.bucket_specs(reference.profile)
    args = (specs, reference.model_name, reference.model_version, window, url)
    drift.count_window(*args)  # warm the buffer pool, as a scheduled check would find it
    parallel = best_of(repeats, lambda: drift.count_window(*args))
    connections, slices = drift.SCAN_CONNECTIONS, drift.SCAN_SLICES
    drift.SCAN_CONNECTIONS, drift.SCAN_SLICES = 1, 1
    try:
        serial = best_of(repeats, lambda: drift.count_window(*args))
    finally:
        drift.SCAN_CONNECTIONS, drift.SCAN_SLICES = connections, slices
    return parallel, serial


def insert_batch_ms(url: str) -> float:
    """Median milliseconds to store one batch of new rows, as the service's writer does."""
    with db.get_engine(url).connect() as connection:
        rows = connection.execute(
            text(f"SELECT {LOG_COLUMNS} FROM prediction_log LIMIT {BATCH_ROWS}")
        ).all()
    # A database of its own, so the batches do not add to the windows counted later.
    empty = (
        db.make_url(url).set(database="mlops_bench_insert").render_as_string(hide_password=False)
    )
    db.upgrade(empty)
    samples = []
    for batch in range(INSERT_BATCHES):
        fresh = logstore.columns_table(
            [
                [FIRST + SPACING * (batch * len(rows) + number) for number in range(len(rows))],
                [str(uuid.uuid4()) for _ in rows],
                *list(zip(*rows, strict=True))[2:],
            ]
        )
        samples.append(best_of(1, lambda fresh=fresh: logstore.store(fresh, empty)))
    return statistics.median(samples) * 1_000


def live_accuracy_s(logged: Window, url: str) -> float:
    """Seconds for live accuracy when every seed customer's label arrives after `logged`.

    Each copy of the seed predicts the same customer-months, so every logged row in the
    window is matched: the label join reads the whole log window by primary key.
    """
    arrived = logged.end + timedelta(hours=1)
    deliver_labels(SEED_ROWS, SEED_MONTH, start=SEED_START, observed_at=arrived, url=url)
    return best_of(
        2,
        lambda: performance.performance(
            arrived, arrived + timedelta(days=1), url, baselines={"1": None}
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()

    model, profile = quick_model_and_profile()
    reference = Reference(get_settings().model_name, "1", profile)
    figures = []
    reports = tempfile.TemporaryDirectory(prefix="mlops-bench-reports-")
    os.environ["MLOPS_DATA_DIR"] = reports.name  # the HTML reports are not kept
    get_settings.cache_clear()
    with reports, throwaway_store() as url:
        with stopwatch() as seeded:
            simulate(
                SEED_ROWS, SEED_MONTH, target="log", start=SEED_START,
                model=model, model_version="1", at=FIRST, url=url,
            )  # fmt: skip
            with db.transaction(url) as connection:
                connection.execute(
                    text(f"CREATE TABLE bench_seed AS SELECT {LOG_COLUMNS} FROM prediction_log")
                )
        figures.append(("simulate + log seed rows", f"{SEED_ROWS / seeded[0]:,.0f} rows/s", "", ""))
        figures.append(
            (f"store a {BATCH_ROWS}-row log batch", f"{insert_batch_ms(url):.0f} ms", "", "")
        )
        copies = 1
        for size in sorted(args.sizes):
            target = size // SEED_ROWS
            with stopwatch() as filled:
                copy_seed(url, copies, target - 1)
            copies = target
            figures.append(
                (f"fill to {size:,} rows (server-side copy)", f"{filled[0]:.0f} s", "", "")
            )
            small = size <= 1_000_000
            parallel, serial = time_counts(reference, window_of(copies), url, 3 if small else 1)
            target_text, met = ("<= 10 s", verdict(parallel <= 10)) if small else ("", "")
            figures += [
                (f"count {size:,}-row window, {drift.SCAN_CONNECTIONS} connections",
                 f"{parallel:.1f} s", target_text, met),
                (f"count {size:,}-row window, 1 connection", f"{serial:.1f} s", "", ""),
            ]  # fmt: skip
            if small:
                window = window_of(copies)
                checked = best_of(
                    2, lambda window=window: drift.check_reference(reference, window, url)
                )
                figures.append(
                    (f"whole check of {size:,} rows (counts, stats, report, HTML)",
                     f"{checked:.1f} s", "<= 10 s", verdict(checked <= 10))
                )  # fmt: skip
                figures.append(
                    (f"live accuracy: {SEED_ROWS:,} labels against {size:,} logged rows",
                     f"{live_accuracy_s(window, url):.1f} s", "", "")
                )  # fmt: skip
            else:
                latest = window_of(1_000_000 // SEED_ROWS, copies - 1_000_000 // SEED_ROWS)
                parallel, _ = time_counts(reference, latest, url, 3)
                figures.append(
                    (f"count the latest 1,000,000 of {size:,} rows", f"{parallel:.1f} s", "", "")
                )
    print_figures(f"Drift check on {os.cpu_count()} CPUs (best of 3 where repeated)", figures)


if __name__ == "__main__":
    main()
