"""Fused members against member-by-member training, side by side, through the training core.

Each case trains a preset with `training.fuse` on and off, interleaved, and prints the median
and minimum of each and their ratio against the target (issue 12 item 3):

- seed-dropout, 8 seeds as one group (3 variants x 8 seeds = 24 members): at least 3x (goal 5x)
- seed-dropout, 1 seed (its 3 variants): faster
- seed-bn-mlp, 4 seeds as one group: no slower (ratio >= 1.0)

    python -m bench.bench_fused [--repeats 3] [--epochs 1000] [--threads 1]

The preset's own 1000 epochs by default: at 200, building 24 members and their probes was a
fifth of the fused run, and the speed-up read 2.0x where the preset's is 2.3x.

On a 2-core Intel Xeon shared with other jobs (load 2-3), 1 thread, two runs of 2 repeats:
seed-dropout x 8 went from 2.7-2.8x to 3.5-3.7x (fused 6.3 s -> 4.9 s, alone 17.4 s) once
each seed's dropout masks came from one uniform draw (masks.py), Adam's square root skipped its
slow path on zeros (adam.py), linear layers' gradients stopped being copied into place, and
evaluations went stacked (fused_eval.py); x 1 seed 1.5x -> 1.5-1.8x; seed-bn-mlp x 4 stayed
1.2-1.3x (its step is matmuls). What is left of a fused seed-dropout step (about 4.7 ms): the
float64 uniforms of the dropout draws (0.6 ms, as member by member), the batched matmuls (about
1 ms), Adam on the denormal moments of units that never fire (about 0.7 ms: flushing denormals
would change numbers) and Python. At 2 threads on that busy machine the many small ops of
seed-dropout x 8 wait on each other: member by member took 70-245 s, fused 38 s before and
3.8 s after, so those ratios say little; seed-bn-mlp x 4 read 1.3-1.6x there.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.config import get_settings  # noqa: E402
from shared.presets import PRESETS  # noqa: E402
from shared.spec import ExperimentSpec  # noqa: E402
from worker.config import training_config  # noqa: E402
from worker.training import MemorySink, train  # noqa: E402

CASES = [
    # name, preset, seeds, epochs override (None: --epochs for seed-dropout), target, goal
    ("seed-dropout x 8 seeds", "seed-dropout", 8, None, 3.0, 5.0),
    ("seed-dropout x 1 seed", "seed-dropout", 1, None, 1.0, None),
    ("seed-bn-mlp x 4 seeds", "seed-bn-mlp", 4, 1, 1.0, None),
]


def spec_of(preset: str, seeds: int, epochs: int, fuse: bool) -> ExperimentSpec:
    """The preset with `seeds` seeds as one group, `epochs` epochs, fused or not."""
    spec: dict[str, Any] = PRESETS[preset].spec_copy()
    spec["training"].update(seeds=list(range(seeds)), epochs=epochs, fuse=fuse)
    return ExperimentSpec.model_validate(spec)


def timed(spec: ExperimentSpec) -> float:
    """Seconds to train the spec on the CPU (data set already cached by the first run)."""
    config = training_config(get_settings())
    start = time.perf_counter()
    train(spec, MemorySink(checkpoint_every_flush=False), device="cpu", config=config)
    return time.perf_counter() - start


def main() -> None:
    """Interleaved repeats of every case, fused and not; a table of ratios against targets."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1000, help="seed-dropout epochs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    for _, preset, *_ in CASES:  # warm-up: imports, data sets, allocator
        timed(spec_of(preset, 1, 1, True))
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeats):
        for name, preset, seeds, epochs, _, _ in CASES:
            for fuse in (False, True):
                spec = spec_of(preset, seeds, epochs or args.epochs, fuse)
                times.setdefault((name, fuse), []).append(timed(spec))
    print(f"fused members (CPU, {args.threads} thread(s), {args.repeats} interleaved repeats)")
    print(f"{'case':<24} {'alone med/min s':>16} {'fused med/min s':>16} {'speed-up':>9} target")
    for name, _, _, _, target, goal in CASES:
        alone, fused = times[(name, False)], times[(name, True)]
        ratio = statistics.median(alone) / statistics.median(fused)
        want = f">= {target:g}x" + (f" (goal {goal:g}x)" if goal else "")
        verdict = "ok" if ratio >= target else "MISSED"
        print(
            f"{name:<24} {statistics.median(alone):7.2f}/{min(alone):<7.2f}  "
            f"{statistics.median(fused):7.2f}/{min(fused):<7.2f} {ratio:8.2f}x {want} {verdict}"
        )


if __name__ == "__main__":
    main()
