"""Run one experiment alone, without queue or database: `python -m worker.training SPEC|PRESET`.

Everything it needs comes from its flags (data folders, downloads, flush period, threads); it
reads no BNLAB_* variable.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from shared.datasets import DatasetUnavailable, DataSources
from shared.spec import ExperimentSpec
from shared.status import ExperimentStatus
from worker.training.config import TrainingConfig
from worker.training.loop import TrainResult, train
from worker.training.sink import MemorySink

log = logging.getLogger("worker.training")


class LoggingSink(MemorySink):
    """A MemorySink that logs progress at most every few seconds."""

    def __init__(self, every_s: float = 5.0):
        super().__init__()
        self.every_s, self.last = every_s, 0.0

    def on_progress(self, done: int, total: int) -> None:
        """Record progress and log it now and then."""
        super().on_progress(done, total)
        if done == total or time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            log.info("step %d of %d (%.0f%%)", done, total, 100 * done / max(total, 1))


def load_spec(source: str) -> ExperimentSpec:
    """A spec from a JSON file path or a preset name of shared.presets.PRESETS."""
    path = Path(source)
    if path.suffix == ".json" or path.is_file():
        return ExperimentSpec.model_validate_json(path.read_text())
    from shared.presets import PRESETS  # only the CLI needs them

    if source not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise SystemExit(f"{source!r} is neither a JSON file nor a preset (presets: {known})")
    return ExperimentSpec.model_validate(PRESETS[source].spec_copy())


def results_json(spec: ExperimentSpec, result: TrainResult, sink: MemorySink) -> dict[str, Any]:
    """Everything collected, as JSON-ready dicts."""
    return {
        "spec": spec.model_dump(mode="json"),
        "status": result.status,
        "device": result.device,
        "dataset": None if result.dataset is None else result.dataset.to_dict(),
        "runs": [asdict(run) for run in result.runs],
        "metrics": [asdict(p) for p in sink.metrics],
        "histograms": [asdict(h) for h in sink.histograms],
        "curves": [asdict(c) for c in sink.curves],
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m worker.training", description=__doc__)
    parser.add_argument("spec", help="spec JSON file or preset name")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", type=Path, help="write the collected results here as JSON")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(".data"), help="downloads go to DATA_DIR/datasets"
    )
    parser.add_argument(
        "--datasets-dir", type=Path, help="searched first for data sets (mnist/, cifar10/ inside)"
    )
    parser.add_argument(
        "--no-download", action="store_true", help="never fetch missing data sets from mirrors"
    )
    parser.add_argument(
        "--flush-every", type=float, default=1.0, metavar="S", help="report at most every S s"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    config = TrainingConfig(
        DataSources(args.data_dir, args.datasets_dir, allow_download=not args.no_download),
        flush_every_s=args.flush_every,
    )
    spec = load_spec(args.spec)
    sink = LoggingSink()
    started = time.monotonic()
    try:
        result = train(spec, sink, device=args.device, config=config)
    except DatasetUnavailable as exc:
        log.error("%s", exc)
        return 2
    if result.dataset is not None and result.dataset.used != result.dataset.requested:
        log.warning("trained on %s instead of %s", result.dataset.used, result.dataset.requested)
    log.info("%s finished in %.1f s on %s", spec.name, time.monotonic() - started, result.device)
    if args.out is not None:
        args.out.write_text(json.dumps(results_json(spec, result, sink)))
        log.info("results written to %s", args.out)
    for run in result.runs:
        s = run.summary
        parts = [f"{k}={v:.4g}" for k, v in s.items() if isinstance(v, float)]
        diverged = f" at step {run.diverged_step}" if run.diverged_step else ""
        # The program's output proper (logging above is its diagnostics).
        print(
            f"{run.variant} seed {run.seed}: {run.status}{diverged}, {s['steps']} steps, "
            + " ".join(parts)
        )
    return 0 if result.status == ExperimentStatus.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
