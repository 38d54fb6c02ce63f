"""What each plot needs: queries (shared/plot_queries.py) shaped by build.py, per experiment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from api.plots import build as b
from api.plots import params as checks
from shared import results
from shared.datasets import CATALOG
from shared.models import Experiment
from shared.plot_queries import (
    captured_layers,
    captured_steps,
    fit_epochs,
    read_captures,
    read_stats,
)
from shared.shapes import pre_activation_layer
from shared.spec import CNNModel, ExperimentSpec, MLPModel


@dataclass(frozen=True)
class Source:
    """An experiment as the plots see it: its spec, task and runs."""

    experiment: Experiment
    spec: ExperimentSpec
    task: str
    runs: list[b.RunRef]

    @classmethod
    def of(cls, experiment: Experiment) -> Source:
        """Parse the stored (already validated) spec once."""
        spec = ExperimentSpec.model_validate(experiment.spec)
        runs = [b.RunRef(r.id, r.variant, r.seed) for r in experiment.runs]
        return cls(experiment, spec, CATALOG[spec.dataset.name].task, runs)

    @property
    def variants(self) -> list[str]:
        """Variant names in the spec's order (which fixes their colours)."""
        return [v.name for v in self.spec.variants]

    @property
    def seeds(self) -> list[int]:
        """The spec's seeds, in order."""
        return list(self.spec.training.seeds)

    def runs_of(self, seed: int) -> dict[str, b.RunRef]:
        """Variant -> run for one seed."""
        return {r.variant: r for r in self.runs if r.seed == seed}

    def default_layers(self) -> dict[str, str]:
        """The notebook's hidden layer of each variant: BN output where BN precedes the activation.

        The block is the first one where some variant has such a BN (the article's CNN has it
        only after its second convolution), else the first block.
        """
        return {v.name: pre_activation_layer(v.model, self.bn_block()) for v in self.spec.variants}

    def bn_block(self) -> int:
        """The first block (1-based) that some variant normalises before its activation."""
        blocks = [block_placements(v.model) for v in self.spec.variants]
        for index in range(min(len(p) for p in blocks)):
            if any(p[index] == "before_activation" for p in blocks):
                return index + 1
        return 1


def block_placements(model: MLPModel | CNNModel) -> list[str]:
    """The BatchNorm placement of each block (conv blocks of a CNN, hidden layers of an MLP)."""
    if isinstance(model, CNNModel):
        return [block.batchnorm for block in model.blocks]
    return [model.batchnorm] * len(model.hidden)


def _layers(
    session: Session, src: Source, runs: dict[str, b.RunRef], layer: str | None
) -> dict[str, str]:
    defaults = {v: layer for v, layer in src.default_layers().items() if v in runs}
    return checks.resolve_layers(list(runs), defaults, captured_layers(session, runs), layer)


def loss(session: Session, src: Source, smooth: int | None = None) -> dict[str, Any]:
    """Train loss per step of every variant, across seeds."""
    ids = [r.id for r in src.runs]
    series = results.read_series(session, ids, ["train_loss"])
    flat = {i: s.get("train_loss", ([], [])) for i, s in series.items()}
    return b.build_loss(src.runs, src.variants, flat, smooth or 1)


def activations(
    session: Session,
    src: Source,
    layer: str | None = None,
    step: int | None = None,
    seed: int | None = None,
    most: int = checks.MAX_PANELS,
) -> dict[str, Any]:
    """One layer's distribution per variant at one step, or at up to `most` captured steps."""
    seed = checks.pick_seed(src.seeds, seed)
    runs = src.runs_of(seed)
    layers = _layers(session, src, runs, layer)
    by_variant = captured_steps(session, runs, layers)
    every = sorted(set().union(*by_variant.values())) if by_variant else []
    chosen = checks.select_steps(every, step, most)
    captures = read_captures(session, runs, layers, chosen) if chosen else {}
    ids = {r.id: v for v, r in runs.items()}
    series = results.read_series(session, list(ids), ["train_loss"])
    losses = {ids[i]: s["train_loss"] for i, s in series.items() if "train_loss" in s}
    keyed = {v: {c.step: c for c in rows} for v, rows in captures.items()}
    return b.build_activations(src.variants, layers, every, chosen, keyed, losses, seed)


def distributions(
    session: Session, src: Source, layer: str | None = None, seed: int | None = None
) -> dict[str, Any]:
    """Quantile bands and drift over steps of one layer per variant."""
    seed = checks.pick_seed(src.seeds, seed)
    runs = src.runs_of(seed)
    layers = _layers(session, src, runs, layer)
    return b.build_distributions(src.variants, layers, read_stats(session, runs, layers), seed)


def evaluation(session: Session, src: Source) -> dict[str, Any]:
    """Test loss and accuracy per evaluation, and the train-test gap."""
    keys = ["test_loss", "test_accuracy", "train_loss", "train_loss_eval"]
    series = results.read_series(session, [r.id for r in src.runs], keys)
    eval_steps = next((s["test_loss"][0] for s in series.values() if "test_loss" in s), [])
    t = src.spec.training
    spe = b.steps_per_epoch(eval_steps, t.eval_every, t.epochs)
    return b.build_eval(src.runs, src.variants, series, src.task, spe)


def fit(
    session: Session, src: Source, epoch: int | None = None, seed: int | None = None
) -> dict[str, Any]:
    """Data points and prediction curves of a regression experiment at one evaluated epoch."""
    seed = checks.pick_seed(src.seeds, seed)
    runs = src.runs_of(seed)
    ids = {r.id: v for v, r in runs.items()}
    fits: dict[str, dict[int, tuple[int, list[float], list[float]]]] = {v: {} for v in runs}
    points: dict[str, tuple[list[float], list[float]]] = {}
    for curve in results.read_curves(session, list(ids)):
        variant = ids[curve.run_id]
        if curve.key == "fit":
            fits[variant][curve.epoch] = (curve.step, curve.x, curve.y)
        elif curve.key in ("train_points", "test_points"):
            # Every variant stores the same points; the first one read is kept.
            points.setdefault(curve.key, (curve.x, curve.y))
    series = results.read_series(session, list(ids), ["test_loss"])
    test_loss = {ids[i]: s["test_loss"] for i, s in series.items() if "test_loss" in s}
    return b.build_fit(src.variants, fits, points, test_loss, epoch, seed)


def index(session: Session, src: Source, seed: int | None = None) -> dict[str, Any]:
    """What can be asked for, apart from the plots themselves: seeds, layers, steps, epochs."""
    seed = checks.pick_seed(src.seeds, seed)
    runs = src.runs_of(seed)
    captured = captured_layers(session, runs)
    layers = sorted(set().union(*captured.values())) if captured else []
    defaults = {v: layer for v, layer in src.default_layers().items() if v in runs}
    chosen = checks.resolve_layers(list(runs), defaults, captured, None)
    steps = captured_steps(session, runs, chosen)
    epochs = fit_epochs(session, [r.id for r in runs.values()]) if src.task == "regression" else []
    return {
        "experiment_id": str(src.experiment.id),
        "status": src.experiment.status,
        "task": src.task,
        "seeds": src.seeds,
        "variants": src.variants,
        "layers": layers,
        "default_layers": chosen,
        "steps": sorted(set().union(*steps.values())) if steps else [],
        "epochs": epochs,
    }
