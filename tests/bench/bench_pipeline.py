"""Training and batch scoring speed: a 100k-row snapshot trained with the default search
budget (target ≤ 5 min), and 100k customers scored by the champion (target ≤ 60 s)."""

from __future__ import annotations

import argparse
import os
import tempfile
from datetime import date
from pathlib import Path

from sqlalchemy import make_url

from mlops_platform import db
from mlops_platform.config import get_settings
from mlops_platform.data.generator import GeneratorConfig, load_into_store
from mlops_platform.mariadb_server import free_port
from tests.bench.common import print_figures, stopwatch, throwaway_store, verdict
from tests.servers import start_mlflow_server, stop_process_group

# About 9,200 customers x 11 labelled months make the 100k-row snapshot of 2026-01-01.
TRAINING_CUSTOMERS = 9_200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-customers", type=int, default=100_000)
    args = parser.parse_args()

    from mlops_platform.batch import score_customers
    from mlops_platform.training import gate_candidate, train_candidate
    from mlops_platform.validation import ensure_validated_snapshot

    settings = get_settings()
    with throwaway_store("mlops_bench_training") as url, tempfile.TemporaryDirectory() as scratch:
        backend = make_url(url).set(database="mlflow_bench").render_as_string(hide_password=False)
        port = free_port()
        server = start_mlflow_server(backend, Path(scratch), port)
        try:
            os.environ.update(FEATURE_STORE_URL=url, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}")
            get_settings.cache_clear()
            load_into_store(GeneratorConfig(TRAINING_CUSTOMERS, 12, date(2025, 1, 1)), url)
            ensure_validated_snapshot("2026-01-01")
            with stopwatch() as training_seconds:
                candidate = train_candidate("2026-01-01")
            with stopwatch() as gate_seconds:
                gate_candidate(candidate)
            from mlflow import MlflowClient

            params = MlflowClient().get_run(candidate.run_id).data.params
            rows = sum(int(params[f"rows_{split}"]) for split in ("train", "validation", "test"))

            batch_url = make_url(url).set(database="mlops_bench_batch").render_as_string(False)
            db.upgrade(batch_url)
            load_into_store(GeneratorConfig(args.batch_customers, 2, date(2025, 1, 1)), batch_url)
            with stopwatch() as batch_seconds:
                scored = score_customers("2025-03-05", url=batch_url)
        finally:
            stop_process_group(server)

    print_figures(
        f"Pipeline: training (trials {settings.train_trials},"
        f" budget {settings.train_time_budget_s:.0f} s) and batch scoring, {os.cpu_count()} CPUs",
        [
            ("train (search + logging)", f"{training_seconds[0]:.0f} s on {rows:,} snapshot rows",
             "<= 300 s", verdict(training_seconds[0] <= 300)),
            ("champion gate", f"{gate_seconds[0]:.1f} s", "-", ""),
            ("batch scoring", f"{batch_seconds[0]:.1f} s for {scored.rows:,} customers",
             "<= 60 s", verdict(batch_seconds[0] <= 60)),
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
