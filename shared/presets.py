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
# Ioffe & Szegedy (2015), Figure 1: three hidden layers of 100 sigmoid units.
_FIG1_NET = {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"}
_DEEP_MLP = {"kind": "mlp", "hidden": [48, 48, 48, 48, 24]}
_BN = {"batchnorm": "before_activation"}
# Santurkar et al. (2018): BN followed by noise whose mean and variance change every step.
_NOISY_BN = {**_BN, "bn_noise": 0.5}
_SMOOTHNESS_VARIANTS = [
    {"name": f"{prefix}{name}", "model": {**net, **extra}}
    for prefix, net in (("", _MLP), ("deep-", _DEEP_MLP))
    for name, extra in (("plain", {}), ("bn", _BN), ("bn-noisy", _NOISY_BN))
]

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
        Preset(
            "bn-paper-fig1",
            "Ioffe & Szegedy (2015), Figure 1: 3 hidden layers of 100 sigmoid units without and "
            "with BatchNorm, batch 60, plain SGD; how much sooner BN reaches given test "
            "accuracies, and how far the 15/50/85th percentiles of a unit's input to the last "
            "sigmoid move over training.",
            {
                "name": "bn-paper-fig1",
                "dataset": {"name": "mnist", "fallback": "fashion-mnist"},
                "variants": [
                    {"name": "plain", "model": _FIG1_NET},
                    {"name": "bn", "model": {**_FIG1_NET, **_BN}},
                ],
                "training": {
                    "epochs": 20,
                    "batch_size": 60,
                    "optimizer": {"name": "sgd", "lr": 0.5},
                    "seeds": [0, 1, 2],
                },
                "probes": {"every": 1000, "mode": "eval", "unit_input": {"every": 100}},
            },
        ),
        Preset(
            "bn-smoothness",
            "Santurkar et al. (2018): does BatchNorm steady distributions or smooth the loss? "
            "The seed MLP and a deeper one, plain vs BN vs noisy BN, 3 seeds; the loss and "
            "gradient along the gradient, and internal covariate shift by its gradient "
            "definition.",
            {
                "name": "bn-smoothness",
                "dataset": {"name": "mnist", "fallback": "fashion-mnist"},
                "variants": _SMOOTHNESS_VARIANTS,
                "training": {
                    "epochs": 5,
                    "batch_size": 128,
                    "optimizer": {"name": "sgd", "lr": 0.2},
                    "seeds": [0, 1, 2],
                },
                "probes": {
                    "every": 50,
                    "mode": "eval",
                    "landscape": {"every": 10},
                    "ics": {"every": 10},
                    "norms": {"every": 10},
                },
            },
        ),
    ]
}
