"""Probe captures: statistics that agree with exact ones, drift, and nothing non-finite."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from shared.spec import CNNModel, ExperimentSpec, MLPModel, ProbeSpec
from tests.unit.layers import batchnorm, linear
from worker.training import MemorySink, train
from worker.training.config import TrainingConfig
from worker.training.models import Net, build_model
from worker.training.probes import FINE_BINS, Outputs, Prober
from worker.training.sink import QUANTILE_KEYS, HistogramCapture

LEVELS = torch.tensor([float(k) / 100 for k in QUANTILE_KEYS], dtype=torch.float64)


def _net(**kwargs: object) -> Net:
    return build_model(MLPModel(hidden=[32, 16], **kwargs), (4,), 3, seed=0)


def _probed(prober: Prober, net: Net, x: torch.Tensor) -> tuple[str, Net, Outputs]:
    """What the loop hands a prober in eval mode: variant "v", its net, its layers' outputs."""
    return ("v", net, prober.layer_outputs(net, x))


def _capture(
    prober: Prober, net: Net, x: torch.Tensor, step: int = 10
) -> dict[tuple[str, str], HistogramCapture]:
    """The captures of one probe of `net`, by (layer, kind)."""
    rows, decode = prober.finish([prober.capture(0, step, [_probed(prober, net, x)])])
    return {(h.layer, h.kind): h for h in decode(rows.cpu().numpy())}


def test_statistics_agree_with_exact_ones() -> None:
    torch.manual_seed(0)
    net, x = _net(), torch.randn(1000, 4) * 5 + 3
    prober = Prober(ProbeSpec(bins=20))
    captures = _capture(prober, net, x)
    net.eval()
    _, outputs = net.forward_with_outputs(x)
    assert [layer for layer, _ in captures] == [name for name, _ in outputs]
    for name, tensor in outputs:
        h, t = captures[(name, "activation")], tensor.detach().double().reshape(-1)
        s = h.stats
        assert h.kind == "activation" and h.step == 10 and h.variant == "v"
        assert s["count"] == t.numel() == sum(h.counts)
        assert len(h.counts) == 20 and len(h.edges) == 21
        assert (
            s["min"] == t.min().item() == h.edges[0] and s["max"] == t.max().item() == h.edges[-1]
        )
        assert s["mean"] == pytest.approx(t.mean().item(), rel=1e-5, abs=1e-6)
        assert s["std"] == pytest.approx(t.std(correction=0).item(), rel=1e-4)
        assert s["zero_fraction"] == (t == 0).double().mean().item()
        exact = torch.quantile(t, LEVELS).tolist()
        tolerance = 2 * (s["max"] - s["min"]) / FINE_BINS
        values = [s["quantiles"][k] for k in QUANTILE_KEYS]
        assert values == pytest.approx(exact, abs=tolerance)
        assert values == sorted(values)
        assert s["drift"] is None
    # ReLU zeros are a point mass: quantiles inside it are exactly zero.
    act = captures[("hidden1.act", "activation")].stats
    assert act["zero_fraction"] > 0.3 and act["quantiles"]["25"] == 0.0


def test_histogram_counts_fall_between_their_edges() -> None:
    torch.manual_seed(1)
    net, x = _net(), torch.randn(500, 4)
    h = _capture(Prober(ProbeSpec(bins=8)), net, x)[("hidden1.linear", "activation")]
    values = linear(net, "hidden1_linear")(x).detach().reshape(-1)
    expected = torch.histc(values, bins=8, min=h.edges[0], max=h.edges[-1])
    assert sum(abs(a - b) for a, b in zip(h.counts, expected.tolist(), strict=True)) <= 2


