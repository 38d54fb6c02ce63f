"""Turning a submission into a validated spec: presets, overrides, data sets, sizes, shapes.

Data sets are checked against the catalogue only: the worker, which has the data, finds or
downloads it (or the spec's fallback) and records what it used. Nothing here opens a connection.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status
from pydantic import ValidationError

from shared.config import Settings
from shared.datasets import CATALOG, DataSources, is_available, missing_message, same_shape
from shared.presets import PRESETS
from shared.schemas import ExperimentCreate
from shared.shapes import ModelShape, ShapeError, describe_model
from shared.spec import ExperimentSpec


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
    named = body.overrides.get("dataset", {})
    if isinstance(named, dict) and "name" in named and "fallback" not in named:
        # Naming a data set turns the preset's fallback off: it stood in for the preset's own.
        raw["dataset"].pop("fallback", None)
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
    """422 for a fallback that does not fit, or, embedded with downloads off, data surely missing.

    On the embedded default the API and the worker share one disk: a data set that is not on it
    and may not be downloaded can never be had. Anywhere else the worker's disk decides.
    """
    info = CATALOG[spec.dataset.name]
    loc: list[str | int] = ["body", "spec", "dataset"]
    if spec.dataset.fallback is not None:
        other = CATALOG[spec.dataset.fallback]
        if not same_shape(other, info):
            raise unprocessable(
                f"fallback '{other.name}' does not fit in for '{info.name}': its inputs are "
                f"{other.input_shape} with {other.num_outputs} outputs, not {info.input_shape} "
                f"with {info.num_outputs}",
                [*loc, "fallback"],
            )
    if not settings.is_embedded or settings.allow_download:
        return
    sources = DataSources(settings.data_dir, settings.datasets_dir, allow_download=False)
    names = [spec.dataset.name, *([spec.dataset.fallback] if spec.dataset.fallback else [])]
    if not any(is_available(name, sources) for name in names):
        raise unprocessable(missing_message(info, sources), [*loc, "name"])


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
