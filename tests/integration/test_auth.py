"""Tokens: fail closed, one owner never sees another's experiments, browser login by cookie."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared import cli
from shared.config import get_settings
from tests.auth_routes import PROTECTED
from tests.migration_check import upgrade_and_diff

PUBLIC = ["/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/login"]
SMALL = {"preset": "seed-dropout", "overrides": {"training": {"epochs": 1}}}


def make_token(owner: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`bnlab tokens create OWNER`, in process; stdout must hold the token and nothing else."""
    capsys.readouterr()
    assert cli.main(["tokens", "create", owner]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("bnlab_")
    return out.strip()


@pytest.fixture
def auth_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BNLAB_AUTH", "on")
    # Every request asks the database (the cache's own delay is tested in test_token_scopes.py).
    monkeypatch.setenv("BNLAB_TOKEN_CACHE_S", "0")
    monkeypatch.setenv("BNLAB_RATE_LOGINS_PER_MINUTE", "0")  # tested in test_rate_limits.py


@pytest.fixture
def client(auth_on: None, client: TestClient) -> TestClient:
    """The app on SQLite with BNLAB_AUTH=on (as a server deployment would have it)."""
    assert get_settings().auth_enabled
    return client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_protected_routes_fail_closed(client: TestClient, method: str, path: str) -> None:
    for headers in (
        {},
        bearer("bnlab_" + "0" * 32 + "_wrong"),
        bearer("garbage"),
        {"Cookie": "bnlab_token=x"},
    ):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["detail"]


def test_public_routes_need_no_token(client: TestClient) -> None:
    for path in PUBLIC:
        assert client.get(path).status_code == 200, path
    assert client.get("/static/docs/swagger/swagger-ui.css").status_code == 200


def test_browser_without_token_is_sent_to_login(client: TestClient) -> None:
    response = client.get("/experiments/x", headers={"Accept": "text/html"})
    assert response.status_code == 401
    assert "/login?next=%2Fexperiments%2Fx" in response.text


def test_token_from_cli_works_and_revoking_it_closes_the_door(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    token = make_token("alice", capsys)
    assert client.get("/session", headers=bearer(token)).json() == {"owner": "alice", "auth": True}
    assert cli.main(["tokens", "list"]) == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and token.split("_")[-1] not in listing
    assert cli.main(["tokens", "revoke", "alice"]) == 0
    assert client.get("/session", headers=bearer(token)).status_code == 401
    # A tampered secret with a real id is refused as well.
    other = make_token("alice", capsys)
    assert client.get("/session", headers=bearer(other[:-2] + "xx")).status_code == 401


def test_owners_are_isolated(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    alice, bob = bearer(make_token("alice", capsys)), bearer(make_token("bob", capsys))
    created = client.post("/api/v1/experiments", json=SMALL, headers=alice)
    assert created.status_code == 201
    experiment = created.json()
    experiment_id, run_id = experiment["id"], experiment["runs"][0]["id"]
    for path in (
        f"/api/v1/experiments/{experiment_id}",
        f"/api/v1/experiments/{experiment_id}/findings",
        f"/api/v1/runs/{run_id}/metrics",
        f"/api/v1/runs/{run_id}/histograms",
    ):
        assert client.get(path, headers=bob).status_code == 404, path
        assert client.get(path, headers=alice).status_code == 200, path
    assert (
        client.post(f"/api/v1/experiments/{experiment_id}/cancel", headers=bob).status_code == 404
    )
    assert client.get("/api/v1/experiments", headers=bob).json()["items"] == []
    listed = client.get("/api/v1/experiments", headers=alice).json()["items"]
    assert [e["id"] for e in listed] == [experiment_id]
    cancel = client.post(f"/api/v1/experiments/{experiment_id}/cancel", headers=alice)
    assert cancel.json()["status"] == "cancelled"


def test_cookie_login_flow(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    token = make_token("carol", capsys)
    assert client.post("/session", json={"token": "bnlab_nope"}).status_code == 401
    response = client.post("/session", json={"token": token})
    assert response.json() == {"owner": "carol", "auth": True}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("bnlab_token=") and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert client.get("/session").json()["owner"] == "carol"
    # A state change from another origin is refused even with the cookie.
    cross = client.post("/api/v1/experiments", json=SMALL, headers={"Origin": "http://evil.test"})
    assert cross.status_code == 403
    same = client.post("/api/v1/experiments", json=SMALL, headers={"Origin": "http://testserver"})
    assert same.status_code == 201
    logout = client.delete("/session")
    assert logout.status_code == 204 and 'bnlab_token=""' in logout.headers["set-cookie"]
    client.cookies.clear()
    assert client.get("/session").status_code == 401


def test_form_login_redirects_to_a_local_page_only(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    token = make_token("dave", capsys)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong = client.post("/session", content="token=bad&next=/new", headers=form)
    assert wrong.status_code == 401 and "<form" in wrong.text
    for target, expected in (
        ("/new", "/new"),
        ("//evil.test/x", "/"),
        ("https://evil.test", "/"),
        ("/\t/evil.test", "/"),
    ):
        body = urllib.parse.urlencode({"token": token, "next": target})
        response = client.post("/session", content=body, headers=form, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == expected
        assert "HttpOnly" in response.headers["set-cookie"]


def test_auth_is_off_on_the_embedded_default(embedded_env: Path) -> None:
    assert not get_settings().auth_enabled
    upgrade_and_diff(get_settings().resolved_database_url)
    from api.main import create_app

    with TestClient(create_app()) as client:
        assert client.get("/session").json() == {"owner": "local", "auth": False}
        assert client.get("/api/v1/experiments").status_code == 200


def test_auth_setting_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.config import Settings

    assert not Settings(database_url="", broker_url="").auth_enabled
    assert Settings(database_url="postgresql://x/y").auth_enabled
    assert not Settings(database_url="postgresql://x/y", auth=False).auth_enabled
    monkeypatch.setenv("BNLAB_AUTH", "off")
    assert not Settings(broker_url="redis://x").auth_enabled
    monkeypatch.setenv("BNLAB_AUTH", "")
    assert Settings(broker_url="redis://x").auth_enabled
