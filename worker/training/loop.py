"""The training loop: variants in lockstep on the same batches, one seed after another."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from shared.spec import ExperimentSpec
from shared.status import ExperimentStatus, RunStatus
from worker.training import fused
from worker.training.config import TrainingConfig
from worker.training.data import load_dataset
from worker.training.lockstep import (
    Member,
    build_members,
    evaluate,
    group_state,
    load_group_state,
    loss_function,
    predict,
    resolve_device,
    rng_state,
    set_rng_state,
    train_step,
)
from worker.training.models import derive_seed
from worker.training.optics import OptimisationProbes
from worker.training.probes import Prober
from worker.training.recorder import Recorder, RunBook
from worker.training.resolve import DatasetChoice, resolve_dataset
from worker.training.sink import Sink

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
# Divergence is acted on only at these step multiples, never at wall-clock-timed flushes, so a
# run that stops changes the others' dropout RNG draws at the same step in every replay.
CHECK_EVERY = 20
# Losses kept on the device before a flush is forced, whatever the time.
MAX_PENDING = 4096


@dataclass(frozen=True)
class RunOutcome:
    """How one (variant, seed) run ended."""

    variant: str
    seed: int
    status: RunStatus  # succeeded | diverged | cancelled
    diverged_step: int | None
    summary: dict[str, Any]


@dataclass(frozen=True)
class TrainResult:
    """Every run's outcome; status is "cancelled" if the sink stopped training, else "succeeded"."""

    status: ExperimentStatus
    device: str
    runs: list[RunOutcome]
    dataset: DatasetChoice | None = None


@dataclass
class _Seed:
    """One seed's lockstep group and where it stands: the next update is step_in_epoch + 1."""

    index: int
    members: list[Member]
    prober: Prober
    recorder: Recorder
    generator: torch.Generator  # data order
    epoch: int = 0
    step_in_epoch: int = 0
    order: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    optics: OptimisationProbes | None = None


