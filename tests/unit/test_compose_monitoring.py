"""The optional `monitoring` profile: Flower and a Prometheus that scrapes the API's /metrics."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="Debian's docker-compose is not installed"
)


def config(*profile: str) -> dict:
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), *profile, "config"],
        capture_output=True,
        text=True,
        env={**os.environ, "POSTGRES_PASSWORD": "pw"},
    )
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def test_the_profile_validates_and_stays_optional() -> None:
    plain, monitored = config(), config("--profile", "monitoring")
    for name in ("flower", "prometheus"):
        assert monitored["services"][name]["profiles"] == ["monitoring"]
        # Only on this host's loopback: neither has a login of its own.
        for port in monitored["services"][name]["ports"]:
            bound = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
            assert bound == "127.0.0.1"
    # Without the profile nothing else changes: the same production services, no profile on them.
    core = {n for n, s in plain["services"].items() if "profiles" not in s}
    assert {"api", "worker", "redis", "postgres", "migrate"} <= core


def test_prometheus_scrapes_the_api_with_a_token() -> None:
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"][0]["targets"] == ["api:8000"]
    assert scrape["authorization"]["type"] == "Bearer"
    mounts = config("--profile", "monitoring")["services"]["prometheus"]["volumes"]
    targets = [m["target"] if isinstance(m, dict) else m.split(":")[1] for m in mounts]
    assert scrape["authorization"]["credentials_file"] in targets
