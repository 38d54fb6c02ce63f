"""The named studies of the tutorial (../SEED.md), as ready-to-run specs."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A named spec with a sentence saying what it shows."""

    name: str
    description: str
    spec: dict[str, Any]

    def spec_copy(self) -> dict[str, Any]:
        """A deep copy of the spec, safe to merge overrides into."""
        return copy.deepcopy(self.spec)


_MLP = {"kind": "mlp", "hidden": [48, 24]}
_ARTICLE_CNN_BLOCKS = [
    {"channels": 3, "kernel": 5, "pool": "avg"},
    {"channels": 6, "kernel": 3, "pool": "avg"},
]
_ARTICLE_CNN_HEAD = {"hidden": [25]}
# Study 1's training, which the notebook's CNN exercise keeps: SGD 0.01, batch 512, 2 epochs.
_ARTICLE_TRAINING = {
    "epochs": 2,
    "batch_size": 512,
    "optimizer": {"name": "sgd", "lr": 0.01},
    "seeds": [0],
}
_ARTICLE_PROBES = {"every": 10, "mode": "eval"}
_REGRESSION_NET = {"kind": "mlp", "hidden": [100, 100]}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "seed-bn-mlp",
            "Study 1: a 784-48-24-10 MLP with and without BatchNorm (Linear-BN-ReLU), "
            "SGD 0.01, batch 512, 2 epochs in lockstep, hidden layers probed every 10 steps.",
            {
                "name": "seed-bn-mlp",
                "dataset": {"name": "mnist", "fallback": "fashion-mnist"},
                "variants": [
                    {"name": "plain", "model": _MLP},
                    {"name": "bn", "model": {**_MLP, "batchnorm": "before_activation"}},
                ],
                "training": _ARTICLE_TRAINING,
                "probes": _ARTICLE_PROBES,
            },
        ),
        Preset(
            "seed-bn-cnn",
            "Study 2: the article's small CNN (conv 5x5, avg-pool, conv 3x3, avg-pool, 150-25-10), "
            "without and with BatchNorm2d after the second convolution.",
            {
                "name": "seed-bn-cnn",
                "dataset": {"name": "mnist", "fallback": "fashion-mnist"},
                "variants": [
                    {
                        "name": "plain",
                        "model": {
                            "kind": "cnn",
                            "blocks": _ARTICLE_CNN_BLOCKS,
                            "head": _ARTICLE_CNN_HEAD,
                        },
                    },
                    {
                        "name": "bn",
                        "model": {
                            "kind": "cnn",
                            "blocks": [
                                _ARTICLE_CNN_BLOCKS[0],
                                {**_ARTICLE_CNN_BLOCKS[1], "batchnorm": "before_activation"},
                            ],
                            "head": _ARTICLE_CNN_HEAD,
                        },
                    },
                ],
                "training": _ARTICLE_TRAINING,
                "probes": _ARTICLE_PROBES,
            },
        ),
        Preset(
            "seed-dropout",
            "Study 3: 1-100-100-1 regression on 50 noisy points, plain against dropout 0.2/0.2 "
            "(the notebook) and 0.5/0.2 (the article's text), Adam 0.01, 1000 full-batch epochs.",
            {
                "name": "seed-dropout",
                "dataset": {"name": "regression1d", "n": 50, "noise": 0.3, "seed": 0},
                "variants": [
                    {"name": "plain", "model": _REGRESSION_NET},
                    {"name": "dropout-0.2", "model": {**_REGRESSION_NET, "dropout": [0.2, 0.2]}},
                    {
                        "name": "dropout-0.5-0.2",
                        "model": {**_REGRESSION_NET, "dropout": [0.5, 0.2]},
                    },
                ],
                "training": {
                    "epochs": 1000,
                    "batch_size": None,
                    "optimizer": {"name": "adam", "lr": 0.01},
                    "seeds": [0],
                    "eval_every": 50,
                },
                "probes": {"every": 50, "mode": "eval"},
            },
        ),
        Preset(
            "seed-input-scale",
            "The article's opening example: two features on scales of about 200 and 10, "
            "learned raw and standardised with training-set statistics.",
            {
                "name": "seed-input-scale",
                "dataset": {"name": "wide-scale", "n": 2000, "seed": 0},
                "variants": [
                    {"name": "raw", "model": {"kind": "mlp", "hidden": [32, 16]}},
                    {
                        "name": "normalized",
                        "model": {"kind": "mlp", "hidden": [32, 16]},
                        "normalize_inputs": True,
                    },
                ],
                "training": {
                    "epochs": 10,
                    "batch_size": 64,
                    "optimizer": {"name": "sgd", "lr": 0.01},
                    "seeds": [0],
                },
                "probes": {"every": 20, "mode": "eval"},
            },
        ),
    ]
}
