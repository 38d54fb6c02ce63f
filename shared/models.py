"""ORM models: the database is the source of truth for every experiment and its results."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy import false as sa_false
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship

from shared.status import ExperimentStatus, RunStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
# Plain `json` on PostgreSQL too, for columns written in bulk and only ever read whole: storing
# jsonb means converting every number to PostgreSQL's numeric, which made a histogram flush
# take 11.6 ms where json took 4.4 (migration 0012).
JsonText = JSON()


def utcnow() -> datetime:
    """Now, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def status_column(kind: type[enum.StrEnum]) -> SAEnum:
    """A status column: VARCHAR(16) in the database, the enum member in Python."""
    return SAEnum(
        kind,
        native_enum=False,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(64), default="local")
    name: Mapped[str] = mapped_column(String(64))
    preset: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[ExperimentStatus] = mapped_column(
        status_column(ExperimentStatus), default=ExperimentStatus.queued, index=True
    )
    queue: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # The data set the worker really trained on: requested, used, source, where, reason.
    dataset: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The latest heartbeat of any of its seed groups.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A running experiment's groups are stopped by their workers, which then end them cancelled.
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Computed once when the experiment finishes; GET .../findings computes it live before that.
    findings: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # A point of a sweep: which sweep, its place in it, and its value on each axis.
    sweep_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), index=True
    )
    sweep_index: Mapped[int | None] = mapped_column(Integer)
    sweep_values: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # What the spec will store, estimated at submission (api/storage.py): owners' quotas add it up.
    estimated_rows: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    estimated_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    runs: Mapped[list[Run]] = relationship(
        back_populates="experiment", order_by="Run.position", cascade="all, delete-orphan"
    )
    groups: Mapped[list[SeedGroup]] = relationship(
        back_populates="experiment", order_by="SeedGroup.position", cascade="all, delete-orphan"
    )


class SeedGroup(Base):
    """Some of an experiment's seeds, all its variants: what one worker claims and trains.

    The experiment's status, progress, attempt and times are rolled up from its groups
    (shared.lifecycle), so an experiment with 8 seeds can train on 8 workers at once.
    """

    __tablename__ = "seed_groups"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    experiment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    seeds: Mapped[list[int]] = mapped_column(JsonType)
    status: Mapped[ExperimentStatus] = mapped_column(
        status_column(ExperimentStatus), default=ExperimentStatus.queued, index=True
    )
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the task was last sent, and how often: the reaper re-sends with growing gaps.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enqueue_count: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    # Times the reaper found its worker gone mid-run (killed, out of memory); hand-backs at a
    # clean shutdown do not count. At BNLAB_MAX_WORKER_LOSSES the group fails instead.
    worker_losses: Mapped[int] = mapped_column(Integer, default=0)
    # Training progress the heartbeat reports: the last step done, when it last advanced (the
    # claim counts as an advance), and the slowest step seen; a step stuck past the stall limit
    # (BNLAB_STALL_S) takes the group from its worker like a lost heartbeat.
    step: Mapped[int | None] = mapped_column(Integer)
    step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    slowest_step_s: Mapped[float | None] = mapped_column(Float)
    # Written at flush boundaries, so a resumed run never repeats or skips a stored step.
    checkpoint: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))

    experiment: Mapped[Experiment] = relationship(back_populates="groups")
    runs: Mapped[list[Run]] = relationship(back_populates="group", order_by="Run.position")


class Sweep(Base):
    """One base spec varied along axes: each point is an experiment of its own."""

    __tablename__ = "sweeps"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    # The sweep preset it came from, if any, and the base spec's own preset.
    preset: Mapped[str | None] = mapped_column(String(64))
    base_preset: Mapped[str | None] = mapped_column(String(64))
    base_spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # Dotted path -> values (grid) or a range (random), as submitted.
    axes: Mapped[dict[str, Any]] = mapped_column(JsonType)
    method: Mapped[str] = mapped_column(String(16))
    samples: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    points: Mapped[list[Experiment]] = relationship(order_by="Experiment.sweep_index")


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    experiment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[RunStatus] = mapped_column(status_column(RunStatus), default=RunStatus.queued)
    diverged_step: Mapped[int | None] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    group_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("seed_groups.id", ondelete="CASCADE"), index=True
    )
    # Who trained it last, and on what: "host:pid" and "cpu" or the CUDA device's name.
    worker: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(128))

    experiment: Mapped[Experiment] = relationship(back_populates="runs")
    group: Mapped[SeedGroup | None] = relationship(back_populates="runs")


class Metric(Base):
    """One scalar per (run, key, step): written in batches, upserted so a replay never doubles."""

    __tablename__ = "metrics"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class Histogram(Base):
    """One probe capture of one layer at one step."""

    __tablename__ = "histograms"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    layer: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    edges: Mapped[list[float]] = mapped_column(JsonText)
    counts: Mapped[list[int]] = mapped_column(JsonText)
    stats: Mapped[dict[str, Any]] = mapped_column(JsonText)


class Curve(Base):
    """A sampled curve (a regression fit, the data points) of one run at one step."""

    __tablename__ = "curves"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    x: Mapped[list[float]] = mapped_column(JsonType)
    y: Mapped[list[float]] = mapped_column(JsonType)


class WorkerBeat(Base):
    """The last sign of life of each worker process."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    queues: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The fleet view (worker/fleet.py writes them at each beat): where it runs, on what, what it
    # trains now, optimizer steps per second over the last beat and in all since it started.
    host: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(128))
    experiment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    steps_per_s: Mapped[float | None] = mapped_column(Float)
    steps_total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ApiToken(Base):
    """A bearer token. Only the SHA-256 of its secret part is stored; the id is not secret."""

    __tablename__ = "api_tokens"

    # Also the token's public prefix: the lookup key, so no query ever compares secrets.
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Refreshed at most once a minute, so reads do not turn into writes.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # None: never expires. A read-only token may only read (GET, HEAD, OPTIONS).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())


Index("ix_experiments_owner_created", Experiment.owner, Experiment.created_at)
Index("ix_sweeps_owner_created", Sweep.owner, Sweep.created_at)
