"""Token lifetimes and scopes, login CSRF, and how soon a revoked token stops working."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from shared import cli
from shared.config import get_settings
from shared.db import session_scope
from shared.models import ApiToken, utcnow
from tests.integration.security_app import SMALL, auth_app, bearer, make_token


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with auth_app(tmp_path, monkeypatch, token_cache_s="0") as app_client:
        yield app_client


def listing(capsys: pytest.CaptureFixture[str]) -> dict[str, list[str]]:
    """`bnlab tokens list`, by owner: each line's columns."""
    capsys.readouterr()
    assert cli.main(["tokens", "list"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    return {row[1]: row for row in rows}


def test_read_only_token_reads_but_changes_nothing(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    writer = bearer(make_token(capsys, "erin"))
    reader = bearer(make_token(capsys, "erin", "--read-only"))
    experiment = client.post("/api/v1/experiments", json=SMALL, headers=writer).json()
    assert client.get(f"/api/v1/experiments/{experiment['id']}", headers=reader).status_code == 200
    assert client.get("/api/v1/experiments", headers=reader).json()["items"]
    for method, path in (
        ("POST", "/api/v1/experiments"),
        ("POST", f"/api/v1/experiments/{experiment['id']}/cancel"),
        ("DELETE", f"/api/v1/experiments/{experiment['id']}"),
    ):
        response = client.request(method, path, json=SMALL, headers=reader)
        assert response.status_code == 403, (method, path)
        assert "read-only" in response.json()["detail"]
    # Nothing changed: still one experiment, still queued.
    items = client.get("/api/v1/experiments", headers=writer).json()["items"]
    assert [(e["id"], e["status"]) for e in items] == [(experiment["id"], "queued")]


def test_list_shows_expiry_and_scope(
    capsys: pytest.CaptureFixture[str], client: TestClient
) -> None:
    make_token(capsys, "frank", "--expires", "30d", "--read-only")
    make_token(capsys, "grace")
    rows = listing(capsys)
    expires = rows["frank"][4]
    assert rows["frank"][5] == "read-only" and expires != "never"
    assert rows["grace"][4:] == ["never", "read-write"]
    assert abs(utcnow() + timedelta(days=30) - datetime.fromisoformat(expires)) < timedelta(
        minutes=5
    )


def test_bad_lifetime_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], client: TestClient
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["tokens", "create", "hank", "--expires", "soon"])
    assert exited.value.code == 2
    assert "30d" in capsys.readouterr().err
    assert "hank" not in listing(capsys)


def expire(owner: str) -> None:
    """Move the owner's tokens' expiry into the past, as if their lifetime had run out."""
    with session_scope(get_settings().resolved_database_url) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.owner == owner)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


def test_expired_token_is_401_saying_so(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    token = make_token(capsys, "ivan", "--expires", "1h")
    assert client.get("/session", headers=bearer(token)).json()["owner"] == "ivan"
    expire("ivan")
    response = client.get("/api/v1/experiments", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["detail"] == "token expired"
    assert 'error_description="token expired"' in response.headers["www-authenticate"]
    login = client.post("/session", json={"token": token})
    assert login.status_code == 401 and login.json()["detail"] == "token expired"
    form = client.post(
        "/session",
        content=f"token={token}&next=/",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 401 and "expired" in form.text
    # A wrong token still says only that it is not valid.
    wrong = client.get("/session", headers=bearer(token[:-2] + "xx"))
    assert wrong.json()["detail"] == "invalid or revoked token"


def test_login_from_another_origin_is_refused(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    token = make_token(capsys, "judy")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for headers in (
        {"Origin": "http://evil.test"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.testserver"},
    ):
        response = client.post(
            "/session", content=f"token={token}&next=/", headers={**form, **headers}
        )
        assert response.status_code == 403, headers
        assert "cross-origin" in response.json()["detail"]
        assert "set-cookie" not in response.headers
        assert client.post("/session", json={"token": token}, headers=headers).status_code == 403
    assert not client.cookies
    # The login form itself (same origin) and a script without a browser's headers still log in.
    same = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    ok = client.post(
        "/session",
        content=f"token={token}&next=/",
        headers={**form, **same},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and "bnlab_token=" in ok.headers["set-cookie"]
    client.cookies.clear()
    assert client.post("/session", json={"token": token}).status_code == 200


def test_a_revoked_token_stops_working_within_the_cache_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with auth_app(tmp_path, monkeypatch, token_cache_s="1") as client:
        token = make_token(capsys, "kim")
        assert client.get("/session", headers=bearer(token)).status_code == 200
        assert cli.main(["tokens", "revoke", "kim"]) == 0
        # The cache may serve it a little longer, never past BNLAB_TOKEN_CACHE_S (1 s here).
        refused_at = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if client.get("/session", headers=bearer(token)).status_code == 401:
                refused_at = time.monotonic()
                break
            time.sleep(0.1)
        assert refused_at is not None
        assert client.get("/api/v1/experiments", headers=bearer(token)).status_code == 401
