"""Steady single-record traffic from the host, counting every answer by status."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import Any

import httpx


class SteadyLoad:
    """`threads` clients posting records to `url`/predict back to back until `stop()`."""

    def __init__(self, url: str, records: list[dict[str, Any]], threads: int = 4) -> None:
        self.url = url
        self._records = itertools.cycle(records)
        self._records_lock = threading.Lock()
        self._stopping = threading.Event()
        self._statuses: Counter[int] = Counter()
        self._statuses_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(threads)]

    def _next_record(self) -> dict[str, Any]:
        with self._records_lock:
            return next(self._records)

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stopping.is_set():
                try:
                    status = client.post("/predict", json=self._next_record()).status_code
                except httpx.HTTPError:
                    status = 0  # no answer at all counts as a failure
                with self._statuses_lock:
                    self._statuses[status] += 1

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(60)

    @property
    def statuses(self) -> Counter[int]:
        with self._statuses_lock:
            return Counter(self._statuses)
