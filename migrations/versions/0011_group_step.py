"""a seed group's training step, when it last advanced, and its slowest step (stall detection)

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("seed_groups", sa.Column("step", sa.Integer(), nullable=True))
    op.add_column("seed_groups", sa.Column("step_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("seed_groups", sa.Column("slowest_step_s", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("seed_groups", "slowest_step_s")
    op.drop_column("seed_groups", "step_at")
    op.drop_column("seed_groups", "step")
