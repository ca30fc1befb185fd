"""By-customer lookups over real MariaDB replication: a primary and a GTID replica.

The replica answers while it is up; a stopped or stalled replica costs a lookup at most
about a second before the primary answers; with both down the lookup fails within a few
seconds, and each source is used again once it is back.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from mlops_platform import db
from mlops_platform.data.loader import upsert_frame
from mlops_platform.mariadb_server import LocalMariaDB, start_local_mariadb
from serving.customers import (
    SOURCE_TIMEOUT_S,
    CustomerFeatures,
    FeatureStoreUnavailable,
    read_urls,
    replica_lag_seconds,
)
from serving.schemas import EXAMPLE_RECORD

PRIMARY_ARGS = ("--server-id=1", "--log-bin", "--binlog-format=ROW")
REPLICA_ARGS = ("--server-id=2",)
DATABASE = "mlops_replicated"
CUSTOMER = "CUS_0xrep1"


@dataclass
class Replication:
    """A primary and its replica; the tests stop and restart them."""

    primary: LocalMariaDB
    replica: LocalMariaDB

    @property
    def primary_url(self) -> str:
        return self.primary.url(DATABASE)

    @property
    def replica_url(self) -> str:
        return self.replica.url(DATABASE)

    def restart_primary(self) -> None:
        self.primary = start_local_mariadb(
            self.primary.datadir, port=self.primary.port, extra_args=PRIMARY_ARGS
        )

    def restart_replica(self) -> None:
        self.replica = start_local_mariadb(
            self.replica.datadir, port=self.replica.port, extra_args=REPLICA_ARGS
        )

    def wait_for_replica(self) -> None:
        """Block until the replica has applied everything the primary has logged so far."""
        with db.transaction(self.primary_url) as connection:
            position = connection.execute(text("SELECT @@gtid_binlog_pos")).scalar()
        with db.transaction(self.replica.url("mysql")) as connection:
            waited = connection.execute(
                text("SELECT MASTER_GTID_WAIT(:position, 20)"), {"position": position}
            ).scalar()
        assert waited == 0, f"the replica did not reach {position} within 20 s"


def replicate(replica: LocalMariaDB, primary_port: int) -> None:
    with db.transaction(replica.url("mysql")) as connection:
        connection.execute(
            text(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=:port,"
                " MASTER_USER='root', MASTER_USE_GTID=slave_pos"
            ),
            {"port": primary_port},
        )
        connection.execute(text("START SLAVE"))


@pytest.fixture(scope="module")
def replication(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replication]:
    scratch = tmp_path_factory.mktemp("replication")
    primary = start_local_mariadb(scratch / "primary", extra_args=PRIMARY_ARGS)
    try:
        replica = start_local_mariadb(scratch / "replica", extra_args=REPLICA_ARGS)
    except BaseException:
        primary.stop()
        raise
    servers = Replication(primary, replica)
    try:
        replicate(replica, primary.port)
        db.upgrade(servers.primary_url)  # the schema reaches the replica through the binlog
        row = {**EXAMPLE_RECORD, "customer_id": CUSTOMER, "source": "replication test"}
        with db.transaction(servers.primary_url) as connection:
            upsert_frame(connection, "customer_features_monthly", pd.DataFrame([row]))
        servers.wait_for_replica()
        yield servers
    finally:
        for url in {servers.primary_url, servers.replica_url}:
            db.get_engine(url).dispose()
            db.get_bounded_engine(url, SOURCE_TIMEOUT_S).dispose()
        servers.replica.process.send_signal(signal.SIGCONT)  # in case a test left it paused
        servers.replica.stop()
        servers.primary.stop()


@pytest.fixture
def lookups(replication: Replication) -> CustomerFeatures:
    """Uncached, so every fetch reads a source."""
    return CustomerFeatures(read_urls(replication.primary_url, replication.replica_url), ttl_s=0)


def answered_by(source: str) -> float:
    return REGISTRY.get_sample_value("mlops_customer_lookups_total", {"source": source}) or 0.0


def timed_fetch(lookups: CustomerFeatures) -> tuple[dict, float]:
    started = time.monotonic()
    found = lookups.fetch([CUSTOMER])
    return found, time.monotonic() - started


def test_the_replica_answers_and_its_lag_is_measured(
    replication: Replication, lookups: CustomerFeatures
) -> None:
    before = answered_by("replica")

    found = lookups.fetch([CUSTOMER, "CUS_0xnobody"])

    assert list(found) == [CUSTOMER] and found[CUSTOMER]["age"] == EXAMPLE_RECORD["age"]
    assert answered_by("replica") == before + 1
    assert replica_lag_seconds(replication.replica_url) >= 0
    assert replica_lag_seconds(replication.primary_url) == -1  # a primary replicates nothing

    with db.transaction(replication.replica.url("mysql")) as connection:
        connection.execute(text("STOP SLAVE"))
    try:
        assert replica_lag_seconds(replication.replica_url) == -1
    finally:
        with db.transaction(replication.replica.url("mysql")) as connection:
            connection.execute(text("START SLAVE"))


def test_a_stopped_or_stalled_replica_falls_back_to_the_primary(
    replication: Replication, lookups: CustomerFeatures
) -> None:
    lookups.fetch([CUSTOMER])  # a pooled connection to the replica, about to go dead
    before = answered_by("primary")

    replication.replica.process.send_signal(signal.SIGSTOP)
    try:
        stalled, seconds_stalled = timed_fetch(lookups)
        assert replica_lag_seconds(replication.replica_url) == -1
    finally:
        replication.replica.process.send_signal(signal.SIGCONT)
    replication.replica.stop()
    try:
        stopped, seconds_stopped = timed_fetch(lookups)
        assert replica_lag_seconds(replication.replica_url) == -1
    finally:
        replication.restart_replica()

    assert list(stalled) == list(stopped) == [CUSTOMER]
    assert answered_by("primary") == before + 2
    assert seconds_stalled < 2 and seconds_stopped < 2, (seconds_stalled, seconds_stopped)
    before = answered_by("replica")
    assert list(lookups.fetch([CUSTOMER])) == [CUSTOMER]
    assert answered_by("replica") == before + 1  # back on the replica, no dead connection kept


def test_with_both_down_the_lookup_fails_fast_and_recovers(
    replication: Replication, lookups: CustomerFeatures
) -> None:
    before = answered_by("unavailable")
    replication.replica.stop()
    replication.primary.stop()
    try:
        started = time.monotonic()
        with pytest.raises(FeatureStoreUnavailable, match=r"\(replica: .+; primary: .+\)"):
            lookups.fetch([CUSTOMER])
        assert time.monotonic() - started < 3
        assert answered_by("unavailable") == before + 1
    finally:
        replication.restart_primary()

    assert list(lookups.fetch([CUSTOMER])) == [CUSTOMER]  # from the primary, by itself
    replication.restart_replica()
    replication.wait_for_replica()
    before = answered_by("replica")
    assert list(lookups.fetch([CUSTOMER])) == [CUSTOMER]
    assert answered_by("replica") == before + 1
