"""The challenger on live traffic: shadow scoring of every request, and canary routing.

`in_canary` picks the customers the challenger answers itself (SERVING_CANARY_SHARE,
sticky: a hash of the customer id decides, so a customer always gets the same model).

A request hands its records to `ShadowScorer.submit` after the champion answered; that
only appends to a bounded queue. A scorer thread takes everything queued, scores it with
the challenger in one call (one model call for many requests is what keeps the cost off
the champion's latency), and hands the predictions to the prediction log as role
`shadow`, under each request's own request id and time. The client never sees them.
Should the queue fill up (a challenger far slower than the traffic), requests go on
unscored in shadow and `mlops_shadow_skipped_rows_total` counts them: the served
predictions and their log never wait for the challenger.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlops_platform import logstore
from mlops_platform.model import predicted_classes
from serving.aliases import AliasHolder
from serving.metrics import serving_metrics
from serving.prediction_log import PredictionLogWriter

# How long the scorer lets requests gather before one call scores them all.
GATHER_S = 0.05
CLOSE_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


def in_canary(customer_id: str | None, share: float) -> bool:
    """Whether the customer is in the canary share; records without an id never are."""
    if not customer_id or share <= 0:
        return False
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


@dataclass(frozen=True)
class ServedRequest:
    """What the champion was asked and when: the shadow rows share its ids and time."""

    records: Sequence[Mapping[str, Any]]
    request_ids: Sequence[str]
    created_at: datetime
    champion_version: str


class ShadowScorer:
    """A bounded queue of served requests and the thread that scores them in shadow."""

    def __init__(
        self, challengers: AliasHolder, log_writer: PredictionLogWriter, *, queue_max: int
    ) -> None:
        self.challengers = challengers
        self.log_writer = log_writer
        self.queue_max = queue_max
        self._queue: deque[ServedRequest] = deque()
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: ServedRequest) -> None:
        """Queue a served request for the challenger, if one is loaded and is not the champion."""
        if self.challengers.beside(request.champion_version) is None:
            return
        with self._lock:
            accepted = self._queued_rows + len(request.records) <= self.queue_max
            if accepted:
                self._queue.append(request)
                self._queued_rows += len(request.records)
        if not accepted:
            serving_metrics().shadow_skipped.inc(len(request.records))

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Score what is queued and stop; call before the log writer closes."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(GATHER_S)
            self._wake.clear()
            self._score(self._take())
        self._score(self._take())

    def _take(self) -> list[ServedRequest]:
        with self._lock:
            taken, self._queued_rows = list(self._queue), 0
            self._queue.clear()
        return taken

    def _score(self, requests: list[ServedRequest]) -> None:
        if not requests:
            return
        challenger = self.challengers.model
        rows = sum(len(request.records) for request in requests)
        if challenger is None:  # the alias was removed while these waited
            serving_metrics().shadow_skipped.inc(rows)
            return
        records = [record for request in requests for record in request.records]
        started = time.perf_counter()
        try:
            model = challenger.model
            probabilities = model.predict_records(records)
            unseen = model.unseen_categories(records)
        # A challenger that cannot score what the champion could must not stop the
        # scorer: these requests go unscored in shadow, and the next batch tries again.
        except Exception:
            log.exception("challenger v%s failed to score %d records", challenger.version, rows)
            serving_metrics().shadow_skipped.inc(rows)
            return
        self.log_writer.submit(
            logstore.ScoredBatch(
                records, probabilities, predicted_classes(probabilities).tolist(), unseen,
                request_ids=[i for request in requests for i in request.request_ids],
                created_at=[
                    request.created_at for request in requests for _ in request.records
                ],
                model_name=challenger.model_name,
                model_version=challenger.version,
                # The scoring call's time, shared by the requests it scored together.
                latency_ms=(time.perf_counter() - started) * 1000,
                role=logstore.SHADOW_ROLE,
            )
        )  # fmt: skip
        serving_metrics().shadow_predictions.labels(challenger.model_name, challenger.version).inc(
            rows
        )
