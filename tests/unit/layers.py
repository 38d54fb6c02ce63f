"""Typed access to a built net's layers by name (a Sequential's children are untyped)."""

from __future__ import annotations

from torch import nn


def linear(net: nn.Module, name: str) -> nn.Linear:
    """The Linear layer `name` (e.g. "hidden1_linear") of `net`."""
    layer = net.get_submodule(name)
    assert isinstance(layer, nn.Linear), f"{name} is a {type(layer).__name__}"
    return layer


def batchnorm(net: nn.Module, name: str) -> nn.BatchNorm1d:
    """The BatchNorm1d layer `name` (e.g. "hidden1_bn") of `net`."""
    layer = net.get_submodule(name)
    assert isinstance(layer, nn.BatchNorm1d), f"{name} is a {type(layer).__name__}"
    return layer
