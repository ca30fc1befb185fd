"""Start and stop a private `mariadbd` on a free port: for tests, benchmarks and `make up`."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pymysql

SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin", "/opt/mariadb/bin")
HOW_TO_GET_ONE = (
    "Install the server (Debian/Ubuntu: `sudo apt-get install -y mariadb-server`, then"
    " `make install`), or point MLOPS_TEST_DATABASE_URL at a MariaDB you can create"
    " databases on, e.g. mysql+pymysql://root@127.0.0.1:3306/mlops_test."
)
# Durability traded for speed: these servers hold throwaway or rebuildable data.
FAST_SERVER_OPTIONS = (
    "--innodb-buffer-pool-size=512M",
    "--innodb-log-file-size=256M",
    "--innodb-flush-log-at-trx-commit=2",
    "--skip-log-bin",
    "--local-infile=1",
    "--max-allowed-packet=64M",
)


class MariaDBNotFound(RuntimeError):
    """No `mariadbd` binary is available on this machine."""


def find_binary(name: str) -> str:
    """Locate a MariaDB binary on PATH or in the usual sbin directories."""
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in SEARCH_DIRS if (Path(d) / name).exists()), None
    )
    if not found:
        raise MariaDBNotFound(f"`{name}` was not found. {HOW_TO_GET_ONE}")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalMariaDB:
    """A running private server; `url()` gives SQLAlchemy URLs for it."""

    datadir: Path
    port: int
    process: subprocess.Popen

    def url(self, database: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}"

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def initialise_datadir(datadir: Path) -> None:
    """Create the system tables in an empty data directory (about half a second)."""
    datadir.mkdir(parents=True, exist_ok=True)
    if (datadir / "mysql").exists():
        return
    subprocess.run(
        [
            find_binary("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={datadir}",
            f"--user={getpass.getuser()}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )


def server_command(datadir: Path, port: int, extra_args: Sequence[str] = ()) -> list[str]:
    """The `mariadbd` argv for a private server on 127.0.0.1 with its data in `datadir`.

    `extra_args` come last, so they override the defaults (e.g. `--log-bin` for a primary).
    """
    return [
        find_binary("mariadbd"),
        "--no-defaults",
        f"--datadir={datadir}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={datadir / 'mysqld.sock'}",
        f"--pid-file={datadir / 'mysqld.pid'}",
        f"--user={getpass.getuser()}",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
        *FAST_SERVER_OPTIONS,
        *extra_args,
    ]


def start_local_mariadb(
    datadir: Path,
    port: int | None = None,
    ready_timeout: float = 60,
    extra_args: Sequence[str] = (),
) -> LocalMariaDB:
    """Initialise `datadir` if needed and start `mariadbd` on 127.0.0.1 only."""
    datadir = datadir.resolve()
    initialise_datadir(datadir)
    port = port or free_port()
    log = open(datadir / "server.log", "ab")  # noqa: SIM115 - owned by the child process
    process = subprocess.Popen(
        server_command(datadir, port, extra_args),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "TZ": "UTC"},
    )
    server = LocalMariaDB(datadir=datadir, port=port, process=process)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mariadbd exited early; see {datadir / 'server.log'}")
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=1).close()
            return server
        except pymysql.err.OperationalError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"mariadbd did not answer within {ready_timeout} s; see server.log")
