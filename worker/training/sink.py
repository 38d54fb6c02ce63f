"""What the training core reports, and to whom: row dataclasses and the Sink protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.training.resolve import DatasetChoice

QUANTILE_KEYS = ("0", "1", "5", "25", "50", "75", "95", "99", "100")


@dataclass(frozen=True)
class MetricPoint:
    """One scalar of one run at one step (`train_loss`, `test_loss`, `test_accuracy`, ...)."""

    variant: str
    seed: int
    key: str
    step: int
    value: float


@dataclass(frozen=True)
class HistogramCapture:
    """A histogram and summary statistics of one layer's values (or weights, or gradients).

    stats keys: count, mean, std, min, max, quantiles ("0".."100" -> value), zero_fraction,
    drift (Wasserstein-1 distance to the previous capture of the same layer, None on the first).
    """

    variant: str
    seed: int
    layer: str
    kind: str
    step: int
    edges: list[float]
    counts: list[int]
    stats: dict[str, Any]


@dataclass(frozen=True)
class CurvePoint:
    """A curve of one run: predictions (`fit`) or data points (`train_points`, `test_points`)."""

    variant: str
    seed: int
    key: str
    step: int
    epoch: int
    x: list[float]
    y: list[float]


class Sink(Protocol):
    """Receives everything a training run produces; a step may be re-sent after a resume."""

    def on_dataset(self, choice: DatasetChoice) -> None:
        """Once, before the first step: which data set is used, from where, and why."""
        ...

    def on_metrics(self, points: list[MetricPoint]) -> None: ...

    def on_histograms(self, captures: list[HistogramCapture]) -> None: ...

    def on_curves(self, curves: list[CurvePoint]) -> None: ...

    def on_progress(self, done: int, total: int) -> None:
        """Ends every flush, after its metrics, histograms and curves: a sink may commit here."""
        ...

    def wants_checkpoint(self) -> bool:
        """Whether to build a checkpoint at this flush (building one copies every state)."""
        ...

    def on_checkpoint(self, state: dict[str, Any]) -> None: ...

    def should_stop(self) -> bool: ...


@dataclass
class MemorySink:
    """Keeps everything in lists (the CLI and tests); only the latest checkpoint is kept."""

    metrics: list[MetricPoint] = field(default_factory=list)
    histograms: list[HistogramCapture] = field(default_factory=list)
    curves: list[CurvePoint] = field(default_factory=list)
    progress: list[tuple[int, int]] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None
    checkpoints: int = 0
    dataset: DatasetChoice | None = None
    # Tests resume from any flush; the benches turn this off, as the worker's sink checkpoints
    # only every few seconds (and when asked to stop), not at every flush.
    checkpoint_every_flush: bool = True

    def on_dataset(self, choice: DatasetChoice) -> None:
        """Keep the data set choice."""
        self.dataset = choice

    def on_metrics(self, points: list[MetricPoint]) -> None:
        """Append metric points."""
        self.metrics.extend(points)

    def on_histograms(self, captures: list[HistogramCapture]) -> None:
        """Append histogram captures."""
        self.histograms.extend(captures)

    def on_curves(self, curves: list[CurvePoint]) -> None:
        """Append curves."""
        self.curves.extend(curves)

    def on_progress(self, done: int, total: int) -> None:
        """Record progress."""
        self.progress.append((done, total))

    def wants_checkpoint(self) -> bool:
        """At every flush, unless told otherwise."""
        return self.checkpoint_every_flush

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        """Keep the latest checkpoint."""
        self.checkpoint = state
        self.checkpoints += 1

    def should_stop(self) -> bool:
        """Never asks to stop."""
        return False

    def series(self, variant: str, key: str, seed: int | None = None) -> list[tuple[int, float]]:
        """(step, value) pairs of one metric, in step order, last write of a step winning."""
        by_step = {
            p.step: p.value
            for p in self.metrics
            if p.variant == variant and p.key == key and (seed is None or p.seed == seed)
        }
        return sorted(by_step.items())
