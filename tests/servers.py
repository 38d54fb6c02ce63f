"""The PostgreSQL and Redis servers a test session uses: the ones at the test addresses when they
answer, or throwaway ones of its own (a fresh cluster in a temporary folder, a Redis that keeps
nothing on disk, each on a free port), stopped and removed at the end of the session.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from scripts.stack import free_port

PG_ADDRESS = os.environ.get("BNLAB_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS_ADDRESS = os.environ.get("BNLAB_TEST_REDIS", "redis://127.0.0.1:6379")
INSTALL_HINT = "make test installs it (apt: postgresql, redis-server)"


class ServerUnavailable(RuntimeError):
    """No server answers and none can be started here; the message says what is missing."""


def pg_answers(server_url: str) -> bool:
    """Whether a PostgreSQL server takes a connection at `server_url` (its `postgres` database)."""
    engine = create_engine(f"{server_url}/postgres", connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def redis_answers(server_url: str) -> bool:
    """Whether a Redis server answers PING at `server_url`."""
    url = urllib.parse.urlsplit(server_url)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 6379), 3) as sock:
            sock.settimeout(3)
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise ServerUnavailable(f"{what} did not answer within {timeout_s:.0f} s")


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries: Debian's /usr/lib/postgresql/N/bin, else PATH."""

    def version(path: Path) -> int:
        return int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=version)
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster made by initdb in a temporary folder, served on a free port."""

    port: int = field(default_factory=free_port)
    folder: Path | None = None
    version: str = ""
    bindir: Path = Path()
    # The command prefix that runs a binary as the cluster's owner (empty when not root).
    run_as: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def _as_owner(self, user: str | None) -> list[str]:
        # initdb and postgres refuse to run as root: root runs them as an unprivileged user.
        return ["runuser", "-u", user, "--"] if user else []

    def start(self) -> ThrowawayPostgres:
        try:
            return self._start()
        except subprocess.CalledProcessError as exc:
            self.stop()
            said = (exc.stderr or b"").decode(errors="replace").strip()
            command = " ".join(map(str, exc.cmd))
            raise ServerUnavailable(f"`{command}` failed: {said}") from exc

    def _start(self) -> ThrowawayPostgres:
        found = postgres_bindir()
        if found is None:
            raise ServerUnavailable(
                f"no PostgreSQL server binaries (initdb, pg_ctl): {INSTALL_HINT}"
            )
        user = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres").pw_name
            except KeyError as exc:
                raise ServerUnavailable(
                    "running as root, and no 'postgres' user to run a throwaway PostgreSQL as"
                ) from exc
        self.bindir = found
        self.folder = Path(tempfile.mkdtemp(prefix="bnlab-test-pg-"))
        if user:
            entry = pwd.getpwnam(user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        data = self.folder / "data"
        self.run_as = run = self._as_owner(user)
        bindir = self.bindir
        subprocess.run(
            [*run, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
            + ["-E", "UTF8", "--no-sync"],
            cwd=self.folder,
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = self.folder / "server.log"
        subprocess.run(
            [*run, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options]
            + ["-w", "-t", "60", "start"],
            cwd=self.folder,
            check=True,
            capture_output=True,
        )
        self.version = (data / "PG_VERSION").read_text().strip()
        _wait(lambda: pg_answers(self.url), f"the throwaway PostgreSQL on port {self.port}")
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        if self.folder is None:
            return
        subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data")]
            + ["-m", "fast", "-w", "-t", "60", "stop"],
            cwd=self.folder,
            capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def describe(self) -> str:
        return f"throwaway PostgreSQL {self.version} on 127.0.0.1:{self.port}"


@dataclass
class ThrowawayRedis:
    """A redis-server on a free loopback port that keeps nothing on disk; it may be restarted."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> ThrowawayRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailable(f"no redis-server: {INSTALL_HINT}")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--daemonize", "no"]
        # The working folder only matters if it wrote something, which it is told not to.
        self.process = subprocess.Popen(
            command, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL
        )
        _wait(lambda: redis_answers(self.url), f"the throwaway Redis on port {self.port}", 10)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def version(self) -> str:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
        match = re.search(r"v=(\S+)", out)
        return match.group(1) if match else "?"

    def describe(self) -> str:
        return f"throwaway Redis {self.version()} on 127.0.0.1:{self.port}"
