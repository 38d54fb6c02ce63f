"""Side-by-side timings of the training core on study 1 (seed-bn-mlp) against plain PyTorch.

(a) the core, probes off; (b) a bare loop doing the same work (whole split as one tensor,
permutation batches, both nets in lockstep, no .item() in the loop); (c) the core with probes
every 10 steps on every layer, in train mode (taken from the training step's own forward) and
(d) in eval mode (a forward of its own); (e) the notebook's way (per-item Dataset through a
DataLoader). Then the CPU time spent inside the probes' own calls in (c) and (d): their own
forward, the captures, and the flushes' finish and decoding (the rest of the overhead lies
outside those calls).

    python bench/bench_training.py [--repeats 7] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.config import get_settings  # noqa: E402
from shared.spec import ExperimentSpec  # noqa: E402
from worker.config import training_config  # noqa: E402
from worker.training import MemorySink, train  # noqa: E402
from worker.training.data import load_dataset  # noqa: E402
from worker.training.probes import Prober  # noqa: E402

EPOCHS, BATCH, LR = 2, 512, 0.01
MODES = ("train", "eval")


def study1(probes: str | None) -> ExperimentSpec:
    """Study 1: fashion-mnist, MLP 784-48-24-10 plain and Linear-BN-ReLU, SGD 0.01, batch 512.

    `probes` is the probes' mode (train or eval), or None for no probes.
    """
    mlp = {"kind": "mlp", "hidden": [48, 24]}
    return ExperimentSpec.model_validate(
        {
            "name": "seed-bn-mlp",
            "dataset": {"name": "fashion-mnist"},
            "variants": [
                {"name": "plain", "model": mlp},
                {"name": "bn", "model": {**mlp, "batchnorm": "before_activation"}},
            ],
            "training": {
                "epochs": EPOCHS,
                "batch_size": BATCH,
                "optimizer": {"name": "sgd", "lr": LR},
            },
            "probes": {"enabled": probes is not None, "every": 10, "mode": probes or "eval"},
        }
    )


def nets(device: torch.device) -> list[nn.Module]:
    """The two nets of study 1 as plain Sequentials."""
    torch.manual_seed(0)
    plain = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 48), nn.ReLU(), nn.Linear(48, 24), nn.ReLU(), nn.Linear(24, 10)
    )
    bn = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 48),
        nn.BatchNorm1d(48),
        nn.ReLU(),
        nn.Linear(48, 24),
        nn.BatchNorm1d(24),
        nn.ReLU(),
        nn.Linear(24, 10),
    )
    return [plain.to(device), bn.to(device)]


@torch.no_grad()
def test(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    net.eval()
    out = torch.cat([net(x[i : i + 8192]) for i in range(0, len(x), 8192)])
    net.train()
    return F.cross_entropy(out, y), (out.argmax(1) == y).float().mean()


def bare(x, y, x_test, y_test, device) -> float:
    """The same work written directly: one tensor, permutation batches, lockstep."""
    models = nets(device)
    optimizers = [torch.optim.SGD(m.parameters(), lr=LR) for m in models]
    g = torch.Generator().manual_seed(0)
    losses: list[list[torch.Tensor]] = [[], []]
    results = []
    for _ in range(EPOCHS):
        order = torch.randperm(len(x), generator=g).to(device)
        for start in range(0, len(x), BATCH):
            index = order[start : start + BATCH]
            xb, yb = x.index_select(0, index), y.index_select(0, index)
            for model, opt, log in zip(models, optimizers, losses, strict=True):
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                log.append(loss.detach())
        results += [test(m, x_test, y_test) for m in models]
    return float(torch.stack([torch.stack(v) for v in losses]).sum())


class PerItem(TorchDataset):
    """The notebook's data path: one (image, label) pair per __getitem__."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def notebook(x, y, x_test, y_test, device) -> float:
    """The notebook's loop: DataLoader batches, loss.item() each step."""
    models = nets(device)
    optimizers = [torch.optim.SGD(m.parameters(), lr=LR) for m in models]
    loader = DataLoader(PerItem(x, y), batch_size=BATCH, shuffle=True)
    losses: list[list[float]] = [[], []]
    for _ in range(EPOCHS):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            for model, opt, log in zip(models, optimizers, losses, strict=True):
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                log.append(loss.item())
        for m in models:
            test(m, x_test, y_test)
    return sum(map(sum, losses))


