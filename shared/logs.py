"""One logging set-up for every process."""

from __future__ import annotations

import logging
import os


def configure_logging() -> None:
    """Timestamps and logger names on stderr, at BNLAB_LOG_LEVEL (INFO by default)."""
    logging.basicConfig(
        level=os.environ.get("BNLAB_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
