"""The fast reads give exactly what the plain ones gave, on PostgreSQL and on SQLite."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared import results
from shared.config import get_settings
from shared.db import reset_engines, session_scope
from shared.models import Experiment, ExperimentStatus, Run, utcnow
from shared.presets import PRESETS
from shared.schemas import ExperimentPublic
from shared.spec import ExperimentSpec
from tests.integration.conftest import PostgresDatabases
from tests.migration_check import upgrade_and_diff

pytestmark = pytest.mark.integration

# Values whose shortest decimal spelling differs between careless encoders.
AWKWARD = [0.1 + 0.2, 1e-05, -2.5e-300, 1.7976931348623157e308, 3.0, 1 / 3, -0.0, 123456.789]


@pytest.fixture(params=["postgresql", "sqlite"])
def client(
    request: pytest.FixtureRequest,
    pg_databases: PostgresDatabases,
    redis_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[TestClient]:
    monkeypatch.setenv("BNLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BNLAB_AUTH", "off")
    if request.param == "postgresql":
        monkeypatch.setenv("BNLAB_DATABASE_URL", pg_databases.create())
        monkeypatch.setenv("BNLAB_BROKER_URL", f"{redis_server}/15")
    else:
        monkeypatch.delenv("BNLAB_DATABASE_URL", raising=False)
        monkeypatch.delenv("BNLAB_BROKER_URL", raising=False)
    get_settings.cache_clear()
    reset_engines()
    assert upgrade_and_diff(get_settings().resolved_database_url) == []
    from api.main import create_app

    with TestClient(create_app()) as test_client:
        yield test_client
    get_settings.cache_clear()
    reset_engines()


def add_study(status: ExperimentStatus, points: int) -> tuple[uuid.UUID, uuid.UUID]:
    """An experiment of owner 'local' with one run holding three series; (experiment, run)."""
    experiment_id, run_id = uuid.uuid4(), uuid.uuid4()
    with session_scope(get_settings().resolved_database_url) as session:
        session.add(
            Experiment(
                id=experiment_id,
                owner="local",
                name="reads",
                status=status,
                queue="cpu",
                spec=ExperimentSpec.model_validate(PRESETS["seed-dropout"].spec_copy()).model_dump(
                    mode="json"
                ),
                created_at=utcnow(),
                finished_at=utcnow() if status.finished else None,
                findings={
                    "loss_threshold": None,
                    "early_window": [40, 50],
                    "final_steps": 10,
                    "variants": {},
                    "pairs": [],
                },
            )
        )
        session.flush()
        session.add(
            Run(id=run_id, experiment_id=experiment_id, position=0, variant="v", seed=0, summary={})
        )
        session.flush()
        rows = [
            {"run_id": run_id, "key": "train_loss", "step": s, "value": AWKWARD[s % len(AWKWARD)]}
            for s in range(points, 0, -1)  # written out of order on purpose
        ]
        rows += [{"run_id": run_id, "key": "test_loss", "step": 7, "value": math.pi}]
        rows += [{"run_id": run_id, "key": "a_key", "step": 3, "value": 2.0}]
        results.write_metrics(session, rows)
    return experiment_id, run_id


def expected_metrics(
    run_id: uuid.UUID, keys: tuple[str, ...] = (), since: int | None = None
) -> dict[str, object]:
    with session_scope(get_settings().resolved_database_url) as session:
        series = results.read_series(session, [run_id], keys, since)[run_id]
    return {
        "run_id": str(run_id),
        "series": {k: {"steps": s, "values": v} for k, (s, v) in series.items()},
    }


@pytest.mark.parametrize("status", [ExperimentStatus.running, ExperimentStatus.succeeded])
def test_metrics_are_exactly_the_stored_values(
    client: TestClient, status: ExperimentStatus
) -> None:
    _, run_id = add_study(status, 3000)
    for params, keys, since in (
        ({}, (), None),
        ({"key": ["train_loss", "test_loss"]}, ("train_loss", "test_loss"), None),
        ({"since_step": 2990}, (), 2990),
        ({"key": "nope"}, ("nope",), None),
    ):
        for _ in range(2):  # the second read of a finished run comes from the cache
            response = client.get(f"/api/v1/runs/{run_id}/metrics", params=params)
            assert response.status_code == 200
            assert response.json() == expected_metrics(run_id, keys, since), params
    body = client.get(f"/api/v1/runs/{run_id}/metrics").json()
    assert body["series"]["train_loss"]["steps"] == list(range(1, 3001))
    assert client.get(f"/api/v1/runs/{uuid.uuid4()}/metrics").status_code == 404


def test_experiment_json_and_a_deleted_experiment(client: TestClient) -> None:
    experiment_id, _ = add_study(ExperimentStatus.succeeded, 10)
    with session_scope(get_settings().resolved_database_url) as session:
        stored = session.get(Experiment, experiment_id)
        assert stored is not None
        expected = ExperimentPublic.model_validate(stored).model_dump(mode="json")
    for _ in range(2):
        response = client.get(f"/api/v1/experiments/{experiment_id}")
        assert response.status_code == 200 and response.json() == expected
    # Cached, yet deleting it is seen at once.
    assert client.delete(f"/api/v1/experiments/{experiment_id}").status_code == 204
    assert client.get(f"/api/v1/experiments/{experiment_id}").status_code == 404


def test_a_running_experiment_is_read_fresh(client: TestClient) -> None:
    experiment_id, _ = add_study(ExperimentStatus.running, 10)
    assert client.get(f"/api/v1/experiments/{experiment_id}").json()["progress"] == 0.0
    with session_scope(get_settings().resolved_database_url) as session:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None
        experiment.progress = 0.5
    assert client.get(f"/api/v1/experiments/{experiment_id}").json()["progress"] == 0.5
