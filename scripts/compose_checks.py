"""What the compose smoke check proves through the published API (scripts/compose_smoke.py).

Two seed studies, one per worker; both workers stopped mid-training (a SIGTERM: each hands its
experiment back) and started again; both experiments then succeed on a second claim, with every
metric step stored once and every training step from 1 to the last present; the loss plot reads.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Protocol

import httpx

log = logging.getLogger("compose-smoke")

PRESET = "seed-bn-mlp"
# Long enough that, on a quiet machine, the workers are stopped well before either finishes
# (one epoch of two took 3 s there, and finished between two looks); a few minutes when loaded.
OVERRIDES = {"training": {"epochs": 10}}
STOP_AT_PROGRESS = 0.1  # both experiments at least this far when the workers are stopped


class ComposeLike(Protocol):
    def __call__(self, *args: str, quiet: bool = False) -> str: ...


def ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise SystemExit(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text[:500]}"
        )
    return response.json()


def until(what: str, check: Any, timeout: float, every: float = 3.0) -> Any:
    log.info("waiting (up to %.0f s) for %s", timeout, what)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


_last_logged: dict[str, tuple[str, int, int]] = {}


def states(client: httpx.Client, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The experiments as the API shows them; logged when a status or a tenth of progress moves."""
    found = {i: ok(client.get(f"/api/v1/experiments/{i}")) for i in ids}
    for i, e in found.items():
        now = (e["status"], int(10 * e["progress"]), e["attempt"])
        if _last_logged.get(i) != now:
            _last_logged[i] = now
            log.info(
                "  %s: %s, %.0f%%, attempt %d", i, e["status"], 100 * e["progress"], e["attempt"]
            )
    for i, e in found.items():
        if e["status"] in ("failed", "cancelled"):
            raise SystemExit(f"experiment {i} {e['status']}: {e.get('error')}")
    return found


def takers(compose: ComposeLike) -> dict[str, list[str]]:
    """The worker containers whose log shows a task received, with those lines."""
    lines = compose("logs", "--no-color", "worker", quiet=True).splitlines()
    seen: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        container, bar, text = line.partition("|")
        if bar and " received" in text:
            seen[container.strip()].append(text.strip())
    return seen


def check_steps(client: httpx.Client, run: dict[str, Any]) -> int:
    """Every series of the run has each step once; train_loss has every step from 1 to its last."""
    series = ok(client.get(f"/api/v1/runs/{run['id']}/metrics"))["series"]
    for key, points in series.items():
        steps = points["steps"]
        if len(set(steps)) != len(steps):
            raise SystemExit(f"run {run['id']} ({run['variant']}): a step of {key} is stored twice")
    train = series["train_loss"]["steps"]
    if sorted(train) != list(range(1, len(train) + 1)):
        raise SystemExit(f"run {run['id']} ({run['variant']}): train_loss steps have a gap")
    return len(train)


def exercise(compose: ComposeLike, client: httpx.Client) -> None:
    ids = []
    for _ in range(2):
        body = {"preset": PRESET, "overrides": OVERRIDES}
        created = ok(client.post("/api/v1/experiments", json=body))
        ids.append(created["id"])
        log.info("submitted %s with %s: experiment %s", PRESET, OVERRIDES, created["id"])

    def both_under_way() -> bool:
        found = states(client, ids)
        if any(e["status"] == "succeeded" for e in found.values()):
            raise SystemExit("an experiment finished before the workers could be stopped")
        return all(
            e["status"] == "running" and e["progress"] >= STOP_AT_PROGRESS for e in found.values()
        )

    until(
        f"both experiments running, each at {STOP_AT_PROGRESS:.0%} or more",
        both_under_way,
        900,
        every=0.5,
    )
    seen = takers(compose)
    for container, received in seen.items():
        log.info("%s took work: %s", container, received[0])
    if len(seen) < 2:
        raise SystemExit(f"only {sorted(seen)} took work; two workers should have")

    compose("stop", "worker")
    handed = states(client, ids)
    if any(e["status"] != "queued" for e in handed.values()):
        # What each group says, and how each worker ended, for whoever reads the failure.
        for i, e in handed.items():
            for g in e["groups"]:
                log.error("  %s group %s: %s, worker %s", i, g["id"], g["status"], g["worker"])
        log.error("%s", compose("logs", "--no-color", "--tail", "25", "worker", quiet=True))
        raise SystemExit("stopped workers did not hand their experiments back (queued)")
    log.info("both experiments handed back at the stop, queued")
    compose("start", "worker")

    done = until(
        "both experiments to succeed",
        lambda: (
            all(e["status"] == "succeeded" for e in states(client, ids).values())
            and states(client, ids)
        ),
        1800,
        every=5,
    )
    for i, experiment in done.items():
        if experiment["attempt"] < 2:
            raise SystemExit(f"experiment {i} was not resumed (attempt {experiment['attempt']})")
        counts = {run["variant"]: check_steps(client, run) for run in experiment["runs"]}
        log.info(
            "experiment %s: succeeded on attempt %d; train_loss steps once each, 1..N: %s",
            i,
            experiment["attempt"],
            counts,
        )

    plot = client.get(f"/api/v1/experiments/{ids[0]}/plots/loss.png")
    if plot.status_code != 200 or not plot.content.startswith(b"\x89PNG"):
        raise SystemExit(f"the loss plot: {plot.status_code} {plot.headers.get('content-type')}")
    log.info("the loss plot of %s: a PNG of %d bytes", ids[0], len(plot.content))
