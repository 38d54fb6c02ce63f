"""Tokens and limits through real uvicorn: PostgreSQL + Redis checks tokens, embedded does not."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from scripts.stack import BIN, ROOT, Stack
from tests.auth_routes import PROTECTED

pytestmark = pytest.mark.integration

# Queued and cancelled straight away: nothing here needs to train.
SMALL = {"preset": "seed-dropout", "overrides": {"training": {"epochs": 1}}}


def test_stack_token_comes_from_the_cli(pg_stack: Stack) -> None:
    assert pg_stack.token is not None and pg_stack.token.startswith("bnlab_")
    listed = subprocess.run(
        [str(BIN / "bnlab"), "tokens", "list"],
        cwd=ROOT,
        env={**os.environ, **pg_stack.env},
        capture_output=True,
        text=True,
        check=True,
    )
    # bnlab_<hex id>_<secret>; the secret is URL-safe base64, which may itself hold "_".
    secret = pg_stack.token.split("_", 2)[2]
    assert "stack-owner" in listed.stdout and secret not in listed.stdout
    assert pg_stack.request("GET", "/session") == (200, {"owner": "stack-owner", "auth": True})


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_route_family_is_closed(pg_stack: Stack, method: str, path: str) -> None:
    for token in ("", "bnlab_" + "f" * 32 + "_guess", "not-a-token"):
        status, body = pg_stack.request(method, path, {} if method == "POST" else None, token)
        assert status == 401 and body["detail"], (token, body)


def test_probes_and_docs_stay_open(pg_stack: Stack) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert pg_stack.request("GET", path, token="")[0] == 200


def test_owners_see_only_their_own(pg_stack: Stack) -> None:
    other = pg_stack.create_token("other-owner")
    status, experiment = pg_stack.request("POST", "/api/v1/experiments", SMALL, token=other)
    assert status == 201
    experiment_id, run_id = experiment["id"], experiment["runs"][0]["id"]
    try:
        for path in (
            f"/api/v1/experiments/{experiment_id}",
            f"/api/v1/experiments/{experiment_id}/findings",
            f"/api/v1/runs/{run_id}/metrics",
        ):
            assert pg_stack.request("GET", path)[0] == 404, path
            assert pg_stack.request("GET", path, token=other)[0] == 200, path
        assert pg_stack.request("POST", f"/api/v1/experiments/{experiment_id}/cancel")[0] == 404
        _, mine = pg_stack.request("GET", "/api/v1/experiments?limit=200")
        assert experiment_id not in {e["id"] for e in mine["items"]}
        _, theirs = pg_stack.request("GET", "/api/v1/experiments?limit=200", token=other)
        assert [e["id"] for e in theirs["items"]] == [experiment_id]
    finally:
        pg_stack.request("POST", f"/api/v1/experiments/{experiment_id}/cancel", token=other)


def test_auth_follows_the_stack(stack: Stack) -> None:
    status, session = stack.request("GET", "/session", token="")
    if stack.auth_enabled:
        assert status == 401 and stack.token
    else:
        # The embedded default: no token anywhere, every request is the local owner.
        assert stack.token is None and (status, session) == (200, {"owner": "local", "auth": False})


@pytest.fixture
def client(pg_stack: Stack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {pg_stack.token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=pg_stack.url, headers=headers, timeout=30) as http:
        yield http


def test_large_bodies_are_413_with_or_without_length(client: httpx.Client) -> None:
    big = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    with_length = client.post("/api/v1/experiments", content=big)
    assert with_length.status_code == 413

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    chunked = client.post("/api/v1/experiments", content=chunks())
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    assert chunked.status_code == 413
    assert "BNLAB_MAX_BODY_BYTES" in chunked.json()["detail"]


def test_nan_is_422_naming_the_field(client: httpx.Client) -> None:
    body = b'{"preset": "seed-dropout", "overrides": {"training": {"optimizer": {"lr": NaN}}}}'
    response = client.post("/api/v1/experiments", content=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "lr"


def test_cookie_login_through_the_server(pg_stack: Stack) -> None:
    with httpx.Client(base_url=pg_stack.url, timeout=30) as browser:
        login = browser.post(
            "/session",
            data={"token": pg_stack.token or "", "next": "/"},
            follow_redirects=False,
        )
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/session").json()["owner"] == "stack-owner"
        assert browser.delete("/session").status_code == 204
        browser.cookies.clear()
        assert browser.get("/session").status_code == 401
