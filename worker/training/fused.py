"""Every seed of a group and every variant at once: members of one shape trained as one model.

Member by member, the loop trains seed after seed, each variant on its own; most of a small
net's step is Python and dispatch. Here the members of one shape (stacked.Family) take one
batched step together, and each member sees exactly what it would alone: its seed's data order,
and dropout masks drawn from its seed's generator in the order the member-by-member loop draws
them (variant after variant, layer after layer), so on the CPU each member's losses, metrics and
histograms equal member-by-member training's to float tolerance. Probed layer outputs are
split per member from a stacked forward (the update's own in train mode, one more in eval
mode), and so are evaluations and fitted curves (fused_eval); weight and gradient probes run on
each member's own net, refreshed from the stacked tensors when they are due.

Specs it cannot hold (noisy BatchNorm, the optimisation probes, `training.fuse: false`, or no
two members of one shape) take the member-by-member loop.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch

from shared.spec import ExperimentSpec
from shared.status import RunStatus
from worker.training import fused_eval
from worker.training.lockstep import Member, build_members
from worker.training.masks import MaskDrawer
from worker.training.models import Net, build_group, derive_seed
from worker.training.probes import Outputs, Prober
from worker.training.recorder import Recorder
from worker.training.stacked import Drop, Family, Seen, member_drops, net_signature

if TYPE_CHECKING:
    from worker.training.loop import _Seed, _Trainer

log = logging.getLogger(__name__)


def applies(spec: ExperimentSpec) -> bool:
    """Whether the spec trains fused: asked for, supported, and some family has two members."""
    p = spec.probes
    if not spec.training.fuse or any((p.landscape, p.ics, p.norms, p.unit_input)):
        return False
    from shared.datasets import CATALOG

    info = CATALOG[spec.dataset.name]
    nets = build_group([v.model for v in spec.variants], info.input_shape, info.num_outputs, 0)
    keys = []
    for variant, net in zip(spec.variants, nets, strict=True):
        signature = net_signature(net)
        if signature is None:
            return False
        keys.append((variant.normalize_inputs, signature))
    return len(set(keys)) < len(keys) * len(spec.training.seeds)


class FusedGroup:
    """All seeds of one train() call, as families of stacked members."""

    def __init__(self, trainer: _Trainer):
        from worker.training.loop import _Seed

        self.t = trainer
        spec, device = trainer.spec, trainer.device
        self.runs: list[_Seed] = []
        self.drop_gens: list[torch.Generator] = []
        grouped: dict[Any, list[Member]] = {}
        # member name -> (seed position, family key, index in family, dropouts)
        self.where: list[tuple[int, Member, Any, int, list[Drop]]] = []
        for index, seed in enumerate(spec.training.seeds):
            members = build_members(spec, seed, device)
            books = {m.name: trainer.books[(m.name, seed)] for m in members}
            prober = Prober(spec.probes)
            run = _Seed(index, members, prober, Recorder(books, prober), torch.Generator())
            run.generator.manual_seed(derive_seed(seed, 1))
            self.runs.append(run)
            self.drop_gens.append(torch.Generator(device).manual_seed(derive_seed(seed, 2)))
            for m in members:
                key = (m.normalize, net_signature(m.net))
                grouped.setdefault(key, []).append(m)
                self.where.append((index, m, key, len(grouped[key]) - 1, member_drops(m.net)))
        self.keys = list(grouped)
        t = spec.training
        shape = trainer.data.x_train.shape[1:]
        self.families = {k: Family(grouped[k], t, t.epochs, tuple(shape)) for k in self.keys}
        self.seed_rows = {
            k: torch.tensor([i for i, m, key, _, _ in self.where if key == k], device=device)
            for k in self.keys
        }
        order = list(range(len(self.runs)))
        self.seed_order = {k: rows.tolist() == order for k, rows in self.seed_rows.items()}
        self.pending: dict[Any, list[torch.Tensor]] = {k: [] for k in self.keys}
        self.epoch, self.step_in_epoch = 0, 0
        self.orders: list[torch.Tensor] = [torch.empty(0, dtype=torch.long)] * len(self.runs)
        self.active: set[tuple[int, str]] = set()
        placed = [(i, key, slot, drops) for i, _, key, slot, drops in self.where]
        self.masks = MaskDrawer(self.families, placed, self.drop_gens, device)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, position: dict[str, Any] | None) -> None:
        """Train every seed from the start, or from a fused checkpoint's position."""
        t = self.t
        resumed_epoch = None
        if position is None:
            for run in self.runs:
                for book in run.recorder.books.values():
                    book.status = RunStatus.running
                t._points_curves(run)
        else:
            self._load(position)
            resumed_epoch = self.epoch
        self.active = {
            (i, m.name) for i, m, *_ in self.where if self._book(i, m).status == RunStatus.running
        }
        spec, spe = t.spec.training, t.spe
        for epoch in range(self.epoch, spec.epochs):
            if not self.active:
                break
            if epoch != resumed_epoch:
                self.epoch, self.step_in_epoch = epoch, 0
                self.orders = [t._order(run.generator) for run in self.runs]
            for k in range(self.step_in_epoch, spe):
                if not self.active:
                    break
                if t.sink.should_stop():
                    t.cancelled = True
                    self._flush()
                    for run in self.runs:
                        t._settle(run.recorder.books, epoch * spe + k)
                    return
                self._step(k, epoch * spe + k + 1)
                self.step_in_epoch = k + 1
                if self._due_flush():
                    self._flush()
            self._end_epoch(epoch)
            for family in self.families.values():
                if family.scheduler is not None:
                    family.scheduler.step()
        self._finish()

    def _book(self, index: int, member: Member) -> Any:
        return self.runs[index].recorder.books[member.name]

    def _is_active(self, index: int, member: Member) -> bool:
        return (index, member.name) in self.active

    def _step(self, k: int, step: int) -> None:
        t = self.t
        batch = None if t.spe == 1 else [o[k * t.batch : (k + 1) * t.batch] for o in self.orders]
        active = tuple(self._is_active(i, m) for i, m, *_ in self.where)
        masks = self.masks.draw(t.batch if batch is None else len(batch[0]), active)
        gathered: dict[Any, torch.Tensor] = {}  # each seed's batch, gathered once per source
        due = [run for run in self.runs if run.prober.due(step)]
        from_step = bool(due) and t.spec.probes.mode == "train"  # the update's own forward
        seen: dict[Any, list[Seen]] = {}
        for key, family in self.families.items():
            normalize = key[0]
            data = t.normalized if normalize else t.data
            rows = None if self.seed_order[key] else self.seed_rows[key]
            if batch is None:
                size = (family.size, *data.x_train.shape)
                x = data.x_train.unsqueeze(0).expand(size)
                y = t.data.y_train.unsqueeze(0).expand(family.size, *t.data.y_train.shape)
            else:
                x = self._gather(gathered, normalize, data.x_train, batch, rows)
                y = self._gather(gathered, None, t.data.y_train, batch, rows)
            family.optimizer.zero_grad(set_to_none=True)
            seen[key] = []
            out = family.forward(x, masks.get(key, {}), True, seen[key] if from_step else None)
            losses = self._losses(out, y)
            losses.sum().backward()
            family.optimizer.step()
            self.pending[key].append(losses.detach())
            if due and not from_step:
                with torch.no_grad():  # eval mode: one stacked forward after the update
                    family.forward(x, {}, False, seen[key])
        if due:
            self._capture(due, seen, step)
        if step % _check_every() == 0:
            self._drain()
            self._check_divergence()

    def _gather(
        self,
        gathered: dict[Any, torch.Tensor],
        source: Any,
        values: torch.Tensor,
        batch: list[torch.Tensor],
        rows: torch.Tensor | None,
    ) -> torch.Tensor:
        """(members, batch, ...) of values: each member's seed's batch."""
        if source not in gathered:
            seeds = values.index_select(0, torch.cat(batch))  # faster than values[2-d index]
            gathered[source] = seeds.view(len(batch), -1, *values.shape[1:])
        every = gathered[source]
        if rows is None:  # the family holds one member of each seed, in seed order
            return every
        return every.index_select(0, rows)

    def _losses(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        m, b = out.shape[0], out.shape[1]
        if self.t.task == "classification":
            flat = torch.nn.functional.cross_entropy(
                out.reshape(m * b, -1), y.reshape(-1), reduction="none"
            )
            return flat.view(m, b).mean(dim=1)
        return torch.nn.functional.mse_loss(out, y, reduction="none").reshape(m, -1).mean(dim=1)

    def _capture(self, due: list[_Seed], seen: dict[Any, list[Seen]], step: int) -> None:
        """Probe each due seed's members, their layer outputs split from the stacked forward."""
        probes = self.t.spec.probes
        if probes.weights or probes.gradients:  # read from each member's own net
            for family in self.families.values():
                family.unstack(grads=probes.gradients)
        probed: dict[int, list[tuple[str, Net, Outputs]]] = {run.index: [] for run in due}
        for index, member, key, slot_index, _ in self.where:  # each seed's variants in order
            if index in probed and self._is_active(index, member):
                outputs = self.families[key].member_outputs(seen[key], slot_index)
                probed[index].append((member.name, member.net, outputs))
        for run in due:
            seed = self.t.spec.training.seeds[run.index]
            run.recorder.capture(run.prober.capture(seed, step, probed[run.index]))

    def _drain(self) -> None:
        """Hand the stacked losses to each seed's recorder, one value per active member."""
        for key, pending in self.pending.items():
            if not pending:
                continue
            columns = torch.stack(pending).t()
            self.pending[key] = []
            for index, member, k, slot_index, _ in self.where:
                if k == key and self._is_active(index, member):
                    self.runs[index].recorder.losses[member.name].extend(
                        columns[slot_index].unbind()
                    )

    def _check_divergence(self) -> None:
        for run in self.runs:
            names = [m.name for m in run.members if self._is_active(run.index, m)]
            for name, bad_step in run.recorder.find_divergence(names).items():
                book = run.recorder.books[name]
                book.status, book.diverged_step, book.first_bad = (
                    RunStatus.diverged,
                    bad_step,
                    bad_step,
                )
                log.warning("%s seed %d diverged at step %d", book.variant, book.seed, bad_step)
                self.active.discard((run.index, name))

    def _due_flush(self) -> bool:
        from worker.training.loop import MAX_PENDING

        waiting = max(len(p) for p in self.pending.values())
        elapsed = time.monotonic() - self.t.last_flush
        return elapsed >= self.t.config.flush_every_s or waiting >= MAX_PENDING

    def _flush(self, checkpoint: bool = True) -> None:
        t = self.t
        self._drain()
        for run in self.runs:
            run.recorder.flush(t.sink)
        done = (self.epoch * t.spe + self.step_in_epoch) * len(self.runs)
        t.sink.on_progress(done, t.total)
        t.last_flush = time.monotonic()
        if checkpoint and t.sink.wants_checkpoint():
            t.sink.on_checkpoint(self.checkpoint())

    def _end_epoch(self, epoch: int) -> None:
        spec = self.t.spec.training
        if (epoch + 1) % spec.eval_every and epoch + 1 != spec.epochs:
            return
        t = self.t
        step, regression = (epoch + 1) * t.spe, t.task == "regression"
        found: dict[Any, dict[str, Any]] = {}  # family key -> metric or "fit" -> (members,...)
        for key, family in self.families.items():
            data = t.normalized if key[0] else t.data
            loss, accuracy = fused_eval.evaluate(family, data.x_test, data.y_test, t.task)
            found[key] = {"test_loss": loss, "test_accuracy": accuracy}
            if regression:
                assert data.x_grid is not None
                found[key]["train_loss_eval"] = fused_eval.evaluate(
                    family, data.x_train, data.y_train, t.task
                )[0]
                found[key]["fit"] = fused_eval.predict(family, data.x_grid)
        grid = None if t.cpu_data.x_grid is None else t.cpu_data.x_grid[:, 0].tolist()
        for index, member, key, slot_index, _ in self.where:  # the loop's order of records
            if not self._is_active(index, member):
                continue
            recorder, values = self.runs[index].recorder, found[key]
            for name in ("test_loss", "test_accuracy", "train_loss_eval"):
                if values.get(name) is not None:
                    recorder.metric(member.name, name, step, values[name][slot_index])
            if regression:
                assert grid is not None
                fit = values["fit"][slot_index]
                recorder.curve(member.name, "fit", step, epoch + 1, grid, fit)

    def _finish(self) -> None:
        t = self.t
        self.epoch, self.step_in_epoch = t.spec.training.epochs, 0
        self._flush(checkpoint=False)
        for run in self.runs:
            t._settle(run.recorder.books, t.steps_per_seed)
            for book in run.recorder.books.values():
                if book.status == RunStatus.running:
                    book.status = RunStatus.succeeded
        t.sink.on_checkpoint(t.checkpoint(len(self.runs), None))

    def checkpoint(self) -> dict[str, Any]:
        """The trainer's checkpoint, its position the whole fused group's."""
        saved = self.t.checkpoint(0, None)
        saved["position"] = {
            "fused": {
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "orders": [o.cpu() for o in self.orders],
                "families": [self.families[k].state_dict() for k in self.keys],
                "data_generators": [run.generator.get_state() for run in self.runs],
                "drop_generators": [g.get_state() for g in self.drop_gens],
                "probes": [run.prober.state_dict() for run in self.runs],
            }
        }
        return saved

    def _load(self, position: dict[str, Any]) -> None:
        device = self.t.device
        self.epoch, self.step_in_epoch = position["epoch"], position["step_in_epoch"]
        self.orders = [o.to(device) for o in position["orders"]]
        for key, state in zip(self.keys, position["families"], strict=True):
            self.families[key].load_state_dict(state)
        for run, data, drop, probes in zip(
            self.runs,
            position["data_generators"],
            position["drop_generators"],
            position["probes"],
            strict=True,
        ):
            run.generator.set_state(data)
            self.drop_gens[run.index].set_state(drop)
            run.prober.load_state_dict(probes, device)
            run.recorder.start_at(self.epoch * self.t.spe + self.step_in_epoch + 1)


def _check_every() -> int:
    from worker.training.loop import CHECK_EVERY

    return CHECK_EVERY