class _Trainer:
    """State of one train() call; methods are the phases of the loop."""

    def __init__(
        self,
        spec: ExperimentSpec,
        sink: Sink,
        device: torch.device,
        config: TrainingConfig,
        dataset: str | None = None,
    ):
        self.spec, self.sink, self.device, self.config = spec, sink, device, config
        used, self.dataset = resolve_dataset(spec.dataset, config.data, only=dataset)
        if self.dataset.reason:
            log.warning("%s trains on %s: %s", spec.name, used.name, self.dataset.reason)
        sink.on_dataset(self.dataset)
        self.cpu_data = load_dataset(used, config.data)
        self.data = self.cpu_data.to_device(device)
        normalize = any(v.normalize_inputs for v in spec.variants)
        self.normalized = self.data.normalized() if normalize else self.data
        self.task = self.data.task
        self.loss_fn = loss_function(self.task)
        t = spec.training
        self.n_train = len(self.data.x_train)
        self.batch = self.n_train if t.batch_size is None else min(t.batch_size, self.n_train)
        self.spe = t.steps_per_epoch(self.n_train)
        self.steps_per_seed = t.epochs * self.spe
        self.total = self.steps_per_seed * len(t.seeds)
        self.books = {(v.name, s): RunBook(v.name, s) for s in t.seeds for v in spec.variants}
        self.last_flush = time.monotonic()
        self.cancelled = False

    def _order(self, generator: torch.Generator) -> torch.Tensor:
        if self.spec.training.shuffle and self.spe > 1:
            return torch.randperm(self.n_train, generator=generator).to(self.device)
        return torch.arange(self.n_train, device=self.device)

    def run_seed(self, index: int, position: dict[str, Any] | None) -> None:
        """Train one seed's group from its start, or from a checkpoint's position."""
        seed = self.spec.training.seeds[index]
        members = build_members(self.spec, seed, self.device)
        books = {m.name: self.books[(m.name, seed)] for m in members}
        prober = Prober(self.spec.probes)
        run = _Seed(index, members, prober, Recorder(books, prober), torch.Generator())
        tests = {False: self.data.x_test, True: self.normalized.x_test}
        run.optics = OptimisationProbes.of(self.spec.probes, self.loss_fn, tests)
        resumed_epoch = None
        if position is None:
            run.generator.manual_seed(derive_seed(seed, 1))
            torch.manual_seed(derive_seed(seed, 2))  # dropout draws
            for book in books.values():
                book.status = RunStatus.running
            self._points_curves(run)
        else:
            load_group_state(members, position["group"])
            run.generator.set_state(position["data_generator"])
            set_rng_state(position["rng"], self.device)
            prober.load_state_dict(position["probes"], self.device)
            run.epoch, run.step_in_epoch = position["epoch"], position["step_in_epoch"]
            run.order = position["order"].to(self.device)  # a resumed epoch keeps its order
            resumed_epoch = run.epoch
            run.recorder.start_at(run.epoch * self.spe + run.step_in_epoch + 1)
        active = [m for m in members if books[m.name].status == RunStatus.running]
        for epoch in range(run.epoch, self.spec.training.epochs):
            if not active:
                break
            if epoch != resumed_epoch:
                run.epoch, run.step_in_epoch, run.order = epoch, 0, self._order(run.generator)
            for k in range(run.step_in_epoch, self.spe):
                if not active:
                    break
                if self.sink.should_stop():
                    self.cancelled = True
                    self._flush(run)
                    self._settle(books, epoch * self.spe + k)
                    return
                active = self._step(run, active, k, epoch * self.spe + k + 1)
                run.step_in_epoch = k + 1
                if (
                    time.monotonic() - self.last_flush >= self.config.flush_every_s
                    or run.recorder.pending_steps >= MAX_PENDING
                ):
                    self._flush(run)
            self._end_epoch(run.recorder, active, epoch)
            for m in active:
                if m.scheduler is not None:
                    m.scheduler.step()
        self._finish_seed(run)

    def _step(self, run: _Seed, active: list[Member], k: int, step: int) -> list[Member]:
        index = None if self.spe == 1 else run.order[k * self.batch : (k + 1) * self.batch]
        inputs = {}  # raw and/or standardised batch, gathered once for all variants
        for m in active:
            data = self.normalized if m.normalize else self.data
            if m.normalize not in inputs:
                x = data.x_train
                inputs[m.normalize] = x if index is None else x.index_select(0, index)
        y = self.data.y_train if index is None else self.data.y_train.index_select(0, index)
        due = run.prober.due(step)
        from_step = due and self.spec.probes.mode == "train"  # the update's own forward
        probed = []
        for m in active:
            loss, outputs = train_step(m, inputs[m.normalize], y, self.loss_fn, from_step)
            run.recorder.loss(m.name, loss)
            if due:
                if not from_step:
                    outputs = run.prober.layer_outputs(m.net, inputs[m.normalize])
                probed.append((m.name, m.net, outputs))
        if due:
            seed = self.spec.training.seeds[run.index]
            run.recorder.capture(run.prober.capture(seed, step, probed))
        if run.optics is not None and run.optics.due(step):
            run.optics.measure(step, active, inputs, y, run.recorder)
        if step % CHECK_EVERY == 0:
            diverged = run.recorder.find_divergence([m.name for m in active])
            for name, bad_step in diverged.items():
                book = run.recorder.books[name]
                book.status, book.diverged_step, book.first_bad = (
                    RunStatus.diverged,
                    bad_step,
                    bad_step,
                )
                log.warning("%s seed %d diverged at step %d", book.variant, book.seed, bad_step)
            active = [m for m in active if m.name not in diverged]
        return active

    def _end_epoch(self, recorder: Recorder, active: list[Member], epoch: int) -> None:
        t = self.spec.training
        if (epoch + 1) % t.eval_every and epoch + 1 != t.epochs:
            return
        step = (epoch + 1) * self.spe
        for m in active:
            data = self.normalized if m.normalize else self.data
            loss, accuracy = evaluate(m.net, data.x_test, data.y_test, self.task)
            recorder.metric(m.name, "test_loss", step, loss)
            if accuracy is not None:
                recorder.metric(m.name, "test_accuracy", step, accuracy)
            if self.task == "regression":
                train_loss, _ = evaluate(m.net, data.x_train, data.y_train, self.task)
                recorder.metric(m.name, "train_loss_eval", step, train_loss)
                assert data.x_grid is not None and self.cpu_data.x_grid is not None
                grid = self.cpu_data.x_grid[:, 0].tolist()
                recorder.curve(m.name, "fit", step, epoch + 1, grid, predict(m.net, data.x_grid))

    def _points_curves(self, run: _Seed) -> None:
        if self.task != "regression":
            return
        # x from the host copy, y from the device: the flush moves every y in one transfer.
        cpu, data = self.cpu_data, self.data
        for m in run.members:
            for key, x, y in (
                ("train_points", cpu.x_train, data.y_train),
                ("test_points", cpu.x_test, data.y_test),
            ):
                run.recorder.curve(m.name, key, 0, 0, x[:, 0].tolist(), y[:, 0])

    def _finish_seed(self, run: _Seed) -> None:
        # Report the whole seed as done even when every run diverged early.
        run.epoch, run.step_in_epoch = self.spec.training.epochs, 0
        self._flush(run, checkpoint=False)
        self._settle(run.recorder.books, self.steps_per_seed)
        for book in run.recorder.books.values():
            if book.status == RunStatus.running:
                book.status = RunStatus.succeeded
        self.sink.on_checkpoint(self.checkpoint(run.index + 1, None))

    def _settle(self, books: dict[str, RunBook], done: int) -> None:
        """Step counts once a seed ends or stops; a non-finite loss seen by now means diverged."""
        for book in books.values():
            if book.first_bad is not None:
                book.status, book.diverged_step = RunStatus.diverged, book.first_bad
            book.steps = done if book.first_bad is None else min(done, book.first_bad - 1)

    def _flush(self, run: _Seed, checkpoint: bool = True) -> None:
        run.recorder.flush(self.sink)
        done = run.index * self.steps_per_seed + run.epoch * self.spe + run.step_in_epoch
        self.sink.on_progress(done, self.total)
        self.last_flush = time.monotonic()
        if checkpoint and self.sink.wants_checkpoint():
            self.sink.on_checkpoint(self.checkpoint(run.index, run))

    def checkpoint(self, seed_index: int, run: _Seed | None) -> dict[str, Any]:
        """Everything needed to resume exactly from here, as torch.save-able plain types."""
        position = None
        if run is not None:
            position = {
                "epoch": run.epoch,
                "step_in_epoch": run.step_in_epoch,
                "order": run.order.cpu(),
                "group": group_state(run.members),
                "data_generator": run.generator.get_state(),
                "rng": rng_state(self.device),
                "probes": run.prober.state_dict(),
            }
        return {
            "format": CHECKPOINT_FORMAT,
            "spec": self.spec.model_dump_json(),
            "seed_index": seed_index,
            "position": position,
            "dataset": self.dataset.used,
            "books": [b.to_dict() for b in self.books.values()],
        }

    def result(self) -> TrainResult:
        """Each run's outcome; runs a cancellation left unfinished are "cancelled"."""
        runs = []
        for book in self.books.values():
            if self.cancelled and book.status in (RunStatus.pending, RunStatus.running):
                book.status = RunStatus.cancelled
            outcome = (book.variant, book.seed, book.status, book.diverged_step, book.summary())
            runs.append(RunOutcome(*outcome))
        status = ExperimentStatus.cancelled if self.cancelled else ExperimentStatus.succeeded
        return TrainResult(status, str(self.device), runs, self.dataset)


