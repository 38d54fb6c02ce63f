"""The article's pictures, from real training runs, through HTTP, on both stacks."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from api.plots.catalog import PLOTS
from scripts.stack import Stack

pytestmark = pytest.mark.integration

# Small enough to train in seconds; the CNN probes every 2 steps so its 8 steps have captures.
STUDIES = {
    "seed-bn-mlp": {},
    "seed-dropout": {"training": {"epochs": 200, "eval_every": 50}},
    "seed-bn-cnn": {"dataset": {"train_size": 2048, "test_size": 512}, "probes": {"every": 2}},
}


def get(stack: Stack, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """A GET with the stack's token; status, headers (lower-case names) and raw body."""
    if stack.token:
        headers["Authorization"] = f"Bearer {stack.token}"
    request = urllib.request.Request(f"{stack.url}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@pytest.fixture(scope="module")
def studies(stack: Stack) -> dict[str, dict[str, Any]]:
    """The three studies, submitted together and trained to the end."""
    ids = {}
    for preset, overrides in STUDIES.items():
        status, body = stack.request(
            "POST", "/api/v1/experiments", {"preset": preset, "overrides": overrides}
        )
        assert status == 201, body
        ids[preset] = body["id"]
    done = {preset: stack.wait_finished(i, timeout_s=300) for preset, i in ids.items()}
    for preset, experiment in done.items():
        assert experiment["status"] == "succeeded", (preset, experiment.get("error"))
    return done


def plots_of(stack: Stack, experiment: dict[str, Any]) -> dict[str, Any]:
    status, _, body = get(stack, f"/api/v1/experiments/{experiment['id']}/plots")
    assert status == 200
    return dict(json.loads(body))


@pytest.mark.parametrize("preset", list(STUDIES))
def test_every_plot_renders_as_png_and_svg(stack: Stack, studies: dict, preset: str) -> None:
    experiment = studies[preset]
    index = plots_of(stack, experiment)
    expected = {"loss", "activations", "distributions", "eval"}
    assert set(index["plots"]) == expected | ({"fit"} if preset == "seed-dropout" else set())
    assert index["steps"], "every study captures activations"
    base = f"/api/v1/experiments/{experiment['id']}/plots"
    for name in index["plots"]:
        status, headers, png = get(stack, f"{base}/{name}.png")
        assert status == 200 and headers["content-type"] == "image/png", (name, png[:200])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        status, headers, svg = get(stack, f"{base}/{name}.svg")
        assert status == 200 and ET.fromstring(svg).tag.endswith("svg")
        status, _, data = get(stack, f"{base}/{name}.json")
        assert status == 200 and json.loads(data)["experiment_id"] == experiment["id"]
        # The data is what the OpenAPI document says it is, field for field.
        model = PLOTS[name].model
        assert model is not None
        assert model.model_validate_json(data).model_dump(mode="json") == json.loads(data), name
    status, headers, gif = get(stack, f"{base}/activations.gif")
    assert status == 200 and gif[:6] == b"GIF89a"


def test_the_articles_picture_pairs_linear_with_bn(stack: Stack, studies: dict) -> None:
    experiment = studies["seed-bn-mlp"]
    base = f"/api/v1/experiments/{experiment['id']}/plots"
    status, _, body = get(stack, f"{base}/activations.json?step=10")
    assert status == 200
    found = json.loads(body)
    assert found["layers"] == {"plain": "hidden1.linear", "bn": "hidden1.bn"}
    (panel,) = found["panels"]
    assert panel["step"] == 10 and set(panel["loss"]) == {"plain", "bn"}
    assert [c["label"] for c in panel["curves"]] == ["plain", "bn"]


def test_dropout_fit_defaults_to_the_last_epoch(stack: Stack, studies: dict) -> None:
    experiment = studies["seed-dropout"]
    status, _, body = get(stack, f"/api/v1/experiments/{experiment['id']}/plots/fit.json")
    found = json.loads(body)
    assert status == 200 and found["epochs"] == [50, 100, 150, 200] and found["epoch"] == 200
    assert {"train_points", "test_points"} <= set(found["points"])
    assert [c["label"] for c in found["curves"]] == ["plain", "dropout-0.2", "dropout-0.5-0.2"]


def test_finished_plots_revalidate_with_304(stack: Stack, studies: dict) -> None:
    url = f"/api/v1/experiments/{studies['seed-bn-mlp']['id']}/plots/loss.png"
    status, headers, body = get(stack, url)
    assert status == 200 and headers["etag"] and "max-age" in headers["cache-control"]
    status, again, empty = get(stack, url, **{"If-None-Match": headers["etag"]})
    assert status == 304 and empty == b"" and again["etag"] == headers["etag"]
    assert get(stack, url)[2] == body


def test_unknown_layer_and_step_are_422_listing_what_exists(stack: Stack, studies: dict) -> None:
    experiment = studies["seed-bn-mlp"]
    base = f"/api/v1/experiments/{experiment['id']}/plots"
    status, _, body = get(stack, f"{base}/activations.png?layer=hidden7.bn")
    assert status == 422
    (error,) = json.loads(body)["detail"]
    assert error["loc"] == ["query", "layer"]
    assert {"hidden1.linear", "hidden1.bn", "hidden2.act"} <= set(error["ctx"]["allowed"])
    status, _, body = get(stack, f"{base}/activations.png?step=15")
    assert status == 422
    (error,) = json.loads(body)["detail"]
    assert error["ctx"]["allowed"] == list(range(10, 237, 10)) and "10, 20, 30" in error["msg"]
    status, _, body = get(stack, f"{base}/fit.png")
    assert status == 422 and "regression" in json.loads(body)["detail"][0]["msg"]
    assert get(stack, f"{base}/histogram.png")[0] == 422
    unknown = "/api/v1/experiments/00000000-0000-0000-0000-000000000000/plots/loss.png"
    assert get(stack, unknown)[0] == 404
