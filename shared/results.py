"""Batched, idempotent writes of training results, and the reads the API serves them with."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.models import Curve, Histogram, Metric


def upsert(session: Session, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, replacing any with the same primary key (a replayed step overwrites itself).

    One statement executed for many rows: SQLAlchemy batches them into multi-row VALUES on
    PostgreSQL (insertmanyvalues) from one cached compilation; building a VALUES list of every
    row as literal parameters, as before, cost twice the time in compiling alone.
    """
    if not rows:
        return
    table: Table = model.__table__
    keys = [c.name for c in table.primary_key.columns]
    values = [c.name for c in table.columns if c.name not in keys]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={name: statement.excluded[name] for name in values}
    )
    session.execute(statement, list(rows))


def write_metrics(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Rows of run_id, key, step, value."""
    upsert(session, Metric, rows)


def write_histograms(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Rows of run_id, layer, kind, step, edges, counts, stats."""
    upsert(session, Histogram, rows)


def read_series(
    session: Session,
    run_ids: Sequence[uuid.UUID],
    keys: Sequence[str] = (),
    since_step: int | None = None,
) -> dict[uuid.UUID, dict[str, tuple[list[int], list[float]]]]:
    """Per run, per key: the steps and values in step order."""
    query = select(Metric.run_id, Metric.key, Metric.step, Metric.value).where(
        Metric.run_id.in_(run_ids)
    )
    if keys:
        query = query.where(Metric.key.in_(keys))
    if since_step is not None:
        query = query.where(Metric.step > since_step)
    out: dict[uuid.UUID, dict[str, tuple[list[int], list[float]]]] = {r: {} for r in run_ids}
    for run_id, key, step, value in session.execute(query.order_by(Metric.key, Metric.step)):
        steps, values = out[run_id].setdefault(key, ([], []))
        steps.append(step)
        values.append(value)
    return out


def read_histograms(
    session: Session,
    run_ids: Sequence[uuid.UUID],
    layers: Sequence[str] = (),
    steps: Sequence[int] = (),
    kind: str | None = None,
) -> list[Histogram]:
    """Captures of the given runs, by layer then step."""
    query = select(Histogram).where(Histogram.run_id.in_(run_ids))
    if layers:
        query = query.where(Histogram.layer.in_(layers))
    if steps:
        query = query.where(Histogram.step.in_(steps))
    if kind is not None:
        query = query.where(Histogram.kind == kind)
    return list(session.scalars(query.order_by(Histogram.layer, Histogram.step)))


def captured_layers(session: Session, run_ids: Sequence[uuid.UUID]) -> list[str]:
    """Every layer with at least one capture in the given runs."""
    query = select(Histogram.layer).where(Histogram.run_id.in_(run_ids)).distinct()
    return sorted(session.scalars(query))


def read_curves(
    session: Session, run_ids: Sequence[uuid.UUID], key: str | None = None
) -> list[Curve]:
    """Curves of the given runs, by key then step."""
    query = select(Curve).where(Curve.run_id.in_(run_ids))
    if key is not None:
        query = query.where(Curve.key == key)
    return list(session.scalars(query.order_by(Curve.key, Curve.step)))


def experiment_findings(session: Session, runs: Sequence[Any]) -> dict[str, Any]:
    """Findings over the stored series and activation drifts of the given Run rows."""
    from shared.findings import RunSeries, compute_findings

    run_ids = [r.id for r in runs]
    series = read_series(session, run_ids)
    drift: dict[uuid.UUID, dict[str, list[float]]] = {r: {} for r in run_ids}
    query = select(Histogram.run_id, Histogram.layer, Histogram.stats).where(
        Histogram.run_id.in_(run_ids), Histogram.kind == "activation"
    )
    for run_id, layer, stats in session.execute(query.order_by(Histogram.step)):
        if stats.get("drift") is not None:
            drift[run_id].setdefault(layer, []).append(stats["drift"])
    return compute_findings([RunSeries(r.variant, r.seed, series[r.id], drift[r.id]) for r in runs])
