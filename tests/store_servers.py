"""Real database servers for the store tests, on free local ports, killed by pid at the end.

- :class:`PostgresServer`: PostgreSQL 15 from the machine (``/usr/lib/postgresql/15/bin``).
  ``initdb`` refuses to run as root, so as root the data directory belongs to ``postgres``
  and the server runs as that user.
- :class:`MongoServer`: ``nx-27017`` (pip), a MongoDB wire-protocol server; no ``mongod`` can
  be installed on these machines. Its deviations from MongoDB are listed in ``docs/stores.md``.

Both can be stopped and started again on the same port and data (outage tests). The session
fixtures skip, with the reason, only when the server binary is absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(command: list[str]) -> list[str]:
    """Run ``command`` as the ``postgres`` user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return command
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]


class PostgresServer:
    """A throwaway PostgreSQL cluster: trust auth on 127.0.0.1:``port``, superuser postgres."""

    def __init__(self, root: Path) -> None:
        self.data = root / "pgdata"
        self.port = free_port()
        self.log = root / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, user: str, database: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self.data.parent.chmod(0o777)
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U",
                                     "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]),
                       check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (f"-p {self.port} -h 127.0.0.1 -k {self.data} -c fsync=off "
                   "-c shared_buffers=64MB -c max_connections=40")
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                                     str(self.log), "-o", f"'{options}'", "-w", "-t", "60",
                                     "start"]), check=True, capture_output=True, timeout=90)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p",
                                    str(self.port)], check=False, capture_output=True)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL not ready on port {self.port}")

    def pid(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """An outage: the postmaster and its backends die at once (kill -9), no shutdown."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        # Backends notice the postmaster is gone and exit; wait until the port is free.
        time.sleep(0.5)

    def stop(self) -> None:
        if self.pid() is None:
            return
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m",
                                     "immediate", "-w", "stop"]), check=False, capture_output=True,
                       timeout=60)
        pid = self.pid()
        if pid is not None:  # pg_ctl could not stop it: do not leave it running
            os.kill(pid, signal.SIGKILL)

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        """Run one statement as the superuser; the rows it returns."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []


def postgres_available() -> str | None:
    """Why PostgreSQL cannot run here, or None."""
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL server binaries not found in {PG_BIN}"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="llm-audit-pg-"))
    server = PostgresServer(root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


class MongoServer:
    """``nx-27017`` on 127.0.0.1:``port`` with its data in a directory (survives kill -9)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> None:
        self.data.mkdir(exist_ok=True)
        binary = shutil.which("nx-27017") or str(Path(os.sys.executable).parent / "nx-27017")
        self.process = subprocess.Popen(
            [binary, "--data-dir", str(self.data), "-p", str(self.port), "--host", "127.0.0.1",
             "--log-file", str(self.root / "nx.log"), "--pid-file", str(self.root / "nx.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        import pymongo

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=300) as client:
                    client.admin.command("ping")
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError(f"nx-27017 not ready on port {self.port}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        """A slow server: the process stops answering (SIGSTOP) but keeps its connections."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


def mongo_available() -> str | None:
    if shutil.which("nx-27017") is None and not (
            Path(os.sys.executable).parent / "nx-27017").exists():
        return "nx-27017 (pip install nx-27017) not installed"
    try:
        import pymongo  # noqa: F401
    except ImportError:
        return "pymongo not installed"
    return None


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[MongoServer]:
    reason = mongo_available()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="llm-audit-nx-"))
    server = MongoServer(root)
    try:
        server.start()
        yield server
    finally:
        server.resume()
        server.kill()
        shutil.rmtree(root, ignore_errors=True)
