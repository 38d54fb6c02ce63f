"""The real service: PostgreSQL and Redis, a Celery worker process, uvicorn; and the app in
process (`client`) on the embedded default.

The servers are the ones at BNLAB_TEST_PG and BNLAB_TEST_REDIS when they answer, else throwaway
ones of the session's own (tests/servers.py). Each stack gets a database of its own (created
here, dropped after the session) and a Redis database index of its own, so no stack touches
another's data, or anyone else's.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from scripts.stack import Stack
from tests.conftest import ARTIFACTS
from tests.migration_check import upgrade_and_diff

# Every test stack: no downloads (no test may depend on the internet), and no CUDA, so a test
# behaves the same on a machine with a GPU.
HERMETIC = {"BNLAB_ALLOW_DOWNLOAD": "false", "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture
def client(embedded_env: Path) -> Iterator[TestClient]:
    """The app in process on a fresh embedded database, migrated to head; no worker."""
    from api.main import create_app
    from api.plots.cache import CACHE
    from shared.config import get_settings

    assert upgrade_and_diff(get_settings().resolved_database_url) == []
    CACHE.clear()
    with TestClient(create_app()) as test_client:
        yield test_client


class PostgresDatabases:
    """Creates fresh, empty databases on the PostgreSQL server and drops them all at the end.

    Every stack gets a database of its own: two workers on one database would reap and re-queue
    each other's experiments through their own brokers.
    """

    def __init__(self, server: str) -> None:
        self.server = server
        self.admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def create(self) -> str:
        name = f"bnlab_test_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return f"{self.server}/{name}"

    def drop_all(self) -> None:
        with self.admin.connect() as connection:
            for name in self.names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_databases(pg_server: str) -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(pg_server)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def pg_url(pg_databases: PostgresDatabases) -> str:
    """A fresh, empty PostgreSQL database, used by the postgres+redis `stack`."""
    return pg_databases.create()


# Redis database indexes handed out one each, in a random order so that two test sessions on one
# server are unlikely to meet; two stacks of one session never share an index (a shared index
# let one stack's idle worker take the other's tasks).
_REDIS_INDEXES = iter(random.sample(range(1, 16), 15))


def postgres_env(pg_url: str, redis_server: str, tmp: Path) -> dict[str, str]:
    return {
        **HERMETIC,
        "BNLAB_DATABASE_URL": pg_url,
        "BNLAB_BROKER_URL": f"{redis_server}/{next(_REDIS_INDEXES)}",
        "BNLAB_DATA_DIR": str(tmp),
        "BNLAB_FLUSH_EVERY_S": "0.2",
        "BNLAB_TORCH_THREADS": "1",
    }


def embedded_env(tmp: Path) -> dict[str, str]:
    return {
        **HERMETIC,
        "BNLAB_DATABASE_URL": "",
        "BNLAB_BROKER_URL": "",
        "BNLAB_DATA_DIR": str(tmp),
        "BNLAB_FLUSH_EVERY_S": "0.2",
        "BNLAB_TORCH_THREADS": "1",
    }


@pytest.fixture(scope="session", params=["postgres+redis", "embedded"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The running service, once on PostgreSQL + Redis and once on the embedded default."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "postgres+redis":
        pg_url, redis = request.getfixturevalue("pg_url"), request.getfixturevalue("redis_server")
        env = postgres_env(pg_url, redis, tmp)
    else:
        env = embedded_env(tmp)
    with Stack(env=env, log_dir=ARTIFACTS / "logs" / request.param) as running:
        yield running


@pytest.fixture(scope="session")
def pg_stack(
    pg_databases: PostgresDatabases, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The service on PostgreSQL and Redis only (for what the embedded default does not promise)."""
    env = postgres_env(pg_databases.create(), redis_server, tmp_path_factory.mktemp("pg-only"))
    with Stack(env=env, log_dir=ARTIFACTS / "logs" / "pg-only") as running:
        yield running


@pytest.fixture(scope="session")
def two_workers(
    pg_databases: PostgresDatabases, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The API and two worker processes, on PostgreSQL + Redis of their own: seed groups and
    sweep points spread over both."""
    env = postgres_env(pg_databases.create(), redis_server, tmp_path_factory.mktemp("two-workers"))
    with Stack(env=env, log_dir=ARTIFACTS / "logs" / "two-workers") as running:
        running.start_worker("worker2")
        yield running