def test_drift_is_none_first_then_measures_the_shift() -> None:
    torch.manual_seed(2)
    net, x = _net(), torch.randn(2000, 4)
    prober = Prober(ProbeSpec())
    assert _capture(prober, net, x, 10)[("hidden1.linear", "activation")].stats["drift"] is None
    unchanged = _capture(prober, net, x, 20)[("hidden1.linear", "activation")].stats["drift"]
    assert unchanged == pytest.approx(0.0, abs=1e-9)
    with torch.no_grad():
        linear(net, "hidden1_linear").bias.add_(0.5)  # every output moves by exactly 0.5
    shifted = _capture(prober, net, x, 30)
    assert shifted[("hidden1.linear", "activation")].stats["drift"] == pytest.approx(0.5, rel=0.01)
    assert all(h.stats["drift"] >= 0 for h in shifted.values())


def test_constant_layer_and_non_finite_layers() -> None:
    net, x = _net(), torch.randn(64, 4)
    with torch.no_grad():
        linear(net, "hidden1_linear").weight.zero_()
        linear(net, "hidden1_linear").bias.fill_(-1.0)  # ReLU of -1: all exact zeros
        linear(net, "output_linear").weight[0, 0] = math.nan
    captures = _capture(Prober(ProbeSpec(bins=10)), net, x)
    act = captures[("hidden1.act", "activation")]
    assert act.stats["zero_fraction"] == 1.0 and act.stats["std"] == 0.0
    assert set(act.stats["quantiles"].values()) == {0.0}
    assert act.edges[0] == -1.0 and act.edges[-1] == 1.0 and sum(act.counts) == 64 * 32
    assert ("output.linear", "activation") not in captures  # NaN: dropped, never reported
    assert ("hidden2.linear", "activation") in captures


def test_weights_and_gradients_are_captured_by_canonical_name() -> None:
    net = _net(batchnorm="before_activation")
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    F.cross_entropy(net(x), y).backward()
    captures = _capture(Prober(ProbeSpec(weights=True, gradients=True)), net, x)
    weight = captures[("hidden1.linear.weight", "weight")]
    assert weight.stats["count"] == 32 * 4
    assert weight.stats["mean"] == pytest.approx(
        linear(net, "hidden1_linear").weight.mean().item(), abs=1e-6
    )
    grad = captures[("hidden1.bn.weight", "grad")]
    bn_grad = batchnorm(net, "hidden1_bn").weight.grad
    assert bn_grad is not None and grad.stats["max"] == bn_grad.max().item()


def test_train_mode_captures_the_updates_own_forward() -> None:
    """Step 1's capture is what the layers saw before the first update: BN output standardised."""
    spec = ExperimentSpec.model_validate(
        {
            "name": "own-forward",
            "dataset": {"name": "digits", "train_size": 256, "test_size": 64},
            "variants": [{"name": "bn", "model": {"kind": "mlp", "hidden": [16], "batchnorm":
                          "before_activation", "dropout": 0.5}}],
            "training": {"epochs": 1, "batch_size": 128, "optimizer": {"name": "sgd", "lr": 1.0}},
            "probes": {"every": 1, "mode": "train"},
        }
    )  # fmt: skip
    sink = MemorySink()
    train(spec, sink, device="cpu", config=TrainingConfig())
    captured = {(h.layer, h.step): h.stats for h in sink.histograms}
    # BN's weight 1 and bias 0 until the first update (lr 1 would move them far from that).
    bn = captured[("hidden1.bn", 1)]
    assert bn["mean"] == pytest.approx(0.0, abs=1e-6) and bn["std"] == pytest.approx(1.0, rel=1e-3)
    assert captured[("hidden1.bn", 2)]["mean"] != pytest.approx(0.0, abs=1e-3)
    # Dropout at 0.5 zeroes about half of what it sees, on top of ReLU's zeros.
    act, drop = captured[("hidden1.act", 1)], captured[("hidden1.dropout", 1)]
    assert drop["zero_fraction"] > act["zero_fraction"] + 0.2


