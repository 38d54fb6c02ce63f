"""The app in process on SQLite with tokens on, and tokens made by the real `bnlab` command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared import cli
from shared.config import get_settings
from shared.db import reset_engines
from tests.migration_check import upgrade_and_diff

SMALL = {"preset": "seed-dropout", "overrides": {"training": {"epochs": 1}}}


@contextmanager
def auth_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[TestClient]:
    """The app on a fresh SQLite file with BNLAB_AUTH=on and the given BNLAB_* settings."""
    for name in ("BNLAB_DATABASE_URL", "BNLAB_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BNLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BNLAB_AUTH", "on")
    # Every test here logs in from the same address ("testclient"): limits only where asked.
    monkeypatch.setenv("BNLAB_RATE_LOGINS_PER_MINUTE", "0")
    for name, value in env.items():
        monkeypatch.setenv(f"BNLAB_{name.upper()}", value)
    get_settings.cache_clear()
    reset_engines()
    assert upgrade_and_diff(get_settings().resolved_database_url) == []
    from api.main import create_app

    try:
        with TestClient(create_app()) as client:
            yield client
    finally:
        get_settings.cache_clear()
        reset_engines()


def make_token(capsys: pytest.CaptureFixture[str], owner: str, *flags: str) -> str:
    """`bnlab tokens create OWNER FLAGS...`, in process: the token it printed."""
    capsys.readouterr()
    assert cli.main(["tokens", "create", owner, *flags]) == 0
    return capsys.readouterr().out.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
