"""histograms' edges, counts and stats as json, not jsonb, on PostgreSQL (cheaper to write)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("edges", "counts", "stats")


def _retype(to: str) -> None:
    # SQLite keeps JSON as text whatever the declared type: nothing to change there.
    if op.get_bind().dialect.name != "postgresql":
        return
    changes = ", ".join(f"ALTER COLUMN {c} TYPE {to} USING {c}::{to}" for c in COLUMNS)
    op.execute(f"ALTER TABLE histograms {changes}")


def upgrade() -> None:
    _retype("json")


def downgrade() -> None:
    _retype("jsonb")
