"""The API's sweep services: expand and validate every point, store them at once, list, cancel.

A sweep is all or nothing: every point is a full, checked ExperimentSpec before one row is
added, and the sweep with its experiments is one commit; the tasks are sent after it.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery
from fastapi import HTTPException
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from api import service, storage
from api.submission import (
    check_dataset,
    check_limits,
    deep_merge,
    resolve,
    total_steps,
    unprocessable,
)
from shared import lifecycle
from shared.config import Settings
from shared.errors import Conflict, NotFound
from shared.models import Experiment, Sweep
from shared.spec import ExperimentSpec
from shared.sweep import Point, SweepError, describe, expand, point_name
from shared.sweep_presets import SWEEP_PRESETS
from shared.sweep_schemas import SweepCreate

log = logging.getLogger(__name__)


@dataclass
class SweepPlan:
    """A sweep ready to store: its settings and every point's validated spec."""

    name: str
    preset: str | None
    base: ExperimentSpec
    base_preset: str | None
    axes: dict[str, Any]
    method: str
    samples: int | None
    seed: int
    points: list[tuple[Point, ExperimentSpec]]


def from_preset(body: SweepCreate) -> SweepCreate:
    """The full sweep a preset stands for, with the body's overrides and axes applied."""
    preset = SWEEP_PRESETS.get(body.preset or "")
    if preset is None:
        raise unprocessable(
            f"unknown sweep preset '{body.preset}'; sweep presets: {', '.join(SWEEP_PRESETS)}",
            ["body", "preset"],
            presets=list(SWEEP_PRESETS),
        )
    raw = preset.body_copy()
    base = raw["base"]
    base["overrides"] = deep_merge(base.get("overrides", {}), body.overrides)
    for field in ("name", "axes", "samples"):
        if getattr(body, field) is not None:
            raw[field] = getattr(body, field)
    if "method" in body.model_fields_set:
        raw.update(method=body.method, seed=body.seed)
    try:
        return SweepCreate.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", "overrides", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise HTTPException(422, detail=errors) from exc


def plan(body: SweepCreate, settings: Settings) -> SweepPlan:
    """Every point of the sweep, validated as a submission would be; 422 naming a bad one."""
    preset = body.preset
    if preset is not None:
        body = from_preset(body)
    assert body.base is not None and body.axes is not None
    base, base_preset = resolve(body.base, settings)
    count = planned_points(body)
    if count > settings.max_sweep_points:
        raise unprocessable(
            f"this sweep has {count:,} points; the limit is {settings.max_sweep_points:,} "
            "(BNLAB_MAX_SWEEP_POINTS)",
            ["body", "axes"],
        )
    name = body.name or base.name
    try:
        points = expand(
            base.model_dump(mode="json"), body.axes, body.method, body.samples, body.seed
        )
    except SweepError as exc:
        raise unprocessable(str(exc), ["body", "axes", exc.axis] if exc.axis else ["body"]) from exc
    checked = [(p, check_point(p, name, base, settings)) for p in points]
    steps = sum(total_steps(spec) for _, spec in checked)
    if steps > settings.max_sweep_total_steps:
        raise unprocessable(
            f"this sweep trains {steps:,} steps over its {len(checked)} points; the limit is "
            f"{settings.max_sweep_total_steps:,} (BNLAB_MAX_SWEEP_TOTAL_STEPS)",
            ["body", "axes"],
        )
    return SweepPlan(
        name, preset, base, base_preset, body.axes, body.method, body.samples, body.seed, checked
    )


def planned_points(body: SweepCreate) -> int:
    """How many points the axes make, before making them."""
    assert body.axes is not None
    if body.method == "random":
        return body.samples or 0
    return math.prod(len(v) if isinstance(v, list) else 1 for v in body.axes.values())


def check_point(
    point: Point, name: str, base: ExperimentSpec, settings: Settings
) -> ExperimentSpec:
    """The point's spec, validated in full; a 422 naming the point and the field otherwise."""
    raw = {**point.spec, "name": point_name(name, point.index)}
    label = f"point {point.index} ({describe(point.values)})"
    where = {"index": point.index, "values": point.values}
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {
                "loc": ["body", "points", point.index, *e["loc"]],
                "msg": f"{label}: {'.'.join(map(str, e['loc']))}: {e['msg']}",
                "type": e["type"],
                "point": where,
            }
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise HTTPException(422, detail=errors) from exc
    try:
        if spec.dataset.name != base.dataset.name:
            check_dataset(spec, settings)
        check_limits(spec, settings)
    except HTTPException as exc:
        detail: list[dict[str, Any]] = exc.detail  # type: ignore[assignment]
        errors = [
            {
                **e,
                "loc": ["body", "points", point.index, *e["loc"][2:]],
                "msg": f"{label}: {e['msg']}",
                "point": where,
            }
            for e in detail
        ]
        raise HTTPException(422, detail=errors) from exc
    return spec


def create_sweep(
    session: Session,
    celery: Celery,
    plan: SweepPlan,
    owner: str,
    settings: Settings,
) -> Sweep:
    """Store the sweep and every point in one commit, then send each point's tasks; 422, with
    nothing stored, when the points together would pass the owner's storage quota."""
    estimates = storage.check_sweep_quota(session, [s for _, s in plan.points], owner, settings)
    sweep = Sweep(
        id=uuid.uuid4(),
        owner=owner,
        name=plan.name,
        preset=plan.preset,
        base_preset=plan.base_preset,
        base_spec=plan.base.model_dump(mode="json"),
        axes=plan.axes,
        method=plan.method,
        samples=plan.samples if plan.method == "random" else None,
        seed=plan.seed if plan.method == "random" else None,
    )
    session.add(sweep)
    experiments = []
    for (point, spec), found in zip(plan.points, estimates, strict=True):
        experiment = lifecycle.create(
            session, spec, plan.base_preset, owner, settings.seeds_per_group
        )
        storage.record(experiment, found)  # counted in the owner's usage, as a submission is
        experiment.sweep_id = sweep.id
        experiment.sweep_index = point.index
        experiment.sweep_values = point.values
        experiments.append(experiment)
    session.commit()
    for experiment in experiments:
        service.enqueue(celery, experiment)
    log.info("sweep %s stored with %d points", sweep.id, len(experiments))
    return get_sweep(session, sweep.id, owner)


def get_sweep(session: Session, sweep_id: uuid.UUID, owner: str, runs: bool = False) -> Sweep:
    """The owner's sweep with its points (and their runs, when asked), or NotFound."""
    load = selectinload(Sweep.points)
    sweep = session.scalar(
        select(Sweep)
        .where(Sweep.id == sweep_id, Sweep.owner == owner)
        .options(load.selectinload(Experiment.runs) if runs else load)
        .execution_options(populate_existing=True)
    )
    if sweep is None:
        raise NotFound(f"no sweep {sweep_id}")
    return sweep


def list_sweeps(session: Session, owner: str, limit: int) -> list[Sweep]:
    """The owner's sweeps, newest first, with their points."""
    query = (
        select(Sweep)
        .where(Sweep.owner == owner)
        .options(selectinload(Sweep.points))
        .order_by(Sweep.created_at.desc(), Sweep.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def cancel_sweep(session: Session, sweep: Sweep) -> Sweep:
    """Cancel every unfinished point: queued ones at once, running ones at their next step."""
    for experiment in sweep.points:
        if experiment.status.finished:
            continue
        try:
            lifecycle.request_cancel(session, experiment)
        except Conflict:
            # It finished between the read and the cancel: nothing left to stop.
            continue
    session.commit()
    return get_sweep(session, sweep.id, sweep.owner)
