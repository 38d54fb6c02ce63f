"""Networks built from a spec: plain nn.Sequential whose layers carry the canonical probe names."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from shared.shapes import LayerPlan, plan_model
from shared.spec import CNNModel, MLPModel

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
}


class _Noisy:
    """Santurkar et al.'s noisy BatchNorm: at every training step each unit's output is scaled by
    v ~ U(1, 1 + s) and shifted by m ~ U(-s, s), drawn afresh (from the global RNG, so checkpoints
    replay them); a distribution shift put in on purpose. Eval mode adds no noise."""

    noise: float

    def _perturb(self, y: torch.Tensor, features: int) -> torch.Tensor:
        if not self.training or self.noise == 0.0:  # type: ignore[attr-defined]
            return y
        shape = (1, features) + (1,) * (y.dim() - 2)
        u = torch.rand((2, features), device=y.device, dtype=y.dtype)
        scale = (1 + self.noise * u[0]).view(shape)
        shift = (self.noise * (2 * u[1] - 1)).view(shape)
        return y * scale + shift


class NoisyBatchNorm1d(_Noisy, nn.BatchNorm1d):
    """BatchNorm1d followed by the per-step noise of _Noisy."""

    def __init__(self, features: int, noise: float):
        super().__init__(features)
        self.noise = noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """BatchNorm, then noise in train mode."""
        return self._perturb(super().forward(x), self.num_features)


class NoisyBatchNorm2d(_Noisy, nn.BatchNorm2d):
    """BatchNorm2d followed by the per-step noise of _Noisy (one draw per channel)."""

    def __init__(self, features: int, noise: float):
        super().__init__(features)
        self.noise = noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """BatchNorm, then noise in train mode."""
        return self._perturb(super().forward(x), self.num_features)


def _module(layer: LayerPlan) -> nn.Module:
    a = layer.args
    match layer.kind:
        case "linear":
            return nn.Linear(a["in_features"], a["out_features"])
        case "conv2d":
            return nn.Conv2d(
                a["in_channels"], a["out_channels"], a["kernel"], a["stride"], a["padding"]
            )
        case "batchnorm1d" if a.get("noise"):
            return NoisyBatchNorm1d(a["features"], a["noise"])
        case "batchnorm2d" if a.get("noise"):
            return NoisyBatchNorm2d(a["features"], a["noise"])
        case "batchnorm1d":
            return nn.BatchNorm1d(a["features"])
        case "batchnorm2d":
            return nn.BatchNorm2d(a["features"])
        case "activation":
            return ACTIVATIONS[a["fn"]]()
        case "avgpool":
            return nn.AvgPool2d(a["size"], a["size"])
        case "maxpool":
            return nn.MaxPool2d(a["size"], a["size"])
        case "dropout":
            return nn.Dropout(a["p"])
        case "dropout2d":
            return nn.Dropout2d(a["p"])
        case "flatten":
            return nn.Flatten()
    raise ValueError(f"unknown layer kind {layer.kind!r}")


def module_key(name: str) -> str:
    """Attribute name of a canonical layer name (module names cannot contain dots)."""
    return name.replace(".", "_")


class Net(nn.Sequential):
    """nn.Sequential (so the training forward is exactly as fast) plus canonical layer names."""

    def __init__(self, plan: list[LayerPlan]):
        super().__init__(OrderedDict((module_key(p.name), _module(p)) for p in plan))
        # None marks layers that are not probed (flatten).
        self.probe_names: list[str | None] = [p.name if p.probed else None for p in plan]
        self.canonical = {module_key(p.name): p.name for p in plan}

    def forward_with_outputs(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
        """Forward pass that also returns every probed layer's output, by canonical name."""
        outputs = []
        for name, layer in zip(self.probe_names, self, strict=True):
            x = layer(x)
            if name is not None:
                outputs.append((name, x))
        return x, outputs

    def named_weights(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters named canonically, e.g. `hidden1.linear.weight`."""
        named = []
        for key, param in self.named_parameters():
            module, _, attr = key.rpartition(".")
            named.append((f"{self.canonical[module]}.{attr}", param))
        return named

    def weight_layers(self) -> list[nn.Linear | nn.Conv2d]:
        """The Linear and Conv layers in forward order (what `init: shared` matches up)."""
        return [m for m in self if isinstance(m, nn.Linear | nn.Conv2d)]


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers, so nearby seeds give unrelated streams."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> 1)


def build_model(
    model: MLPModel | CNNModel, input_shape: tuple[int, ...], num_outputs: int, seed: int
) -> Net:
    """The network of a spec, initialised under `seed` without touching the global RNG."""
    plan = plan_model(model, input_shape, num_outputs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Net(plan)


@torch.no_grad()
def share_initial_weights(nets: list[Net]) -> None:
    """Give the i-th Linear/Conv of each net the weights of the first net with the same shape."""
    for later_index, net in enumerate(nets):
        for position, layer in enumerate(net.weight_layers()):
            for earlier in nets[:later_index]:
                layers = earlier.weight_layers()
                if position < len(layers) and layers[position].weight.shape == layer.weight.shape:
                    source = layers[position]
                    layer.weight.copy_(source.weight)
                    if layer.bias is not None and source.bias is not None:
                        layer.bias.copy_(source.bias)
                    break


def build_group(
    models: list[MLPModel | CNNModel],
    input_shape: tuple[int, ...],
    num_outputs: int,
    run_seed: int,
    init: str = "independent",
) -> list[Net]:
    """The nets of one lockstep group, each from its own seed; `shared` then aligns weights."""
    nets = [
        build_model(m, input_shape, num_outputs, derive_seed(run_seed, 0, index))
        for index, m in enumerate(models)
    ]
    if init == "shared":
        share_initial_weights(nets)
    return nets
