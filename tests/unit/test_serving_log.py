"""The prediction log writer with a fake table: batching, spooling, replay, bounds, shutdown."""

from __future__ import annotations

import csv
import fcntl
import io
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from mlops_platform import logstore
from mlops_platform.schema import FEATURE_NAMES, NUMERIC_FEATURES
from serving.prediction_log import PredictionLogWriter, Spool
from serving.schemas import EXAMPLE_RECORD

REQUEST_ID = logstore.COLUMNS.index("request_id")
ROLE = logstore.COLUMNS.index("role")
FEATURES_ONLY = {name: EXAMPLE_RECORD[name] for name in FEATURE_NAMES}


class FakeTable:
    """`prediction_log` under LOAD DATA … IGNORE: the first row per request_id and role wins.

    `rows` holds the served rows, `shadow_rows` the challenger's, both by request_id.
    """

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, str]] = {}  # request_id → column → field as loaded
        self.shadow_rows: dict[str, dict[str, str]] = {}
        self.batch_sizes: list[int] = []
        self.attempted = 0
        self.down = False
        self.lose_answers = False
        self.hang = threading.Event()
        self.release = threading.Event()

    def write(self, lines: bytes) -> int:
        if self.hang.is_set():
            self.release.wait(10)
        if self.down:
            raise ConnectionError("MariaDB is down")
        rows = list(csv.reader(io.StringIO(lines.decode()), delimiter="\t"))
        self.batch_sizes.append(len(rows))
        self.attempted += len(rows)
        before = len(self.rows) + len(self.shadow_rows)
        for row in rows:
            stored = self.shadow_rows if row[ROLE] == logstore.SHADOW_ROLE else self.rows
            stored.setdefault(row[REQUEST_ID], dict(zip(logstore.COLUMNS, row, strict=True)))
        if self.lose_answers:
            raise ConnectionError("lost connection to MariaDB during query")
        return len(self.rows) + len(self.shadow_rows) - before

    def load(self, path: Path) -> int:
        return self.write(path.read_bytes())

    @property
    def ids(self) -> list[str]:
        return list(self.rows)


def make_rows(count: int, start: int = 0) -> logstore.ScoredBatch:
    first = datetime(2025, 6, 2)
    numbers = range(start, start + count)
    return logstore.ScoredBatch(
        [FEATURES_ONLY] * count, np.tile([0.5, 0.3, 0.2], (count, 1)), ["Good"] * count,
        [[]] * count, [f"r{i:06d}" for i in numbers],
        created_at=[first + timedelta(milliseconds=i) for i in numbers],
        model_name="m", model_version="1", latency_ms=1.5,
    )  # fmt: skip


def encoded(*batches: logstore.ScoredBatch) -> bytes:
    return logstore.encode(logstore.table(batches))


def ids(rows: logstore.ScoredBatch) -> list[str]:
    return list(rows.request_ids)


def logged_features(row: dict[str, str]) -> dict[str, Any]:
    """A FakeTable row's features typed back, as MariaDB stores them: numbers, text or None."""
    fields = {name: row[f"f_{name}"] for name in FEATURE_NAMES}
    return {
        name: None if text == "" else float(text) if name in NUMERIC_FEATURES else text
        for name, text in fields.items()
    }


def features_of(record: dict) -> dict[str, Any]:
    return {name: record.get(name) for name in FEATURE_NAMES}


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def sample(name: str, destination: str) -> float:
    return REGISTRY.get_sample_value(name, {"destination": destination}) or 0.0


@pytest.fixture
def table() -> FakeTable:
    return FakeTable()


@pytest.fixture
def make_writer(table: FakeTable, tmp_path: Path) -> Iterator[Callable[..., PredictionLogWriter]]:
    writers: list[PredictionLogWriter] = []

    def make_writer(**options) -> PredictionLogWriter:
        settings = {"batch_rows": 100, "flush_interval_s": 0.02, "queue_max": 10_000,
                    "retry_interval_s": 0.05} | options  # fmt: skip
        writer = PredictionLogWriter(table, Spool(tmp_path / "spool"), **settings)
        writers.append(writer)
        return writer

    yield make_writer
    for writer in writers:
        writer.close(timeout=5)


def test_requests_are_inserted_in_order_in_batches_of_at_most_batch_rows(table, make_writer):
    writer = make_writer(flush_interval_s=60)
    for start in range(0, 300, 30):
        writer.submit(make_rows(30, start=start))
    writer.submit(make_rows(150, start=300))  # one request over the limit is one batch
    writer.start()
    writer.close()

    assert table.ids == ids(make_rows(450))
    assert table.batch_sizes == [90, 90, 90, 30, 150]
    assert writer.backlog == 0


def test_while_the_database_is_down_rows_are_spooled_then_replayed_once_in_order(
    table, make_writer, tmp_path
):
    replayed_before = sample("mlops_prediction_log_rows_total", "replay")
    table.down = True
    writer = make_writer()
    writer.start()
    for start in (0, 50, 100):
        writer.submit(make_rows(50, start=start))
        time.sleep(0.05)
    wait_until(lambda: writer.backlog == 0 and writer.spool.size_bytes() > 0)
    assert table.rows == {}

    table.down = False
    writer.submit(make_rows(20, start=150))  # arrives after the outage: queued behind the spool
    wait_until(lambda: len(table.rows) == 170)

    assert table.ids == ids(make_rows(170))
    assert table.attempted == 170
    wait_until(lambda: not list((tmp_path / "spool").glob("*.tsv")))
    assert sample("mlops_prediction_log_rows_total", "replay") - replayed_before >= 150


def backlog_gauge() -> float:
    return REGISTRY.get_sample_value("mlops_prediction_log_backlog_rows")


