"""The real service: PostgreSQL and Redis on this machine, a Celery worker process, uvicorn.

Each stack gets a database of its own (created here, dropped after the session) and a Redis
database index of its own, so no stack touches another's data, or anyone else's.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from scripts.stack import Stack
from tests.conftest import ARTIFACTS

PG_SERVER = os.environ.get("BNLAB_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("BNLAB_TEST_REDIS", "redis://127.0.0.1:6379")


class PostgresDatabases:
    """Creates fresh, empty databases on the PostgreSQL server and drops them all at the end.

    Every stack gets a database of its own: two workers on one database would reap and re-queue
    each other's experiments through their own brokers.
    """

    def __init__(self) -> None:
        self.admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def create(self) -> str:
        name = f"bnlab_test_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return f"{PG_SERVER}/{name}"

    def drop_all(self) -> None:
        with self.admin.connect() as connection:
            for name in self.names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
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


def postgres_env(pg_url: str, tmp: Path) -> dict[str, str]:
    return {
        "BNLAB_DATABASE_URL": pg_url,
        "BNLAB_BROKER_URL": f"{REDIS_SERVER}/{next(_REDIS_INDEXES)}",
        "BNLAB_DATA_DIR": str(tmp),
        "BNLAB_FLUSH_EVERY_S": "0.2",
        "BNLAB_TORCH_THREADS": "1",
    }


def embedded_env(tmp: Path) -> dict[str, str]:
    return {
        "BNLAB_DATABASE_URL": "",
        "BNLAB_BROKER_URL": "",
        "BNLAB_DATA_DIR": str(tmp),
        "BNLAB_FLUSH_EVERY_S": "0.2",
        "BNLAB_TORCH_THREADS": "1",
    }


@pytest.fixture(scope="session", params=["postgres+redis", "embedded"])
def stack(
    request: pytest.FixtureRequest, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The running service, once on PostgreSQL + Redis and once on the embedded default."""
    tmp = tmp_path_factory.mktemp(request.param)
    env = postgres_env(pg_url, tmp) if request.param == "postgres+redis" else embedded_env(tmp)
    with Stack(env=env, log_dir=ARTIFACTS / "logs" / request.param) as running:
        yield running


@pytest.fixture(scope="session")
def pg_stack(
    pg_databases: PostgresDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The service on PostgreSQL and Redis only (for what the embedded default does not promise)."""
    env = postgres_env(pg_databases.create(), tmp_path_factory.mktemp("pg-only"))
    with Stack(env=env, log_dir=ARTIFACTS / "logs" / "pg-only") as running:
        yield running
