"""The pure PyTorch training core: a validated spec and a sink in, metrics and histograms out."""

from worker.training.loop import RunOutcome, TrainResult, train
from worker.training.sink import CurvePoint, HistogramCapture, MemorySink, MetricPoint, Sink

__all__ = [
    "CurvePoint",
    "HistogramCapture",
    "MemorySink",
    "MetricPoint",
    "RunOutcome",
    "Sink",
    "TrainResult",
    "train",
]
