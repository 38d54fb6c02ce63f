"""The training core's sink, writing to the database: batched upserts, progress, checkpoints."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Sequence
from typing import Any

import torch
from sqlalchemy import select, update

from shared import results
from shared.config import Settings
from shared.db import session_scope
from shared.models import Experiment, utcnow
from worker.heartbeat import shutdown_requested
from worker.training.sink import CurvePoint, HistogramCapture, MetricPoint

# How often the database is asked whether the experiment was cancelled.
CANCEL_POLL_S = 0.2


class DatabaseSink:
    """Receives the trainer's events and writes them for one experiment."""

    def __init__(
        self, settings: Settings, experiment_id: uuid.UUID, runs: dict[tuple[str, int], uuid.UUID]
    ) -> None:
        self.url = settings.resolved_database_url
        self.experiment_id = experiment_id
        self.runs = runs
        self.checkpoint_every_s = settings.checkpoint_every_s
        self._last_checkpoint = time.monotonic()
        self._last_poll = 0.0
        self._cancelled = False
        self.interrupted = False

    def _run_id(self, variant: str, seed: int) -> uuid.UUID:
        return self.runs[(variant, seed)]

    def on_metrics(self, points: Sequence[MetricPoint]) -> None:
        rows = [
            {
                "run_id": self._run_id(p.variant, p.seed),
                "key": p.key,
                "step": p.step,
                "value": p.value,
            }
            for p in points
        ]
        with session_scope(self.url) as session:
            results.write_metrics(session, rows)

    def on_histograms(self, captures: Sequence[HistogramCapture]) -> None:
        rows = [
            {
                "run_id": self._run_id(c.variant, c.seed),
                "layer": c.layer,
                "kind": c.kind,
                "step": c.step,
                "edges": c.edges,
                "counts": c.counts,
                "stats": c.stats,
            }
            for c in captures
        ]
        with session_scope(self.url) as session:
            results.write_histograms(session, rows)

    def on_curves(self, curves: Sequence[CurvePoint]) -> None:
        rows = [
            {
                "run_id": self._run_id(c.variant, c.seed),
                "key": c.key,
                "step": c.step,
                "epoch": c.epoch,
                "x": c.x,
                "y": c.y,
            }
            for c in curves
        ]
        with session_scope(self.url) as session:
            results.write_curves(session, rows)

    def on_progress(self, done: int, total: int) -> None:
        with session_scope(self.url) as session:
            session.execute(
                update(Experiment)
                .where(Experiment.id == self.experiment_id)
                .values(progress=min(1.0, done / max(total, 1)), heartbeat_at=utcnow())
            )

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        # Rows after a checkpoint are replayed on resume and upserted over themselves, so a
        # checkpoint every few seconds is as exact as one per flush, and much cheaper.
        now = time.monotonic()
        if now - self._last_checkpoint < self.checkpoint_every_s and not self.stopping:
            return
        self._last_checkpoint = now
        buffer = io.BytesIO()
        torch.save(state, buffer)
        with session_scope(self.url) as session:
            session.execute(
                update(Experiment)
                .where(Experiment.id == self.experiment_id)
                .values(checkpoint=buffer.getvalue())
            )

    @property
    def stopping(self) -> bool:
        return self._cancelled or self.interrupted

    def should_stop(self) -> bool:
        if shutdown_requested():
            self.interrupted = True
            return True
        now = time.monotonic()
        if now - self._last_poll >= CANCEL_POLL_S:
            self._last_poll = now
            with session_scope(self.url) as session:
                self._cancelled = bool(
                    session.scalar(
                        select(Experiment.cancel_requested).where(
                            Experiment.id == self.experiment_id
                        )
                    )
                )
        return self._cancelled

    @property
    def cancelled(self) -> bool:
        return self._cancelled
