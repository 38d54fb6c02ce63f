"""Long-format CSV of an experiment's metrics and histogram bins, streamed from the database.

Rows are read through a server-side cursor (`yield_per`) run by run, in the order of the primary
key, and written out in chunks: a ten-million-point export never sits in memory, and the
database never sorts it.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db import get_sessionmaker
from shared.models import Histogram, Metric

YIELD_PER = 5000
# Text handed to the response at a time.
CHUNK_CHARS = 1 << 16

METRIC_HEADER = ("experiment", "run", "variant", "seed", "key", "step", "value")
HISTOGRAM_HEADER = (
    "experiment", "run", "variant", "seed", "layer", "kind", "step", "bin", "left", "right", "count"
)  # fmt: skip


@dataclass(frozen=True)
class RunRef:
    """What each row repeats about its run (read before streaming, as plain values)."""

    experiment_id: uuid.UUID
    run_id: uuid.UUID
    variant: str
    seed: int

    @property
    def prefix(self) -> tuple[str, str, str, int]:
        return (str(self.experiment_id), str(self.run_id), self.variant, self.seed)


def run_refs(experiment: Any) -> list[RunRef]:
    """The experiment's runs in their order, detached from the request's session."""
    return [RunRef(experiment.id, r.id, r.variant, r.seed) for r in experiment.runs]


def _chunks(header: tuple[str, ...], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _stream(session: Session, statement: Any) -> Iterator[Any]:
    return iter(session.execute(statement.execution_options(yield_per=YIELD_PER)))


def metric_rows(session: Session, runs: list[RunRef]) -> Iterator[tuple[Any, ...]]:
    """(experiment, run, variant, seed, key, step, value), run by run, key by key, by step."""
    for run in runs:
        statement = (
            select(Metric.key, Metric.step, Metric.value)
            .where(Metric.run_id == run.run_id)
            .order_by(Metric.key, Metric.step)
        )
        for key, step, value in _stream(session, statement):
            yield (*run.prefix, key, step, value)


def histogram_rows(session: Session, runs: list[RunRef]) -> Iterator[tuple[Any, ...]]:
    """One row per bin: its capture (layer, kind, step), its index, edges and count."""
    for run in runs:
        statement = (
            select(
                Histogram.layer, Histogram.kind, Histogram.step, Histogram.edges, Histogram.counts
            )
            .where(Histogram.run_id == run.run_id)
            .order_by(Histogram.layer, Histogram.kind, Histogram.step)
        )
        for layer, kind, step, edges, counts in _stream(session, statement):
            for i, count in enumerate(counts):
                yield (*run.prefix, layer, kind, step, i, edges[i], edges[i + 1], count)


def csv_stream(database_url: str, runs: list[RunRef], which: str) -> Iterator[str]:
    """The CSV text in chunks, read in a session of its own that lives as long as the stream."""
    session = get_sessionmaker(database_url)()
    try:
        if which == "metrics":
            yield from _chunks(METRIC_HEADER, metric_rows(session, runs))
        else:
            yield from _chunks(HISTOGRAM_HEADER, histogram_rows(session, runs))
    finally:
        session.close()
