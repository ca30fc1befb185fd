"""Lossless prediction logging, off the request path.

Requests hand rows to `PredictionLogWriter.submit`, which only appends to a bounded
in-memory queue. A writer thread stores them in `prediction_log` in batches, ignoring
rows whose `request_id` (unique) is stored already, so a row written twice lands once.
While MariaDB is down, batches go to a `Spool` (JSON-lines files, fsync'd per batch)
and are replayed oldest first when it is back; while anything is spooled, newer rows
queue behind it, so the table receives rows in the order they were spooled.
"""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import IO, Any, Protocol

from pydantic_core import to_json
from sqlalchemy import create_engine, text

from mlops_platform import db
from serving.metrics import serving_metrics

LogRow = dict[str, Any]
COLUMNS = (
    "request_id", "customer_id", "feature_month", "model_name", "model_version", "features",
    "predicted_class", "probabilities", "unseen_categories", "latency_ms", "created_at",
)  # fmt: skip
# LOAD DATA … IGNORE skips rows whose request_id is already stored, exactly like INSERT
# IGNORE, at a third of the cost (measured: 33 against 100 ms per 1,000 rows, most of
# the latter spent escaping parameters in Python while holding the GIL).
LOAD_ROWS = text(
    "LOAD DATA LOCAL INFILE :path IGNORE INTO TABLE prediction_log CHARACTER SET utf8mb4"
    " FIELDS TERMINATED BY '\\t' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY ''"
    " LINES TERMINATED BY '\\n'"
    " (request_id, @customer_id, @feature_month, model_name, model_version, features,"
    " predicted_class, probabilities, @unseen_categories, latency_ms, created_at)"
    " SET customer_id = NULLIF(@customer_id, ''), feature_month = NULLIF(@feature_month, ''),"
    " unseen_categories = NULLIF(@unseen_categories, '')"
)
# A hung server must not hold the writer (and so shutdown) for long; a refused
# connection fails at once anyway.
DB_TIMEOUT_S = 10
RETRY_INTERVAL_S = 2.0
CLOSE_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)


class LogSink(Protocol):
    def write(self, rows: Sequence[LogRow]) -> None:
        """Store every row, or raise."""


