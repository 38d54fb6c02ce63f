"""sweeps, and each experiment's place in its sweep

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0010"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("preset", sa.String(length=64), nullable=True),
        sa.Column("base_preset", sa.String(length=64), nullable=True),
        sa.Column("base_spec", JSON_TYPE, nullable=False),
        sa.Column("axes", JSON_TYPE, nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.create_index("ix_sweeps_owner_created", ["owner", "created_at"], unique=False)
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sweep_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("sweep_index", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sweep_values", JSON_TYPE, nullable=True))
        batch_op.create_index(batch_op.f("ix_experiments_sweep_id"), ["sweep_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_experiments_sweep_id_sweeps"),
            "sweeps",
            ["sweep_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_experiments_sweep_id_sweeps"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_experiments_sweep_id"))
        batch_op.drop_column("sweep_values")
        batch_op.drop_column("sweep_index")
        batch_op.drop_column("sweep_id")
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_index("ix_sweeps_owner_created")
    op.drop_table("sweeps")
