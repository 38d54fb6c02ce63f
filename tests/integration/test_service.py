"""Service behaviour through HTTP: probes, docs, paging, cancellation, schema on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
import torch

from scripts.stack import ROOT, Stack
from shared.broker import make_celery, send_training
from shared.config import Settings
from shared.spec import ExperimentSpec
from tests.migration_check import upgrade_and_diff

pytestmark = pytest.mark.integration

SMALL = {
    "name": "small",
    "dataset": {"name": "digits"},
    "variants": [
        {"name": "plain", "model": {"kind": "mlp", "hidden": [16]}},
        {"name": "bn", "model": {"kind": "mlp", "hidden": [16], "batchnorm": "before_activation"}},
    ],
    "training": {"epochs": 1, "batch_size": 64},
}


def test_postgres_upgrade_head_matches_models(pg_url: str) -> None:
    # Upgrading to head leaves no drift between the migrations and the models.
    assert upgrade_and_diff(pg_url) == []


def test_probes(stack: Stack) -> None:
    assert stack.request("GET", "/healthz") == (200, {"status": "ok", "checks": {}})
    status, body = stack.request("GET", "/readyz")
    assert status == 200 and body["checks"] == {"database": "ok", "broker": "ok"}


def test_docs_are_served_without_a_cdn(stack: Stack) -> None:
    with urllib.request.urlopen(f"{stack.url}/docs") as response:
        page = response.read().decode()
    assert "/static/docs/swagger/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    for asset in (
        "swagger/swagger-ui-bundle.js",
        "swagger/swagger-ui.css",
        "redoc/redoc.standalone.js",
    ):
        with urllib.request.urlopen(f"{stack.url}/static/docs/{asset}") as response:
            assert response.status == 200 and len(response.read()) > 10_000


def test_api_process_never_imports_torch() -> None:
    code = "import sys, api.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


BAD_SUBMISSIONS = [
    # (what is wrong, body, a word the 422 must name)
    ("unknown preset", {"preset": "nope"}, "seed-bn-mlp"),
    (
        "too many parameters",
        {
            "spec": {
                **SMALL,
                "variants": [{"name": "huge", "model": {"kind": "mlp", "hidden": [65536, 65536]}}],
            }
        },
        "BNLAB_MAX_PARAMETERS",
    ),
    (
        "too many steps",
        {"spec": {**SMALL, "training": {"epochs": 100_000, "batch_size": 1}}},
        "BNLAB_MAX_TOTAL_STEPS",
    ),
    (
        "too many histograms",
        {"spec": {**SMALL, "training": {"epochs": 400, "batch_size": 1}, "probes": {"every": 1}}},
        "BNLAB_MAX_PROBE_HISTOGRAMS",
    ),
    (
        "a model that does not fit",
        {
            "spec": {
                **SMALL,
                "variants": [
                    {
                        "name": "cnn",
                        "model": {"kind": "cnn", "blocks": [{"channels": 4, "kernel": 9}] * 3},
                    }
                ],
            }
        },
        "kernel 9 does not fit input of shape (1, 8, 8)",
    ),
    ("a name with a slash", {"spec": {**SMALL, "name": "../etc"}}, "string_pattern_mismatch"),
]


@pytest.mark.parametrize(
    ("_what", "body", "named"), BAD_SUBMISSIONS, ids=[b[0] for b in BAD_SUBMISSIONS]
)
def test_bad_submissions_are_422_and_store_nothing(
    stack: Stack, _what: str, body: dict, named: str
) -> None:
    _, before = stack.request("GET", "/api/v1/experiments?limit=200")
    status, reply = stack.request("POST", "/api/v1/experiments", body)
    assert status == 422 and named in json.dumps(reply["detail"]), reply
    _, after = stack.request("GET", "/api/v1/experiments?limit=200")
    assert [e["id"] for e in after["items"]] == [e["id"] for e in before["items"]]


@pytest.mark.skipif(torch.cuda.is_available(), reason="waits only where there is no GPU worker")
def test_a_cuda_spec_waits_for_a_gpu_worker_and_the_worker_carries_on(stack: Stack) -> None:
    # This machine has no CUDA: its worker consumes cpu and any, never gpu.
    status, waiting = stack.request(
        "POST", "/api/v1/experiments", {"spec": {**SMALL, "device": "cuda"}}
    )
    assert status == 201 and waiting["queue"] == "gpu"
    _, auto = stack.request("POST", "/api/v1/experiments", {"spec": {**SMALL, "device": "auto"}})
    assert stack.wait_finished(auto["id"], timeout_s=60)["status"] == "succeeded"
    _, still = stack.request("GET", f"/api/v1/experiments/{waiting['id']}")
    assert still["status"] == "queued" and still["attempt"] == 0
    assert still["waiting"] == "waiting for a GPU worker"
    _, listed = stack.request("GET", "/api/v1/experiments?status=queued")
    assert [e["waiting"] for e in listed["items"] if e["id"] == waiting["id"]] == [
        "waiting for a GPU worker"
    ]
    status, cancelled = stack.request("POST", f"/api/v1/experiments/{waiting['id']}/cancel")
    assert status == 200 and cancelled["status"] == "cancelled" and cancelled["waiting"] is None
    assert {r["status"] for r in cancelled["runs"]} == {"cancelled"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a spec that stays queued")
def test_wait_answers_when_the_experiment_finishes_or_after_its_timeout(stack: Stack) -> None:
    # No GPU worker here: a cuda spec stays queued, and the wait gives it back as it stands.
    _, queued = stack.request("POST", "/api/v1/experiments", {"spec": {**SMALL, "device": "cuda"}})
    status, held = stack.request("GET", f"/api/v1/experiments/{queued['id']}/wait?timeout_s=0.5")
    assert status == 200 and held["status"] == "queued"
    _, submitted = stack.request("POST", "/api/v1/experiments", {"spec": SMALL})
    status, finished = stack.request(
        "GET", f"/api/v1/experiments/{submitted['id']}/wait?timeout_s=60"
    )
    assert status == 200 and finished["status"] == "succeeded"
    assert finished == stack.request("GET", f"/api/v1/experiments/{submitted['id']}")[1]
    for bad in ("0", "61", "soon"):
        status, body = stack.request(
            "GET", f"/api/v1/experiments/{submitted['id']}/wait?timeout_s={bad}"
        )
        assert status == 422 and body["detail"][0]["loc"] == ["query", "timeout_s"], body
    status, _ = stack.request("GET", f"/api/v1/experiments/{uuid.uuid4()}/wait?timeout_s=1")
    assert status == 404
    stack.request("POST", f"/api/v1/experiments/{queued['id']}/cancel")


def test_a_task_delivered_three_times_trains_once(stack: Stack) -> None:
    status, experiment = stack.request("POST", "/api/v1/experiments", {"spec": SMALL})
    assert status == 201
    env = stack.env
    settings = Settings(
        database_url=env["BNLAB_DATABASE_URL"],
        broker_url=env["BNLAB_BROKER_URL"],
        data_dir=env["BNLAB_DATA_DIR"],
    )
    celery = make_celery(settings, "duplicate-sender")
    queue = ExperimentSpec.model_validate(experiment["spec"]).queue
    group_id = experiment["groups"][0]["id"]
    for _ in range(2):  # besides the API's own: what a broker redelivering would do
        send_training(celery, group_id, queue)
    final = stack.wait_finished(experiment["id"], timeout_s=60)
    assert final["status"] == "succeeded" and final["attempt"] == 1
    assert stack.log_dir is not None
    dropped = f"seed group {group_id} is not queued any more; nothing to do"
    deadline = time.monotonic() + 20
    while (stack.log_dir / "worker.log").read_text().count(dropped) < 2:
        assert time.monotonic() < deadline, "the duplicates never reached the worker"
        time.sleep(0.2)
    _, after = stack.request("GET", f"/api/v1/experiments/{experiment['id']}")
    assert after["attempt"] == 1 and after["finished_at"] == final["finished_at"]
    _, metrics = stack.request(
        "GET", f"/api/v1/runs/{final['runs'][0]['id']}/metrics?key=train_loss"
    )
    steps = metrics["series"]["train_loss"]["steps"]
    assert steps == list(range(1, len(steps) + 1))


def test_cursor_pagination_walks_every_experiment_once(stack: Stack) -> None:
    ids = []
    for _ in range(3):
        status, experiment = stack.request("POST", "/api/v1/experiments", {"spec": SMALL})
        assert status == 201
        ids.append(experiment["id"])
    seen: list[str] = []
    cursor = ""
    while True:
        _, page = stack.request("GET", f"/api/v1/experiments?limit=2{cursor}")
        seen.extend(e["id"] for e in page["items"])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert len(seen) == len(set(seen))
    assert seen[:3] == ids[::-1]
    for experiment_id in ids:
        assert stack.wait_finished(experiment_id)["status"] == "succeeded"


def test_cancel_running_experiment_stops_it_and_keeps_rows(stack: Stack) -> None:
    long = {**SMALL, "name": "long", "training": {"epochs": 2000, "batch_size": 64}}
    status, experiment = stack.request("POST", "/api/v1/experiments", {"spec": long})
    assert status == 201
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, current = stack.request("GET", f"/api/v1/experiments/{experiment['id']}")
        if current["status"] == "running" and current["progress"] > 0:
            break
        time.sleep(0.1)
    assert current["status"] == "running"
    status, _ = stack.request("POST", f"/api/v1/experiments/{experiment['id']}/cancel")
    assert status == 200
    # How soon it stops is printed by bench/bench_recovery.py.
    final = stack.wait_finished(experiment["id"], timeout_s=30)
    assert final["status"] == "cancelled"
    assert 0 < final["progress"] < 1
    _, metrics = stack.request(
        "GET", f"/api/v1/runs/{final['runs'][0]['id']}/metrics?key=train_loss"
    )
    steps = metrics["series"]["train_loss"]["steps"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > 0


def test_cancel_of_queued_experiment_never_starts(stack: Stack) -> None:
    # A long one keeps the single worker busy, so the second stays queued while we cancel it.
    busy = {**SMALL, "name": "busy", "training": {"epochs": 2000, "batch_size": 64}}
    status, first = stack.request("POST", "/api/v1/experiments", {"spec": busy})
    assert status == 201, first
    status, second = stack.request("POST", "/api/v1/experiments", {"spec": SMALL})
    assert status == 201, second
    status, body = stack.request("POST", f"/api/v1/experiments/{second['id']}/cancel")
    assert status == 200 and body["status"] == "cancelled"
    stack.request("POST", f"/api/v1/experiments/{first['id']}/cancel")
    stack.wait_finished(first["id"], timeout_s=30)
    time.sleep(1.0)  # the worker now takes the cancelled one off the queue
    _, after = stack.request("GET", f"/api/v1/experiments/{second['id']}")
    assert after["status"] == "cancelled" and after["attempt"] == 0 and after["started_at"] is None
