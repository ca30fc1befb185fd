"""Feature-store speed: generator load rate and snapshot build time (issue: foundation)."""

from __future__ import annotations

import argparse
import os
from datetime import date

from mlops_platform import db
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from mlops_platform.features import build_snapshot, stored_rows
from tests.bench.common import print_figures, stopwatch, throwaway_store, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()

    config = GeneratorConfig(customers=args.customers, months=args.months, start=date(2025, 1, 1))
    with throwaway_store() as url:
        summary = load_into_store(config, url)
        base_dt = date(2026, 1, 1) if args.months == 12 else date(2025, args.months, 1)
        with stopwatch() as build_seconds:
            build = build_snapshot(base_dt, lookback_months=12, url=url)
        with stopwatch() as rebuild_seconds:  # same rows: built, hashed, then reused
            rebuilt = build_snapshot(base_dt, lookback_months=12, url=url)
        assert rebuilt.build_id == build.build_id
        with stopwatch() as hash_seconds, db.transaction(url) as connection:
            stored_rows(connection, build.build_id)  # what `mlops lineage` checks

    load_rate = summary.rows_per_second
    print_figures(
        f"Feature store: {args.customers:,} customers x {args.months} months,"
        f" {os.cpu_count()} CPUs",
        [
            ("generate + load", f"{load_rate:,.0f} customer-months/s "
             f"({summary.feature_rows:,} in {summary.seconds:.1f} s)",
             ">= 50,000 rows/s", verdict(load_rate >= 50_000)),
            ("snapshot build", f"{build_seconds[0]:.1f} s ({build.row_count:,} rows)",
             "<= 20 s", verdict(build_seconds[0] <= 20)),
            ("snapshot rebuild", f"{rebuild_seconds[0]:.1f} s", "<= 20 s",
             verdict(rebuild_seconds[0] <= 20)),
            ("content hash check", f"{hash_seconds[0]:.1f} s", "<= 10 s",
             verdict(hash_seconds[0] <= 10)),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
