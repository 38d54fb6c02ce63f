"""What the training core takes from whoever runs it; never the service's settings or env."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.datasets import DataSources


@dataclass(frozen=True)
class TrainingConfig:
    """The core's knobs: the worker builds one from Settings, the command line from its flags."""

    # Where data set files are looked for, and whether missing ones may be downloaded.
    data: DataSources = field(default_factory=DataSources)
    # Metrics and histograms go to the sink at most this often (and whenever a seed ends).
    flush_every_s: float = 1.0
