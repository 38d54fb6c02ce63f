"""Start the whole service as real processes: migrations, a Celery worker, the API under uvicorn.

Used by `make demo`, the integration tests and the benchmarks, so all three run the same way.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config import Settings
from shared.status import ExperimentStatus

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """The API and one worker, configured by `env` (BNLAB_* variables)."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    log_dir: Path | None = None
    # None: the worker decides (gpu only where it has CUDA); else its -Q, e.g. "cpu,any".
    queues: str | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # The bearer token request() sends; made by start() when the stack checks tokens.
    token: str | None = None
    # uvicorn worker processes (the benchmarks compare 1 and 2).
    api_workers: int = 1
    # Set for the worker only, over `env`: a worker that sees data the API does not, say.
    worker_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}

    @property
    def auth_enabled(self) -> bool:
        """Whether this stack's API checks tokens (the same rule as the API's settings)."""
        fields: dict[str, Any] = {
            name: self.env[f"BNLAB_{name.upper()}"]
            for name in ("database_url", "broker_url", "auth")
            if f"BNLAB_{name.upper()}" in self.env
        }
        return Settings(**fields).auth_enabled

    def _output(self, name: str) -> Any:
        if self.log_dir is None:
            return subprocess.DEVNULL
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return (self.log_dir / f"{name}.log").open("ab")

    def migrate(self) -> None:
        """Bring the schema to head, the only way it is ever made."""
        subprocess.run(
            [str(BIN / "alembic"), "upgrade", "head"],
            cwd=ROOT,
            env=self._env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def create_token(self, owner: str) -> str:
        """A new API token for `owner`, made by the admin CLI (`bnlab tokens create`)."""
        cli = (
            [str(BIN / "bnlab")]
            if (BIN / "bnlab").exists()
            else [sys.executable, "-m", "shared.cli"]
        )
        result = subprocess.run(
            [*cli, "tokens", "create", owner],
            cwd=ROOT,
            env=self._env(),
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def start_worker(self, name: str = "worker") -> subprocess.Popen[bytes]:
        """A real Celery worker process serving this stack's queues."""
        command = [
            str(BIN / "celery"),
            "-A",
            "worker.celery_app",
            "worker",
            *(["-Q", self.queues] if self.queues else []),
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--hostname",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
        out = self._output(name)
        env = {**self._env(), **self.worker_env}
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
        self.processes[name] = process
        return process

    def start_api(self) -> subprocess.Popen[bytes]:
        """uvicorn serving api.main:app on this stack's port."""
        command = [
            str(BIN / "uvicorn"),
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.api_workers > 1:
            command += ["--workers", str(self.api_workers)]
        out = self._output("api")
        process = subprocess.Popen(command, cwd=ROOT, env=self._env(), stdout=out, stderr=out)
        self.processes["api"] = process
        self.wait_ready()
        return process

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until /readyz answers 200."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.processes["api"].poll() is not None:
                raise RuntimeError("the API process exited during start-up")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"API at {self.url} not ready after {timeout_s} s")

    def start(self, worker: bool = True) -> Stack:
        """Migrate, make a token if the API will want one, then start the worker and the API."""
        self.migrate()
        if self.auth_enabled and self.token is None:
            self.token = self.create_token("stack-owner")
        if worker:
            self.start_worker()
        self.start_api()
        return self

    def stop(
        self, name: str | None = None, sig: int = signal.SIGTERM, timeout_s: float = 30
    ) -> None:
        """Stop one process (or all), escalating to SIGKILL after `timeout_s`."""
        names = [name] if name else list(self.processes)
        for n in names:
            process = self.processes.pop(n)
            if process.poll() is None:
                process.send_signal(sig)
                try:
                    process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        """A JSON request to the API; returns status and decoded body.

        `token`: None sends the stack's own token (if it has one), "" sends none, anything else
        is sent as the bearer token (to act as another owner, or with a wrong one).
        """
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        bearer = self.token if token is None else token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def wait_finished(self, experiment_id: str, timeout_s: float = 300) -> dict[str, Any]:
        """Poll an experiment until it leaves queued/running."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            _, experiment = self.request("GET", f"/api/v1/experiments/{experiment_id}")
            if ExperimentStatus(experiment["status"]).finished:
                return dict(experiment)
            time.sleep(0.1)
        raise TimeoutError(f"experiment {experiment_id} still running after {timeout_s} s")
