"""Model shapes and canonical layer names agree with the torch modules actually built."""

from __future__ import annotations

import pytest
import torch

from shared.shapes import ShapeError, describe_model, pre_activation_layer
from shared.spec import CNNModel, MLPModel
from worker.training.models import build_model

ARTICLE_CNN = CNNModel.model_validate(
    {
        "blocks": [
            {"channels": 3, "kernel": 5, "pool": "avg"},
            {"channels": 6, "kernel": 3, "pool": "avg", "batchnorm": "before_activation"},
        ],
        "head": {"hidden": [25]},
    }
)


def _torch_parameters(model: MLPModel | CNNModel, shape: tuple[int, ...], outputs: int) -> int:
    return sum(p.numel() for p in build_model(model, shape, outputs, seed=0).parameters())


@pytest.mark.parametrize(
    ("model", "names"),
    [
        (
            MLPModel(hidden=[48, 24]),
            ["hidden1.linear", "hidden1.act", "hidden2.linear", "hidden2.act", "output.linear"],
        ),
        (
            MLPModel(hidden=[48, 24], batchnorm="before_activation", dropout=[0.5, 0.0]),
            [
                "hidden1.linear",
                "hidden1.bn",
                "hidden1.act",
                "hidden1.dropout",
                "hidden2.linear",
                "hidden2.bn",
                "hidden2.act",
                "output.linear",
            ],
        ),
        (
            MLPModel(hidden=[16], batchnorm="after_activation", dropout=0.2, activation="tanh"),
            ["hidden1.linear", "hidden1.act", "hidden1.bn", "hidden1.dropout", "output.linear"],
        ),
    ],
)
def test_mlp_names_and_parameter_count_match_torch(model: MLPModel, names: list[str]) -> None:
    shape = describe_model(model, (1, 28, 28), 10)
    assert shape.names == names
    assert shape.parameters == _torch_parameters(model, (1, 28, 28), 10)
    net = build_model(model, (1, 28, 28), 10, seed=0).eval()
    out, outputs = net.forward_with_outputs(torch.rand(3, 1, 28, 28))
    assert [name for name, _ in outputs] == names
    assert [tuple(t.shape[1:]) for _, t in outputs] == [layer.out_shape for layer in shape.layers]
    assert out.shape == (3, 10)


def test_article_cnn_is_expressible_exactly() -> None:
    shape = describe_model(ARTICLE_CNN, (1, 28, 28), 10)
    by_name = {layer.name: layer.out_shape for layer in shape.layers}
    assert by_name["conv1.conv"] == (3, 24, 24)
    assert by_name["conv1.pool"] == (3, 12, 12)
    assert by_name["conv2.conv"] == (6, 10, 10)
    assert by_name["conv2.pool"] == (6, 5, 5)
    assert by_name["head1.linear"] == (25,)
    assert shape.names == [
        "conv1.conv",
        "conv1.act",
        "conv1.pool",
        "conv2.conv",
        "conv2.bn",
        "conv2.act",
        "conv2.pool",
        "head1.linear",
        "head1.act",
        "output.linear",
    ]
    # Conv(1,3,5) 78 + Conv(3,6,3) 168 + BN(6) 12 + Linear(150,25) 3775 + Linear(25,10) 260.
    assert shape.parameters == 4293 == _torch_parameters(ARTICLE_CNN, (1, 28, 28), 10)
    net = build_model(ARTICLE_CNN, (1, 28, 28), 10, seed=0)
    kinds = [type(m).__name__ for m in net]
    assert kinds == [
        "Conv2d",
        "ReLU",
        "AvgPool2d",
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "AvgPool2d",
        "Flatten",
        "Linear",
        "ReLU",
        "Linear",
    ]


def test_cnn_with_dropout_and_head_bn_matches_torch() -> None:
    model = CNNModel.model_validate(
        {
            "blocks": [
                {
                    "channels": 8,
                    "kernel": 3,
                    "padding": 1,
                    "pool": "max",
                    "dropout": 0.1,
                    "batchnorm": "after_activation",
                }
            ],
            "head": {"hidden": [32], "batchnorm": "before_activation", "dropout": 0.3},
            "activation": "gelu",
        }
    )
    shape = describe_model(model, (3, 32, 32), 10)
    assert shape.names == [
        "conv1.conv",
        "conv1.act",
        "conv1.bn",
        "conv1.pool",
        "conv1.dropout",
        "head1.linear",
        "head1.bn",
        "head1.act",
        "head1.dropout",
        "output.linear",
    ]
    assert shape.layers[3].out_shape == (8, 16, 16)
    assert shape.parameters == _torch_parameters(model, (3, 32, 32), 10)


def test_kernel_too_large_names_block_and_shape() -> None:
    model = CNNModel.model_validate(
        {"blocks": [{"channels": 3, "kernel": 3}, {"channels": 6, "kernel": 7}]}
    )
    with pytest.raises(
        ShapeError, match=r"blocks\[1\]: kernel 7 does not fit input of shape \(3, 6, 6\)"
    ):
        describe_model(model, (1, 8, 8), 10)


def test_pool_too_large_and_cnn_on_flat_input_are_refused() -> None:
    model = CNNModel.model_validate(
        {"blocks": [{"channels": 4, "kernel": 7, "pool": "avg", "pool_size": 4}]}
    )
    with pytest.raises(
        ShapeError, match=r"blocks\[0\]: pool 4 does not fit input of shape \(4, 2, 2\)"
    ):
        describe_model(model, (1, 8, 8), 10)
    with pytest.raises(ShapeError, match="image input"):
        describe_model(ARTICLE_CNN, (2,), 2)


def test_pre_activation_layer_is_the_notebooks_hidden_layer() -> None:
    assert pre_activation_layer(MLPModel(hidden=[48])) == "hidden1.linear"
    assert (
        pre_activation_layer(MLPModel(hidden=[48], batchnorm="before_activation")) == "hidden1.bn"
    )
    assert (
        pre_activation_layer(MLPModel(hidden=[48], batchnorm="after_activation"))
        == "hidden1.linear"
    )
    assert pre_activation_layer(ARTICLE_CNN, block=2) == "conv2.bn"
    assert pre_activation_layer(ARTICLE_CNN) == "conv1.conv"
    with pytest.raises(ValueError):
        pre_activation_layer(ARTICLE_CNN, block=3)
