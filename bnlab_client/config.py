"""Where the client finds the API and its token: arguments, environment, then the login file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path() -> Path:
    """The file `bnlab login` writes: $BNLAB_CONFIG, else ~/.config/bnlab/config.json."""
    explicit = os.environ.get("BNLAB_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "bnlab" / "config.json"


@dataclass(frozen=True)
class Config:
    """The API's address and the bearer token (None: the API checks none, e.g. embedded)."""

    url: str = DEFAULT_URL
    token: str | None = None


def load_config(url: str | None = None, token: str | None = None) -> Config:
    """Each of url and token from the argument, else BNLAB_URL/BNLAB_TOKEN, else the login file."""
    saved: dict[str, str] = {}
    path = config_path()
    if path.is_file():
        saved = json.loads(path.read_text())
    return Config(
        url=(url or os.environ.get("BNLAB_URL") or saved.get("url") or DEFAULT_URL).rstrip("/"),
        token=token or os.environ.get("BNLAB_TOKEN") or saved.get("token") or None,
    )


def save_config(config: Config) -> Path:
    """Write the login file, readable by its owner only (it holds a token)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"url": config.url, "token": config.token}, out)
    path.chmod(0o600)
    return path
