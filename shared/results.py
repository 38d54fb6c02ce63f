"""Batched, idempotent writes of training results, and the reads the API serves them with."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.db import json_dumps
from shared.models import Curve, Histogram, Metric


def upsert(session: Session, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, replacing any with the same primary key (a replayed step overwrites itself)."""
    if not rows:
        return
    table: Table = model.__table__
    if session.get_bind().dialect.name == "postgresql":
        _upsert_postgres(session, table, rows)
        return
    keys = [c.name for c in table.primary_key.columns]
    statement = sqlite.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )
    session.execute(statement, list(rows))


def _upsert_postgres(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """One prepared statement, executed for every row in one pipeline by psycopg itself.

    SQLAlchemy's multi-row VALUES cost twice as long for a flush of histograms (276 rows: 15 ms
    against 8), most of it in binding each value. JSON is written as the engine's serializer
    writes it.
    """
    columns = [c.name for c in table.columns]
    serialized = {c.name for c in table.columns if isinstance(c.type, JSON)}
    data = [
        tuple(json_dumps(row[c]) if c in serialized else row[c] for c in columns) for row in rows
    ]
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.executemany(_upsert_sql(table), data)


@functools.cache
def _upsert_sql(table: Table) -> str:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE of every other column, psycopg style."""
    keys = [c.name for c in table.primary_key.columns]
    columns = [c.name for c in table.columns]
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    values = ", ".join(
        f"%s::{c.type.compile(dialect)}" if isinstance(c.type, JSON) else "%s"
        for c in table.columns
    )
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


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
    # Only the drift leaves the database, not every capture's quantiles.
    query = select(Histogram.run_id, Histogram.layer, Histogram.stats["drift"]).where(
        Histogram.run_id.in_(run_ids), Histogram.kind == "activation"
    )
    for run_id, layer, value in session.execute(query.order_by(Histogram.step)):
        if value is not None:
            drift[run_id].setdefault(layer, []).append(value)
    return compute_findings([RunSeries(r.variant, r.seed, series[r.id], drift[r.id]) for r in runs])
