"""The worker's glue between the service's settings and the training core's own config."""

from __future__ import annotations

from shared.config import Settings
from shared.datasets import DataSources
from worker.training.config import TrainingConfig


def training_config(settings: Settings) -> TrainingConfig:
    """What the core needs from the settings: data folders, downloads, flush period."""
    return TrainingConfig(
        DataSources(settings.data_dir, settings.datasets_dir, settings.allow_download),
        flush_every_s=settings.flush_every_s,
    )
