"""A live view of one experiment on the terminal: a bar per seed group, latest loss, time left."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from bnlab_client.client import FINISHED

if TYPE_CHECKING:
    from bnlab_client.client import Client


def seed_groups(experiment: dict[str, Any]) -> dict[str, tuple[float, list[dict[str, Any]]]]:
    """Each seed group's label, share done and runs: a group trains its seeds on one worker.

    An API without groups trains the seeds one after another, in spec order.
    """
    runs = experiment["runs"]
    groups = experiment.get("groups") or [
        {"seeds": [seed], "progress": None} for seed in dict.fromkeys(r["seed"] for r in runs)
    ]
    found = {}
    for i, group in enumerate(groups):
        seeds = group["seeds"]
        fraction = group["progress"]
        if fraction is None:
            fraction = min(1.0, max(0.0, experiment["progress"] * len(groups) - i))
        label = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {','.join(map(str, seeds))}"
        found[label] = (fraction, [r for r in runs if r["seed"] in seeds])
    return found


class LossTracker:
    """The latest train_loss of each run, fetched incrementally (only new steps)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.latest: dict[str, tuple[int, float]] = {}
        self.final: set[str] = set()

    def update(self, run: dict[str, Any]) -> None:
        """Fetch the new steps of a running run, and a finished one's last once."""
        if run["status"] == "queued" or run["id"] in self.final:
            return
        if run["status"] != "running":
            self.final.add(run["id"])
        since = self.latest.get(run["id"], (None, 0.0))[0]
        series = self.client.metrics(run["id"], ["train_loss"], since_step=since).series
        found = series.get("train_loss")
        if found and found.steps:
            self.latest[run["id"]] = (found.steps[-1], found.values[-1])

    def text(self, runs: list[dict[str, Any]]) -> str:
        parts = []
        for run in runs:
            if run["id"] in self.latest:
                step, loss = self.latest[run["id"]]
                parts.append(f"{run['variant']} {loss:.4g}")
        return "  ".join(parts) or run_states(runs)


def run_states(runs: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({run["status"] for run in runs}))


def watch(
    client: Client,
    experiment_id: str,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
    console: Console | None = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Draw the experiment's progress until it finishes; returns the finished experiment."""
    console = console or Console(stderr=True)
    losses = LossTracker(client)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    experiment = client.experiment(experiment_id)
    console.print(f"[bold]{experiment['name']}[/] {experiment_id} ({experiment['status']})")
    tasks: dict[str, TaskID] = {}
    with Progress(*columns, console=console, transient=False) as bar:
        for label in seed_groups(experiment):
            tasks[label] = bar.add_task(label, total=1.0, status="queued")
        while True:
            for label, (fraction, runs) in seed_groups(experiment).items():
                for run in runs:
                    losses.update(run)
                bar.update(tasks[label], completed=fraction, status=losses.text(runs))
            if on_update:
                on_update(experiment)
            if experiment["status"] in FINISHED:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"experiment {experiment_id} not finished in {timeout_s} s")
            experiment = client.wait_once(experiment_id, poll_s)
    console.print(f"{experiment_id}: [bold]{experiment['status']}[/]")
    if experiment.get("error"):
        console.print(f"error: {experiment['error']}")
    return experiment
