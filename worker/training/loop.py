"""The training loop: variants in lockstep on the same batches, one seed after another."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from shared.config import Settings, get_settings
from shared.spec import ExperimentSpec
from worker.training.data import Dataset, load_dataset
from worker.training.lockstep import (
    Member,
    build_members,
    evaluate,
    group_state,
    load_group_state,
    loss_function,
    predict,
    train_step,
)
from worker.training.models import derive_seed
from worker.training.probes import Prober
from worker.training.recorder import Recorder, RunBook
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
    status: str  # succeeded | diverged | cancelled
    diverged_step: int | None
    summary: dict[str, Any]


@dataclass(frozen=True)
class TrainResult:
    """Every run's outcome; status is "cancelled" if the sink stopped training, else "succeeded"."""

    status: str
    device: str
    runs: list[RunOutcome]


def resolve_device(requested: str) -> torch.device:
    """ "auto" is CUDA when there is one, else the CPU (decided here, never at import)."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but CUDA is not available here")
    return torch.device(requested)


def steps_per_epoch(n_train: int, batch_size: int | None) -> int:
    """Updates per epoch; the last partial batch is kept."""
    return 1 if batch_size is None else math.ceil(n_train / batch_size)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class _Trainer:
    """State of one train() call; methods are the phases of the loop."""

    def __init__(self, spec: ExperimentSpec, sink: Sink, device: torch.device, settings: Settings):
        self.spec, self.sink, self.device, self.settings = spec, sink, device, settings
        self.cpu_data = load_dataset(spec.dataset, settings)
        self.data = self.cpu_data.to_device(device)
        self.normalized: Dataset | None = None
        if any(v.normalize_inputs for v in spec.variants):
            self.normalized = self.data.normalized()
        self.task = self.data.task
        self.loss_fn = loss_function(self.task)
        t = spec.training
        self.n_train = len(self.data.x_train)
        self.batch = self.n_train if t.batch_size is None else min(t.batch_size, self.n_train)
        self.spe = steps_per_epoch(self.n_train, self.batch)
        self.steps_per_seed = t.epochs * self.spe
        self.total = self.steps_per_seed * len(t.seeds)
        self.books = {(v.name, s): RunBook(v.name, s) for s in t.seeds for v in spec.variants}
        self.last_flush = time.monotonic()
        self.cancelled = False

    # --- batches -------------------------------------------------------------------------
    def _order(self, generator: torch.Generator) -> torch.Tensor:
        if self.spec.training.shuffle and self.spe > 1:
            return torch.randperm(self.n_train, generator=generator).to(self.device)
        return torch.arange(self.n_train, device=self.device)

    def _inputs(self, data: Dataset, index: torch.Tensor | None) -> torch.Tensor:
        return data.x_train if index is None else data.x_train.index_select(0, index)

    # --- one seed --------------------------------------------------------------------------
    def run_seed(self, seed_index: int, position: dict[str, Any] | None) -> None:
        seed = self.spec.training.seeds[seed_index]
        members = build_members(self.spec, seed, self.device)
        books = {m.name: self.books[(m.name, seed)] for m in members}
        recorder = Recorder(books)
        prober = Prober(self.spec.probes)
        generator = torch.Generator()
        if position is None:
            generator.manual_seed(derive_seed(seed, 1))
            torch.manual_seed(derive_seed(seed, 2))  # dropout draws
            start_epoch, start_k, order = 0, 0, None
            for book in books.values():
                book.status = "running"
            self._points_curves(recorder, members)
        else:
            load_group_state(members, position["group"])
            generator.set_state(position["data_generator"])
            _set_rng_state(position["rng"], self.device)
            prober.load_state_dict(position["probes"], self.device)
            start_epoch, start_k = position["epoch"], position["step_in_epoch"]
            order = position["order"].to(self.device)
            recorder.start_at(start_epoch * self.spe + start_k + 1)
        active = [m for m in members if books[m.name].status == "running"]
        state = {
            "seed_index": seed_index,
            "members": members,
            "prober": prober,
            "generator": generator,
            "recorder": recorder,
        }
        for epoch in range(start_epoch, self.spec.training.epochs):
            if not active:
                break
            if epoch != start_epoch or start_k == 0:
                order = self._order(generator)
            first_k = start_k if epoch == start_epoch else 0
            state.update(epoch=epoch, order=order, step_in_epoch=first_k)
            for k in range(first_k, self.spe):
                if not active:
                    break
                if self.sink.should_stop():
                    self.cancelled = True
                    self._flush(state)
                    self._settle(books, epoch * self.spe + k)
                    return
                step = epoch * self.spe + k + 1
                active = self._step(state, active, k, step)
                state["step_in_epoch"] = k + 1
                if (
                    time.monotonic() - self.last_flush >= self.settings.flush_every_s
                    or recorder.pending_steps >= MAX_PENDING
                ):
                    self._flush(state)
            self._end_epoch(recorder, active, epoch)
            for m in active:
                if m.scheduler is not None:
                    m.scheduler.step()
        self._finish_seed(state, seed_index)

    def _step(self, state: dict[str, Any], active: list[Member], k: int, step: int) -> list[Member]:
        recorder: Recorder = state["recorder"]
        index = None if self.spe == 1 else state["order"][k * self.batch : (k + 1) * self.batch]
        y = self.data.y_train if index is None else self.data.y_train.index_select(0, index)
        x = self._inputs(self.data, index) if any(not m.normalize for m in active) else None
        xn = self._inputs(self.normalized, index) if self.normalized is not None else None
        for m in active:
            recorder.loss(m.name, train_step(m, xn if m.normalize else x, y, self.loss_fn))
        prober: Prober = state["prober"]
        if prober.due(step):
            batches = [(m.name, m.net, xn if m.normalize else x) for m in active]
            recorder.capture(prober.capture(self._seed(state), step, batches))
        if step % CHECK_EVERY == 0:
            diverged = recorder.find_divergence([m.name for m in active])
            for name, bad_step in diverged.items():
                self._mark_diverged(recorder.books[name], bad_step)
            active = [m for m in active if m.name not in diverged]
        return active

    def _mark_diverged(self, book: RunBook, step: int) -> None:
        book.status, book.diverged_step, book.first_bad = "diverged", step, step
        log.warning("%s seed %d diverged at step %d", book.variant, book.seed, step)

    def _seed(self, state: dict[str, Any]) -> int:
        return self.spec.training.seeds[state["seed_index"]]

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
                grid = self.cpu_data.x_grid[:, 0].tolist()
                recorder.curve(m.name, "fit", step, epoch + 1, grid, predict(m.net, data.x_grid))

    def _points_curves(self, recorder: Recorder, members: list[Member]) -> None:
        if self.task != "regression":
            return
        cpu = self.cpu_data
        for m in members:
            for key, x, y in (
                ("train_points", cpu.x_train, cpu.y_train),
                ("test_points", cpu.x_test, cpu.y_test),
            ):
                recorder.curve(m.name, key, 0, 0, x[:, 0].tolist(), y[:, 0])

    def _finish_seed(self, state: dict[str, Any], seed_index: int) -> None:
        # Report the whole seed as done even when every run diverged early.
        state.update(epoch=self.spec.training.epochs, step_in_epoch=0)
        self._flush(state, checkpoint=False)
        books = state["recorder"].books
        self._settle(books, self.steps_per_seed)
        for book in books.values():
            if book.status == "running":
                book.status = "succeeded"
        self.sink.on_checkpoint(self.checkpoint(seed_index + 1, None))

    def _settle(self, books: dict[str, RunBook], done: int) -> None:
        """Step counts once a seed ends or stops; a non-finite loss seen by now means diverged."""
        for book in books.values():
            if book.first_bad is not None:
                book.status, book.diverged_step = "diverged", book.first_bad
            book.steps = done if book.first_bad is None else min(done, book.first_bad - 1)

    # --- flush and checkpoint ------------------------------------------------------------------
    def _flush(self, state: dict[str, Any], checkpoint: bool = True) -> None:
        state["recorder"].flush(self.sink)
        done_here = state["epoch"] * self.spe + state["step_in_epoch"]
        self.sink.on_progress(state["seed_index"] * self.steps_per_seed + done_here, self.total)
        self.last_flush = time.monotonic()
        if checkpoint:
            self.sink.on_checkpoint(self.checkpoint(state["seed_index"], state))

    def checkpoint(self, seed_index: int, state: dict[str, Any] | None) -> dict[str, Any]:
        """Everything needed to resume exactly from here, as torch.save-able plain types."""
        position = None
        if state is not None:
            position = {
                "epoch": state["epoch"],
                "step_in_epoch": state["step_in_epoch"],
                "order": state["order"].cpu(),
                "group": group_state(state["members"]),
                "data_generator": state["generator"].get_state(),
                "rng": _rng_state(self.device),
                "probes": state["prober"].state_dict(),
            }
        return {
            "format": CHECKPOINT_FORMAT,
            "spec": self.spec.model_dump_json(),
            "seed_index": seed_index,
            "position": position,
            "books": [b.to_dict() for b in self.books.values()],
        }

    def result(self) -> TrainResult:
        runs = []
        for book in self.books.values():
            if self.cancelled and book.status in ("pending", "running"):
                book.status = "cancelled"
            runs.append(
                RunOutcome(book.variant, book.seed, book.status, book.diverged_step, book.summary())
            )
        status = "cancelled" if self.cancelled else "succeeded"
        return TrainResult(status, str(self.device), runs)


def train(
    spec: ExperimentSpec,
    sink: Sink,
    *,
    device: str = "auto",
    resume: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> TrainResult:
    """Train every variant of the spec in lockstep, once per seed, reporting to `sink`."""
    trainer = _Trainer(
        spec,
        sink,
        resolve_device(device if device != "auto" else spec.device),
        settings or get_settings(),
    )
    start, position = 0, None
    if resume is not None:
        if (
            resume.get("format") != CHECKPOINT_FORMAT
            or resume.get("spec") != spec.model_dump_json()
        ):
            raise ValueError("checkpoint does not belong to this spec (or is of another format)")
        for saved in resume["books"]:
            book = RunBook.from_dict(saved)
            trainer.books[(book.variant, book.seed)] = book
        start, position = resume["seed_index"], resume["position"]
        log.info("resuming %s at seed %d", spec.name, start)
    for seed_index in range(start, len(spec.training.seeds)):
        trainer.run_seed(seed_index, position if seed_index == start else None)
        if trainer.cancelled:
            break
    return trainer.result()