class MariaDBSink:
    """Stores rows in `prediction_log` with one LOAD DATA … IGNORE per batch."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(
            db.feature_store_url(url),
            pool_size=1,
            max_overflow=0,
            pool_pre_ping=True,
            connect_args={
                "charset": "utf8mb4",
                "local_infile": True,
                "connect_timeout": DB_TIMEOUT_S,
                "read_timeout": DB_TIMEOUT_S,
                "write_timeout": DB_TIMEOUT_S,
            },
        )

    def write(self, rows: Sequence[LogRow]) -> None:
        with tempfile.NamedTemporaryFile(
            "w", prefix="prediction-log-", suffix=".tsv", newline=""
        ) as scratch:
            # NULL travels as an empty field; JSON escapes tabs and newlines itself.
            csv.writer(scratch, delimiter="\t", lineterminator="\n").writerows(
                [
                    *(row[column] for column in COLUMNS[:5]),
                    to_json(row["features"]).decode(),
                    row["predicted_class"],
                    to_json(row["probabilities"]).decode(),
                    *(row[column] for column in COLUMNS[8:]),
                ]
                for row in rows
            )
            scratch.flush()
            with self.engine.begin() as connection:
                connection.execute(LOAD_ROWS, {"path": scratch.name})


class Spool:
    """Append-only JSON-lines files in a directory that several processes share.

    Each process appends to its own `active-<host>-<pid>.jsonl`, holding an exclusive
    flock on it while it lives; `seal()` renames it to `ready-<time>-<owner>.jsonl` for
    replay. Replays take the same lock per file, so no two processes replay one file at
    once, and an active file whose lock can be taken was left by a dead process.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.owner = f"{socket.gethostname()}-{os.getpid()}"
        self.active_path = directory / f"active-{self.owner}.jsonl"
        self._lock = threading.Lock()
        self._active: IO[bytes] | None = None

    def append(self, rows: Sequence[LogRow]) -> None:
        """Append rows to this process's active file and fsync it."""
        lines = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
        with self._lock:
            if self._active is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._active = open(self.active_path, "ab")  # noqa: SIM115 - kept open
                fcntl.flock(self._active, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._active.write(lines)
            self._active.flush()
            os.fsync(self._active.fileno())

    def seal(self) -> None:
        """Hand the active file over to replay; the next append starts a new one."""
        with self._lock:
            if self._active is None:
                return
            os.rename(self.active_path, self._ready_path(self.owner))
            self._active.close()
            self._active = None

    def has_rows(self) -> bool:
        """Whether any rows wait in this process's active file or in any ready file."""
        return self._active is not None or any(self.directory.glob("ready-*.jsonl"))

    def size_bytes(self) -> int:
        """Bytes in all spool files of the directory."""
        total = 0
        for path in self.directory.glob("*.jsonl"):
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # replayed and deleted by another process meanwhile
                continue
        return total

    def claim_orphans(self) -> None:
        """Seal the active files of processes that died before they could."""
        for path in self.directory.glob("active-*.jsonl"):
            if path == self.active_path:
                continue
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
            except FileNotFoundError:
                continue
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its owner is alive
                if _still_at(path, handle):
                    os.rename(path, self._ready_path(path.stem.removeprefix("active-")))

    def replay(self, sink: LogSink, batch_rows: int) -> int:
        """Store every ready file, oldest first, deleting each once stored: rows stored.

        Raises what the sink raises; files not fully stored stay for the next replay
        (rows stored twice are ignored by the database, keyed by request_id).
        """
        stored = 0
        for path in sorted(self.directory.glob("ready-*.jsonl")):
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
            except FileNotFoundError:
                continue
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # another process is replaying it
                if not _still_at(path, handle):
                    continue  # replayed and deleted while we waited for the lock
                for batch in _batches(_read_rows(path, handle), batch_rows):
                    sink.write(batch)
                    stored += len(batch)
                path.unlink()
        return stored

    def _ready_path(self, owner: str) -> Path:
        return self.directory / f"ready-{time.time_ns():020d}-{owner}.jsonl"


def _still_at(path: Path, handle: IO[bytes]) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def _batches(rows: Iterable[LogRow], size: int) -> Iterator[list[LogRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _read_rows(path: Path, handle: IO[bytes]) -> Iterator[LogRow]:
    for number, line in enumerate(handle, start=1):
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            # Only a crash in the middle of an append leaves a torn (final) line.
            log.error("skipping unreadable line %d of spool file %s", number, path)


class PredictionLogWriter:
    """A bounded queue of log rows and the thread that stores them (database, else spool)."""

    def __init__(
        self,
        sink: LogSink,
        spool: Spool,
        *,
        batch_rows: int,
        flush_interval_s: float,
        queue_max: int,
        retry_interval_s: float = RETRY_INTERVAL_S,
    ) -> None:
        self.sink = sink
        self.spool = spool
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_s
        self.queue_max = queue_max
        self.retry_interval_s = retry_interval_s
        self._queue: deque[LogRow] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._retry_at = 0.0
        self._in_flight: list[LogRow] = []
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    @property
    def backlog(self) -> int:
        """Rows waiting in memory."""
        return len(self._queue)

    def start(self) -> None:
        self._thread.start()

    def submit(self, rows: list[LogRow]) -> None:
        """Queue rows for the writer; never blocks on the database.

        When the queue is full (the writer cannot keep up) the rows go straight to the
        spool, so memory stays bounded and nothing is dropped.
        """
        with self._lock:
            accepted = len(self._queue) + len(rows) <= self.queue_max
            if accepted:
                self._queue.extend(rows)
                full_batch = len(self._queue) >= self.batch_rows
        if not accepted:
            try:
                self._spool(rows)
            except OSError:  # the rows are queued instead; the writer retries the spool
                log.exception("cannot write the prediction log spool")
        elif full_batch:
            self._wake.set()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Store what is queued (database, else spool) and stop the writer thread."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            # The thread is stuck on the database. Spool its batch too: if the insert
            # does land, the replayed copies are ignored (same request_id).
            log.error("prediction log writer did not stop within %.0f s; spooling", timeout)
            if self._in_flight:
                self._spool(self._in_flight)
            while batch := self._take():
                self._spool(batch)
            self.spool.seal()

    def _run(self) -> None:
        self.spool.claim_orphans()
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._drain(final=stopping)
            except OSError:
                # The spool itself failed (disk full …); the rows are back in the queue.
                log.exception("cannot write the prediction log spool; retrying")
            if stopping:
                break
        self.spool.seal()

    def _drain(self, final: bool) -> None:
        """Store everything queued: a due replay first, so older rows land first."""
        if self.spool.has_rows() and (final or time.monotonic() >= self._retry_at):
            self._replay()
        while batch := self._take():
            if self.spool.has_rows():
                self._spool(batch)
            else:
                self._write(batch)
        metrics = serving_metrics()
        metrics.log_backlog.set(self.backlog)
        metrics.spool_bytes.set(self.spool.size_bytes())

    def _take(self) -> list[LogRow]:
        with self._lock:
            return [self._queue.popleft() for _ in range(min(len(self._queue), self.batch_rows))]

    def _write(self, batch: list[LogRow]) -> None:
        self._in_flight = batch
        try:
            self.sink.write(batch)
        # Whatever stops the insert (server down, timeout, lost connection), the rows
        # must survive: they go to the spool and the database is retried later.
        except Exception as error:
            log.warning("prediction log insert failed (%s); spooling %d rows", error, len(batch))
            self._retry_at = time.monotonic() + self.retry_interval_s
            self._spool(batch)
        else:
            self._count("database", len(batch))
        finally:
            self._in_flight = []

    def _spool(self, batch: list[LogRow]) -> None:
        try:
            self.spool.append(batch)
        except OSError:
            with self._lock:
                self._queue.extendleft(reversed(batch))
            raise
        self._count("spool", len(batch))

    def _replay(self) -> None:
        self.spool.seal()
        self.spool.claim_orphans()
        try:
            stored = self.spool.replay(self.sink, self.batch_rows)
        except Exception as error:  # same reasoning as in _write: retry later
            log.warning("prediction log replay failed (%s); retrying later", error)
            self._retry_at = time.monotonic() + self.retry_interval_s
            return
        if stored:
            log.info("replayed %d spooled prediction log rows", stored)
            self._count("replay", stored)

    @staticmethod
    def _count(destination: str, rows: int) -> None:
        metrics = serving_metrics()
        metrics.log_flushes.labels(destination=destination).inc()
        metrics.log_rows.labels(destination=destination).inc(rows)
