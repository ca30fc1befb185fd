"""Lossless prediction logging, off the request path.

Requests hand their predictions (a `logstore.ScoredBatch`) to `PredictionLogWriter.submit`,
which only appends to a bounded in-memory queue. A writer thread turns them into log rows,
encodes those as load-file lines and stores them in `prediction_log` with LOAD DATA, many
requests per statement; a row stored twice lands once (same key). While MariaDB is down,
the lines go to a `Spool` (append-only files, fsync'd per batch), and each spool file is
loaded as it is when the database is back, oldest first; while anything is spooled, newer
rows queue behind it, so the table receives rows in the order they were spooled.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import create_engine

from mlops_platform import db, logstore
from mlops_platform.logstore import ScoredBatch
from serving.metrics import serving_metrics

# A hung server must not hold the writer (and so shutdown) for long; a refused
# connection fails at once anyway.
DB_TIMEOUT_S = 10
RETRY_INTERVAL_S = 2.0
CLOSE_TIMEOUT_S = 30.0
log = logging.getLogger(__name__)


class LogSink(Protocol):
    def write(self, lines: bytes) -> int:
        """Store every encoded row, or raise; returns how many were new."""

    def load(self, path: Path) -> int:
        """Store every encoded row of a file, or raise; returns how many were new."""


class MariaDBSink:
    """Stores encoded rows in `prediction_log` with one LOAD DATA … IGNORE per batch."""

    def __init__(self, url: str) -> None:
        # mysqlclient runs the whole LOAD DATA (file included) in C without the GIL, so the
        # request threads keep running; one autocommitted statement per batch, no other round trip.
        # A connection the server dropped fails one batch (spooled) and is replaced.
        self.engine = create_engine(
            db.feature_store_url(url).set(drivername="mysql+mysqldb"),
            pool_size=1,
            max_overflow=0,
            isolation_level="AUTOCOMMIT",
            pool_reset_on_return=None,  # nothing to roll back after an autocommitted load
            connect_args={
                "charset": "utf8mb4",
                "local_infile": True,
                "connect_timeout": DB_TIMEOUT_S,
                "read_timeout": DB_TIMEOUT_S,
                "write_timeout": DB_TIMEOUT_S,
            },
        )

    def write(self, lines: bytes) -> int:
        with self.engine.connect() as connection:
            return logstore.load_lines(connection, lines)

    def load(self, path: Path) -> int:
        with self.engine.connect() as connection:
            return logstore.load_file(connection, path)


class Spool:
    """Append-only load files (`*.tsv`) in a directory that several processes share.

    Each process appends to its own `active-<host>-<pid>.tsv`, holding an exclusive
    flock on it while it lives; `seal()` renames it to `ready-<time>-<owner>.tsv` for
    replay. Replays take the same lock per file, so no two processes replay one file at
    once, and an active file whose lock can be taken was left by a dead process.
    Each process counts the rows of the files it wrote or claimed until they are replayed
    (by any process), so the rows waiting in the spool are the sum over the processes.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.owner = f"{socket.gethostname()}-{os.getpid()}"
        self.active_path = directory / f"active-{self.owner}.tsv"
        self._lock = threading.Lock()
        self._active: IO[bytes] | None = None
        self._active_rows = 0
        self._ready_rows: dict[Path, int] = {}  # this process's ready files, until replayed

    def append(self, lines: bytes) -> None:
        """Append encoded rows to this process's active file and fsync it."""
        with self._lock:
            if self._active is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._active = open(self.active_path, "ab")  # noqa: SIM115 - kept open
                fcntl.flock(self._active, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._active.write(lines)
            self._active.flush()
            os.fsync(self._active.fileno())
            self._active_rows += lines.count(b"\n")

    def seal(self) -> None:
        """Hand the active file over to replay; the next append starts a new one."""
        with self._lock:
            if self._active is None:
                return
            ready = self._ready_path()
            os.rename(self.active_path, ready)
            self._active.close()
            self._active = None
            self._ready_rows[ready], self._active_rows = self._active_rows, 0

    def waiting_rows(self) -> int:
        """Rows this process spooled (or claimed) that no process has replayed yet."""
        with self._lock:
            for path in [path for path in self._ready_rows if not path.exists()]:
                del self._ready_rows[path]
            return self._active_rows + sum(self._ready_rows.values())

    def has_rows(self) -> bool:
        """Whether any rows wait in this process's active file or in any ready file."""
        return self._active is not None or any(self.directory.glob("ready-*.tsv"))

    def size_bytes(self) -> int:
        """Bytes in all spool files of the directory."""
        total = 0
        for path in self.directory.glob("*.tsv"):
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # replayed and deleted by another process meanwhile
                continue
        return total

    def claim_orphans(self) -> None:
        """Seal the active files of processes that died before they could."""
        for path in self.directory.glob("active-*.tsv"):
            if path == self.active_path:
                continue
            with _locked(path) as handle:
                if handle is not None:
                    ready = self._ready_path()
                    os.rename(path, ready)
                    with self._lock:
                        self._ready_rows[ready] = _count_lines(handle)

    def replay(self, sink: LogSink) -> int:
        """Store every ready file, oldest first, deleting each once stored: rows stored.

        Raises what the sink raises; a file not stored stays for the next replay (rows
        stored twice are skipped by the database, keyed by created_at and request_id).
        """
        stored = 0
        for path in sorted(self.directory.glob("ready-*.tsv")):
            with _locked(path) as handle:
                if handle is None:
                    continue  # another process is replaying it, or has done so
                _drop_torn_line(path, handle)
                stored += sink.load(path)
                path.unlink()
        return stored

    def _ready_path(self) -> Path:
        return self.directory / f"ready-{time.time_ns():020d}-{self.owner}.tsv"


def _count_lines(handle: IO[bytes]) -> int:
    handle.seek(0)
    return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


@contextmanager
def _locked(path: Path) -> Iterator[IO[bytes] | None]:
    """The file, opened and exclusively locked; None if it is gone or locked elsewhere."""
    try:
        handle = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        yield None
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        # Renamed or deleted while we waited for the lock: no longer the file at `path`.
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        yield handle if same else None


def _drop_torn_line(path: Path, handle: IO[bytes]) -> None:
    """Cut a final line without its newline: only a crash in mid-append leaves one."""
    size = os.fstat(handle.fileno()).st_size
    if size == 0:
        return
    handle.seek(max(0, size - 65_536))
    tail = handle.read()
    if tail.endswith(b"\n"):
        return
    keep = size - len(tail) + tail.rfind(b"\n") + 1
    log.error("dropping a torn last line (%d bytes) of spool file %s", size - keep, path)
    handle.truncate(keep)


class PredictionLogWriter:
    """A bounded queue of log rows and the thread that stores them (database, else spool).

    The writer thread holds the GIL only to hand a batch to Arrow; Arrow writes the load
    file and mysqlclient runs LOAD DATA without it, so busy request threads cannot starve it.
    """

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
        self._queue: deque[ScoredBatch] = deque()  # one entry per submit
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._retry_at = 0.0
        self._in_flight: list[ScoredBatch] = []
        self._spooled_rows = 0  # as of the writer's last count; requests only read it
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    @property
    def backlog(self) -> int:
        """Rows waiting in memory (queued, or in the batch being written)."""
        return self._queued_rows + row_count(self._in_flight)

    def start(self) -> None:
        self._thread.start()

    def submit(self, predictions: ScoredBatch) -> None:
        """Queue a request's predictions for the writer; never blocks on the database.

        The writer spools batches itself once the queue is half full; should it fill up
        anyway, the rows go straight to the spool, so memory stays bounded and nothing
        is dropped.
        """
        with self._lock:
            accepted = self._queued_rows + len(predictions) <= self.queue_max
            if accepted:
                self._queue.append(predictions)
                self._queued_rows += len(predictions)
                full_batch = self._queued_rows >= self.batch_rows
        if not accepted:
            try:
                self._spool([predictions])
            except OSError:  # the rows are queued instead; the writer retries the spool
                log.exception("cannot write the prediction log spool")
        elif full_batch:
            self._wake.set()
        self._report_backlog(self._spooled_rows)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Store what is queued (database, else spool) and stop the writer thread."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread.is_alive():
            # The thread is stuck on the database. Spool its batch too: if the insert
            # does land, the replayed copies are skipped (same key).
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
            self._store(batch, final)
            self._report_backlog()
        self._report_backlog()
        serving_metrics().spool_bytes.set(self.spool.size_bytes())

    def _report_backlog(self, spooled_rows: int | None = None) -> None:
        """Set the backlog gauge: rows in memory and in the spool (`spooled_rows` if known)."""
        if spooled_rows is None:
            self._spooled_rows = spooled_rows = self.spool.waiting_rows()
        serving_metrics().log_backlog.set(self.backlog + spooled_rows)

    def _take(self) -> list[ScoredBatch]:
        """Whole submits, oldest first, up to `batch_rows` rows (at least one submit)."""
        batch: list[ScoredBatch] = []
        rows = 0
        with self._lock:
            while self._queue and (not batch or rows + len(self._queue[0]) <= self.batch_rows):
                batch.append(self._queue.popleft())
                rows += len(batch[-1])
            self._queued_rows -= rows
        return batch

    def _store(self, batch: list[ScoredBatch], final: bool) -> None:
        """Into the database; into the spool behind older spooled rows, when the database
        fails, or while half the queue is full (so requests never have to spool themselves).
        """
        lines = logstore.encode(logstore.table(batch))
        falling_behind = not final and self.backlog > self.queue_max // 2
        if self.spool.has_rows() or falling_behind:
            self._spool(batch, lines)
            return
        self._in_flight = batch
        try:
            self.sink.write(lines)
        # Whatever stops the insert (server down, timeout, lost connection), the rows
        # must survive: they go to the spool and the database is retried later.
        except Exception as error:
            log.warning(
                "prediction log insert failed (%s); spooling %d rows", error, row_count(batch)
            )
            self._retry_at = time.monotonic() + self.retry_interval_s
            self._spool(batch, lines)
        else:
            self._count("database", row_count(batch))
        finally:
            self._in_flight = []

    def _spool(self, batch: list[ScoredBatch], lines: bytes | None = None) -> None:
        try:
            self.spool.append(lines or logstore.encode(logstore.table(batch)))
        except OSError:
            with self._lock:
                self._queue.extendleft(reversed(batch))
                self._queued_rows += row_count(batch)
            raise
        self._count("spool", row_count(batch))

    def _replay(self) -> None:
        self.spool.seal()
        self.spool.claim_orphans()
        try:
            stored = self.spool.replay(self.sink)
        except Exception as error:  # same reasoning as in _store: retry later
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


def row_count(batch: list[ScoredBatch]) -> int:
    return sum(map(len, batch))
