"""Rate limits: a 429 with Retry-After past the limit, nothing stored; shared through Redis."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from scripts.stack import Stack
from shared.config import get_settings
from shared.db import session_scope
from shared.models import Experiment
from tests.conftest import ARTIFACTS
from tests.integration.conftest import PostgresDatabases, postgres_env
from tests.integration.security_app import SMALL, auth_app, bearer, make_token

pytestmark = pytest.mark.integration


def fresh_window(margin_s: float = 20.0) -> None:
    """Wait, if need be, so that the next `margin_s` seconds fall in one one-minute window."""
    into = time.time() % 60
    if into > 60 - margin_s:
        time.sleep(60 - into + 0.1)


def stored() -> int:
    with session_scope(get_settings().resolved_database_url) as session:
        return session.query(Experiment).count()


def test_submissions_past_the_limit_are_429_and_store_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with auth_app(tmp_path, monkeypatch, rate_submissions_per_minute="3") as client:
        # Owners of their own: on the filesystem broker the counts are per process, and other
        # tests in this process may have submitted as "alice" within the minute.
        tag = uuid.uuid4().hex[:6]
        alice = bearer(make_token(capsys, f"alice-{tag}"))
        bob = bearer(make_token(capsys, f"bob-{tag}"))
        fresh_window()
        codes = [client.post("/api/v1/experiments", json=SMALL, headers=alice).status_code]
        codes += [client.post("/api/v1/experiments", json=SMALL, headers=alice).status_code]
        codes += [client.post("/api/v1/experiments", json=SMALL, headers=alice).status_code]
        over = client.post("/api/v1/experiments", json=SMALL, headers=alice)
        assert codes == [201, 201, 201] and over.status_code == 429
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert "too many requests" in over.json()["detail"]
        assert stored() == 3
        # Per owner: another one is not held back; reads are not limited.
        assert client.post("/api/v1/experiments", json=SMALL, headers=bob).status_code == 201
        for _ in range(10):
            assert client.get("/api/v1/experiments", headers=alice).status_code == 200


def test_logins_past_the_limit_are_429_even_with_a_good_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with auth_app(tmp_path, monkeypatch, rate_logins_per_minute="2") as client:
        token = make_token(capsys, "carol")
        fresh_window()
        assert client.post("/session", json={"token": "bnlab_wrong"}).status_code == 401
        assert client.post("/session", json={"token": token}).status_code == 200
        client.cookies.clear()
        refused = client.post("/session", json={"token": token})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "set-cookie" not in refused.headers


def test_limits_are_shared_by_every_api_process_through_redis(
    pg_databases: PostgresDatabases,
    redis_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    env = postgres_env(pg_databases.create(), redis_server, tmp_path_factory.mktemp("limits"))
    env["BNLAB_RATE_SUBMISSIONS_PER_MINUTE"] = "4"
    first = Stack(env=env, log_dir=ARTIFACTS / "logs" / "limits-1")
    second = Stack(env=env, log_dir=ARTIFACTS / "logs" / "limits-2")
    try:
        first.start(worker=False)
        second.token = first.token
        second.start_api()
        fresh_window()
        codes = [
            stack.request("POST", "/api/v1/experiments", SMALL)[0] for stack in (first, second) * 4
        ]
        # Per process, each would have taken four: together they took four.
        assert sorted(codes) == [201] * 4 + [429] * 4, codes
    finally:
        first.stop()
        second.stop()
