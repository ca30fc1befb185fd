"""Each customer's latest month of features from the feature store, briefly cached.

Lookups read from a replica when one is configured and fall back to the primary; a
thread keeps the replica's lag in a gauge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, column, func, select, table, text
from sqlalchemy.exc import SQLAlchemyError

from mlops_platform import db
from mlops_platform.schema import FEATURE_NAMES
from serving.metrics import serving_metrics

FEATURES = table(
    "customer_features_monthly",
    column("customer_id"),
    column("month"),
    *(column(name) for name in FEATURE_NAMES),
)
MAX_CACHED = 100_000
# Connecting, the pool's ping and the query each give up after this long, so a source that
# stalls costs at most about a second and a fetch over replica and primary about two.
SOURCE_TIMEOUT_S = 0.5
# Prometheus scrapes every 15 s by default; one cheap status query per worker every 5 s
# keeps the gauge fresh for it.
REPLICA_LAG_INTERVAL_S = 5
NOT_REPLICATING = -1.0
log = logging.getLogger(__name__)


class FeatureStoreUnavailable(RuntimeError):
    """No read source (replica or primary) answered a lookup."""


def read_urls(primary_url: str, replica_url: str | None) -> dict[str, str]:
    """Where lookups read, in the order tried: the replica (if any), then the primary."""
    if replica_url and replica_url != primary_url:
        return {"replica": replica_url, "primary": primary_url}
    return {"primary": primary_url}


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
    """Latest features per customer id, reused for `ttl_s` seconds (a thread-safe cache).

    `urls` maps each source's name (its metric label) to its URL, in the order tried.
    """

    def __init__(self, urls: Mapping[str, str], ttl_s: float) -> None:
        self.urls = dict(urls)
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
        """id → `customer_id`, `month` and the 22 features, from the store; unknown ids left out.

        Raises FeatureStoreUnavailable when no source answers.
        """
        lookups = serving_metrics().customer_lookups
        query = latest_features_query(customer_ids)
        failures = []
        for source, url in self.urls.items():
            try:
                with db.get_bounded_engine(url, SOURCE_TIMEOUT_S).connect() as connection:
                    rows = connection.execute(query).mappings().all()
            except SQLAlchemyError as error:
                failures.append(f"{source}: {getattr(error, 'orig', None) or error}")
                continue
            lookups.labels(source=source).inc()
            return self._remember(rows)
        lookups.labels(source="unavailable").inc()
        raise FeatureStoreUnavailable(f"the feature store is unavailable ({'; '.join(failures)})")

    def _remember(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """The rows by customer id, also cached for `ttl_s` seconds."""
        expires = time.monotonic() + self.ttl_s
        found = {row["customer_id"]: dict(row) for row in rows}
        with self._lock:
            if self.ttl_s > 0:
                self._cache.update((c, (expires, row)) for c, row in found.items())
            # Dicts keep insertion order, so the oldest entries go first.
            while len(self._cache) > MAX_CACHED:
                del self._cache[next(iter(self._cache))]
        return found


def replica_lag_seconds(url: str) -> float:
    """The replica's Seconds_Behind_Master; -1 when replication is not running or it is down."""
    try:
        with db.get_bounded_engine(url, SOURCE_TIMEOUT_S).connect() as connection:
            status = connection.execute(text("SHOW REPLICA STATUS")).mappings().first()
    except SQLAlchemyError:
        return NOT_REPLICATING
    running = status and status["Slave_IO_Running"] == status["Slave_SQL_Running"] == "Yes"
    if not running or status["Seconds_Behind_Master"] is None:
        return NOT_REPLICATING
    return float(status["Seconds_Behind_Master"])


class ReplicaLagMonitor:
    """Sets the replica-lag gauge every `interval_s` seconds from a daemon thread."""

    def __init__(self, url: str | None, interval_s: float = REPLICA_LAG_INTERVAL_S) -> None:
        self.url = url
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replica-lag", daemon=True)

    def start(self) -> None:
        """Start the thread; without a replica URL there is nothing to watch."""
        if self.url:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        gauge = serving_metrics().replica_lag
        replicating = True
        while True:
            lag = replica_lag_seconds(self.url)
            gauge.set(lag)
            # Logged when it changes, not every few seconds while it lasts.
            if replicating != (lag >= 0):
                replicating = lag >= 0
                if replicating:
                    log.info("the read replica is replicating again (%.0f s behind)", lag)
                else:
                    log.warning("the read replica is unreachable or not replicating: by-customer"
                                " lookups go to the primary or read stale features")  # fmt: skip
            if self._stop.wait(self.interval_s):
                return
