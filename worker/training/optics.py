"""When the optimisation probes of landscape.py run, on what, and where their numbers go.

The training loop holds one of these only when the spec asks for a probe (`OptimisationProbes.of`
is None otherwise), so with the probes off the hot path pays one `is not None` per step.
"""

from __future__ import annotations

from typing import Any

import torch

from shared.spec import ProbeSpec
from worker.training import landscape as measures
from worker.training.lockstep import Member
from worker.training.recorder import Recorder


class OptimisationProbes:
    """The spec's landscape, ics, norms and unit_input probes, each on its own `every`."""

    def __init__(self, spec: ProbeSpec, loss_fn: Any, test_inputs: dict[bool, torch.Tensor]):
        self.spec, self.loss_fn = spec, loss_fn
        self.test_inputs = test_inputs
        if spec.unit_input is not None:
            n = spec.unit_input.examples
            self.test_inputs = {k: v[:n] for k, v in test_inputs.items()}
        self.every = [p.every for p in (spec.landscape, spec.ics, spec.norms, spec.unit_input) if p]

    @classmethod
    def of(
        cls, spec: ProbeSpec, loss_fn: Any, test_inputs: dict[bool, torch.Tensor]
    ) -> OptimisationProbes | None:
        """The probes a spec asks for, or None when it asks for none."""
        if not any((spec.landscape, spec.ics, spec.norms, spec.unit_input)):
            return None
        return cls(spec, loss_fn, test_inputs)

    def due(self, step: int) -> bool:
        """Whether any probe runs after update `step`."""
        return any(step % every == 0 for every in self.every)

    def measure(
        self,
        step: int,
        members: list[Member],
        batch: dict[bool, torch.Tensor],
        y: torch.Tensor,
        recorder: Recorder,
    ) -> None:
        """Run the due probes on each member, after its update on this step's batch."""
        s = self.spec
        for m in members:
            found: dict[str, torch.Tensor] = {}
            if s.norms is not None and step % s.norms.every == 0:
                found.update(measures.norms(m.net))  # first: reads the step's own gradients
            if s.unit_input is not None and step % s.unit_input.every == 0:
                x_test = self.test_inputs[m.normalize]
                found.update(
                    measures.unit_input(m.net, x_test, s.unit_input.unit, s.unit_input.mode)
                )
            landscape_due = s.landscape is not None and step % s.landscape.every == 0
            ics_due = s.ics is not None and step % s.ics.every == 0
            if landscape_due or ics_due:
                lr = float(m.optimizer.param_groups[0]["lr"])
                x = batch[m.normalize]
                was_training = m.net.training
                m.net.train()
                with measures.frozen_randomness(x.device) as reset:
                    if landscape_due:
                        assert s.landscape is not None
                        found.update(
                            measures.landscape(
                                m.net, x, y, self.loss_fn, lr, s.landscape.multipliers, reset
                            ).summary()
                        )
                    if ics_due:
                        for layer, (l2, cos) in measures.ics(
                            m.net, x, y, self.loss_fn, lr, reset
                        ).items():
                            found[f"ics_l2:{layer}"], found[f"ics_cos:{layer}"] = l2, cos
                m.net.train(was_training)
            for key, value in found.items():
                recorder.metric(m.name, key, step, value, summary=False)
