"""Every plot renders from synthetic results as a real image; bad parameters say what exists."""

from __future__ import annotations

import io
import math
import struct
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageSequence

from api.plots import build as b
from api.plots import cache, catalog, data
from api.plots.params import PlotParamError, resolve_layers, select_steps, subsample
from api.plots.render import render
from shared.findings import RunSeries, per_run_measures
from shared.models import Experiment, Run
from shared.presets import PRESETS
from shared.spec import ExperimentSpec

VARIANTS = ["plain", "bn"]
SEEDS = [0, 1]
STEPS = 60
PNG = b"\x89PNG\r\n\x1a\n"


def runs() -> list[b.RunRef]:
    return [b.RunRef(uuid.uuid4(), v, s) for s in SEEDS for v in VARIANTS]


def loss_series(refs: list[b.RunRef]) -> dict[uuid.UUID, dict[str, b.Series]]:
    rng = np.random.default_rng(0)
    out = {}
    for r in refs:
        rate = 15 if r.variant == "bn" else 60
        steps = list(range(1, STEPS + 1))
        loss = [2.3 * math.exp(-s / rate) + 0.3 + 0.05 * rng.random() for s in steps]
        out[r.id] = {
            "train_loss": (steps, loss),
            "test_loss": ([30, 60], [loss[29] + 0.1, loss[59] + 0.1]),
            "test_accuracy": ([30, 60], [0.6, 0.8]),
            "train_loss_eval": ([30, 60], [loss[29], loss[59]]),
        }
    return out


def capture(step: int, scale: float, drift: float | None) -> b.Capture:
    edges = np.linspace(-4, 4, 41)
    counts, _ = np.histogram(np.random.default_rng(step).normal(0, scale, 2000), bins=edges)
    quantiles = {
        q: float(np.quantile(np.random.default_rng(step).normal(0, scale, 500), int(q) / 100))
        for q in ("0", "1", "5", "25", "50", "75", "95", "99", "100")
    }
    stats = {"quantiles": quantiles, "drift": drift, "count": int(counts.sum())}
    return b.Capture(step, edges.tolist(), counts.tolist(), stats)


def captures() -> dict[str, list[b.Capture]]:
    steps = range(10, STEPS + 1, 10)
    return {
        "plain": [capture(s, 0.5 + s / 60, None if s == 10 else 0.05) for s in steps],
        "bn": [capture(s, 1.0, None if s == 10 else 0.01) for s in steps],
    }


def plot_data(name: str) -> dict[str, Any]:
    """The data of plot `name` as the API would serve it, from synthetic rows."""
    refs = runs()
    series = loss_series(refs)
    layers = {"plain": "hidden1.linear", "bn": "hidden1.bn"}
    if name == "loss":
        flat = {i: s["train_loss"] for i, s in series.items()}
        found = b.build_loss(refs, VARIANTS, flat, 5)
    elif name == "eval":
        found = b.build_eval(refs, VARIANTS, series, "classification", 30)
    elif name == "activations":
        caps = captures()
        keyed = {v: {c.step: c for c in rows} for v, rows in caps.items()}
        losses = {r.variant: series[r.id]["train_loss"] for r in refs if r.seed == 0}
        steps = [c.step for c in caps["plain"]]
        found = b.build_activations(VARIANTS, layers, steps, steps, keyed, losses, 0)
    elif name == "distributions":
        found = b.build_distributions(VARIANTS, layers, captures(), 0)
    else:
        x = np.linspace(-1, 1, 50).tolist()
        points = {"train_points": (x, x), "test_points": (x, [v + 0.1 for v in x])}
        fits = {v: {e: (e, x, [math.sin(3 * t) for t in x]) for e in (50, 100)} for v in VARIANTS}
        tests = {v: ([50, 100], [0.2, 0.1]) for v in VARIANTS}
        found = b.build_fit(VARIANTS, fits, points, tests, None, 0)
    return b.clean({"variants": VARIANTS, **found})


