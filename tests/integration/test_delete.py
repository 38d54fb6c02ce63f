"""Deleting an experiment, by hand over HTTP and by the reaper's retention setting."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scripts.stack import Stack
from shared.broker import make_celery
from shared.config import Settings, get_settings
from shared.db import make_engine, reset_engines, session_scope
from shared.models import Curve, Experiment, ExperimentStatus, Histogram, Metric, Run, utcnow
from tests.migration_check import upgrade_and_diff
from worker.reaper import reap

pytestmark = pytest.mark.integration

# Trains in a few seconds and stores every kind of row: metrics, histograms, curves.
QUICK = {
    "preset": "seed-dropout",
    "overrides": {"training": {"epochs": 60, "eval_every": 20}, "probes": {"every": 20}},
}
LONG = {"preset": "seed-dropout", "overrides": {"training": {"epochs": 100000}}}


def stored_rows(database_url: str, experiment_id: str) -> dict[str, int]:
    """How many rows of each kind the experiment has in the database."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            key = uuid.UUID(experiment_id)
            runs = select(Run.id).where(Run.experiment_id == key)
            counts = {
                "experiments": connection.scalar(
                    select(func.count()).select_from(Experiment).where(Experiment.id == key)
                ),
                "runs": connection.scalar(select(func.count()).select_from(runs.subquery())),
            }
            for name, model in (("metrics", Metric), ("histograms", Histogram), ("curves", Curve)):
                counts[name] = connection.scalar(
                    select(func.count()).select_from(model).where(model.run_id.in_(runs))
                )
            return {name: int(count or 0) for name, count in counts.items()}
    finally:
        engine.dispose()


def database_url(stack: Stack) -> str:
    return Settings(
        database_url=stack.env["BNLAB_DATABASE_URL"], data_dir=Path(stack.env["BNLAB_DATA_DIR"])
    ).resolved_database_url


def test_delete_removes_a_finished_experiment_and_all_it_stored(stack: Stack) -> None:
    status, experiment = stack.request("POST", "/api/v1/experiments", QUICK)
    assert status == 201
    experiment_id, run_id = experiment["id"], experiment["runs"][0]["id"]
    finished = stack.wait_finished(experiment_id)
    assert finished["status"] == "succeeded"
    before = stored_rows(database_url(stack), experiment_id)
    assert all(before[name] > 0 for name in ("metrics", "histograms", "curves")), before

    assert stack.request("DELETE", f"/api/v1/experiments/{experiment_id}")[0] == 204
    assert set(stored_rows(database_url(stack), experiment_id).values()) == {0}
    assert stack.request("GET", f"/api/v1/experiments/{experiment_id}")[0] == 404
    assert stack.request("GET", f"/api/v1/runs/{run_id}/metrics")[0] == 404
    _, listed = stack.request("GET", "/api/v1/experiments?limit=200")
    assert experiment_id not in {e["id"] for e in listed["items"]}
    status, again = stack.request("DELETE", f"/api/v1/experiments/{experiment_id}")
    assert status == 404 and experiment_id in again["detail"]


def test_a_running_experiment_is_409_until_cancelled(stack: Stack) -> None:
    _, experiment = stack.request("POST", "/api/v1/experiments", LONG)
    experiment_id = experiment["id"]
    status, refused = stack.request("DELETE", f"/api/v1/experiments/{experiment_id}")
    assert status == 409 and "cancel it first" in refused["detail"]
    assert stack.request("GET", f"/api/v1/experiments/{experiment_id}")[0] == 200
    stack.request("POST", f"/api/v1/experiments/{experiment_id}/cancel")
    assert stack.wait_finished(experiment_id)["status"] == "cancelled"
    assert stack.request("DELETE", f"/api/v1/experiments/{experiment_id}")[0] == 204


def test_another_owner_cannot_delete(pg_stack: Stack) -> None:
    other = pg_stack.create_token("deleter")
    _, experiment = pg_stack.request("POST", "/api/v1/experiments", LONG)
    experiment_id = experiment["id"]
    pg_stack.request("POST", f"/api/v1/experiments/{experiment_id}/cancel")
    pg_stack.wait_finished(experiment_id)
    path = f"/api/v1/experiments/{experiment_id}"
    assert pg_stack.request("DELETE", path, token=other)[0] == 404
    assert pg_stack.request("GET", path)[0] == 200
    assert pg_stack.request("DELETE", path)[0] == 204


@pytest.fixture
def sqlite_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A migrated embedded database, with retention at 30 days."""
    for name in ("BNLAB_DATABASE_URL", "BNLAB_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BNLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BNLAB_RETENTION_DAYS", "30")
    get_settings.cache_clear()
    reset_engines()
    settings = get_settings()
    assert upgrade_and_diff(settings.resolved_database_url) == []
    yield settings
    get_settings.cache_clear()
    reset_engines()


def add_experiment(settings: Settings, status: ExperimentStatus, age_days: float) -> uuid.UUID:
    """An experiment with one run and one metric, finished (or created) `age_days` ago."""
    when = utcnow() - timedelta(days=age_days)
    experiment_id, run_id = uuid.uuid4(), uuid.uuid4()
    with session_scope(settings.resolved_database_url) as session:
        session.add(
            Experiment(
                id=experiment_id,
                owner="local",
                name="old",
                status=status,
                queue="cpu",
                spec={},
                created_at=when,
                finished_at=when if status.finished else None,
                heartbeat_at=utcnow(),
            )
        )
        session.flush()
        session.add(Run(id=run_id, experiment_id=experiment_id, position=0, variant="v", seed=0))
        session.flush()
        session.add(Metric(run_id=run_id, key="train_loss", step=1, value=1.0))
    return experiment_id


def test_the_reaper_deletes_what_is_past_retention(sqlite_settings: Settings) -> None:
    old = add_experiment(sqlite_settings, ExperimentStatus.succeeded, 40)
    old_failed = add_experiment(sqlite_settings, ExperimentStatus.failed, 31)
    recent = add_experiment(sqlite_settings, ExperimentStatus.succeeded, 29)
    old_running = add_experiment(sqlite_settings, ExperimentStatus.running, 40)
    reap(sqlite_settings, make_celery(sqlite_settings, "test-reaper"))
    with session_scope(sqlite_settings.resolved_database_url) as session:
        left = set(session.scalars(select(Experiment.id)))
        runs = set(session.scalars(select(Run.experiment_id)))
        metrics = session.scalar(select(func.count()).select_from(Metric))
    assert left == {recent, old_running}
    assert runs == {recent, old_running} and metrics == 2
    assert old not in left and old_failed not in left