def test_the_backlog_gauge_counts_rows_in_memory_then_in_the_spool_until_replayed(
    table, make_writer
):
    table.hang.set()  # the database stalls: the writer waits inside its first insert
    writer = make_writer()
    writer.start()
    writer.submit(make_rows(30))
    wait_until(lambda: writer.backlog == 30 and writer._in_flight)
    writer.submit(make_rows(20, start=30))
    assert backlog_gauge() == 50  # 30 in the stalled insert, 20 queued

    table.down = True
    table.release.set()  # the insert fails: all 50 go to the spool
    wait_until(lambda: writer.backlog == 0 and writer.spool.size_bytes() > 0)
    wait_until(lambda: backlog_gauge() == 50)

    table.hang.clear()
    table.down = False
    wait_until(lambda: len(table.rows) == 50)
    wait_until(lambda: backlog_gauge() == 0)


def test_a_replay_whose_answer_was_lost_still_stores_each_row_exactly_once(table, tmp_path):
    spool = Spool(tmp_path)
    spool.append(encoded(make_rows(300)))
    spool.seal()

    table.lose_answers = True  # the rows land, but the connection drops before the OK
    with pytest.raises(ConnectionError):
        spool.replay(table)
    assert len(table.rows) == 300 and len(list(tmp_path.glob("ready-*.tsv"))) == 1

    table.lose_answers = False
    assert spool.replay(table) == 0  # every row was there already

    assert table.ids == ids(make_rows(300))
    assert table.attempted == 600
    assert not list(tmp_path.glob("*.tsv"))


def test_a_full_queue_sends_new_rows_to_the_spool_so_memory_stays_bounded(table, make_writer):
    writer = make_writer(queue_max=100)
    writer.submit(make_rows(80))
    writer.submit(make_rows(50, start=80))  # does not fit: spooled, not dropped

    assert writer.backlog == 80
    assert writer.spool.size_bytes() > 0

    writer.start()
    writer.close()
    assert sorted(table.ids) == ids(make_rows(130))


def test_shutdown_stores_the_queue_in_the_database(table, make_writer):
    writer = make_writer(flush_interval_s=60)
    writer.start()
    writer.submit(make_rows(70))
    writer.close()

    assert table.ids == ids(make_rows(70))


def test_shutdown_during_an_outage_spools_the_queue_for_the_next_process(
    table, make_writer, tmp_path
):
    table.down = True
    writer = make_writer(flush_interval_s=60)
    writer.start()
    writer.submit(make_rows(70))
    writer.close()
    assert table.rows == {}
    [ready] = (tmp_path / "spool").glob("ready-*.tsv")
    assert len(ready.read_text().splitlines()) == 70

    table.down = False
    successor = make_writer()
    successor.start()
    wait_until(lambda: len(table.rows) == 70)
    assert table.ids == ids(make_rows(70))


def test_a_writer_stuck_on_the_database_spools_everything_at_shutdown(table, make_writer, tmp_path):
    table.hang.set()
    writer = make_writer(batch_rows=10)
    writer.start()
    for start in (0, 10, 20):
        writer.submit(make_rows(10, start=start))
    wait_until(lambda: writer._in_flight)  # one batch is inside the hanging insert
    assert writer.backlog == 30  # which still counts as waiting

    writer.close(timeout=0.2)

    spooled = [
        row[REQUEST_ID]
        for path in (tmp_path / "spool").glob("*.tsv")
        for row in csv.reader(io.StringIO(path.read_text()), delimiter="\t")
    ]
    assert sorted(spooled) == ids(make_rows(30))
    table.release.set()


def test_files_of_dead_processes_are_claimed_and_those_of_live_ones_are_not(
    table, make_writer, tmp_path
):
    directory = tmp_path / "spool"
    directory.mkdir()
    dead = directory / "active-otherhost-4242.tsv"
    dead.write_bytes(encoded(make_rows(5)))
    alive = directory / "active-otherhost-4343.tsv"
    alive.write_bytes(encoded(make_rows(5, start=5)))
    with open(alive, "rb") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX)  # a live process holds its file's lock

        writer = make_writer()
        writer.start()
        wait_until(lambda: len(table.rows) == 5)
        writer.close()

        assert table.ids == ids(make_rows(5))
        assert alive.exists() and not dead.exists()


def test_a_torn_last_line_is_dropped_and_the_rest_replayed(table, tmp_path, caplog):
    spool = Spool(tmp_path)
    spool.append(encoded(make_rows(2)))
    spool.seal()
    [ready] = tmp_path.glob("ready-*.tsv")
    with open(ready, "ab") as handle:
        handle.write(encoded(make_rows(1, start=2))[:40])  # a crash mid-append

    assert spool.replay(table) == 2
    assert table.ids == ids(make_rows(2))
    assert "dropping a torn last line (40 bytes)" in caplog.text


def test_a_writer_falling_behind_spools_itself_so_requests_never_touch_the_disk(
    table, make_writer, monkeypatch
):
    spooled_by: set[str] = set()
    writer = make_writer(queue_max=1_000, batch_rows=50)
    original_append = writer.spool.append

    def append(lines: bytes) -> None:
        spooled_by.add(threading.current_thread().name)
        original_append(lines)

    monkeypatch.setattr(writer.spool, "append", append)
    slow_write = table.write

    def write(lines: bytes) -> int:  # the database takes 1,000 rows a second at most
        time.sleep(0.05)
        return slow_write(lines)

    monkeypatch.setattr(table, "write", write)
    writer.start()
    for start in range(0, 2_000, 10):  # 5,000 rows a second
        writer.submit(make_rows(10, start=start))
        time.sleep(0.002)
    wait_until(lambda: len(table.rows) == 2_000)

    assert spooled_by == {"prediction-log"}
    assert table.ids == ids(make_rows(2_000))
