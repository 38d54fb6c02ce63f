"""Shared check: `alembic upgrade head` on an empty database yields exactly the ORM's schema."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from scripts.stack import ROOT
from shared.db import make_engine
from shared.models import Base


def upgrade_and_diff(url: str) -> list[object]:
    """Migrate `url` to head, then list every difference from the ORM models."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    config.cmd_opts = None
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "head")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()
