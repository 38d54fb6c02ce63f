"""The OpenAPI contract, as a program in another project would meet it.

The document a running API serves is valid OpenAPI 3.1 with short stable operation ids, and a
client generated from it by openapi-python-client (with no warning) submits a spec, waits for it,
and reads its findings, metrics and a plot, on both stacks.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from scripts.stack import BIN, Stack

pytestmark = pytest.mark.integration

PACKAGE = "bnlab_contract_client"
# Part of the compatibility promise (README): a renamed id breaks every generated client.
STABLE_IDS = {
    "health-live",
    "health-ready",
    "presets-list",
    "presets-get",
    "experiments-submit",
    "experiments-list",
    "experiments-get",
    "experiments-cancel",
    "experiments-findings",
    "runs-metrics",
    "runs-histograms",
    "runs-curves",
    "plots-index",
    "plots-loss",
    "plots-activations",
    "plots-distributions",
    "plots-eval",
    "plots-fit",
    "plots-compare",
    "session-create",
    "session-get",
    "session-delete",
}
# Two variants, two seeds, 20 full-batch epochs of 50 points: trains in a few seconds.
TINY = {
    "name": "contract",
    "dataset": {"name": "regression1d", "n": 50},
    "variants": [
        {"name": "plain", "model": {"kind": "mlp", "hidden": [16]}},
        {"name": "bn", "model": {"kind": "mlp", "hidden": [16], "batchnorm": "before_activation"}},
    ],
    "training": {
        "epochs": 20,
        "batch_size": None,
        "optimizer": {"name": "adam", "lr": 0.01},
        "seeds": [0, 1],
        "eval_every": 5,
    },
    "probes": {"every": 5},
}
FINISHED = {"succeeded", "failed", "cancelled"}


def document(stack: Stack) -> dict[str, Any]:
    with urllib.request.urlopen(f"{stack.url}/openapi.json", timeout=30) as response:
        return dict(json.load(response))


def operation_ids(doc: dict[str, Any]) -> list[str]:
    return [
        op["operationId"]
        for item in doc["paths"].values()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    ]


def test_document_is_valid_openapi_31_with_short_ids(stack: Stack) -> None:
    doc = document(stack)
    validate(doc, cls=OpenAPIV31SpecValidator)
    ids = operation_ids(doc)
    assert len(ids) == len(set(ids)), sorted(ids)
    assert set(ids) >= STABLE_IDS, sorted(STABLE_IDS - set(ids))
    assert all(re.fullmatch(r"[a-z]+(-[a-z0-9]+)+", i) and len(i) <= 40 for i in ids), ids


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, stack: Stack) -> Iterator[ModuleType]:
    """The client openapi-python-client generates from the served document, imported."""
    where = tmp_path_factory.mktemp("client")
    (where / "openapi.json").write_text(json.dumps(document(stack)))
    (where / "config.yml").write_text(f"package_name_override: {PACKAGE}\n")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", "openapi.json"]
        + ["--config", "config.yml", "--meta", "none", "--output-path", PACKAGE],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def part(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_client_submits_waits_and_reads(stack: Stack, generated: ModuleType) -> None:
    experiments = part("api.experiments")
    models = part("models")
    if stack.token:
        client = generated.AuthenticatedClient(base_url=stack.url, token=stack.token)
    else:
        client = generated.Client(base_url=stack.url)
    submit = importlib.import_module(f"{experiments.__name__}.experiments_submit")
    get = importlib.import_module(f"{experiments.__name__}.experiments_get")
    findings_of = importlib.import_module(f"{experiments.__name__}.experiments_findings")
    metrics_of = part("api.runs.runs_metrics")
    plots_index = part("api.plots.plots_index")
    plots_loss = part("api.plots.plots_loss")

    body = models.ExperimentCreate.from_dict({"spec": TINY})
    created = submit.sync(client=client, body=body)
    assert isinstance(created, models.ExperimentPublic), created
    assert created.spec.training.optimizer.name == "adam" and len(created.runs) == 4

    deadline = time.monotonic() + 300
    experiment = created
    while experiment.status not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.5)
        experiment = get.sync(client=client, experiment_id=created.id)
    assert experiment.status == "succeeded", experiment.error

    findings = findings_of.sync(client=client, experiment_id=created.id)
    assert isinstance(findings, models.Findings)
    assert set(findings.variants.additional_properties) == {"plain", "bn"}
    final = findings.variants["bn"]["final_train_loss"]
    assert isinstance(final, models.Spread) and final.n == 2 and final.mean is not None
    assert (findings.pairs[0].a, findings.pairs[0].b) == ("plain", "bn")

    run = experiment.runs[0]
    metrics = metrics_of.sync(client=client, run_id=run.id, key=["train_loss"])
    assert isinstance(metrics, models.MetricsPublic)
    losses = metrics.series["train_loss"]
    assert losses.steps[:2] == [1, 2] and len(losses.values) == 20

    index = plots_index.sync(client=client, experiment_id=created.id)
    assert isinstance(index, models.PlotIndex) and "fit" in index.plots.additional_properties
    png = plots_loss.sync_detailed(
        client=client, experiment_id=created.id, fmt=models.PlotsLossFmt.PNG, smooth=2
    )
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    missing = get.sync_detailed(client=client, experiment_id=run.id)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.ErrorMessage)
