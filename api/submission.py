"""Turning a submission into a validated spec: presets, overrides, data sets, sizes, shapes."""

from __future__ import annotations

import socket
import time
import urllib.parse
from typing import Any

from fastapi import HTTPException, status
from pydantic import ValidationError

from shared.config import Settings
from shared.datasets import CATALOG, DatasetInfo, find_local, is_available, missing_message
from shared.presets import PRESETS
from shared.schemas import ExperimentCreate
from shared.shapes import ModelShape, ShapeError, describe_model
from shared.spec import ExperimentSpec

_MIRROR_CACHE_S = 300.0
_mirror_checked: dict[str, tuple[float, bool]] = {}


def unprocessable(message: str, loc: list[str | int] | None = None, **extra: Any) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, so clients parse one format."""
    error: dict[str, Any] = {"loc": loc or ["body"], "msg": message, "type": "value_error"}
    error.update(extra)
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[error])


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` merged in: dicts recursively, everything else replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve(body: ExperimentCreate, settings: Settings) -> tuple[ExperimentSpec, str | None]:
    """The validated spec a submission stands for, and the preset it came from."""
    if body.spec is not None:
        spec = body.spec
        check_dataset(spec, settings)
    else:
        spec = _from_preset(body, settings)
    check_limits(spec, settings)
    return spec, body.preset


def _from_preset(body: ExperimentCreate, settings: Settings) -> ExperimentSpec:
    preset = PRESETS.get(body.preset or "")
    if preset is None:
        raise unprocessable(
            f"unknown preset '{body.preset}'; presets: {', '.join(PRESETS)}",
            ["body", "preset"],
            presets=list(PRESETS),
        )
    raw = deep_merge(preset.spec_copy(), body.overrides)
    dataset_overridden = "name" in body.overrides.get("dataset", {})
    fallback = preset.fallback_dataset and not dataset_overridden
    if fallback and not _obtainable(raw["dataset"]["name"], settings):
        raw["dataset"]["name"] = preset.fallback_dataset
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", "overrides", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=errors) from exc
    check_dataset(spec, settings)
    return spec


def check_dataset(spec: ExperimentSpec, settings: Settings) -> None:
    """422 unless the data set is here or its mirrors can be reached to download it."""
    info = CATALOG[spec.dataset.name]
    if not info.downloadable or find_local(info, settings) is not None:
        return
    if settings.allow_download and _any_mirror_reachable(info):
        return
    raise unprocessable(missing_message(info, settings), ["body", "spec", "dataset", "name"])


def _obtainable(name: str, settings: Settings) -> bool:
    """Here already, or downloadable now: a preset uses the article's data set when it can."""
    if is_available(name, settings):
        return True
    return settings.allow_download and _any_mirror_reachable(CATALOG[name])


def _any_mirror_reachable(info: DatasetInfo) -> bool:
    return any(_reachable(mirror) for mirror in info.mirrors)


def _reachable(url: str) -> bool:
    """Whether a TCP connection to the mirror's host opens (cached for a few minutes)."""
    now = time.monotonic()
    cached = _mirror_checked.get(url)
    if cached and now - cached[0] < _MIRROR_CACHE_S:
        return cached[1]
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=2.0):
            ok = True
    except OSError:
        ok = False
    _mirror_checked[url] = (now, ok)
    return ok


def check_limits(spec: ExperimentSpec, settings: Settings) -> None:
    """422 when the model does not fit its input, or the job would be unreasonably large."""
    info = CATALOG[spec.dataset.name]
    shapes = []
    for index, variant in enumerate(spec.variants):
        loc: list[str | int] = ["body", "spec", "variants", index, "model"]
        try:
            shape = describe_model(variant.model, info.input_shape, info.num_outputs)
        except ShapeError as exc:
            raise unprocessable(f"variant '{variant.name}': {exc}", loc) from exc
        shapes.append(shape)
        if shape.parameters > settings.max_parameters:
            raise unprocessable(
                f"variant '{variant.name}' has {shape.parameters:,} parameters; "
                f"the limit is {settings.max_parameters:,} (BNLAB_MAX_PARAMETERS)",
                loc,
            )
    steps = total_steps(spec)
    if steps > settings.max_total_steps:
        raise unprocessable(
            f"this spec trains {steps:,} steps (epochs x steps per epoch x seeds x variants); "
            f"the limit is {settings.max_total_steps:,} (BNLAB_MAX_TOTAL_STEPS)",
            ["body", "spec", "training"],
        )
    histograms = probe_histograms(spec, shapes)
    if histograms > settings.max_probe_histograms:
        raise unprocessable(
            f"probes every {spec.probes.every} steps store {histograms:,} histograms "
            "(captures x probed tensors, every run); "
            f"the limit is {settings.max_probe_histograms:,} (BNLAB_MAX_PROBE_HISTOGRAMS)",
            ["body", "spec", "probes", "every"],
        )


def probe_histograms(spec: ExperimentSpec, shapes: list[ModelShape]) -> int:
    """Histogram rows the probes store: one per probed tensor per capture, in every run."""
    probes = spec.probes
    if not probes.enabled:
        return 0
    captures = spec.training.epochs * spec.training.steps_per_epoch(train_examples(spec))
    captures //= probes.every
    tensors = sum(
        len(shape.layers) + shape.parameter_tensors * (probes.weights + probes.gradients)
        for shape in shapes
    )
    return captures * tensors * len(spec.training.seeds)


def train_examples(spec: ExperimentSpec) -> int:
    """How many training examples the spec's data set has after `train_size`."""
    info = CATALOG[spec.dataset.name]
    full = info.train_examples if info.train_examples is not None else spec.dataset.n
    return min(full, spec.dataset.train_size or full)


def total_steps(spec: ExperimentSpec) -> int:
    """Every optimizer step of every run of the experiment."""
    runs = len(spec.variants) * len(spec.training.seeds)
    return spec.training.epochs * spec.training.steps_per_epoch(train_examples(spec)) * runs
