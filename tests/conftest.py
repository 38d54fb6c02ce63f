"""Fixtures shared by every test layer: the embedded settings, the test servers (PostgreSQL and
Redis: the ones at the test addresses, or throwaway ones), no internet, and no skips in CI.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from shared.config import get_settings
from shared.datasets import CATALOG
from shared.db import reset_engines
from tests.servers import (
    PG_ADDRESS,
    REDIS_ADDRESS,
    ServerUnavailable,
    ThrowawayPostgres,
    ThrowawayRedis,
    pg_answers,
    redis_answers,
)

ARTIFACTS = Path(__file__).parent / "artifacts"
# Under CI nothing may be skipped: a test that would skip fails, naming what is missing.
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# What the session's stacks really used, for the summary at the end.
SERVERS_USED: dict[str, str] = {}


@pytest.fixture
def embedded_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings for the embedded default (SQLite, filesystem broker) under a fresh folder."""
    for name in ("BNLAB_DATABASE_URL", "BNLAB_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BNLAB_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    reset_engines()
    yield tmp_path
    get_settings.cache_clear()
    reset_engines()


@pytest.fixture(scope="session")
def closed_url() -> Iterator[str]:
    """An http:// URL on loopback that refuses every connection (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


@pytest.fixture(autouse=True)
def local_mirrors(closed_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The public download mirrors are a closed local port in every test: no test reaches the
    internet, or passes or fails by whether it could. Download tests serve their own mirror.
    (Stacks started for tests run with BNLAB_ALLOW_DOWNLOAD=false for the same reason.)"""
    for name, info in CATALOG.items():
        if info.mirrors:
            monkeypatch.setitem(CATALOG, name, dataclasses.replace(info, mirrors=(closed_url,)))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server URL (no database): BNLAB_TEST_PG if it answers, else a throwaway one."""
    if pg_answers(PG_ADDRESS):
        SERVERS_USED["PostgreSQL"] = f"{PG_ADDRESS} (BNLAB_TEST_PG), already running"
        yield PG_ADDRESS
        return
    server = ThrowawayPostgres()
    try:
        server.start()
    except (ServerUnavailable, OSError) as exc:
        server.stop()
        pytest.skip(f"no PostgreSQL answers at {PG_ADDRESS} and none can be started: {exc}")
    SERVERS_USED["PostgreSQL"] = f"{server.describe()}, stopped and removed"
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A Redis server URL (no index): BNLAB_TEST_REDIS if it answers, else a throwaway one."""
    if redis_answers(REDIS_ADDRESS):
        SERVERS_USED["Redis"] = f"{REDIS_ADDRESS} (BNLAB_TEST_REDIS), already running"
        yield REDIS_ADDRESS
        return
    server = ThrowawayRedis()
    try:
        server.start()
    except (ServerUnavailable, OSError) as exc:
        server.stop()
        pytest.skip(f"no Redis answers at {REDIS_ADDRESS} and none can be started: {exc}")
    SERVERS_USED["Redis"] = f"{server.describe()}, stopped"
    try:
        yield server.url
    finally:
        server.stop()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Which servers the integration tests will use."""
    pg = "answers" if pg_answers(PG_ADDRESS) else "does not answer: a throwaway one if needed"
    redis = (
        "answers" if redis_answers(REDIS_ADDRESS) else "does not answer: a throwaway one if needed"
    )
    return [
        f"test PostgreSQL: {PG_ADDRESS} (BNLAB_TEST_PG) {pg}",
        f"test Redis: {REDIS_ADDRESS} (BNLAB_TEST_REDIS) {redis}",
        "CI=true: a test that would skip fails"
        if CI
        else "not CI: missing tools skip, with a warning",
    ]


def _no_skips_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"CI=true, and this would skip; what is missing: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _no_skips_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _no_skips_in_ci(report)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Which servers the run used, and a warning for what a local run skipped."""
    for kind, what in SERVERS_USED.items():
        terminalreporter.write_line(f"test {kind}: {what}")
    skipped = len(terminalreporter.stats.get("skipped", []))
    if skipped:
        terminalreporter.write_line(
            f"warning: {skipped} skipped for something missing (listed above); "
            "`make test` installs it, and under CI=true each is a failure",
            yellow=True,
        )