def png_size(body: bytes) -> tuple[int, int]:
    assert body[:8] == PNG
    width, height = struct.unpack(">II", body[16:24])
    return width, height


@pytest.mark.parametrize("name", ["loss", "eval", "activations", "distributions", "fit"])
def test_every_plot_is_a_real_png_and_svg(name: str) -> None:
    found = plot_data(name)
    width, height = png_size(render(name, found, "png"))
    assert width > 0 and height > 0
    svg = ET.fromstring(render(name, found, "svg"))
    assert svg.tag.endswith("svg") and float(svg.get("width", "0").rstrip("pt")) > 0


def test_single_step_activations_are_titled_with_step_and_losses() -> None:
    found = plot_data("activations")
    one = {**found, "panels": found["panels"][:1], "steps": [10]}
    svg = render("activations", one, "svg").decode()
    assert "Iteration 10" in svg and "plain loss" in svg and "bn loss" in svg


def test_activations_gif_has_a_frame_per_step() -> None:
    found = plot_data("activations")
    image = Image.open(io.BytesIO(render("activations", found, "gif")))
    frames = sum(1 for _ in ImageSequence.Iterator(image))
    assert image.format == "GIF" and frames == len(found["panels"]) > 1


def test_empty_data_still_renders() -> None:
    empty = {"variants": VARIANTS, "seed": 0, "layers": {}, "panels": [], "steps": []}
    assert png_size(render("activations", empty, "png"))[0] > 0
    assert png_size(render("loss", b.build_loss([], VARIANTS, {}, 1), "png"))[0] > 0


def test_loss_band_spans_the_seeds() -> None:
    found = plot_data("loss")
    plain = found["series"][0]
    assert plain["seeds"] == SEEDS
    bands = zip(plain["min"], plain["mean"], plain["max"], strict=True)
    assert all(lo <= m <= hi for lo, m, hi in bands)


def test_densities_integrate_to_one() -> None:
    x, y = b.density([0.0, 0.5, 1.0, 2.0], [1, 3, 4])
    assert x == [0.25, 0.75, 1.5]
    assert math.isclose(0.5 * y[0] + 0.5 * y[1] + 1.0 * y[2], 1.0)


def test_classification_gap_is_the_findings_gap() -> None:
    # 30 steps, evaluations after 15 and 30: the train loss is the mean of the 10 steps up to each.
    steps = list(range(1, 31))
    losses = [float(31 - s) for s in steps]
    ref = b.RunRef(uuid.uuid4(), "plain", 0)
    series = {ref.id: {"train_loss": (steps, losses), "test_loss": ([15, 30], [20.0, 9.0])}}
    found = b.build_eval([ref], ["plain"], series, "classification", 15)
    assert found["series"][0]["gap"]["mean"] == [20.0 - 20.5, 9.0 - 5.5]
    measures = per_run_measures(RunSeries("plain", 0, series[ref.id]), None)
    assert measures["train_test_gap"] == found["series"][0]["gap"]["mean"][-1]


def test_unknown_layer_lists_the_captured_layers() -> None:
    captured = {"plain": {"hidden1.linear", "hidden1.act"}, "bn": {"hidden1.bn"}}
    with pytest.raises(PlotParamError) as error:
        resolve_layers(VARIANTS, {}, captured, "hidden9.bn")
    detail = error.value.detail()[0]
    assert detail["loc"] == ["query", "layer"]
    assert detail["ctx"]["allowed"] == ["hidden1.act", "hidden1.bn", "hidden1.linear"]
    assert resolve_layers(VARIANTS, {}, captured, "hidden1.bn") == {"bn": "hidden1.bn"}


def test_never_captured_step_lists_the_steps() -> None:
    with pytest.raises(PlotParamError) as error:
        select_steps([10, 20, 30], 15, 12)
    assert error.value.allowed == [10, 20, 30] and "10, 20, 30" in error.value.detail()[0]["msg"]
    assert select_steps(list(range(100)), None, 12)[::11] == [0, 99]
    assert len(subsample(list(range(100)), 12)) == 12


