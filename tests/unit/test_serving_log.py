"""The prediction log writer with a fake table: batching, spooling, replay, bounds, shutdown."""

from __future__ import annotations

import fcntl
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from serving.prediction_log import PredictionLogWriter, Spool


class FakeTable:
    """`prediction_log` under INSERT IGNORE: the first row per request_id wins."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.batch_sizes: list[int] = []
        self.attempted = 0
        self.down = False
        self.fail_after_batches: int | None = None
        self.hang = threading.Event()
        self.release = threading.Event()

    def write(self, rows) -> None:
        if self.hang.is_set():
            self.release.wait(10)
        if self.down or self.fail_after_batches == len(self.batch_sizes):
            raise ConnectionError("MariaDB is down")
        self.batch_sizes.append(len(rows))
        self.attempted += len(rows)
        for row in rows:
            self.rows.setdefault(row["request_id"], row)

    @property
    def ids(self) -> list[str]:
        return list(self.rows)


def make_rows(count: int, start: int = 0) -> list[dict]:
    return [
        {"request_id": f"r{i:06d}", "features": {"age": 30 + i % 50}, "latency_ms": 1.5}
        for i in range(start, start + count)
    ]


def ids(rows: list[dict]) -> list[str]:
    return [row["request_id"] for row in rows]


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


def test_rows_are_inserted_in_order_in_batches_of_at_most_batch_rows(table, make_writer):
    writer = make_writer()
    writer.start()
    writer.submit(make_rows(250))
    writer.submit(make_rows(10, start=250))
    writer.close()

    assert table.ids == ids(make_rows(260))
    assert max(table.batch_sizes) <= 100
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
    wait_until(lambda: not list((tmp_path / "spool").glob("*.jsonl")))
    assert sample("mlops_prediction_log_rows_total", "replay") - replayed_before >= 150


def test_a_replay_interrupted_midway_still_stores_each_row_exactly_once(table, tmp_path):
    spool = Spool(tmp_path)
    spool.append(make_rows(300))
    spool.seal()

    table.fail_after_batches = 1
    with pytest.raises(ConnectionError):
        spool.replay(table, batch_rows=100)
    assert len(table.rows) == 100 and len(list(tmp_path.glob("ready-*.jsonl"))) == 1

    table.fail_after_batches = None
    assert spool.replay(table, batch_rows=100) == 300

    assert table.ids == ids(make_rows(300))
    assert table.attempted == 400  # the first 100 were sent twice and ignored once
    assert not list(tmp_path.glob("*.jsonl"))


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
    [ready] = (tmp_path / "spool").glob("ready-*.jsonl")
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
    writer.submit(make_rows(30))
    wait_until(lambda: writer.backlog == 20)  # one batch is inside the hanging insert

    writer.close(timeout=0.2)

    spooled = [
        json.loads(line)["request_id"]
        for path in (tmp_path / "spool").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert sorted(spooled) == ids(make_rows(30))
    table.release.set()


def test_files_of_dead_processes_are_claimed_and_those_of_live_ones_are_not(
    table, make_writer, tmp_path
):
    directory = tmp_path / "spool"
    directory.mkdir()
    dead = directory / "active-otherhost-4242.jsonl"
    dead.write_text("".join(json.dumps(row) + "\n" for row in make_rows(5)))
    alive = directory / "active-otherhost-4343.jsonl"
    alive.write_text("".join(json.dumps(row) + "\n" for row in make_rows(5, start=5)))
    with open(alive, "rb") as owner:
        fcntl.flock(owner, fcntl.LOCK_EX)  # a live process holds its file's lock

        writer = make_writer()
        writer.start()
        wait_until(lambda: len(table.rows) == 5)
        writer.close()

        assert table.ids == ids(make_rows(5))
        assert alive.exists() and not dead.exists()


def test_a_torn_last_line_is_skipped_and_the_rest_replayed(table, tmp_path, caplog):
    spool = Spool(tmp_path)
    spool.append(make_rows(2))
    spool.seal()
    [ready] = tmp_path.glob("ready-*.jsonl")
    with open(ready, "a") as handle:
        handle.write('{"request_id": "r0000')  # a crash in the middle of an append

    assert spool.replay(table, batch_rows=100) == 2
    assert table.ids == ids(make_rows(2))
    assert "unreadable line 3" in caplog.text
