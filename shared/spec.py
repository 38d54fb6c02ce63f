"""The experiment spec: what a user sends, validated once at the door and frozen after."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Names end up in URLs, plot legends and file names: keep them to a safe alphabet.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
NoiseScale = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
BatchNormPlacement = Literal["none", "before_activation", "after_activation"]
Activation = Literal["relu", "tanh", "sigmoid", "gelu", "leaky_relu"]
DatasetName = Literal["mnist", "fashion-mnist", "digits", "cifar10", "regression1d", "wide-scale"]


class Frozen(BaseModel):
    """Base for every spec part: immutable, unknown fields rejected, no NaN or infinities."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _noise_needs_batchnorm(part: BaseModel) -> None:
    """bn_noise perturbs BatchNorm's output, so it needs a BatchNorm."""
    if getattr(part, "bn_noise", 0.0) > 0 and getattr(part, "batchnorm", "none") == "none":
        raise ValueError("bn_noise needs batchnorm 'before_activation' or 'after_activation'")


class DatasetSpec(Frozen):
    """Which data set, and the knobs of the synthetic ones."""

    name: DatasetName
    # Trained on instead when `name` can be had neither locally nor by download (the presets:
    # mnist, else fashion-mnist). The worker decides, and records on the experiment what it used.
    fallback: DatasetName | None = None
    # Use only the first N training / test examples (small budgets, tests, teaching).
    train_size: int | None = Field(default=None, ge=1, le=100_000_000)
    test_size: int | None = Field(default=None, ge=1, le=100_000_000)
    # regression1d and wide-scale: how many points, how noisy, which draw.
    n: int = Field(default=50, ge=2, le=1_000_000)
    noise: float = Field(default=0.3, ge=0.0, le=100.0)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _fallback_differs(self) -> DatasetSpec:
        if self.fallback == self.name:
            raise ValueError("fallback must name another data set than name")
        return self


class MLPModel(Frozen):
    """A fully connected net: Linear blocks with optional BatchNorm and dropout."""

    kind: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(ge=1, le=65536)]] = Field(min_length=1, max_length=32)
    activation: Activation = "relu"
    batchnorm: BatchNormPlacement = "none"
    # Noisy BatchNorm (Santurkar et al. 2018): scale of the shift and scaling every BN output
    # gets, redrawn at every training step; 0 is plain BatchNorm.
    bn_noise: NoiseScale = 0.0
    # One probability for every hidden layer, or one per hidden layer.
    dropout: Probability | list[Probability] = 0.0

    @model_validator(mode="after")
    def _dropout_matches_hidden(self) -> MLPModel:
        _noise_needs_batchnorm(self)
        if isinstance(self.dropout, list) and len(self.dropout) != len(self.hidden):
            raise ValueError(
                f"dropout has {len(self.dropout)} entries but hidden has {len(self.hidden)} layers"
            )
        return self

    def dropout_at(self, index: int) -> float:
        """Dropout probability after hidden layer `index` (0-based)."""
        return self.dropout[index] if isinstance(self.dropout, list) else self.dropout


class ConvBlock(Frozen):
    """Conv2d, then optional BatchNorm2d, activation, pooling and Dropout2d."""

    channels: int = Field(ge=1, le=4096)
    kernel: int = Field(default=3, ge=1, le=64)
    stride: int = Field(default=1, ge=1, le=16)
    padding: int = Field(default=0, ge=0, le=64)
    pool: Literal["avg", "max", "none"] = "none"
    pool_size: int = Field(default=2, ge=1, le=16)
    batchnorm: BatchNormPlacement = "none"
    bn_noise: NoiseScale = 0.0
    dropout: Probability = 0.0

    @model_validator(mode="after")
    def _noise(self) -> ConvBlock:
        _noise_needs_batchnorm(self)
        return self


class HeadSpec(Frozen):
    """The fully connected head after the conv blocks."""

    hidden: list[Annotated[int, Field(ge=1, le=65536)]] = Field(default_factory=list, max_length=16)
    batchnorm: BatchNormPlacement = "none"
    bn_noise: NoiseScale = 0.0
    dropout: Probability = 0.0

    @model_validator(mode="after")
    def _noise(self) -> HeadSpec:
        _noise_needs_batchnorm(self)
        return self


class CNNModel(Frozen):
    """Conv blocks followed by a fully connected head."""

    kind: Literal["cnn"] = "cnn"
    blocks: list[ConvBlock] = Field(min_length=1, max_length=16)
    head: HeadSpec = HeadSpec()
    activation: Activation = "relu"


