"""The migrations build the ORM's schema on the embedded SQLite database."""

from __future__ import annotations

from pathlib import Path

from tests.migration_check import upgrade_and_diff


def test_sqlite_upgrade_head_matches_models(tmp_path: Path) -> None:
    assert upgrade_and_diff(f"sqlite:///{tmp_path / 'db.sqlite3'}") == []
