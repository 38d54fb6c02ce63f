"""The hot reads, built for speed: an experiment's JSON and a run's metrics, as ready bytes.

Measured with wrk (bench/bench_reads.py), a read spent most of its time on database round
trips, ORM loading and validating the same data twice (once into the response model, once more
by FastAPI on the way out). Here:
- a finished experiment never changes, so its JSON is built once per process and kept (bounded
  LRU); every request still asks the database whether it exists, whose it is and its status
  (one primary-key lookup), so a deleted experiment is a 404 at once on every process;
- a run's metrics are one query: on PostgreSQL the database aggregates each series into JSON
  arrays (json_agg), and Python only joins the pieces; elsewhere
  the raw rows are read without the ORM and serialised once. A finished run's are then kept
  too, under the same existence, owner and status check;
- a cached plot asks only for the experiment's status (experiment_status) before it is served.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

from sqlalchemy import Text, cast, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session, selectinload

from shared.errors import NotFound
from shared.models import Experiment, Metric, Run
from shared.schemas import ExperimentPublic
from shared.status import ACTIVE, ExperimentStatus

# Per API process: a 100,000-point series is about 2 MB of JSON.
EXPERIMENTS_CACHE_BYTES = 16 * 1024 * 1024
METRICS_CACHE_BYTES = 64 * 1024 * 1024


class JsonCache:
    """Finished experiments' (or runs') JSON by key, least recently used out past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self.lock:
            body = self.entries.get(key)
            if body is not None:
                self.entries.move_to_end(key)
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        with self.lock:
            old = self.entries.pop(key, None)
            self.size -= len(old) if old is not None else 0
            if len(body) > self.max_bytes // 8:
                return
            self.entries[key] = body
            self.size += len(body)
            while self.size > self.max_bytes:
                _, dropped = self.entries.popitem(last=False)
                self.size -= len(dropped)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.size = 0


experiments_json = JsonCache(EXPERIMENTS_CACHE_BYTES)
metrics_cache = JsonCache(METRICS_CACHE_BYTES)


def not_found(what: str, key: uuid.UUID) -> NotFound:
    return NotFound(f"no {what} {key}")


def experiment_status(session: Session, experiment_id: uuid.UUID, owner: str) -> ExperimentStatus:
    """The status of the owner's experiment (one primary-key lookup), or 404."""
    found = session.scalar(
        select(Experiment.status).where(Experiment.id == experiment_id, Experiment.owner == owner)
    )
    if found is None:
        raise not_found("experiment", experiment_id)
    return found


def experiment_json(
    session: Session,
    experiment_id: uuid.UUID,
    owner: str,
    waiting: Callable[[Experiment], str | None] = lambda experiment: None,
) -> bytes:
    """The owner's experiment as the API's JSON (ExperimentPublic), or 404; `waiting` says what
    an unfinished one waits for (a finished one, served from the cache, waits for nothing)."""
    finished = experiment_status(session, experiment_id, owner) not in ACTIVE
    if finished:
        cached = experiments_json.get(experiment_id)
        if cached is not None:
            return cached
    experiment = session.scalar(
        select(Experiment)
        .where(Experiment.id == experiment_id, Experiment.owner == owner)
        .options(selectinload(Experiment.runs), selectinload(Experiment.groups))
    )
    if experiment is None:
        raise not_found("experiment", experiment_id)
    view = ExperimentPublic.model_validate(experiment)
    view.waiting = waiting(experiment)
    body = view.model_dump_json().encode()
    if experiment.status not in ACTIVE:
        experiments_json.put(experiment_id, body)
    return body


def metrics_json(
    session: Session,
    run_id: uuid.UUID,
    owner: str,
    keys: Sequence[str] = (),
    since_step: int | None = None,
) -> bytes:
    """The owner's run's metric series as the API's JSON (MetricsPublic), or 404."""
    owned = (
        select(Experiment.status)
        .join(Run, Run.experiment_id == Experiment.id)
        .where(Run.id == run_id, Experiment.owner == owner)
    )
    found = session.scalar(owned)
    if found is None:
        raise not_found("run", run_id)
    key = (run_id, tuple(keys), since_step)
    finished = found not in ACTIVE
    if finished:
        cached = metrics_cache.get(key)
        if cached is not None:
            return cached
    body = read_metrics_json(session, run_id, keys, since_step)
    if finished:
        metrics_cache.put(key, body)
    return body


def read_metrics_json(
    session: Session, run_id: uuid.UUID, keys: Sequence[str], since_step: int | None
) -> bytes:
    """A run's metric series, as MetricsPublic's JSON, straight from the rows."""
    conditions = [Metric.run_id == run_id]
    if keys:
        conditions.append(Metric.key.in_(keys))
    if since_step is not None:
        conditions.append(Metric.step > since_step)
    parts: list[str] = []
    if session.get_bind().dialect.name == "postgresql":
        # ORDER BY inside the aggregate: the only order PostgreSQL promises for its input.
        query = (
            select(
                Metric.key,
                # As text: the driver would otherwise parse the arrays only for us to write them.
                cast(func.json_agg(aggregate_order_by(Metric.step, Metric.step)), Text),
                cast(func.json_agg(aggregate_order_by(Metric.value, Metric.step)), Text),
            )
            .where(*conditions)
            .group_by(Metric.key)
            .order_by(Metric.key)
        )
        for name, steps_json, values_json in session.execute(query):
            parts.append(f'{json.dumps(name)}:{{"steps":{steps_json},"values":{values_json}}}')
    else:
        rows = select(Metric.key, Metric.step, Metric.value).where(*conditions)
        series: dict[str, tuple[list[int], list[float]]] = {}
        for name, step, value in session.execute(rows.order_by(Metric.key, Metric.step)):
            steps_list, values_list = series.setdefault(name, ([], []))
            steps_list.append(step)
            values_list.append(value)
        parts = [
            f'{json.dumps(name)}:{{"steps":{json.dumps(s)},"values":{json.dumps(v)}}}'
            for name, (s, v) in series.items()
        ]
    return f'{{"run_id":"{run_id}","series":{{{",".join(parts)}}}}}'.encode()
