"""Connections to the MariaDB feature/log store and the numbered migrations in `sql/`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.exc import OperationalError

from mlops_platform.config import get_settings
from mlops_platform.errors import InvalidInput, PlatformError

MIGRATION_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
SAFE_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MIGRATION_LOCK = "mlops_schema_migrations"


class MigrationError(PlatformError):
    """A migration file is malformed, or an applied one was edited afterwards."""


class StoreUnavailable(PlatformError, OperationalError):
    """The store cannot be connected to, or its database does not exist yet.

    Still an `OperationalError`, so code that handles outages handles this one too.
    """

    def __str__(self) -> str:
        return (
            f"the feature store is not reachable or not ready: {self.orig}."
            " Check FEATURE_STORE_URL, and run `mlops db upgrade` on a new database."
        )


def _explain_connect_failure(context: ExceptionContext) -> None:
    """A failed connect (not a pre-ping, which reconnects by itself) says what to check."""
    error = context.sqlalchemy_exception
    connecting = context.connection is None and not context.is_pre_ping
    if connecting and type(error) is OperationalError:
        raise StoreUnavailable(error.statement, error.params, error.orig) from error.orig


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str


def feature_store_url(url: str | URL | None = None) -> URL:
    """The configured store URL (or the one given), with its database name checked."""
    parsed = make_url(url or get_settings().feature_store_url)
    if not parsed.database or not SAFE_IDENTIFIER.match(parsed.database):
        raise InvalidInput(
            f"FEATURE_STORE_URL must name a database of letters, digits and '_': {parsed!r}"
        )
    return parsed


@lru_cache(maxsize=8)
def _engine_for(url: URL, timeout_s: float | None = None) -> Engine:
    connect_args: dict[str, Any] = {"local_infile": True, "charset": "utf8mb4"}
    bounded: dict[str, Any] = {}
    if timeout_s is not None:
        timeouts = ("connect_timeout", "read_timeout", "write_timeout")
        connect_args |= dict.fromkeys(timeouts, timeout_s)
        bounded["pool_timeout"] = timeout_s  # waiting for a free pooled connection, too
    engine = create_engine(
        url, pool_pre_ping=True, pool_recycle=1800, connect_args=connect_args, **bounded
    )
    event.listen(engine, "handle_error", _explain_connect_failure)
    return engine


def get_engine(url: str | URL | None = None) -> Engine:
    """A pooled engine for the feature store, shared per URL and created on first use."""
    return _engine_for(feature_store_url(url))


def get_bounded_engine(url: str | URL, timeout_s: float) -> Engine:
    """Like `get_engine`, but connecting, each read and each write give up after `timeout_s`."""
    return _engine_for(feature_store_url(url), timeout_s)


@contextmanager
def transaction(url: str | URL | None = None) -> Iterator[Connection]:
    """One transaction: committed when the block succeeds, rolled back when it raises."""
    with get_engine(url).begin() as connection:
        yield connection


@contextmanager
def named_lock(name: str, timeout_s: float, url: str | URL | None = None) -> Iterator[bool]:
    """Hold MariaDB's named lock `name` (at most 64 characters) while the block runs.

    Yields whether it was acquired within `timeout_s`; the caller decides what a miss means.
    """
    with get_engine(url).connect() as connection:
        acquired = connection.execute(
            text("SELECT GET_LOCK(:name, :timeout)"), {"name": name[:64], "timeout": timeout_s}
        ).scalar()
        try:
            yield acquired == 1
        finally:
            if acquired == 1:
                connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name[:64]})


def split_statements(sql: str) -> list[str]:
    """Split a migration file into statements; `;` ends a statement only at a line end."""
    without_comments = "\n".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    )
    return [
        part.strip() for part in re.split(r";\s*$", without_comments, flags=re.M) if part.strip()
    ]


def read_migrations(sql_dir: Path | None = None) -> list[Migration]:
    """All `NNN_name.sql` files in version order."""
    directory = sql_dir or get_settings().mlops_sql_dir
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if not match:
            continue
        body = path.read_text(encoding="utf-8")
        migrations.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                statements=tuple(split_statements(body)),
                checksum=hashlib.sha256(body.encode()).hexdigest(),
            )
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}: {versions}")
    return migrations


def _run_on_server(url: URL, statement: str) -> None:
    """Run one statement on the URL's server, connected without choosing a database."""
    server_url = URL.create(
        url.drivername, url.username, url.password, url.host, url.port, query=url.query
    )
    server_engine = create_engine(server_url)
    try:
        with server_engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        server_engine.dispose()


# Database names are identifiers, which cannot be bound parameters: these two functions
# are the only places that quote one, and feature_store_url() allow-lists it first.


def create_database_if_missing(url: str | URL) -> None:
    """Create the URL's database on its server (utf8mb4) when it does not exist yet."""
    name = feature_store_url(url).database
    statement = (
        f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    _run_on_server(feature_store_url(url), statement)


def drop_database(url: str | URL) -> None:
    """Drop the URL's database if it exists (throwaway stores of tests and demo runs)."""
    store = feature_store_url(url)
    get_engine(store).dispose()  # its pooled connections would point at nothing
    _run_on_server(store, f"DROP DATABASE IF EXISTS `{store.database}`")


def upgrade(url: str | URL | None = None, sql_dir: Path | None = None) -> list[Migration]:
    """Apply the migrations not applied yet and return them; safe to run concurrently."""
    store_url = feature_store_url(url)
    create_database_if_missing(store_url)
    migrations = read_migrations(sql_dir)
    engine = get_engine(store_url)
    applied_now = []
    with engine.connect() as connection:
        if not connection.execute(
            text("SELECT GET_LOCK(:name, 60)"), {"name": MIGRATION_LOCK}
        ).scalar():
            raise MigrationError("another `mlops db upgrade` held the migration lock for 60 s")
        try:
            connection.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version INT NOT NULL PRIMARY KEY,"
                    " name VARCHAR(100) NOT NULL,"
                    " checksum CHAR(64) NOT NULL,"
                    " applied_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP"
                    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
                )
            )
            connection.commit()
            applied = dict(
                connection.execute(text("SELECT version, checksum FROM schema_migrations")).all()
            )
            for migration in migrations:
                if migration.version in applied:
                    if applied[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:03d}_{migration.name} changed after it"
                            " was applied; add a new migration instead of editing it"
                        )
                    continue
                for statement in migration.statements:
                    connection.execute(text(statement))
                connection.execute(
                    text(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES (:version, :name, :checksum)"
                    ),
                    {
                        "version": migration.version,
                        "name": migration.name,
                        "checksum": migration.checksum,
                    },
                )
                connection.commit()
                applied_now.append(migration)
        finally:
            connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": MIGRATION_LOCK})
    return applied_now


def applied_versions(url: str | URL | None = None) -> list[int]:
    """Versions recorded in `schema_migrations`, ascending."""
    with get_engine(url).connect() as connection:
        return list(
            connection.execute(
                text("SELECT version FROM schema_migrations ORDER BY version")
            ).scalars()
        )
