"""TensorBoard event files of an experiment: one folder per run (`variant/seed-N`), with every
metric series as scalars and every histogram capture, zipped.

Imported only by the export route, when asked: the tensorboard package (protobuf and its event
writer) is never loaded for other requests. Scalars are written as float64 tensors, so that
values read back equal the API's exactly (a legacy `simple_value` is float32).
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from tensorboard.compat.proto import types_pb2
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from api.exports.tables import YIELD_PER, RunRef
from shared.db import get_sessionmaker
from shared.models import Histogram, Metric


def run_folder(run: RunRef) -> str:
    """`variant/seed-N`: how TensorBoard lists the run (variant names are path-safe by spec)."""
    return f"{run.variant}/seed-{run.seed}"


def histogram_tag(layer: str, kind: str) -> str:
    return f"{kind}s/{layer}" if not kind.endswith("s") else f"{kind}/{layer}"


def scalar_values(session: Session, run: RunRef) -> Iterator[Any]:
    """(key, step, value) of every metric point of the run."""
    statement = (
        select(Metric.key, Metric.step, Metric.value)
        .where(Metric.run_id == run.run_id)
        .order_by(Metric.key, Metric.step)
        .execution_options(yield_per=YIELD_PER)
    )
    yield from session.execute(statement)


def histogram_protos(session: Session, run: RunRef) -> Iterator[tuple[str, int, HistogramProto]]:
    """Each capture as TensorBoard's histogram: the first edge as an empty bucket, then the bins."""
    statement = (
        select(Histogram)
        .where(Histogram.run_id == run.run_id)
        .order_by(Histogram.layer, Histogram.kind, Histogram.step)
        .execution_options(yield_per=YIELD_PER)
    )
    for h in session.scalars(statement):
        stats: dict[str, Any] = h.stats or {}
        count = float(stats.get("count", sum(h.counts)))
        mean = float(stats.get("mean") or 0.0)
        std = float(stats.get("std") or 0.0)
        proto = HistogramProto(
            min=float(stats.get("min", h.edges[0])),
            max=float(stats.get("max", h.edges[-1])),
            num=count,
            sum=mean * count,
            sum_squares=count * (std * std + mean * mean),
            bucket_limit=list(h.edges),
            bucket=[0.0, *(float(c) for c in h.counts)],
        )
        yield histogram_tag(h.layer, h.kind), h.step, proto


def write_run(session: Session, run: RunRef, folder: Path, wall_time: float) -> None:
    """One run's event file."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(folder), max_queue_size=1000, flush_secs=3600)
    described: set[str] = set()
    try:
        for key, step, value in scalar_values(session, run):
            tensor = TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[value])
            summary = Summary.Value(tag=key, tensor=tensor)
            if key not in described:  # TensorBoard needs the plugin named once per tag
                described.add(key)
                summary.metadata.CopyFrom(scalar_metadata.create_summary_metadata("", ""))
            event = Event(wall_time=wall_time, step=step, summary=Summary(value=[summary]))
            writer.add_event(event)
        for tag, step, proto in histogram_protos(session, run):
            summary = Summary(value=[Summary.Value(tag=tag, histo=proto)])
            writer.add_event(Event(wall_time=wall_time, step=step, summary=summary))
    finally:
        writer.close()


def write_zip(database_url: str, runs: list[RunRef], wall_time: float, target: Path) -> None:
    """Every run's event file under its folder, zipped into `target`."""
    session = get_sessionmaker(database_url)()
    try:
        with (
            tempfile.TemporaryDirectory() as scratch,
            zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive,
        ):
            root = Path(scratch)
            for run in runs:
                write_run(session, run, root / run_folder(run), wall_time)
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(root).as_posix())
    finally:
        session.close()
