"""Shared pieces of the benchmark scripts: a throwaway store and a figures table."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mlops_platform import db
from mlops_platform.mariadb_server import start_local_mariadb

console = Console()


@contextmanager
def throwaway_store(database: str = "mlops_bench") -> Iterator[str]:
    """A migrated store on a private mariadbd (or on MLOPS_TEST_DATABASE_URL's server)."""
    external = os.environ.get("MLOPS_TEST_DATABASE_URL")
    if external:
        url = db.make_url(external).set(database=database).render_as_string(hide_password=False)
        db.upgrade(url)
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="mlops-bench-") as scratch:
        server = start_local_mariadb(Path(scratch) / "data")
        try:
            url = server.url(database)
            db.upgrade(url)
            yield url
        finally:
            db.get_engine(url).dispose()
            server.stop()


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Yields a one-item list that holds the elapsed seconds once the block ends."""
    elapsed = [0.0]
    started = time.perf_counter()
    yield elapsed
    elapsed[0] = time.perf_counter() - started


def print_figures(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    """Rows of (what, measured, target, verdict)."""
    table = Table(title=title, title_justify="left")
    for header in ("what", "measured", "target", ""):
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def verdict(ok: bool) -> str:
    return "[green]meets[/green]" if ok else "[red]misses[/red]"
