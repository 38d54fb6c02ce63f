"""`make demo`: the embedded default end to end, on the tutorial's first study."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bnlab_client import ApiError, Client
from scripts.stack import ROOT, Stack
from shared.logs import configure_logging

log = logging.getLogger("demo")

PRESET = "seed-bn-mlp"
# The findings printed at the end; every other measure is in the API and on the dashboard.
SHOWN_FINDINGS = ("early_train_loss", "final_test_accuracy", "steps_to_threshold")
# The API's and the worker's output, for when something goes wrong.
LOGS = ROOT / ".data" / "logs"


def check_processes(stack: Stack) -> Callable[[dict[str, Any]], None]:
    """Stop waiting, with a pointer to the logs, if the API or the worker stopped."""

    def check(_: dict[str, Any]) -> None:
        stopped = [name for name, p in stack.processes.items() if p.poll() is not None]
        if stopped:
            raise RuntimeError(f"the {' and '.join(stopped)} stopped; its log is in {LOGS}")

    return check


def main() -> int:
    configure_logging()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the client's every request
    port = int(os.environ.get("BNLAB_DEMO_PORT", "8000"))
    stack = Stack(env={}, port=port, log_dir=LOGS)
    print(f"Starting bnlab on {stack.url} (SQLite and a filesystem broker under .data/) ...")
    try:
        with stack:
            return run_demo(stack)
    except KeyboardInterrupt:  # the usual way to end the demo, while training or after
        print("\nStopped.")
        return 0
    except RuntimeError as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 1


def run_demo(stack: Stack) -> int:
    """Submit the preset, show its progress and findings, then serve until Ctrl-C."""
    # The progress is drawn by the same client code as `bnlab run --watch`.
    client = Client(stack.url, stack.token)
    try:
        experiment = client.submit(preset=PRESET)
    except ApiError as exc:
        print(f"submission failed: {exc}", file=sys.stderr)
        return 1
    experiment_id = experiment["id"]
    print(f"Submitted {PRESET} on {experiment['spec']['dataset']['name']}: {experiment_id}")
    experiment = client.wait(experiment_id, progress=True, on_update=check_processes(stack))
    if experiment["error"]:
        print(f"  error: {experiment['error']}")
    for run in experiment["runs"]:
        print(f"  run {run['variant']:<8} seed {run['seed']}: {run['status']}  {run['summary']}")
    for pair in (experiment.get("findings") or {}).get("pairs", []):
        for statement in pair["statements"]:
            if statement.split(":")[0] in SHOWN_FINDINGS:
                print(f"  {statement}")
    print(f"\nDashboard:  {stack.url}/experiments/{experiment_id}")
    print(f"Experiment: {stack.url}/api/v1/experiments/{experiment_id}")
    for run in experiment["runs"]:
        print(f"Metrics ({run['variant']}): {stack.url}/api/v1/runs/{run['id']}/metrics")
    print(f"Swagger UI: {stack.url}/docs")
    print(f"Terminal:   BNLAB_URL={stack.url} .venv/bin/bnlab show {experiment_id}")
    print("Serving until Ctrl-C.")
    while all(p.poll() is None for p in stack.processes.values()):
        time.sleep(1)
    return 0 if experiment["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
