"""Storage estimates at submission and per-owner quotas: over it, a 422 that says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import get_settings
from shared.db import session_scope
from shared.models import Experiment
from tests.integration.security_app import auth_app, bearer, make_token

pytestmark = pytest.mark.integration

DROPOUT = {"preset": "seed-dropout"}


def stored() -> int:
    with session_scope(get_settings().resolved_database_url) as session:
        return session.query(Experiment).count()


def dropout_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> int:
    """What a seed-dropout study is estimated to store, asked of an API with no quota."""
    with auth_app(tmp_path, monkeypatch) as client:
        probe = bearer(make_token(capsys, "probe"))
        found = client.post("/api/v1/estimates", json=DROPOUT, headers=probe).json()
    return int(found["estimate"]["bytes"])


def test_the_estimate_counts_what_the_spec_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with auth_app(tmp_path, monkeypatch) as client:
        alice = bearer(make_token(capsys, "alice"))
        reply = client.post("/api/v1/estimates", json=DROPOUT, headers=alice)
        assert reply.status_code == 200
        found = reply.json()
        estimate = found["estimate"]
        # 3 variants x 1000 full-batch steps, and 20 evaluations of two metrics each.
        assert estimate["metric_points"] == 3 * 1000 + 3 * 20 * 2
        # Train and test points once per run, a fit curve per evaluation.
        assert estimate["curves"] == 3 * 2 + 3 * 20
        assert estimate["histograms"] > 0
        assert estimate["rows"] == sum(
            estimate[k] for k in ("metric_points", "histograms", "curves")
        )
        assert found["used_bytes"] == 0 and found["quota_bytes"] == 10 * 1024**3
        assert stored() == 0
        # Twice the epochs, about twice the size; a bad spec is the usual 422.
        longer = {"preset": "seed-dropout", "overrides": {"training": {"epochs": 2000}}}
        doubled = client.post("/api/v1/estimates", json=longer, headers=alice).json()
        assert 1.8 < doubled["estimate"]["bytes"] / estimate["bytes"] < 2.2
        bad = {"preset": "seed-dropout", "overrides": {"training": {"epochs": -1}}}
        assert client.post("/api/v1/estimates", json=bad, headers=alice).status_code == 422
        # The experiment's JSON carries its estimate.
        created = client.post("/api/v1/experiments", json=DROPOUT, headers=alice).json()
        assert created["estimated_bytes"] == estimate["bytes"]
        assert created["estimated_rows"] == estimate["rows"]
        again = client.get(f"/api/v1/experiments/{created['id']}", headers=alice).json()
        assert again["estimated_bytes"] == estimate["bytes"]


def test_over_quota_is_422_with_estimate_usage_and_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    size = dropout_bytes(tmp_path, monkeypatch, capsys)
    quota = size * 3 // 2
    with auth_app(tmp_path / "q", monkeypatch, storage_quota_bytes=str(quota)) as client:
        alice = bearer(make_token(capsys, "alice"))
        bob = bearer(make_token(capsys, "bob"))
        first = client.post("/api/v1/experiments", json=DROPOUT, headers=alice)
        assert first.status_code == 201
        refused = client.post("/api/v1/experiments", json=DROPOUT, headers=alice)
        assert refused.status_code == 422
        error = refused.json()["detail"][0]
        assert error["type"] == "quota_exceeded" and "BNLAB_STORAGE_QUOTA_BYTES" in error["msg"]
        assert error["estimate"]["bytes"] == size
        assert error["used_bytes"] == size and error["quota_bytes"] == quota
        assert stored() == 1
        # Quotas are per owner; deleting gives quota back.
        assert client.post("/api/v1/experiments", json=DROPOUT, headers=bob).status_code == 201
        experiment_id = first.json()["id"]
        client.post(f"/api/v1/experiments/{experiment_id}/cancel", headers=alice)
        assert (
            client.delete(f"/api/v1/experiments/{experiment_id}", headers=alice).status_code == 204
        )
        assert client.post("/api/v1/experiments", json=DROPOUT, headers=alice).status_code == 201


def test_a_sweep_counts_all_its_points_against_the_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    size = dropout_bytes(tmp_path, monkeypatch, capsys)
    # Learning rates change nothing stored: each point is one seed-dropout's size.
    sweep = {"base": DROPOUT, "axes": {"training.optimizer.lr": [0.01, 0.02]}}
    with auth_app(tmp_path / "q", monkeypatch, storage_quota_bytes=str(size * 3 // 2)) as client:
        alice = bearer(make_token(capsys, "alice"))
        refused = client.post("/api/v1/sweeps", json=sweep, headers=alice)
        assert refused.status_code == 422
        error = refused.json()["detail"][0]
        assert error["type"] == "quota_exceeded" and "2 points" in error["msg"]
        assert error["estimate"]["bytes"] == 2 * size and error["used_bytes"] == 0
        assert stored() == 0
        one = {**sweep, "axes": {"training.optimizer.lr": [0.01]}}
        assert client.post("/api/v1/sweeps", json=one, headers=alice).status_code == 201
        # Its point is counted in the usage, as a submission is.
        again = client.post("/api/v1/experiments", json=DROPOUT, headers=alice)
        assert again.status_code == 422 and again.json()["detail"][0]["used_bytes"] == size
