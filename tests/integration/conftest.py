"""The real service: PostgreSQL and Redis on this machine, a Celery worker process, uvicorn.

Each test session gets a database of its own (created here, dropped after) and a Redis database
index of its own, so nothing here touches anyone else's data.
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


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session."""
    name = f"bnlab_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{PG_SERVER}/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def postgres_env(pg_url: str, tmp: Path) -> dict[str, str]:
    return {
        "BNLAB_DATABASE_URL": pg_url,
        "BNLAB_BROKER_URL": f"{REDIS_SERVER}/{random.randint(1, 15)}",
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
def pg_stack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The service on PostgreSQL and Redis only (for what the embedded default does not promise)."""
    tmp = tmp_path_factory.mktemp("pg-only")
    with Stack(env=postgres_env(pg_url, tmp), log_dir=ARTIFACTS / "logs" / "pg-only") as running:
        yield running
