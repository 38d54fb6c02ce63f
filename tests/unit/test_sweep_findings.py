"""Findings across a sweep's points, from plain records (no database)."""

from __future__ import annotations

import uuid

from shared.sweep_findings import PointRecord, RunRecord, compute

LR = "training.optimizer.lr"
# Test accuracy per (lr, variant, seed); None: the run diverged.
ACCURACY: dict[float, dict[str, list[float | None]]] = {
    0.01: {"plain": [0.80, 0.82, 0.81], "bn": [0.90, 0.91, 0.89]},
    0.1: {"plain": [0.92, 0.93, 0.91], "bn": [0.95, 0.96, 0.95]},
    1.0: {"plain": [0.70, 0.96, 0.80], "bn": [0.97, 0.95, 0.96]},
    3.0: {"plain": [None, None, 0.5], "bn": [0.94, 0.93, 0.95]},
}


def run(variant: str, seed: int, accuracy: float | None) -> RunRecord:
    if accuracy is None:
        return RunRecord(variant, seed, "diverged", 12, {"final_train_loss": None}, 2.3, None)
    # A run that barely learned keeps its loss near where it started.
    final = 2.2 if accuracy < 0.6 else 0.4
    summary = {"final_train_loss": final, "test_accuracy": accuracy, "test_loss": 1 - accuracy}
    return RunRecord(variant, seed, "succeeded", None, summary, 2.3, 1.0)


def points() -> list[PointRecord]:
    out = []
    for index, (lr, by_variant) in enumerate(ACCURACY.items()):
        runs = [run(v, s, a) for v, accs in by_variant.items() for s, a in enumerate(accs)]
        out.append(PointRecord(index, {LR: lr}, uuid.uuid4(), "succeeded", runs, chance=0.1))
    return out


def test_findings_say_where_each_variant_trains_and_how_they_compare() -> None:
    found = compute(uuid.uuid4(), [LR], points(), None)
    assert found.metric == "test_accuracy" and found.higher_is_better
    assert found.variants == ["plain", "bn"]
    at_01 = found.points[1].variants["bn"]
    mean = at_01.final.mean
    assert at_01.final.n == 3 and mean is not None and abs(mean - 0.9533) < 1e-3
    assert at_01.early_train_loss.mean == 1.0 and at_01.trains
    # Plain diverges at lr 3 in seeds 0 and 1 only; seed 2 stays finite but does not learn.
    assert [(d.variant, d.seed, d.step) for d in found.diverged] == [
        ("plain", 0, 12),
        ("plain", 1, 12),
    ]
    assert found.points[3].variants["plain"].trains is False
    assert found.trains_up_to[LR]["plain"] == {
        "value": 1.0,
        "next": 3.0,
        "why_not_next": "diverged in seeds [0, 1]",
    }
    assert found.trains_up_to[LR]["bn"]["value"] == 3.0
    assert found.best[LR]["plain"].value == 0.1 and found.best[LR]["bn"].value == 1.0
    pair = found.pairs[0]
    assert (pair.a, pair.b) == ("plain", "bn")
    assert pair.b_better == [{LR: 0.01}, {LR: 0.1}, {LR: 3.0}]
    assert pair.mixed == [{LR: 1.0}] and pair.a_better == []
    text = "\n".join(found.statements)
    assert "plain trains up to lr = 1; at 3 diverged in seeds [0, 1]" in text
    assert "bn trains at every lr tried, up to 3" in text
    assert "test_accuracy at the lr that suits each best: plain 0.92 ± 0.01 at lr = 0.1" in text
    assert "bn beats plain on test_accuracy in every seed at lr=0.01, lr=0.1, lr=3.0" in text
    assert "plain diverged at lr=3.0 in seeds [0, 1]" in text


def test_lower_is_better_for_losses() -> None:
    found = compute(uuid.uuid4(), [LR], points(), "test_loss")
    assert not found.higher_is_better
    assert found.best[LR]["bn"].value == 1.0


def test_undecided_while_points_still_train() -> None:
    unfinished = points()
    unfinished[0].status = "running"
    for r in unfinished[0].runs:
        r.status = "running"
    found = compute(uuid.uuid4(), [LR], unfinished, None)
    assert found.points[0].variants["bn"].trains is None
    assert found.trains_up_to[LR] == {}
    assert {LR: 0.01} not in found.pairs[0].b_better


def test_sensitivity_plot_lines_and_heatmaps() -> None:
    from api.plots import sensitivity
    from api.plots.registry import to_bytes

    found = compute(uuid.uuid4(), [LR], points(), None)
    one = sensitivity.data(found, None)
    assert one["kind"] == "lines" and one["log_x"] and one["x"] == [0.01, 0.1, 1.0, 3.0]
    plain = one["series"][0]
    assert plain["diverged_at"] == [3.0] and plain["min"][2] == 0.7 and plain["max"][2] == 0.96
    assert to_bytes(sensitivity.draw(one), "png").startswith(b"\x89PNG")
    # Two axes: a heatmap per variant.
    two = points()
    for p in two:
        p.values = {**p.values, "training.batch_size": 64 if p.index % 2 else 512}
    found = compute(uuid.uuid4(), [LR, "training.batch_size"], two, None)
    heat = sensitivity.data(found, None)
    assert heat["kind"] == "heatmap" and heat["y"] == [64, 512]
    assert heat["variants"][0]["diverged"][0][3] is True
    assert b"<svg" in to_bytes(sensitivity.draw(heat), "svg")
    lines = sensitivity.data(found, "training.batch_size")
    assert lines["kind"] == "lines" and lines["best_over_other_axes"] and not lines["log_x"]


def test_a_classifier_near_chance_does_not_train_though_its_loss_fell() -> None:
    near_chance = points()
    for r in near_chance[2].runs:  # lr 1.0: every bn seed at 20 % on ten classes
        if r.variant == "bn":
            r.summary = {**r.summary, "test_accuracy": 0.2}
    found = compute(uuid.uuid4(), [LR], near_chance, None)
    assert found.points[2].variants["bn"].trains is False
    assert found.trains_up_to[LR]["bn"]["value"] == 3.0
    assert found.trains_up_to[LR]["plain"]["why_not_next"] == "diverged in seeds [0, 1]"
    up = compute(uuid.uuid4(), [LR], near_chance[:3], None).trains_up_to[LR]["bn"]
    assert up == {"value": 0.1, "next": 1.0, "why_not_next": "it did not learn"}
