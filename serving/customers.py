"""Each customer's latest month of features from the feature store, briefly cached."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, column, func, select, table

from mlops_platform import db
from mlops_platform.schema import FEATURE_NAMES

FEATURES = table(
    "customer_features_monthly",
    column("customer_id"),
    column("month"),
    *(column(name) for name in FEATURE_NAMES),
)
MAX_CACHED = 100_000


def latest_features_query(customer_ids: Sequence[str]) -> Any:
    """One query for the batch: every customer's newest month (ids are bound parameters)."""
    latest = (
        select(FEATURES.c.customer_id, func.max(FEATURES.c.month).label("month"))
        .where(FEATURES.c.customer_id.in_(customer_ids))
        .group_by(FEATURES.c.customer_id)
        .subquery("latest")
    )
    return select(FEATURES).join(
        latest,
        and_(
            FEATURES.c.customer_id == latest.c.customer_id,
            FEATURES.c.month == latest.c.month,
        ),
    )


class CustomerFeatures:
    """Latest features per customer id, reused for `ttl_s` seconds (a thread-safe cache)."""

    def __init__(self, url: str, ttl_s: float) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def cached(self, customer_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The ids read within the last `ttl_s` seconds (no I/O, so fine on the event loop)."""
        now = time.monotonic()
        found = {}
        with self._lock:
            for customer_id in customer_ids:
                entry = self._cache.get(customer_id)
                if entry and entry[0] > now:
                    found[customer_id] = entry[1]
        return found

    def fetch(self, customer_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """id → `customer_id`, `month` and the 22 features, from the store; unknown ids left out."""
        with db.get_engine(self.url).connect() as connection:
            rows = connection.execute(latest_features_query(customer_ids)).mappings().all()
        expires = time.monotonic() + self.ttl_s
        found = {row["customer_id"]: dict(row) for row in rows}
        with self._lock:
            if self.ttl_s > 0:
                self._cache.update((c, (expires, row)) for c, row in found.items())
            # Dicts keep insertion order, so the oldest entries go first.
            while len(self._cache) > MAX_CACHED:
                del self._cache[next(iter(self._cache))]
        return found
