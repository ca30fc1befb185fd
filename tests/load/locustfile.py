"""Locust load test of the prediction service with realistic traffic.

Records are drawn from the data generator's distribution; by-customer requests use ids
that exist in the feature store. Request names carry the number of records predicted,
so `run_load.py` can tell how many prediction_log rows the run must have produced.

    uv run locust -f tests/load/locustfile.py --host http://127.0.0.1:3000
"""

from __future__ import annotations

import json
import random
from datetime import date
from typing import Any

from locust import FastHttpUser, between, events, task

BATCH_RECORDS = 10
CUSTOMERS_PER_REQUEST = 3
POOL: dict[str, list[Any]] = {}


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    parser.add_argument("--store-url", default="", help="feature store (default: settings)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed of the records")


@events.init.add_listener
def load_pools(environment: Any, **_: Any) -> None:
    """Generated records to send, and customer ids the store knows (read once).

    On `init`, before the run-time clock starts, so loading does not eat the test's time.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from mlops_platform import db
    from mlops_platform.config import get_settings
    from mlops_platform.data.generator import GeneratorConfig, generate_months
    from mlops_platform.schema import FEATURE_NAMES

    options = environment.parsed_options
    config = GeneratorConfig(customers=2_000, months=1, start=date(2025, 6, 1), seed=options.seed)
    month = next(generate_months(config)).features
    columns = month[["customer_id", *FEATURE_NAMES]].assign(month=month["month"].astype(str))
    POOL["records"] = json.loads(columns.to_json(orient="records"))
    # SystemExit ends locust here; any other exception is only logged and the test runs on.
    try:
        with db.transaction(options.store_url or get_settings().feature_store_url) as connection:
            POOL["customer_ids"] = list(
                connection.execute(
                    text("SELECT DISTINCT customer_id FROM customer_features_monthly LIMIT :n"),
                    {"n": 10_000},
                ).scalars()
            )
    except OperationalError as error:
        raise SystemExit(f"cannot read customer ids from the feature store: {error.orig}") from None
    if not POOL["customer_ids"]:
        raise SystemExit("the feature store has no customers: run `mlops data generate`")


class ServiceUser(FastHttpUser):
    """A client mixing single predictions, small batches and by-customer lookups."""

    wait_time = between(0, 0.01)

    def _post(self, path: str, payload: Any, records: int) -> None:
        name = f"{path} ({records} record{'s' if records > 1 else ''})"
        with self.client.post(path, json=payload, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")

    @task(10)
    def predict_one(self) -> None:
        self._post("/predict", random.choice(POOL["records"]), 1)

    @task(1)
    def predict_batch(self) -> None:
        self._post("/predict", random.sample(POOL["records"], BATCH_RECORDS), BATCH_RECORDS)

    @task(3)
    def predict_by_customer(self) -> None:
        ids = random.sample(POOL["customer_ids"], CUSTOMERS_PER_REQUEST)
        self._post("/predict_by_customer", {"customer_ids": ids}, CUSTOMERS_PER_REQUEST)