class ProbeClock:
    """CPU time inside the probes' own calls during a run: where the overhead goes, measured
    inside the training loop (where a capture finds the caches cold)."""

    PARTS = {
        "layer_outputs": "own forward",
        "capture": "capture",
        "finish": "finish",
        "_decode": "decode",
    }

    def __init__(self) -> None:
        self.spent = dict.fromkeys(self.PARTS.values(), 0.0)
        for name, label in self.PARTS.items():
            setattr(Prober, name, self._timed(getattr(Prober, name), label))

    def _timed(self, call: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return call(*args, **kwargs)
            finally:
                self.spent[label] += time.process_time() - start

        return timed

    def take(self) -> dict[str, float]:
        """Time spent per part since the last take."""
        spent, self.spent = self.spent, dict.fromkeys(self.PARTS.values(), 0.0)
        return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    # One intra-op thread by default: on a shared machine, thread-pool barriers waiting for a
    # busy core swamp the comparison (two threads ran up to 50x slower under load here).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = training_config(get_settings())
    data = load_dataset(study1(None).dataset, config.data).to_device(device)
    x, y, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def core(probes: str | None) -> Callable[[], object]:
        return lambda: train(study1(probes), MemorySink(), device=args.device, config=config)

    runs = {
        "core": core(None),
        "bare": lambda: bare(x, y, x_test, y_test, device),
        "probes-train": core("train"),
        "probes-eval": core("eval"),
        "notebook": lambda: notebook(x, y, x_test, y_test, device),
    }
    # Wall time, and on a CPU also this process's CPU time: the CPU time barely moves when
    # other processes share the machine, so its ratios are the ones to trust on a busy host.
    clocks = {"wall": time.perf_counter}
    if device.type == "cpu":
        clocks["cpu"] = time.process_time
    times: dict[tuple[str, str], list[float]] = {
        (clock, name): [] for clock in clocks for name in runs
    }
    probe_clock = ProbeClock()
    parts: dict[str, list[dict[str, float]]] = {f"probes-{m}": [] for m in MODES}
    for fn in runs.values():  # warm-up
        fn()
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits all alike
        for name, fn in runs.items():
            sync()
            starts = {clock: read() for clock, read in clocks.items()}
            probe_clock.take()
            fn()
            sync()
            for clock, read in clocks.items():
                times[(clock, name)].append(read() - starts[clock])
            if name in parts:
                parts[name].append(probe_clock.take())
    steps = EPOCHS * -(-len(x) // BATCH)
    print(
        f"seed-bn-mlp: {len(x)} examples, {steps} lockstep steps x 2 nets, device {device}, "
        f"{args.threads} threads, {args.repeats} interleaved repeats, median (min)"
    )
    for clock in clocks:
        median = {name: statistics.median(times[(clock, name)]) for name in runs}
        best = {name: min(times[(clock, name)]) for name in runs}
        print(f"{clock} time")
        for name in runs:
            print(
                f"  {name:13s} {median[name]:7.3f} s ({best[name]:.3f})"
                f"   {1000 * median[name] / steps:5.2f} ms/step"
            )
        for label, f in (("median", median), ("min", best)):
            train_cost, eval_cost = (100 * (f[f"probes-{m}"] / f["core"] - 1) for m in MODES)
            print(
                f"  {label:>6}: core/bare {f['core'] / f['bare']:.3f} (target <= 1.15)   "
                f"probes overhead: train {train_cost:+.1f}% (target <= 2%), "
                f"eval {eval_cost:+.1f}% (target <= 6%)   "
                f"notebook/core {f['notebook'] / f['core']:.2f}x"
            )
    core_cpu = statistics.median(times[("cpu" if "cpu" in clocks else "wall", "core")])
    print("probes' own calls per run (CPU time, median; on a GPU, only the launches)")
    for name, samples in parts.items():
        spent = {part: statistics.median(s[part] for s in samples) for part in samples[0]}
        shown = "   ".join(f"{part} {1000 * t:5.1f} ms" for part, t in spent.items() if t)
        print(
            f"  {name:13s} {shown}   together {100 * sum(spent.values()) / core_cpu:.1f}% of core"
        )


if __name__ == "__main__":
    main()
