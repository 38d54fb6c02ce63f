"""docker-compose.yml is valid and has the production shape (no Docker engine runs here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shared.broker import QUEUES

ROOT = Path(__file__).resolve().parents[2]

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed (apt)"
)


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


@needs_compose
def test_compose_file_is_valid_and_complete() -> None:
    result = compose_config(POSTGRES_PASSWORD="from-the-environment")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"api", "worker", "redis", "postgres", "migrate"} <= set(services)
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert services["worker"]["stop_grace_period"]
    # Every queue has a worker under compose, or a spec routed there would wait forever.
    command = services["worker"]["command"]
    assert set(command[command.index("-Q") + 1].split(",")) == set(QUEUES)
    assert "healthcheck" in services["postgres"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert json.dumps(services).count("from-the-environment") >= 2


@needs_compose
def test_compose_refuses_to_start_without_a_database_password() -> None:
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_the_image_checks_tokens_even_without_a_database_server() -> None:
    # It listens on 0.0.0.0: `docker run` on the embedded default must not serve without auth.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ENV BNLAB_AUTH=on" in dockerfile.splitlines()
    assert '"--host", "0.0.0.0"' in dockerfile


def test_workers_scale_and_the_api_needs_no_data() -> None:
    # `--scale worker=N`: no fixed container name, no host port. Data sets are resolved by the
    # worker, so the api has no data volume.
    services = yaml.safe_load(compose_config(POSTGRES_PASSWORD="pw").stdout)["services"]
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    assert "volumes" not in services["api"]
    assert {services[name]["image"] for name in ("migrate", "api", "worker")} == {"bnlab"}


def test_the_smoke_override_puts_every_default_service_on_the_host_network() -> None:
    # scripts/compose_smoke.py runs the real file with this override on this machine.
    override = ROOT / "scripts" / "compose-smoke" / "override.yml"
    env = {"POSTGRES_PASSWORD": "pw", "SMOKE_PG_PORT": "15432", "SMOKE_REDIS_PORT": "16379"}
    env |= {"SMOKE_API_PORT": "18000", "SMOKE_POSTGRES_IMAGE": "pg", "SMOKE_REDIS_IMAGE": "rd"}
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "-f", str(override), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    # The monitoring profile (flower, prometheus) is not part of the smoke check.
    started = [s for s in services.values() if not s.get("profiles")]
    assert {s.get("network_mode") for s in started} == {"host"}
    assert "127.0.0.1:15432" in services["worker"]["environment"]["BNLAB_DATABASE_URL"]
    assert services["api"]["environment"]["BNLAB_BROKER_URL"] == "redis://127.0.0.1:16379/0"