ModelSpec = Annotated[MLPModel | CNNModel, Field(discriminator="kind")]


class VariantSpec(Frozen):
    """One named network in the lockstep group."""

    name: Name
    model: ModelSpec
    # Standardise features with training-set statistics before they reach this variant.
    normalize_inputs: bool = False


class OptimizerSpec(Frozen):
    """Optimizer and its hyper-parameters."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(default=0.01, gt=0.0, le=10.0)
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerSpec:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0.0):
            raise ValueError("nesterov needs optimizer name 'sgd' and momentum > 0")
        return self


class ScheduleSpec(Frozen):
    """Learning-rate schedule, stepped once per epoch."""

    name: Literal["none", "step", "cosine"] = "none"
    step_size: int = Field(default=1, ge=1, le=100_000)
    gamma: float = Field(default=0.1, gt=0.0, le=1.0)


class TrainingSpec(Frozen):
    """How every variant is trained; identical across variants by design."""

    epochs: int = Field(default=2, ge=1, le=100_000)
    # None means the whole training split as one batch (the dropout study).
    batch_size: int | None = Field(default=512, ge=1, le=1_000_000)
    shuffle: bool = True
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(
        default_factory=lambda: [0], min_length=1, max_length=32
    )
    # Evaluate on the test split every this many epochs, and after the last one; the default,
    # every epoch, is what the article does. Applies to classification and regression alike.
    eval_every: int = Field(default=1, ge=1, le=100_000)
    # "shared": the i-th Linear/Conv of each variant starts from the weights of the first
    # variant whose i-th Linear/Conv has the same shape.
    init: Literal["independent", "shared"] = "independent"
    # Train the members that share a shape (seeds, variants) as one batched model where the core
    # can (worker/training/fused.py); each member's numbers match training it alone.
    fuse: bool = True

    def steps_per_epoch(self, train_examples: int) -> int:
        """Optimizer updates per epoch over that many examples; the last partial batch counts."""
        if self.batch_size is None:
            return 1
        return math.ceil(train_examples / self.batch_size)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be unique")
        return seeds


class EveryProbe(Frozen):
    """An optimisation probe taken after every `every`-th update."""

    every: int = Field(default=10, ge=1, le=100_000_000)


class LandscapeProbe(EveryProbe):
    """Loss and gradient along the negative gradient, at these multiples of the learning rate."""

    multipliers: list[Annotated[float, Field(gt=0.0, le=1000.0)]] = Field(
        default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0], min_length=1, max_length=16
    )


class UnitInputProbe(EveryProbe):
    """Percentiles of one unit's input to the last hidden activation (Ioffe & Szegedy, Fig. 1)."""

    unit: int = Field(default=0, ge=0, le=65535)
    # Taken on the first this-many test examples, the same ones every time.
    examples: int = Field(default=1000, ge=10, le=100_000)
    # train: as the activation sees it while training (BN on these examples' own statistics);
    # eval: through BN's running statistics.
    mode: Literal["train", "eval"] = "train"


class ProbeSpec(Frozen):
    """What activation statistics to capture, and how often."""

    every: int = Field(default=10, ge=1, le=100_000_000)
    bins: int = Field(default=50, ge=4, le=512)
    # The notebook looks at the distributions in eval mode.
    mode: Literal["eval", "train"] = "eval"
    weights: bool = False
    gradients: bool = False
    enabled: bool = True
    # The optimisation probes (worker/training/landscape.py), each off unless given.
    landscape: LandscapeProbe | None = None
    ics: EveryProbe | None = None
    norms: EveryProbe | None = None
    unit_input: UnitInputProbe | None = None


class ExperimentSpec(Frozen):
    """A full experiment: variants trained in lockstep on one data set, once per seed."""

    name: Name
    dataset: DatasetSpec
    variants: list[VariantSpec] = Field(min_length=1, max_length=16)
    training: TrainingSpec = TrainingSpec()
    probes: ProbeSpec = ProbeSpec()
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("variants")
    @classmethod
    def _unique_variant_names(cls, variants: list[VariantSpec]) -> list[VariantSpec]:
        names = [v.name for v in variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(duplicates)}")
        return variants

    @property
    def queue(self) -> str:
        """The Celery queue this experiment is routed to: gpu, cpu, or any worker at all."""
        return {"cuda": "gpu", "cpu": "cpu", "auto": "any"}[self.device]
