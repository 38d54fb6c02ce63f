"""The `bnlab` command as a user types it, in a subprocess, against a real API and worker."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bnlab_client import ApiError, Client
from scripts.stack import BIN, ROOT, Stack

pytestmark = pytest.mark.integration

CLI = (
    [str(BIN / "bnlab")] if (BIN / "bnlab").exists() else [sys.executable, "-m", "bnlab_client.cli"]
)
# Two seeds of the dropout study, a few seconds of training.
SHORT = ["--set", "training.epochs=60", "--set", "training.seeds=[0,1]", "--set", "probes.every=20"]


def bnlab(
    stack: Stack, home: Path, *args: str, timeout_s: float = 300, login: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `bnlab ARGS`; the API's address and token from the environment, unless `login`."""
    env = {**os.environ, "HOME": str(home), "BNLAB_CONFIG": str(home / "bnlab.json")}
    env.pop("BNLAB_URL", None), env.pop("BNLAB_TOKEN", None)
    if not login:
        env |= {"BNLAB_URL": stack.url, "BNLAB_TOKEN": stack.token or ""}
    return subprocess.run(
        [*CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
    )


@pytest.fixture(scope="module")
def watched(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`bnlab run seed-dropout ... --watch`, followed to the end."""
    home = tmp_path_factory.mktemp("home")
    result = bnlab(stack, home, "run", "seed-dropout", *SHORT, "--watch")
    assert result.returncode == 0, result.stderr
    return {"home": home, "id": result.stdout.splitlines()[0], "result": result}


def test_run_watch_prints_progress_and_findings(stack: Stack, watched: dict[str, Any]) -> None:
    result = watched["result"]
    experiment = stack.request("GET", f"/api/v1/experiments/{watched['id']}")[1]
    assert experiment["status"] == "succeeded"
    assert experiment["spec"]["training"]["epochs"] == 60  # the --set reached the spec
    assert "seed 0" in result.stderr and "seed 1" in result.stderr  # a bar per seed group
    assert f"{watched['id']}: succeeded" in result.stderr
    # The findings as a table: every variant a column, the pairs' statements beneath.
    for variant in ("plain", "dropout-0.2", "dropout-0.5-0.2"):
        assert variant in result.stdout
    assert "final_test_loss" in result.stdout


def test_show_ls_and_json(stack: Stack, watched: dict[str, Any]) -> None:
    shown = bnlab(stack, watched["home"], "show", watched["id"])
    assert shown.returncode == 0, shown.stderr
    assert "succeeded" in shown.stdout and "dropout-0.5-0.2" in shown.stdout
    as_json = json.loads(bnlab(stack, watched["home"], "show", watched["id"], "--json").stdout)
    assert as_json["id"] == watched["id"] and len(as_json["runs"]) == 6
    listed = json.loads(bnlab(stack, watched["home"], "ls", "--json").stdout)
    assert watched["id"] in [e["id"] for e in listed]
    presets = json.loads(bnlab(stack, watched["home"], "presets", "--json").stdout)
    assert "seed-bn-mlp" in [p["name"] for p in presets]


def test_plot_written_to_a_file(stack: Stack, watched: dict[str, Any], tmp_path: Path) -> None:
    png, svg = tmp_path / "loss.png", tmp_path / "fit.svg"
    assert (
        bnlab(stack, watched["home"], "plot", watched["id"], "loss", "-o", str(png)).returncode == 0
    )
    fit = bnlab(stack, watched["home"], "plot", watched["id"], "fit", "-o", str(svg))
    assert fit.returncode == 0, fit.stderr
    assert png.read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in svg.read_bytes()[:500]


def test_export_csv_read_back_equals_the_api(
    stack: Stack, watched: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "points.csv"
    result = bnlab(stack, watched["home"], "export", watched["id"], "--csv", str(target))
    assert result.returncode == 0, result.stderr
    with target.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["experiment", "run", "variant", "seed", "key", "step", "value"]
    experiment = stack.request("GET", f"/api/v1/experiments/{watched['id']}")[1]
    for run in experiment["runs"]:
        series = stack.request("GET", f"/api/v1/runs/{run['id']}/metrics")[1]["series"]
        expected = {
            (k, s, v)
            for k, ser in series.items()
            for s, v in zip(ser["steps"], ser["values"], strict=True)
        }
        got = {
            (r["key"], int(r["step"]), float(r["value"]))
            for r in rows
            if r["run"] == run["id"]
            and r["variant"] == run["variant"]
            and int(r["seed"]) == run["seed"]
        }
        assert got == expected and expected


def test_workers_view_shows_the_stacks_worker(stack: Stack, watched: dict[str, Any]) -> None:
    # A worker's id is host:pid and a random suffix; a CPU-only worker serves no gpu queue.
    prefix = f"{os.uname().nodename}:{stack.processes['worker'].pid}:"
    deadline = time.monotonic() + 30
    while True:  # its steps are reported at its next heartbeat after the run it trained
        fleet = json.loads(bnlab(stack, watched["home"], "workers", "--json").stdout)
        (ours,) = [w for w in fleet["workers"] if w["id"].startswith(prefix)]
        if ours["steps_total"] > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ours["alive"] and ours["device"] == "cpu"
    assert sorted(ours["queues"]) == ["any", "cpu"] and ours["steps_total"] > 0
    assert set(fleet["queues"]) == {"gpu", "cpu", "any"}
    table = bnlab(stack, watched["home"], "workers")
    assert ours["id"] in table.stdout


def test_ctrl_c_leaves_the_experiment_running(stack: Stack, tmp_path: Path) -> None:
    client = Client(stack.url, stack.token)
    experiment = client.submit(preset="seed-dropout", overrides={"training": {"epochs": 100_000}})
    env = {**os.environ, "BNLAB_URL": stack.url, "BNLAB_TOKEN": stack.token or ""}
    watcher = subprocess.Popen(
        [*CLI, "watch", experiment["id"]],
        cwd=ROOT,
        env={**env, "HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stderr is not None
        assert experiment["id"] in watcher.stderr.readline()  # watching: its header is drawn
        while client.experiment(experiment["id"])["status"] != "running":
            time.sleep(0.2)
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=60)
        assert watcher.returncode == 130
        assert f"bnlab cancel {experiment['id']}" in err
        assert client.experiment(experiment["id"])["status"] == "running"
        cancelled = bnlab(stack, tmp_path, "cancel", experiment["id"])
        assert cancelled.returncode == 0, cancelled.stderr
        assert "cancel" in cancelled.stderr
    finally:
        watcher.kill()
        if client.experiment(experiment["id"])["status"] in ("queued", "running"):
            # Never leave the stack's one worker busy; a 409 says it finished in between.
            with contextlib.suppress(ApiError):
                client.cancel(experiment["id"])
    assert stack.wait_finished(experiment["id"], timeout_s=120)["status"] == "cancelled"


def test_api_errors_carry_the_apis_message(stack: Stack, tmp_path: Path) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    shown = bnlab(stack, tmp_path, "show", missing)
    assert shown.returncode == 1 and f"404: no experiment {missing}" in shown.stderr
    unknown = bnlab(stack, tmp_path, "run", "no-such-preset")
    assert unknown.returncode == 1 and "seed-bn-mlp" in unknown.stderr  # the 422 lists presets
    with pytest.raises(ApiError) as caught:
        Client(stack.url, stack.token).experiment(missing)
    assert caught.value.status == 404 and missing in caught.value.detail


def test_login_keeps_url_and_token(stack: Stack, tmp_path: Path) -> None:
    logged = bnlab(
        stack, tmp_path, "login", "--url", stack.url, "--token", stack.token or "", login=True
    )
    assert logged.returncode == 0, logged.stderr
    assert (tmp_path / "bnlab.json").stat().st_mode & 0o077 == 0  # the token is the user's alone
    listed = bnlab(stack, tmp_path, "ls", "--json", login=True)
    assert listed.returncode == 0, listed.stderr
    if stack.auth_enabled:
        wrong = bnlab(
            stack, tmp_path, "login", "--url", stack.url, "--token", "bnlab_x_y", login=True
        )
        assert wrong.returncode == 1 and "401" in wrong.stderr
