"""Holds a seed's results on the device and hands them to the sink in one transfer per flush."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from shared.status import RunStatus
from worker.training.probes import PendingCapture, Prober
from worker.training.sink import CurvePoint, MetricPoint, Sink

TAIL = 10  # final_train_loss is the mean of the last TAIL steps


@dataclass
class RunBook:
    """What the host knows of one (variant, seed) run; plain values, so it checkpoints as is."""

    variant: str
    seed: int
    status: RunStatus = RunStatus.pending
    steps: int = 0
    # First step whose loss reached the host non-finite; the run stops at the next check.
    first_bad: int | None = None
    diverged_step: int | None = None
    tail: deque[float] = field(default_factory=lambda: deque(maxlen=TAIL))
    last: dict[str, float] = field(default_factory=dict)

    def accepts(self, step: int) -> bool:
        """Whether a value at `step` may be reported (nothing from the diverged step on)."""
        return self.first_bad is None or step < self.first_bad

    def summary(self) -> dict[str, Any]:
        """final_train_loss (mean of the last steps), the last evaluation, and the step count."""
        final = sum(self.tail) / len(self.tail) if self.tail else None
        return {"final_train_loss": final, **self.last, "steps": self.steps}

    def to_dict(self) -> dict[str, Any]:
        """A checkpointable copy (plain types only: checkpoints load with weights_only)."""
        copy = {**self.__dict__, "tail": list(self.tail), "last": dict(self.last)}
        return {**copy, "status": str(self.status)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> RunBook:
        """Inverse of to_dict."""
        tail = deque(state["tail"], maxlen=TAIL)
        return cls(**{**state, "tail": tail, "status": RunStatus(state["status"])})


@dataclass
class _Curve:
    book: RunBook
    key: str
    step: int
    epoch: int
    x: list[float]
    y: torch.Tensor


class Recorder:
    """Losses, evaluations, curves and captures of one seed, pending on the device."""

    def __init__(self, books: dict[str, RunBook], prober: Prober):
        self.books, self.prober = books, prober
        self.losses: dict[str, list[torch.Tensor]] = {name: [] for name in books}
        self.loss_start: dict[str, int] = {name: 1 for name in books}
        self.checked: dict[str, int] = {name: 0 for name in books}
        self.evals: list[tuple[RunBook, str, int, torch.Tensor, bool]] = []
        self.curves: list[_Curve] = []
        self.captures: list[PendingCapture] = []

    def start_at(self, step: int) -> None:
        """The next loss recorded for each run is that of update `step`."""
        self.loss_start = {name: step for name in self.books}

    def loss(self, variant: str, value: torch.Tensor) -> None:
        """Record the next step's training loss of a run."""
        self.losses[variant].append(value)

    def metric(
        self, variant: str, key: str, step: int, value: torch.Tensor, summary: bool = True
    ) -> None:
        """Record a scalar; `summary`: its last value goes into the run's summary."""
        self.evals.append((self.books[variant], key, step, value, summary))

    def curve(
        self, variant: str, key: str, step: int, epoch: int, x: list[float], y: torch.Tensor
    ) -> None:
        """Record a curve (x known on the host, y on the device)."""
        self.curves.append(_Curve(self.books[variant], key, step, epoch, x, y))

    def capture(self, pending: PendingCapture) -> None:
        """Record a probe capture."""
        self.captures.append(pending)

    @property
    def pending_steps(self) -> int:
        """Most losses waiting in any run."""
        return max((len(v) for v in self.losses.values()), default=0)

    def find_divergence(self, variants: list[str]) -> dict[str, int]:
        """First non-finite step of each given run, looking at losses not yet checked (syncs)."""
        found: dict[str, int] = {}
        for name in variants:
            first_bad = self.books[name].first_bad
            if first_bad is not None:
                found[name] = first_bad
        firsts = []
        for name in variants:
            fresh = self.losses[name][self.checked[name] :]
            if not fresh:
                continue
            bad = ~torch.isfinite(torch.stack(fresh))
            offset = self.loss_start[name] + self.checked[name]
            firsts.append((name, torch.where(bad.any(), bad.int().argmax() + offset, -1)))
            self.checked[name] = len(self.losses[name])
        if firsts:
            values = torch.stack([f for _, f in firsts]).tolist()
            for (name, _), step in zip(firsts, values, strict=True):
                if step >= 0 and name not in found:
                    found[name] = step
        return found

    def flush(self, sink: Sink) -> None:
        """Move everything pending to the host in one transfer and hand the finite part to sink."""
        names = [n for n in self.losses if self.losses[n]]
        parts = [torch.stack(self.losses[n]).reshape(-1) for n in names]
        parts += [value.reshape(-1) for _, _, _, value, _ in self.evals]
        parts += [c.y.reshape(-1) for c in self.curves]
        decode = None
        if self.captures:
            rows, decode = self.prober.finish(self.captures)
            parts.append(rows)
        host = np.empty(0)
        if parts:
            host = torch.cat([p.double() for p in parts]).cpu().numpy()
        offset = 0
        points: list[MetricPoint] = []
        for name in names:
            values, book = host[offset : offset + len(self.losses[name])], self.books[name]
            offset += len(values)
            for step, value in enumerate(values.tolist(), start=self.loss_start[name]):
                if book.accepts(step) and math.isfinite(value):
                    points.append(MetricPoint(book.variant, book.seed, "train_loss", step, value))
                    book.tail.append(value)
                elif book.first_bad is None:
                    book.first_bad = step
            self.loss_start[name] += len(values)
            self.losses[name], self.checked[name] = [], 0
        for book, key, step, _, summary in self.evals:
            value = float(host[offset])
            offset += 1
            if book.accepts(step) and math.isfinite(value):
                points.append(MetricPoint(book.variant, book.seed, key, step, value))
                if summary:
                    book.last[key] = value
        curves = []
        for c in self.curves:
            y = host[offset : offset + c.y.numel()]
            offset += len(y)
            if c.book.accepts(c.step) and np.isfinite(y).all():
                curves.append(
                    CurvePoint(c.book.variant, c.book.seed, c.key, c.step, c.epoch, c.x, y.tolist())
                )
        captures = []
        if decode is not None:
            decoded = decode(host[offset:])
            captures = [h for h in decoded if self.books[h.variant].accepts(h.step)]
        self.evals, self.curves, self.captures = [], [], []
        if points:
            sink.on_metrics(points)
        if curves:
            sink.on_curves(curves)
        if captures:
            sink.on_histograms(captures)
