"""The plot routes and the dashboard pages over stored rows (embedded SQLite, no worker)."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.plots.models import CompareData
from shared import results
from shared.db import get_sessionmaker
from shared.models import Experiment, Run
from shared.presets import PRESETS
from shared.spec import ExperimentSpec

STEPS = 40


def store_experiment(url: str, status: str = "succeeded") -> str:
    """A finished seed-bn-mlp experiment with losses, evaluations and activation captures."""
    spec = ExperimentSpec.model_validate(PRESETS["seed-bn-mlp"].spec)
    session = get_sessionmaker(url)()
    experiment = Experiment(
        id=uuid.uuid4(),
        name=spec.name,
        status=status,
        queue="any",
        progress=1.0,
        spec=spec.model_dump(mode="json"),
    )
    layers = {"plain": "hidden1.linear", "bn": "hidden1.bn"}
    metrics, histograms = [], []
    for position, variant in enumerate(layers):
        run = Run(id=uuid.uuid4(), position=position, variant=variant, seed=0, summary={})
        experiment.runs.append(run)
        for step in range(1, STEPS + 1):
            loss = 2.3 * math.exp(-step / (10 if variant == "bn" else 40))
            metrics.append({"run_id": run.id, "key": "train_loss", "step": step, "value": loss})
        for key, value in (("test_loss", 1.0), ("test_accuracy", 0.7)):
            metrics += [{"run_id": run.id, "key": key, "step": s, "value": value} for s in (20, 40)]
        for step in range(10, STEPS + 1, 10):
            stats = {
                "quantiles": {
                    q: (int(q) - 50) / 25 for q in ("0", "5", "25", "50", "75", "95", "100")
                },
                "drift": 0.1 if step > 10 else None,
            }
            histograms.append(
                {
                    "run_id": run.id,
                    "layer": layers[variant],
                    "kind": "activation",
                    "step": step,
                    "edges": [-2.0, -1.0, 0.0, 1.0, 2.0],
                    "counts": [1, 4, 4, 1],
                    "stats": stats,
                }
            )
    session.add(experiment)
    session.flush()
    results.write_metrics(session, metrics)
    results.write_histograms(session, histograms)
    session.commit()
    session.close()
    return str(experiment.id)


@pytest.fixture
def experiment_id(client: TestClient) -> str:
    from shared.config import get_settings

    return store_experiment(get_settings().resolved_database_url)


def detail(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    return dict(response.json()["detail"][0])


def test_plots_come_as_png_svg_gif_and_json(client: TestClient, experiment_id: str) -> None:
    base = f"/api/v1/experiments/{experiment_id}/plots"
    index = client.get(base).json()
    assert set(index["plots"]) == {"loss", "activations", "distributions", "eval"}
    assert index["steps"] == [10, 20, 30, 40]
    assert index["default_layers"] == {"plain": "hidden1.linear", "bn": "hidden1.bn"}
    for name in index["plots"]:
        assert client.get(f"{base}/{name}.png").content[:4] == b"\x89PNG"
        assert client.get(f"{base}/{name}.svg").headers["content-type"] == "image/svg+xml"
    assert client.get(f"{base}/activations.gif").content[:6] == b"GIF89a"
    panels = client.get(f"{base}/activations.json?step=20").json()["panels"]
    assert [p["step"] for p in panels] == [20] and len(panels[0]["curves"]) == 2


def test_finished_plot_is_cached_with_an_etag(client: TestClient, experiment_id: str) -> None:
    url = f"/api/v1/experiments/{experiment_id}/plots/loss.png"
    first = client.get(url)
    assert first.status_code == 200 and "max-age" in first.headers["cache-control"]
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get(url).content == first.content


def test_bad_parameters_are_422_listing_what_exists(client: TestClient, experiment_id: str) -> None:
    base = f"/api/v1/experiments/{experiment_id}/plots"
    layer = detail(client.get(f"{base}/activations.png?layer=nope"))
    assert layer["loc"] == ["query", "layer"] and "hidden1.bn" in layer["msg"]
    step = detail(client.get(f"{base}/activations.png?step=15"))
    assert step["ctx"]["allowed"] == [10, 20, 30, 40]
    assert "loss.png" in detail(client.get(f"{base}/nope.png"))["msg"]
    assert "activations" in detail(client.get(f"{base}/fit.png"))["msg"]
    assert client.get(f"{base}/loss.pdf").status_code == 422
    assert client.get(f"/api/v1/experiments/{uuid.uuid4()}/plots/loss.png").status_code == 404


def test_compare_overlays_experiments(client: TestClient, experiment_id: str) -> None:
    from shared.config import get_settings

    other = store_experiment(get_settings().resolved_database_url, status="running")
    body = client.get(f"/api/v1/compare/loss.json?ids={experiment_id},{other}").json()
    assert len(body["series"]) == 4 and body["series"][0]["label"].endswith("/plain")
    for name in ("loss", "eval"):  # the data is what the OpenAPI document says it is
        data = client.get(f"/api/v1/compare/{name}.json?ids={experiment_id},{other}").json()
        assert CompareData.model_validate(data).model_dump(mode="json", exclude_unset=True) == data
    response = client.get(f"/api/v1/compare/eval.png?ids={experiment_id},{other}")
    assert response.content[:4] == b"\x89PNG" and response.headers["cache-control"].endswith(
        "no-cache"
    )
    assert client.get("/api/v1/compare/loss.png?ids=zzz").status_code == 422


def test_pages_and_assets_are_served_but_not_documented(
    client: TestClient, experiment_id: str
) -> None:
    for path in ("/", f"/experiments/{experiment_id}", "/new", "/compare?ids=a,b"):
        page = client.get(path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "/static/app/app.js" in page.text and "http" not in page.text.split("<body>")[0]
    for unknown in (str(uuid.uuid4()), "not-an-id"):
        missing = client.get(f"/experiments/{unknown}")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
        assert "No such experiment" in missing.text and 'href="/"' in missing.text
    assert "a&lt;b&gt;" in client.get("/experiments/a<b>").text  # the echoed id is escaped
    assets = ("app.js", "app.css", "experiment.js", "new.js", "schemaform.js", "index.js")
    for asset in (*assets, "compare.js"):
        assert client.get(f"/static/app/{asset}").status_code == 200
    assert client.get("/static/app/../routes.py").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/experiments/{experiment_id}/plots/loss.{fmt}" in paths
    assert not any(p in paths for p in ("/", "/new", "/compare", "/static/app/{name}"))


def test_a_render_made_while_training_never_answers_once_finished(client: TestClient) -> None:
    from sqlalchemy import update

    from shared.config import get_settings

    url = get_settings().resolved_database_url
    experiment_id = store_experiment(url, status="running")
    plot = f"/api/v1/experiments/{experiment_id}/plots/loss.json"
    live = client.get(plot)
    assert live.headers["cache-control"] == "private, no-cache"
    session = get_sessionmaker(url)()
    stored = session.get(Experiment, uuid.UUID(experiment_id))
    assert stored is not None
    run_id = stored.runs[0].id
    results.write_metrics(
        session, [{"run_id": run_id, "key": "train_loss", "step": 99, "value": 0.1}]
    )
    session.execute(
        update(Experiment)
        .where(Experiment.id == uuid.UUID(experiment_id))
        .values(status="succeeded")
    )
    session.commit()
    session.close()
    final = client.get(plot)
    assert "max-age" in final.headers["cache-control"]
    assert final.json()["series"][0]["steps"][-1] == 99