def test_captures_finished_together_or_apart_report_the_same() -> None:
    x = torch.randn(300, 4)
    before, after = _net(), _net()
    with torch.no_grad():
        linear(after, "hidden1_linear").weight.mul_(1.5)
    states = [(1, before), (2, after)]
    together, apart = Prober(ProbeSpec()), Prober(ProbeSpec())
    captures = [together.capture(0, s, [_probed(together, n, x)]) for s, n in states]
    rows, decode = together.finish(captures)
    batched = decode(rows.numpy())
    alone = []
    for step, net in states:
        rows, decode = apart.finish([apart.capture(0, step, [_probed(apart, net, x)])])
        alone += decode(rows.numpy())
    assert [(h.layer, h.step, h.stats) for h in batched] == [
        (h.layer, h.step, h.stats) for h in alone
    ]
    drift = {h.layer: h.stats["drift"] for h in batched if h.step == 2}
    assert drift["hidden1.linear"] > 0.1 and drift["hidden1.act"] > 0


def test_cnn_layers_of_many_sizes_are_summarised_exactly_enough() -> None:
    cnn = CNNModel.model_validate(
        {
            "blocks": [
                {"channels": 3, "kernel": 5, "pool": "avg"},
                {"channels": 6, "kernel": 3, "pool": "max", "batchnorm": "before_activation"},
            ],
            "head": {"hidden": [25]},
        }
    )
    net, x = build_model(cnn, (1, 28, 28), 10, seed=0), torch.rand(64, 1, 28, 28)
    captures = _capture(Prober(ProbeSpec()), net, x)
    net.eval()
    for name, tensor in net.forward_with_outputs(x)[1]:
        t, s = tensor.double().reshape(-1), captures[(name, "activation")].stats
        assert s["count"] == t.numel() == sum(captures[(name, "activation")].counts)
        assert s["mean"] == pytest.approx(t.mean().item(), rel=1e-5, abs=1e-6)
        exact = torch.quantile(t, LEVELS).tolist()
        tolerance = 2 * (s["max"] - s["min"]) / FINE_BINS
        assert [s["quantiles"][k] for k in QUANTILE_KEYS] == pytest.approx(exact, abs=tolerance)


def test_the_api_probe_cap_counts_exactly_the_histograms_training_stores() -> None:
    from api.submission import check_limits, probe_histograms
    from shared.config import Settings
    from shared.datasets import CATALOG
    from shared.shapes import describe_model

    spec = ExperimentSpec.model_validate(
        {
            "name": "counted",
            "dataset": {"name": "regression1d", "n": 96},
            "variants": [
                {"name": "plain", "model": {"kind": "mlp", "hidden": [8, 8]}},
                {
                    "name": "bn",
                    "model": {"kind": "mlp", "hidden": [8], "batchnorm": "after_activation"},
                },
            ],
            "training": {"epochs": 3, "batch_size": 32, "seeds": [0, 1]},
            "probes": {"every": 2, "weights": True, "gradients": True},
        }
    )
    info = CATALOG[spec.dataset.name]
    shapes = [describe_model(v.model, info.input_shape, info.num_outputs) for v in spec.variants]
    sink = MemorySink()
    train(spec, sink, device="cpu", config=TrainingConfig())
    assert probe_histograms(spec, shapes) == len(sink.histograms) > 0
    with pytest.raises(Exception, match="BNLAB_MAX_PROBE_HISTOGRAMS"):
        check_limits(spec, Settings(max_probe_histograms=len(sink.histograms) - 1))


def test_a_constant_layer_far_from_zero_is_captured() -> None:
    """At 1e8, min - 1 == max + 1 in float32: the range has no width (training used to crash)."""
    prober = Prober(ProbeSpec(bins=10))
    outputs = [("big", torch.full((64, 4), 1e8)), ("small", torch.randn(64, 2))]
    rows, decode = prober.finish([prober.capture(0, 10, [("v", _net(), outputs)])])
    big = {h.layer: h for h in decode(rows.numpy())}["big"]
    assert big.stats["min"] == big.stats["max"] == big.stats["quantiles"]["50"] == 1e8
    assert sum(big.counts) == 256 and big.stats["std"] == 0.0
