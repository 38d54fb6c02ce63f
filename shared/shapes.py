"""Layer-by-layer shapes, canonical probe names and parameter counts of a model spec.

No torch here: the API uses this to reject a model that cannot run on a data set before any worker
sees it, and the worker builds its nn.Module from the same plan, so names and shapes agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

from shared.spec import CNNModel, MLPModel


class ShapeError(ValueError):
    """The model does not fit its input; the message names the block and the shape it got."""


@dataclass(frozen=True)
class LayerShape:
    """One probed layer: its canonical name, what it is, and its output shape (no batch dim)."""

    name: str
    kind: str
    out_shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelShape:
    """The probed layers in forward order and the exact number of trainable parameters."""

    layers: list[LayerShape]
    parameters: int
    parameter_tensors: int  # weights and biases, each probed on its own when asked

    @property
    def names(self) -> list[str]:
        """Canonical layer names in forward order."""
        return [layer.name for layer in self.layers]


@dataclass(frozen=True)
class LayerPlan:
    """A layer to build: kind, constructor arguments, output shape, and whether it is probed."""

    name: str
    kind: str
    out_shape: tuple[int, ...]
    args: dict[str, Any] = field(default_factory=dict)
    parameters: int = 0
    probed: bool = True


def _bn_act_order(placement: str) -> list[str]:
    """Where BatchNorm goes relative to the activation ("before" is the original paper's)."""
    if placement == "before_activation":
        return ["bn", "act"]
    if placement == "after_activation":
        return ["act", "bn"]
    return ["act"]


def _dense_block(
    prefix: str, features: int, placement: str, activation: str, dropout: float, noise: float
) -> list[LayerPlan]:
    """The layers after a Linear in one fully connected block."""
    layers = []
    for part in _bn_act_order(placement):
        if part == "bn":
            layers.append(
                LayerPlan(
                    f"{prefix}.bn",
                    "batchnorm1d",
                    (features,),
                    {"features": features, "noise": noise},
                    parameters=2 * features,
                )
            )
        else:
            layers.append(LayerPlan(f"{prefix}.act", "activation", (features,), {"fn": activation}))
    if dropout > 0:
        layers.append(LayerPlan(f"{prefix}.dropout", "dropout", (features,), {"p": dropout}))
    return layers


def _linear(name: str, in_features: int, out_features: int) -> LayerPlan:
    return LayerPlan(
        name,
        "linear",
        (out_features,),
        {"in_features": in_features, "out_features": out_features},
        parameters=in_features * out_features + out_features,
    )


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _conv_blocks(model: CNNModel, input_shape: tuple[int, ...]) -> list[LayerPlan]:
    if len(input_shape) != 3:
        raise ShapeError(
            f"a cnn needs image input of shape (channels, height, width); got {input_shape}"
        )
    channels, height, width = input_shape
    layers: list[LayerPlan] = []
    for index, block in enumerate(model.blocks):
        prefix, where = f"conv{index + 1}", f"blocks[{index}]"
        shape = (channels, height, width)
        if height + 2 * block.padding < block.kernel or width + 2 * block.padding < block.kernel:
            raise ShapeError(f"{where}: kernel {block.kernel} does not fit input of shape {shape}")
        height = _conv_out(height, block.kernel, block.stride, block.padding)
        width = _conv_out(width, block.kernel, block.stride, block.padding)
        out = (block.channels, height, width)
        args = {
            "in_channels": channels,
            "out_channels": block.channels,
            "kernel": block.kernel,
            "stride": block.stride,
            "padding": block.padding,
        }
        weights = channels * block.channels * block.kernel**2 + block.channels
        layers.append(LayerPlan(f"{prefix}.conv", "conv2d", out, args, parameters=weights))
        channels = block.channels
        for part in _bn_act_order(block.batchnorm):
            if part == "bn":
                layers.append(
                    LayerPlan(
                        f"{prefix}.bn",
                        "batchnorm2d",
                        out,
                        {"features": channels, "noise": block.bn_noise},
                        parameters=2 * channels,
                    )
                )
            else:
                layers.append(
                    LayerPlan(f"{prefix}.act", "activation", out, {"fn": model.activation})
                )
        if block.pool != "none":
            if height < block.pool_size or width < block.pool_size:
                raise ShapeError(
                    f"{where}: pool {block.pool_size} does not fit input of shape {out}"
                )
            height, width = height // block.pool_size, width // block.pool_size
            out = (channels, height, width)
            layers.append(
                LayerPlan(f"{prefix}.pool", f"{block.pool}pool", out, {"size": block.pool_size})
            )
        if block.dropout > 0:
            layers.append(LayerPlan(f"{prefix}.dropout", "dropout2d", out, {"p": block.dropout}))
    return layers


def plan_model(
    model: MLPModel | CNNModel, input_shape: tuple[int, ...], num_outputs: int
) -> list[LayerPlan]:
    """Every layer of the model in forward order, flatten included; raises ShapeError."""
    input_shape = tuple(input_shape)
    if any(size < 1 for size in input_shape) or not input_shape:
        raise ShapeError(f"input shape {input_shape} has an empty dimension")
    layers: list[LayerPlan] = []
    if isinstance(model, CNNModel):
        layers.extend(_conv_blocks(model, input_shape))
        prefix, hidden = "head", list(model.head.hidden)
        placement, activation, noise = model.head.batchnorm, model.activation, model.head.bn_noise
        dropouts = [model.head.dropout] * len(hidden)
        features = prod(layers[-1].out_shape)
        layers.append(LayerPlan("flatten", "flatten", (features,), probed=False))
    else:
        prefix, hidden = "hidden", list(model.hidden)
        placement, activation, noise = model.batchnorm, model.activation, model.bn_noise
        dropouts = [model.dropout_at(i) for i in range(len(hidden))]
        features = prod(input_shape)
        if len(input_shape) > 1:
            layers.append(LayerPlan("flatten", "flatten", (features,), probed=False))
    for index, width in enumerate(hidden):
        name = f"{prefix}{index + 1}"
        layers.append(_linear(f"{name}.linear", features, width))
        layers.extend(_dense_block(name, width, placement, activation, dropouts[index], noise))
        features = width
    layers.append(_linear("output.linear", features, num_outputs))
    return layers


def describe_model(
    model: MLPModel | CNNModel, input_shape: tuple[int, ...], num_outputs: int
) -> ModelShape:
    """Probed layers with output shapes, and the parameter count; raises ShapeError."""
    plan = plan_model(model, input_shape, num_outputs)
    return ModelShape(
        layers=[LayerShape(p.name, p.kind, p.out_shape) for p in plan if p.probed],
        parameters=sum(p.parameters for p in plan),
        # Every layer with parameters here has two tensors: Linear and Conv a weight and a bias,
        # BatchNorm a scale and a shift.
        parameter_tensors=2 * sum(1 for p in plan if p.parameters),
    )


def pre_activation_layer(model: MLPModel | CNNModel, block: int = 1) -> str:
    """The notebook's "hidden layer" of a block: BN output if BN precedes the activation."""
    if isinstance(model, CNNModel):
        if not 1 <= block <= len(model.blocks):
            raise ValueError(f"block {block} out of range 1..{len(model.blocks)}")
        placement, prefix, first = model.blocks[block - 1].batchnorm, f"conv{block}", "conv"
    else:
        if not 1 <= block <= len(model.hidden):
            raise ValueError(f"block {block} out of range 1..{len(model.hidden)}")
        placement, prefix, first = model.batchnorm, f"hidden{block}", "linear"
    return f"{prefix}.bn" if placement == "before_activation" else f"{prefix}.{first}"