def test_never_evaluated_epoch_lists_the_epochs() -> None:
    with pytest.raises(PlotParamError) as error:
        b.build_fit(VARIANTS, {"plain": {50: (50, [0.0], [0.0])}}, {}, {}, 7, 0)
    assert error.value.allowed == [50]


def test_fit_of_a_classification_experiment_lists_the_plots() -> None:
    spec = ExperimentSpec.model_validate(PRESETS["seed-bn-mlp"].spec)
    experiment = Experiment(id=uuid.uuid4(), name="x", spec=spec.model_dump(mode="json"))
    experiment.runs = [Run(id=uuid.uuid4(), variant=v.name, seed=0) for v in spec.variants]
    with pytest.raises(PlotParamError) as error:
        fit = catalog.PLOTS["fit"]
        catalog.gather(None, experiment, fit, catalog.FitParams(), "png")  # type: ignore[arg-type]
    assert "regression" in error.value.message
    assert "fit" not in error.value.allowed and "activations" in error.value.allowed


def test_default_layer_is_the_first_batchnormed_block() -> None:
    for preset, expected in [
        ("seed-bn-mlp", {"plain": "hidden1.linear", "bn": "hidden1.bn"}),
        ("seed-bn-cnn", {"plain": "conv2.conv", "bn": "conv2.bn"}),
    ]:
        spec = ExperimentSpec.model_validate(PRESETS[preset].spec)
        experiment = Experiment(id=uuid.uuid4(), name="x", spec=spec.model_dump(mode="json"))
        experiment.runs = []
        assert data.Source.of(experiment).default_layers() == expected


def test_cache_renders_once_and_expires_running_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    store, now = cache.PlotCache(), [100.0]
    monkeypatch.setattr(cache.time, "monotonic", lambda: now[0])
    calls = []

    def make() -> tuple[bytes, str]:
        calls.append(1)
        return b"body", "image/png"

    first = store.get_or_render("done", None, make)
    assert store.get_or_render("done", None, make) is first and len(calls) == 1
    store.get_or_render("live", 1.0, make)
    now[0] += 0.5
    store.get_or_render("live", 1.0, make)
    assert len(calls) == 2
    now[0] += 1.0
    store.get_or_render("live", 1.0, make)
    assert len(calls) == 3
    assert cache.etag_matches(f'W/{first.etag}, "other"', first.etag)
    assert not cache.etag_matches('"other"', first.etag)


def test_cache_stays_within_its_byte_budget() -> None:
    store = cache.PlotCache(max_bytes=100)
    for i in range(10):
        store.get_or_render(i, None, lambda: (b"x" * 20, "image/png"))
    assert store._size <= 100 and 9 in store._entries and 0 not in store._entries


def test_one_declaration_makes_the_route_and_its_openapi_operation() -> None:
    from fastapi import APIRouter, FastAPI
    from pydantic import BaseModel, Field

    from api.plots.registry import Plot
    from api.routes.plots import add_plot_route

    class Params(BaseModel):
        bins: int | None = Field(default=None, ge=2, description="How many bins")

    plot = Plot(
        name="toy",
        summary="A toy plot.",
        formats=("svg", "png", "json"),
        params=Params,
        data=lambda session, src, p, fmt: {},
        draw=catalog.PLOTS["loss"].draw,
    )
    router = APIRouter(prefix="/x/{experiment_id}/plots")
    add_plot_route(router, plot)
    app = FastAPI()
    app.include_router(router)
    paths = app.openapi()["paths"]
    operation = paths["/x/{experiment_id}/plots/toy.{fmt}"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["fmt"]["schema"]["enum"] == ["svg", "png"]
    assert params["bins"]["in"] == "query" and params["bins"]["description"] == "How many bins"
    data = paths["/x/{experiment_id}/plots/toy.json"]["get"]
    assert [p["name"] for p in data["parameters"]] == ["experiment_id", "bins"]
    with pytest.raises(ValueError, match="gif"):
        Plot(
            name="bad", summary="", formats=("gif",), params=Params, data=plot.data, draw=plot.draw
        )
