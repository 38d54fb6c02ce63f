"""Sweeps through the API in-process (embedded default, no worker): validation, storage, cancel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.migration_check import upgrade_and_diff

SMALL = {
    "name": "small",
    "dataset": {"name": "digits"},
    "variants": [
        {"name": "plain", "model": {"kind": "mlp", "hidden": [16]}},
        {"name": "bn", "model": {"kind": "mlp", "hidden": [16], "batchnorm": "before_activation"}},
    ],
    "training": {"epochs": 1, "batch_size": 64, "seeds": [0, 1]},
}
LRS = {"training.optimizer.lr": [0.01, 0.1, -0.1]}


@pytest.fixture
def client(embedded_env: Path) -> Iterator[TestClient]:
    from shared.config import get_settings

    assert upgrade_and_diff(get_settings().resolved_database_url) == []
    from api.main import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


def stored(client: TestClient) -> tuple[int, int]:
    sweeps = client.get("/api/v1/sweeps").json()["items"]
    experiments = client.get("/api/v1/experiments").json()["items"]
    return len(sweeps), len(experiments)


def test_one_bad_point_is_a_422_naming_it_and_nothing_is_stored(client: TestClient) -> None:
    response = client.post("/api/v1/sweeps", json={"base": {"spec": SMALL}, "axes": LRS})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "points", 2, "training", "optimizer", "lr"]
    assert error["point"] == {"index": 2, "values": {"training.optimizer.lr": -0.1}}
    assert "point 2 (training.optimizer.lr=-0.1)" in error["msg"]
    assert stored(client) == (0, 0)


def test_a_point_over_a_limit_names_it(client: TestClient) -> None:
    axes = {"variants.*.model.hidden": [[16], [30000, 30000]]}
    response = client.post("/api/v1/sweeps", json={"base": {"spec": SMALL}, "axes": axes})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"][:3] == ["body", "points", 1] and "BNLAB_MAX_PARAMETERS" in error["msg"]
    assert stored(client) == (0, 0)


@pytest.mark.parametrize(
    ("axes", "loc", "says"),
    [
        ({"variants.nope.model.dropout": [0.1]}, ["body", "axes", "variants.nope.model.dropout"],
         "no variant 'nope'"),
        ({"training.optimiser.lr": [0.1]}, ["body", "points", 0, "training", "optimiser"],
         "Extra inputs"),
        ({"training.optimizer.lr": [0.1] * 101}, ["body", "axes"], "BNLAB_MAX_SWEEP_POINTS"),
    ],
)  # fmt: skip
def test_bad_axes_are_422_and_store_nothing(
    client: TestClient, axes: dict, loc: list, says: str
) -> None:
    response = client.post("/api/v1/sweeps", json={"base": {"spec": SMALL}, "axes": axes})
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == loc and says in error["msg"]
    assert stored(client) == (0, 0)


def test_a_sweep_stores_every_point_as_an_experiment_of_its_own(client: TestClient) -> None:
    axes = {"training.optimizer.lr": [0.01, 0.1], "variants.bn.model.dropout": [0.0, 0.2]}
    response = client.post("/api/v1/sweeps", json={"base": {"spec": SMALL}, "axes": axes})
    assert response.status_code == 201, response.text
    sweep = response.json()
    assert response.headers["location"] == f"/api/v1/sweeps/{sweep['id']}"
    assert sweep["status"] == "queued" and sweep["point_count"] == 4
    assert [p["values"] for p in sweep["points"]][1] == {
        "training.optimizer.lr": 0.01,
        "variants.bn.model.dropout": 0.2,
    }
    point = client.get(f"/api/v1/experiments/{sweep['points'][1]['experiment_id']}").json()
    assert point["sweep_id"] == sweep["id"] and point["name"] == "small-p1"
    assert point["spec"]["variants"][1]["model"]["dropout"] == 0.2
    assert point["spec"]["variants"][0]["model"]["dropout"] == 0.0
    assert len(point["runs"]) == 4  # 2 variants x 2 seeds
    assert stored(client) == (1, 4)
    listed = client.get("/api/v1/sweeps").json()["items"]
    assert [s["id"] for s in listed] == [sweep["id"]]


def test_cancel_cancels_every_point(client: TestClient) -> None:
    body = {"base": {"spec": SMALL}, "axes": {"training.optimizer.lr": [0.01, 0.1, 1.0]}}
    sweep = client.post("/api/v1/sweeps", json=body).json()
    response = client.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert {p["status"] for p in cancelled["points"]} == {"cancelled"}
    # Again: nothing left to cancel, still fine.
    assert client.post(f"/api/v1/sweeps/{sweep['id']}/cancel").status_code == 200


def test_unknown_sweep_is_404(client: TestClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    for method, path in [("GET", ""), ("POST", "/cancel"), ("GET", "/findings")]:
        assert client.request(method, f"/api/v1/sweeps/{missing}{path}").status_code == 404


def test_random_sweep_and_preset(client: TestClient) -> None:
    body = {
        "base": {"spec": SMALL},
        "axes": {"training.optimizer.lr": {"log_uniform": [1e-3, 1]}},
        "method": "random",
        "samples": 3,
        "seed": 5,
    }
    sweep = client.post("/api/v1/sweeps", json=body).json()
    assert sweep["point_count"] == 3 and sweep["seed"] == 5
    presets = client.get("/api/v1/sweep-presets").json()
    assert [p["name"] for p in presets] == ["seed-bn-lr"]
    small = {"dataset": {"name": "fashion-mnist", "train_size": 1000}, "training": {"epochs": 1}}
    response = client.post("/api/v1/sweeps", json={"preset": "seed-bn-lr", "overrides": small})
    assert response.status_code == 201, response.text
    lr = response.json()
    assert lr["point_count"] == 7 and lr["preset"] == "seed-bn-lr"
    assert lr["base_spec"]["training"]["seeds"] == [0, 1, 2]
    assert lr["base_spec"]["dataset"]["train_size"] == 1000
    unknown = client.post("/api/v1/sweeps", json={"preset": "nope"})
    assert unknown.status_code == 422 and "seed-bn-lr" in unknown.text


def test_findings_of_a_sweep_not_yet_trained(client: TestClient) -> None:
    body = {"base": {"spec": SMALL}, "axes": {"training.optimizer.lr": [0.01, 0.1]}}
    sweep = client.post("/api/v1/sweeps", json=body).json()
    findings = client.get(f"/api/v1/sweeps/{sweep['id']}/findings").json()
    assert findings["variants"] == ["plain", "bn"] and len(findings["points"]) == 2
    assert findings["trains_up_to"]["training.optimizer.lr"] == {}
    bad = client.get(f"/api/v1/sweeps/{sweep['id']}/findings?metric=nope")
    assert bad.status_code == 422 and "test_accuracy" in bad.text


def test_sensitivity_plot_of_a_sweep_not_yet_trained(client: TestClient) -> None:
    body = {"base": {"spec": SMALL}, "axes": {"training.optimizer.lr": [0.01, 0.1]}}
    sweep = client.post("/api/v1/sweeps", json=body).json()
    plots = f"/api/v1/sweeps/{sweep['id']}/plots/sensitivity"
    found = client.get(f"{plots}.json").json()
    assert found["kind"] == "lines" and found["log_x"] and found["x"] == [0.01, 0.1]
    png = client.get(f"{plots}.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    bad = client.get(f"{plots}.json?axis=training.epochs")
    assert bad.status_code == 422 and "training.optimizer.lr" in bad.text


def test_dashboard_pages(client: TestClient) -> None:
    body = {"base": {"spec": SMALL}, "axes": {"training.optimizer.lr": [0.01, 0.1]}}
    sweep = client.post("/api/v1/sweeps", json=body).json()
    listing = client.get("/sweeps")
    assert listing.status_code == 200 and 'id="sweep-form"' in listing.text
    one = client.get(f"/sweeps/{sweep['id']}")
    assert one.status_code == 200 and f'data-sweep-id="{sweep["id"]}"' in one.text
    missing = client.get("/sweeps/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and "No such sweep" in missing.text
    for script in ("sweeps.js", "sweep.js"):
        asset = client.get(f"/static/app/{script}")
        assert asset.status_code == 200 and "use strict" in asset.text
