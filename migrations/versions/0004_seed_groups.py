"""seed groups: the unit of work a worker claims; runs record their worker and device

Each existing experiment becomes one group holding all its seeds, with the claim bookkeeping
(worker, enqueue times, losses, checkpoint) moved from the experiment to that group.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# JSONB on PostgreSQL, JSON text elsewhere (as shared.models.JSON_TYPE).
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTCDateTime = sa.DateTime(timezone=True)

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOVED = ("enqueued_at", "enqueue_count", "worker", "worker_losses", "checkpoint")


def upgrade() -> None:
    op.create_table(
        "seed_groups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("experiment_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("seeds", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("heartbeat_at", UTCDateTime, nullable=True),
        sa.Column("enqueued_at", UTCDateTime, nullable=True),
        sa.Column("enqueue_count", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("worker_losses", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_seed_groups_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seed_groups")),
    )
    with op.batch_alter_table("seed_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seed_groups_experiment_id"), ["experiment_id"])
        batch_op.create_index(batch_op.f("ix_seed_groups_status"), ["status"])
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("worker", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("device", sa.String(length=128), nullable=True))
        batch_op.create_index(batch_op.f("ix_runs_group_id"), ["group_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_runs_group_id_seed_groups"),
            "seed_groups",
            ["group_id"],
            ["id"],
            ondelete="CASCADE",
        )
    move_claims_to_groups()
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        for column in MOVED:
            batch_op.drop_column(column)


def move_claims_to_groups() -> None:
    """One group per existing experiment, with all its seeds and its claim bookkeeping."""
    connection = op.get_bind()
    copied: tuple[str, ...] = ("status", "progress", "attempt", "error", "started_at")
    copied += ("finished_at", "heartbeat_at", *MOVED)
    experiments = sa.table(
        "experiments",
        sa.column("id", sa.Uuid()),
        sa.column("spec", JSON_TYPE),
        *map(sa.column, copied),
    )
    groups = sa.table(
        "seed_groups",
        sa.column("id", sa.Uuid()),
        sa.column("experiment_id", sa.Uuid()),
        sa.column("position"),
        sa.column("seeds", JSON_TYPE),
        *map(sa.column, copied),
    )
    runs = sa.table("runs", sa.column("experiment_id", sa.Uuid()), sa.column("group_id", sa.Uuid()))
    for row in connection.execute(sa.select(experiments)).mappings().all():
        group_id = uuid.uuid4()
        values = {k: v for k, v in row.items() if k not in ("id", "spec")}
        values["enqueue_count"] = values["enqueue_count"] or 0
        values["worker_losses"] = values["worker_losses"] or 0
        connection.execute(
            sa.insert(groups).values(
                id=group_id,
                experiment_id=row["id"],
                position=0,
                seeds=row["spec"]["training"]["seeds"],
                **values,
            )
        )
        connection.execute(
            sa.update(runs).where(runs.c.experiment_id == row["id"]).values(group_id=group_id)
        )


def downgrade() -> None:
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", UTCDateTime, nullable=True))
        batch_op.add_column(sa.Column("enqueue_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("worker", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("worker_losses", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("checkpoint", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_runs_group_id_seed_groups"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_runs_group_id"))
        for column in ("device", "worker", "group_id"):
            batch_op.drop_column(column)
    op.drop_table("seed_groups")