def train(
    spec: ExperimentSpec,
    sink: Sink,
    *,
    device: str = "auto",
    resume: dict[str, Any] | None = None,
    config: TrainingConfig | None = None,
) -> TrainResult:
    """Train every variant of the spec in lockstep, once per seed, reporting to `sink`.

    The data set is resolved first (the spec's, else its fallback) and reported to the sink.
    """
    chosen = resolve_device(device if device != "auto" else spec.device)
    if resume is not None and (
        resume.get("format") != CHECKPOINT_FORMAT or resume.get("spec") != spec.model_dump_json()
    ):
        raise ValueError("checkpoint does not belong to this spec (or is of another format)")
    used = None if resume is None else resume.get("dataset")
    trainer = _Trainer(spec, sink, chosen, config or TrainingConfig(), used)
    start, position = 0, None
    if resume is not None:
        for saved in resume["books"]:
            book = RunBook.from_dict(saved)
            trainer.books[(book.variant, book.seed)] = book
        start, position = resume["seed_index"], resume["position"]
        log.info("resuming %s at seed %d", spec.name, start)
    if fused.applies(spec):
        if position is not None or start == 0:
            group = fused.FusedGroup(trainer)
            group.run(None if position is None else position["fused"])
        return trainer.result()
    for index in range(start, len(spec.training.seeds)):
        trainer.run_seed(index, position if index == start else None)
        if trainer.cancelled:
            break
    return trainer.result()
