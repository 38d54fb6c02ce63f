"""workers: host, device, what each trains, its speed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("device", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("experiment_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("steps_per_s", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("steps_total", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch_op:
        for column in ("steps_total", "steps_per_s", "experiment_id", "device", "host"):
            batch_op.drop_column(column)
