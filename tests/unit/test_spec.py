"""The spec is validated once at the door: what it accepts, and what it names when it refuses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.presets import PRESETS
from shared.spec import ExperimentSpec, MLPModel


def spec(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "t",
        "dataset": {"name": "digits"},
        "variants": [{"name": "plain", "model": {"kind": "mlp", "hidden": [8]}}],
    }
    base.update(changes)
    return base


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_spec(name: str) -> None:
    parsed = ExperimentSpec.model_validate(PRESETS[name].spec)
    assert parsed.name == name


def test_study_one_is_the_article_setting() -> None:
    parsed = ExperimentSpec.model_validate(PRESETS["seed-bn-mlp"].spec)
    assert [v.name for v in parsed.variants] == ["plain", "bn"]
    assert parsed.training.batch_size == 512 and parsed.training.epochs == 2
    assert parsed.training.optimizer.name == "sgd" and parsed.training.optimizer.lr == 0.01
    bn = parsed.variants[1].model
    assert isinstance(bn, MLPModel) and bn.batchnorm == "before_activation"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"dataset": {"name": "imagenet"}}, "dataset"),
        ({"training": {"epochs": 0}}, "epochs"),
        ({"training": {"optimizer": {"lr": float("nan")}}}, "lr"),
        ({"training": {"seeds": [1, 1]}}, "seeds"),
        ({"variants": []}, "variants"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_fields_are_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ExperimentSpec.model_validate(spec(**changes))
    assert field in str(info.value)


def test_duplicate_variant_names_are_refused() -> None:
    variant = {"name": "same", "model": {"kind": "mlp", "hidden": [4]}}
    with pytest.raises(ValidationError, match="repeated: same"):
        ExperimentSpec.model_validate(spec(variants=[variant, variant]))


def test_dropout_list_must_match_hidden_layers() -> None:
    variant = {"name": "d", "model": {"kind": "mlp", "hidden": [4, 4], "dropout": [0.2]}}
    with pytest.raises(ValidationError, match="dropout has 1 entries"):
        ExperimentSpec.model_validate(spec(variants=[variant]))


def test_device_routes_to_a_queue() -> None:
    assert ExperimentSpec.model_validate(spec(device="cuda")).queue == "gpu"
    assert ExperimentSpec.model_validate(spec(device="cpu")).queue == "cpu"
    assert ExperimentSpec.model_validate(spec()).queue == "any"
