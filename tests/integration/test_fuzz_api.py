"""Schemathesis over the whole OpenAPI document, against a real uvicorn with tokens on.

No 5xx, and every response matches what the document promises (status codes, content types,
headers, bodies), for inputs generated from the document itself: valid ones, invalid ones and
edge cases, each sent with the stack's token (and once without, to see it refused). It runs
twice, on the embedded SQLite default and on PostgreSQL + Redis, with BNLAB_AUTH=on and without a
worker, so fuzzed submissions that happen to be accepted stay queued and nothing trains. Bounded
and deterministic: at most 25 examples per operation and phase, the same ones every run (about
half a minute each).

It drives schemathesis' command line: its pytest plugin's lazy loader (needed here, since the
schema comes from a server that a fixture starts) does not work with pytest 9.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.stack import BIN, Stack
from tests.conftest import ARTIFACTS
from tests.integration.conftest import PostgresDatabases, embedded_env, postgres_env

pytestmark = pytest.mark.integration

SMALL = {"preset": "seed-dropout", "overrides": {"training": {"epochs": 1}}}
# Schema-valid but refused is right for this API: an unknown preset, a model that does not fit
# its input, the size caps and an invalid cursor are rules JSON Schema cannot state.
EXCLUDED_CHECKS = "positive_data_acceptance"


@pytest.fixture(scope="module", params=["embedded", "postgres+redis"])
def fuzz_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The API alone (no worker), checking tokens, on SQLite and on PostgreSQL + Redis."""
    tmp = tmp_path_factory.mktemp("fuzz")
    if request.param == "embedded":
        env = embedded_env(tmp)
    else:
        databases: PostgresDatabases = request.getfixturevalue("pg_databases")
        env = postgres_env(databases.create(), request.getfixturevalue("redis_server"), tmp)
    env.update(
        {
            "BNLAB_AUTH": "on",
            # A fuzzed spec naming a missing data set must not wait on the internet.
            "BNLAB_ALLOW_DOWNLOAD": "false",
            "BNLAB_LOG_LEVEL": "WARNING",
        }
    )
    stack = Stack(env=env, log_dir=ARTIFACTS / "logs" / f"fuzz-{request.param}")
    try:
        yield stack.start(worker=False)
    finally:
        stack.stop()


def test_fuzz_stack_checks_tokens(fuzz_stack: Stack) -> None:
    # Guards the run below: it must go through authentication, not around it.
    assert fuzz_stack.token and fuzz_stack.request("GET", "/session")[0] == 200
    assert fuzz_stack.request("GET", "/session", token="")[0] == 401


def test_api_conforms_to_its_schema(fuzz_stack: Stack, tmp_path: Path) -> None:
    # A real experiment and run, so the routes below them get past their 404.
    status, experiment = fuzz_stack.request("POST", "/api/v1/experiments", SMALL)
    assert status == 201
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        f'experiment_id = "{experiment["id"]}"\n'
        f'run_id = "{experiment["runs"][0]["id"]}"\n'
    )
    command = [
        str(BIN / "st"),
        "--config-file",
        str(config),
        "run",
        f"{fuzz_stack.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {fuzz_stack.token}",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "25",
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    report = result.stdout + result.stderr
    assert fuzz_stack.log_dir is not None
    (fuzz_stack.log_dir / "schemathesis.txt").write_text(report)
    assert result.returncode == 0, report[-20_000:]
    assert "No issues found" in report or "passed" in report
