"""Data sets are resolved where the training runs: a worker's data trains, whatever the API's disk.

The API and the worker get different BNLAB_DATASETS_DIR: only the worker's holds `mnist` (Debian's
Fashion-MNIST files under that name, the same format), and the worker may not download.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.stack import Stack
from shared.datasets import CATALOG, DEBIAN_FASHION_MNIST
from tests.conftest import ARTIFACTS
from tests.integration.conftest import PostgresDatabases, embedded_env, postgres_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not DEBIAN_FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist"
    ),
]

SMALL_MNIST = {
    "preset": "seed-bn-mlp",
    "overrides": {
        "dataset": {"train_size": 1024, "test_size": 256},
        "training": {"epochs": 1},
        "probes": {"every": 4},
    },
}


@pytest.fixture(scope="module", params=["postgres+redis", "embedded"])
def split_stack(
    request: pytest.FixtureRequest,
    pg_databases: PostgresDatabases,
    redis_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The service with data only its worker can see."""
    tmp = tmp_path_factory.mktemp(f"split-{request.param}")
    worker_data = tmp / "worker-datasets"
    (worker_data / "mnist").mkdir(parents=True)
    for remote in CATALOG["mnist"].files:
        (worker_data / "mnist" / remote.name).symlink_to(DEBIAN_FASHION_MNIST / remote.name)
    (tmp / "api-datasets").mkdir()
    if request.param == "postgres+redis":
        env = postgres_env(pg_databases.create(), redis_server, tmp)
    else:
        env = embedded_env(tmp)
    env["BNLAB_DATASETS_DIR"] = str(tmp / "api-datasets")
    # The API never downloads; "true" only keeps the embedded default's early 422 (for data
    # surely missing on a shared disk) out of the way, so the worker's own decision is tested.
    env["BNLAB_ALLOW_DOWNLOAD"] = "true"
    worker_env = {"BNLAB_DATASETS_DIR": str(worker_data), "BNLAB_ALLOW_DOWNLOAD": "false"}
    log_dir = ARTIFACTS / "logs" / f"datasets-{request.param}"
    with Stack(env=env, worker_env=worker_env, log_dir=log_dir) as running:
        yield running


def test_a_preset_whose_data_only_the_worker_has_trains_and_says_so(split_stack: Stack) -> None:
    status, experiment = split_stack.request("POST", "/api/v1/experiments", SMALL_MNIST)
    assert status == 201, experiment
    # The API decided nothing about the data: the spec keeps the preset's set and its fallback.
    assert experiment["spec"]["dataset"]["name"] == "mnist" and experiment["dataset"] is None
    finished = split_stack.wait_finished(experiment["id"], timeout_s=300)
    assert finished["status"] == "succeeded", finished["error"]
    worker_mnist = Path(split_stack.worker_env["BNLAB_DATASETS_DIR"]) / "mnist"
    assert finished["dataset"] == {
        "requested": "mnist",
        "used": "mnist",
        "source": "local",
        "where": str(worker_mnist),
        "reason": None,
    }


def test_a_data_set_no_worker_can_get_fails_readably(split_stack: Stack) -> None:
    spec = {
        "name": "no-cifar",
        "dataset": {"name": "cifar10"},
        "variants": [{"name": "mlp", "model": {"kind": "mlp", "hidden": [8]}}],
    }
    status, experiment = split_stack.request("POST", "/api/v1/experiments", {"spec": spec})
    assert status == 201, experiment
    failed = split_stack.wait_finished(experiment["id"], timeout_s=120)
    assert failed["status"] == "failed" and failed["progress"] == 0
    error = failed["error"]
    worker_cifar = Path(split_stack.worker_env["BNLAB_DATASETS_DIR"]) / "cifar10"
    assert "cifar-10-python.tar.gz" in error and str(worker_cifar) in error
    assert "downloads are off" in error and "Traceback" not in error
    assert {r["status"] for r in failed["runs"]} == {"failed"}
