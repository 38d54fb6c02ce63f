"""A sweep's points: a base spec varied along axes, each a dotted path into the spec.

Pure code over plain dicts: the API validates each point as a full ExperimentSpec afterwards.
Paths walk dicts by key and lists by index; in `variants` a segment names a variant (or `*`
for every variant), since their order is an accident of the spec.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

RANGE_KINDS = ("log_uniform", "uniform", "choice")


class SweepError(ValueError):
    """An axis the base spec cannot take: `axis` names it (or is empty for the sweep itself)."""

    def __init__(self, axis: str, message: str) -> None:
        super().__init__(message)
        self.axis = axis


@dataclass(frozen=True)
class Point:
    """One combination of axis values and the spec (a plain dict) it makes."""

    index: int
    values: dict[str, Any]
    spec: dict[str, Any]


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` (dotted) in `spec` in place; SweepError if it cannot lead anywhere."""
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise SweepError(path, f"'{path}' is not a dotted path")
    _set(spec, parts, value, path, [])


def _set(node: Any, parts: list[str], value: Any, path: str, seen: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    where = ".".join(seen) or "the spec"
    if seen == ["variants"] and isinstance(node, list):
        chosen = node if head == "*" else [v for v in node if v.get("name") == head]
        if not chosen:
            names = ", ".join(str(v.get("name")) for v in node)
            raise SweepError(path, f"no variant '{head}' in {path}; variants: {names}, or *")
        if not rest:
            raise SweepError(path, f"{path} names whole variants; name a field inside them")
        for variant in chosen:
            _set(variant, rest, value, path, [*seen, head])
        return
    if isinstance(node, list):
        if not head.isdigit() or int(head) >= len(node):
            raise SweepError(path, f"{where} is a list of {len(node)}; '{head}' is no index in it")
        key: Any = int(head)
    elif isinstance(node, dict):
        key = head
    else:
        raise SweepError(path, f"{where} is a value, not a group of fields; '{head}' is not in it")
    if not rest:
        node[key] = copy.deepcopy(value)
        return
    if isinstance(node, dict) and node.get(key) is None:
        # A field the base leaves at its default (training.schedule, say): start it empty;
        # the spec's validation refuses the names that do not exist.
        node[key] = {}
    _set(node[key], rest, value, path, [*seen, head])


def grid_values(axes: dict[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the axes' listed values, the last axis varying fastest."""
    for path, values in axes.items():
        if not isinstance(values, list) or not values:
            raise SweepError(path, f"a grid axis lists its values; {path} has {values!r}")
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


def draw(path: str, axis: Any, rng: random.Random) -> Any:
    """One random value of an axis: a list (pick one), or a log_uniform/uniform/choice range."""
    if isinstance(axis, list) and axis:
        return rng.choice(axis)
    if not isinstance(axis, dict) or len(axis) != 1 or next(iter(axis)) not in RANGE_KINDS:
        raise SweepError(
            path, f"{path}: give a list of values or one of {', '.join(RANGE_KINDS)}: ..."
        )
    kind, arg = next(iter(axis.items()))
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise SweepError(path, f"{path}: choice takes a non-empty list")
        return rng.choice(arg)
    if not (
        isinstance(arg, list)
        and len(arg) == 2
        and all(isinstance(a, int | float) and math.isfinite(a) for a in arg)
        and arg[0] <= arg[1]
    ):
        raise SweepError(path, f"{path}: {kind} takes [low, high] with low <= high")
    low, high = float(arg[0]), float(arg[1])
    if kind == "uniform":
        return rng.uniform(low, high)
    if low <= 0:
        raise SweepError(path, f"{path}: log_uniform needs 0 < low")
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def random_values(axes: dict[str, Any], samples: int, seed: int) -> list[dict[str, Any]]:
    """`samples` draws of every axis, reproducible from `seed`."""
    rng = random.Random(seed)
    return [{path: draw(path, axis, rng) for path, axis in axes.items()} for _ in range(samples)]


def expand(
    base: dict[str, Any],
    axes: dict[str, Any],
    method: str = "grid",
    samples: int | None = None,
    seed: int = 0,
) -> list[Point]:
    """The points of a sweep: the base with each combination of axis values set, in order."""
    if not axes:
        raise SweepError("", "a sweep needs at least one axis")
    if method == "grid":
        combos = grid_values(axes)
    elif method == "random":
        if not samples:
            raise SweepError("", "method random needs samples >= 1")
        combos = random_values(axes, samples, seed)
    else:
        raise SweepError("", f"unknown method '{method}'; grid or random")
    points = []
    for index, values in enumerate(combos):
        spec = copy.deepcopy(base)
        for path, value in values.items():
            set_path(spec, path, value)
        points.append(Point(index, values, spec))
    return points


def point_name(base_name: str, index: int) -> str:
    """An experiment name for point `index` that stays inside the 64-character limit."""
    suffix = f"-p{index}"
    return base_name[: 64 - len(suffix)] + suffix


def describe(values: dict[str, Any]) -> str:
    """`training.optimizer.lr=0.01, training.batch_size=64`: each path with its value."""
    return ", ".join(f"{path}={value!r}" for path, value in values.items())
