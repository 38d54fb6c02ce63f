"""Named sweeps: the studies' questions asked over a range, ready to submit."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SweepPreset:
    """A named sweep body (what POST /api/v1/sweeps takes) with a sentence on what it asks."""

    name: str
    description: str
    body: dict[str, Any]

    def body_copy(self) -> dict[str, Any]:
        """A deep copy, safe to merge overrides into."""
        return copy.deepcopy(self.body)


SWEEP_PRESETS: dict[str, SweepPreset] = {
    p.name: p
    for p in [
        SweepPreset(
            "seed-bn-lr",
            "Study 1 over learning rates: the article's MLP with and without BatchNorm, "
            "SGD at 7 learning rates from 0.003 to 3, 3 seeds each: up to which rate each "
            "variant still trains, and how they compare at the rate that suits each best; "
            "with the landscape probe every 10 steps at each rate.",
            {
                "name": "seed-bn-lr",
                "base": {
                    "preset": "seed-bn-mlp",
                    # The landscape probe (Santurkar et al.) at every learning rate: how smooth
                    # each variant's loss is where it still trains, and where it stops.
                    "overrides": {
                        "training": {"seeds": [0, 1, 2]},
                        "probes": {"landscape": {"every": 10}},
                    },
                },
                "axes": {"training.optimizer.lr": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]},
                "method": "grid",
            },
        ),
    ]
}
