"""The training core's sink, writing to the database: batched upserts, progress, checkpoints,
off the training thread (worker/writer.py)."""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import torch

from shared import lifecycle, results
from shared.config import Settings
from shared.db import session_scope
from shared.models import Curve, Histogram, Metric
from worker import fleet
from worker.heartbeat import report_step, shutdown_requested
from worker.timings import Timings
from worker.training.resolve import DatasetChoice
from worker.training.sink import CurvePoint, HistogramCapture, MetricPoint
from worker.writer import Writer

log = logging.getLogger(__name__)

# How often the database is asked whether the experiment was cancelled (off the training thread).
CANCEL_POLL_S = 0.2

# TEST ONLY: "STEP:SECONDS" makes training sleep SECONDS (default: an hour) once it has done
# step STEP, as a hung step would, while the heartbeat thread beats on. Read here, in the
# worker's glue, never by the training core; documented in the README as a test-only switch.
TEST_STALL_VARIABLE = "BNLAB_TEST_STALL_AT_STEP"


def _test_stall() -> tuple[int, float] | None:
    value = os.environ.get(TEST_STALL_VARIABLE, "").strip()
    if not value:
        return None
    step, _, seconds = value.partition(":")
    return int(step), float(seconds or 3600)


class DatabaseSink:
    """Receives the trainer's events and writes them for one seed group of an experiment."""

    def __init__(
        self,
        settings: Settings,
        group_id: uuid.UUID,
        runs: dict[tuple[str, int], uuid.UUID],
        worker: str,
        timings: Timings | None = None,
    ) -> None:
        self.url = settings.resolved_database_url
        # Where this delivery spends its time, on the training thread and the writer's.
        self.timings = timings or Timings()
        self.group_id = group_id
        self.worker = worker
        self.runs = runs
        self.checkpoint_every_s = settings.checkpoint_every_s
        self._last_checkpoint = time.monotonic()
        self._cancelled = False
        # Training progress for the heartbeat: the last step done, and the slowest step's time
        # (from one should_stop, before a step, to the next: evaluation and flushes included).
        self.step = 0
        self._stepping = False
        self._step_started: float | None = None
        self.slowest_step_s: float | None = None
        self._stall = _test_stall()
        self.interrupted = False
        # Another worker holds the experiment now: this one was presumed dead (a long pause, a
        # lost database connection) and its claim was given away. It must stop writing.
        self.lost = False
        self._pending: dict[type[Any], list[dict[str, Any]]] = {
            Metric: [],
            Histogram: [],
            Curve: [],
        }
        # Last: its thread starts polling at once, with everything above.
        self.writer = Writer(self.timings, between=self._poll, every_s=CANCEL_POLL_S)

    def _rows(self, items: Sequence[MetricPoint | HistogramCapture | CurvePoint]) -> list[dict]:
        """Table rows: the event's fields, with its (variant, seed) replaced by the run id."""
        rows = []
        for item in items:
            row = {f.name: getattr(item, f.name) for f in fields(item)}
            row["run_id"] = self.runs[(row.pop("variant"), row.pop("seed"))]
            rows.append(row)
        return rows

    def on_dataset(self, choice: DatasetChoice) -> None:
        with self.timings.phase("dataset_record"), session_scope(self.url) as session:
            held = lifecycle.record_dataset(session, self.group_id, self.worker, choice.to_dict())
        self.lost = self.lost or not held

    # The trainer ends every flush with on_progress: rows are held until then and written with
    # the progress in one transaction, one commit per flush rather than four, on the writer's
    # thread (worker/writer.py) while training goes on.
    def on_metrics(self, points: Sequence[MetricPoint]) -> None:
        self._pending[Metric].extend(self._rows(points))

    def on_histograms(self, captures: Sequence[HistogramCapture]) -> None:
        self._pending[Histogram].extend(self._rows(captures))

    def on_curves(self, curves: Sequence[CurvePoint]) -> None:
        self._pending[Curve].extend(self._rows(curves))

    def on_progress(self, done: int, total: int) -> None:
        # `done` counts every step of the group, so a resumed run reports from its checkpoint.
        self.step, self._stepping = done, False
        report_step(self.step, self.slowest_step_s)
        pending, progress, step = self._pending, done / max(total, 1), self.step
        slowest = self.slowest_step_s
        self._pending = {Metric: [], Histogram: [], Curve: []}

        def write() -> None:
            with session_scope(self.url) as session:
                held = lifecycle.stamp(session, self.group_id, self.worker, progress, step, slowest)
                if not held:
                    self.lost = True
                    return
                for model, rows in pending.items():
                    results.upsert(session, model, rows)
            fleet.count_stored(sum(row["key"] == "train_loss" for row in pending[Metric]))

        self.writer.submit(write)

    def wants_checkpoint(self) -> bool:
        # Rows after a checkpoint are replayed on resume and upserted over themselves, so a
        # checkpoint every few seconds is as exact as one per flush, and much cheaper.
        return self.stopping or time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        self._last_checkpoint = time.monotonic()
        # Serialised here: the state's tensors are the live ones, which the next step changes.
        with self.timings.phase("checkpoints"):
            buffer = io.BytesIO()
            torch.save(state, buffer)
        blob = buffer.getvalue()

        def write() -> None:
            with session_scope(self.url) as session:
                held = lifecycle.store_checkpoint(session, self.group_id, self.worker, blob)
            self.lost = self.lost or not held

        self.writer.submit(write)

    def close(self) -> None:
        """Wait for every write to be stored (before the outcome is); raises a failed write's
        error."""
        self.writer.close()

    @property
    def stopping(self) -> bool:
        return self._cancelled or self.interrupted or self.lost

    def _note_step(self) -> None:
        """Called before every step: the one before it is done (unless a flush said so)."""
        now = time.monotonic()
        if self._step_started is not None:
            took = now - self._step_started
            self.slowest_step_s = max(self.slowest_step_s or 0.0, took)
        self._step_started = now
        if self._stepping:
            self.step += 1
        self._stepping = True
        report_step(self.step, self.slowest_step_s)
        if self._stall is not None and self.step == self._stall[0]:
            log.warning("TEST ONLY (%s): stalling at step %d", TEST_STALL_VARIABLE, self.step)
            time.sleep(self._stall[1])
            self._stall = None
            self._step_started = time.monotonic()  # a test's stall is no measure of a step

    def should_stop(self) -> bool:
        if "first_step" not in self.timings.at:
            self.timings.mark("first_step")  # data set and models ready
        self._note_step()
        if shutdown_requested():
            self.interrupted = True
            return True
        return self._cancelled or self.lost

    def _poll(self) -> None:
        """On the writer's thread (worker/writer.py): cancelled? still held by this worker?"""
        with session_scope(self.url) as session:
            cancel, held = lifecycle.poll(session, self.group_id, self.worker)
        self._cancelled = cancel
        self.lost = self.lost or not held

    @property
    def cancelled(self) -> bool:
        return self._cancelled
