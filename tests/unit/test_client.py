"""The client package on its own: what it imports, where it finds the API, how --set reads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bnlab_client import Metrics, Series
from bnlab_client.cli import parse_sets
from bnlab_client.config import Config, load_config, save_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_client_needs_none_of_the_servers_packages() -> None:
    probe = (
        "import sys, bnlab_client, bnlab_client.cli, bnlab_client.progress; "
        "print(sorted(m for m in ('torch', 'sqlalchemy', 'fastapi', 'celery', 'shared', 'api') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_its_own_dependency_list_is_httpx_typer_rich() -> None:
    project = tomllib.loads((ROOT / "bnlab_client" / "pyproject.toml").read_text())["project"]
    names = sorted(re.split("[<>=]", d)[0] for d in project["dependencies"])
    assert names == ["httpx", "rich", "typer"]


def test_set_builds_nested_overrides_with_json_values() -> None:
    sets = ["training.epochs=5", "training.seeds=[0,1]", "name=my run", "probes.enabled=false"]
    assert parse_sets(sets) == {
        "training": {"epochs": 5, "seeds": [0, 1]},
        "name": "my run",
        "probes": {"enabled": False},
    }


def test_a_set_without_a_value_is_refused() -> None:
    with pytest.raises(Exception, match="KEY.PATH=VALUE"):
        parse_sets(["training.epochs"])


def test_arguments_then_environment_then_login_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BNLAB_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.delenv("BNLAB_URL", raising=False)
    monkeypatch.delenv("BNLAB_TOKEN", raising=False)
    path = save_config(Config(url="http://saved:1", token="saved-token"))
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_config() == Config("http://saved:1", "saved-token")
    monkeypatch.setenv("BNLAB_TOKEN", "env-token")
    assert load_config() == Config("http://saved:1", "env-token")
    assert load_config(url="http://arg:2/", token="arg") == Config("http://arg:2", "arg")
    assert json.loads(path.read_text())["token"] == "saved-token"


def test_metrics_as_rows_and_pandas() -> None:
    metrics = Metrics(
        "r", {"train_loss": Series([1, 2], [0.5, 0.25]), "test_loss": Series([2], [0.3])}
    )
    assert metrics.rows() == [
        ("train_loss", 1, 0.5),
        ("train_loss", 2, 0.25),
        ("test_loss", 2, 0.3),
    ]
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            metrics.to_pandas()
    else:
        frame = metrics.to_pandas()
        assert list(frame.columns) == ["key", "step", "value"] and len(frame) == 3


def test_validation_errors_read_as_field_and_message() -> None:
    import httpx

    from bnlab_client.client import _detail

    body = {"detail": [{"loc": ["body", "overrides"], "msg": "Input should be a valid dictionary"}]}
    response = httpx.Response(422, json=body)
    assert _detail(response) == "body.overrides: Input should be a valid dictionary"
    assert _detail(httpx.Response(404, json={"detail": "no experiment x"})) == "no experiment x"
