"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import get_settings
from shared.db import reset_engines

ARTIFACTS = Path(__file__).parent / "artifacts"


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
