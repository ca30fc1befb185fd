"""The shadow scorer on its own: bounded, batched, and never in the way of served requests."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

import numpy as np
from prometheus_client import REGISTRY

from serving.aliases import AliasHolder
from serving.shadow import ServedRequest, ShadowScorer, in_canary
from tests.unit.test_serving_log import wait_until

SKIPPED = "mlops_shadow_skipped_rows_total"


class SlowModel:
    """Scores once `release` is set, and records the size of every call."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[int] = []

    def predict_records(self, records):
        self.release.wait(10)
        self.calls.append(len(records))
        return np.tile([0.2, 0.5, 0.3], (len(records), 1))

    def unseen_categories(self, records):
        return [[] for _ in records]


@dataclass
class CollectingLog:
    batches: list

    def submit(self, batch) -> None:
        self.batches.append(batch)


def request(index: int, rows: int = 1) -> ServedRequest:
    ids = [f"request-{index}-{row}" for row in range(rows)]
    return ServedRequest([{"age": 30}] * rows, ids, datetime(2025, 6, 1, 12, 0, index), "1")


def holding(model) -> AliasHolder:
    """A challenger alias holder that holds `model` (never started: no polling)."""
    holder = AliasHolder(SimpleNamespace(alias="challenger"), poll_interval_s=60)
    holder.model = model
    return holder


def skipped() -> float:
    return REGISTRY.get_sample_value(SKIPPED) or 0.0


def test_queued_requests_are_scored_together_under_their_own_ids_and_times() -> None:
    model = SlowModel()
    challenger = SimpleNamespace(model=model, version="2", model_name="credit_score")
    log = CollectingLog([])
    scorer = ShadowScorer(holding(challenger), log, queue_max=1_000)
    for index in range(20):
        scorer.submit(request(index))
    model.release.set()
    scorer.start()
    wait_until(lambda: sum(len(batch) for batch in log.batches) == 20)
    scorer.close()

    assert model.calls == [20]  # one model call for all that waited
    (batch,) = log.batches
    assert batch.role == "shadow" and batch.model_version == "2"
    assert list(batch.request_ids) == [f"request-{i}-0" for i in range(20)]
    assert list(batch.created_at) == [datetime(2025, 6, 1, 12, 0, i) for i in range(20)]


def test_a_full_queue_skips_requests_and_counts_them() -> None:
    model = SlowModel()  # held: nothing leaves the queue
    challenger = SimpleNamespace(model=model, version="2", model_name="credit_score")
    log = CollectingLog([])
    scorer = ShadowScorer(holding(challenger), log, queue_max=10)
    before = skipped()
    for index in range(5):
        scorer.submit(request(index, rows=4))  # 20 rows offered, room for 10

    assert skipped() - before == 12  # the 3rd submit would make 12 > 10: it and the rest
    model.release.set()
    scorer.start()
    wait_until(lambda: sum(len(batch) for batch in log.batches) == 8)
    scorer.close()


def test_without_a_challenger_or_with_the_champions_version_nothing_is_queued() -> None:
    log = CollectingLog([])
    holder = holding(None)
    scorer = ShadowScorer(holder, log, queue_max=10)
    scorer.submit(request(0))
    holder.model = SimpleNamespace(model=SlowModel(), version="1", model_name="credit_score")
    scorer.submit(request(1))  # the challenger alias points at the champion's version
    scorer.start()
    scorer.close()

    assert log.batches == []


def test_the_canary_share_is_sticky_per_customer_and_about_the_share() -> None:
    customers = [f"CUS_0x{number:05x}" for number in range(20_000)]
    picked = [in_canary(customer, 0.1) for customer in customers]

    assert picked == [in_canary(customer, 0.1) for customer in customers]  # sticky
    assert 0.09 < sum(picked) / len(customers) < 0.11
    # A larger share keeps every customer already in: raising it only adds customers.
    assert all(in_canary(c, 0.3) for c, chosen in zip(customers, picked, strict=True) if chosen)
    assert not any(in_canary(c, 0.0) for c in customers[:100])
    assert in_canary(None, 1.0) is False and all(in_canary(c, 1.0) for c in customers[:100])
