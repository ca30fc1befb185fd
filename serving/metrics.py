"""Prometheus metrics of the prediction service, created once per process on first use.

BentoML serves `/metrics` for all worker processes together (prometheus_client's
multiprocess mode), so each gauge says how the workers' values combine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class ServingMetrics:
    predictions: Any
    log_backlog: Any
    log_flushes: Any
    log_rows: Any
    spool_bytes: Any
    reloads: Any
    customer_lookups: Any
    replica_lag: Any
    shadow_predictions: Any
    shadow_skipped: Any


@cache
def serving_metrics() -> ServingMetrics:
    """The metric objects; created lazily, after BentoML has set up multiprocess mode."""
    from prometheus_client import Counter, Gauge

    return ServingMetrics(
        predictions=Counter(
            "mlops_predictions",
            "Records predicted, by model version.",
            ["model_name", "model_version"],
        ),
        log_backlog=Gauge(
            "mlops_prediction_log_backlog_rows",
            "Prediction log rows not yet in MariaDB: in memory, or spooled while it was down.",
            multiprocess_mode="livesum",
        ),
        log_flushes=Counter(
            "mlops_prediction_log_flushes",
            "Batches the log writer stored, by destination (database, spool, replay).",
            ["destination"],
        ),
        log_rows=Counter(
            "mlops_prediction_log_rows",
            "Prediction log rows stored, by destination (database, spool, replay).",
            ["destination"],
        ),
        spool_bytes=Gauge(
            "mlops_prediction_log_spool_bytes",
            "Bytes of prediction log rows waiting in spool files for MariaDB.",
            multiprocess_mode="livemax",
        ),
        reloads=Counter(
            "mlops_champion_reloads",
            "Champion swaps by the alias poller (success) and failed checks (failure).",
            ["result"],
        ),
        customer_lookups=Counter(
            "mlops_customer_lookups",
            "By-customer feature reads, by the source that answered (replica, primary)"
            " or `unavailable` when none did.",
            ["source"],
        ),
        replica_lag=Gauge(
            "mlops_feature_store_replica_lag_seconds",
            "How far the read replica is behind the primary; -1 when it is not replicating"
            " or cannot be reached (0 when no replica is configured).",
            multiprocess_mode="livemax",
        ),
        shadow_predictions=Counter(
            "mlops_shadow_predictions",
            "Records the challenger scored in shadow (logged, never returned), by version.",
            ["model_name", "model_version"],
        ),
        shadow_skipped=Counter(
            "mlops_shadow_skipped_rows",
            "Served records the challenger did not score: its queue was full, or it failed.",
        ),
    )
