"""The core resolves data sets: a local copy, a download, or the spec's fallback; and says which."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.datasets import (
    CATALOG,
    DEBIAN_FASHION_MNIST,
    DatasetUnavailable,
    DataSources,
    RemoteFile,
)
from shared.spec import DatasetSpec, ExperimentSpec
from worker.training import MemorySink, train
from worker.training.__main__ import main
from worker.training.config import TrainingConfig
from worker.training.resolve import resolve_dataset

ROOT = Path(__file__).resolve().parents[2]
MNIST = DatasetSpec(name="mnist", fallback="fashion-mnist")
needs_debian = pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist"
)


def put_files(folder: Path, name: str) -> Path:
    """A folder holding every file a data set needs (the bytes are not read when resolving)."""
    (folder / name).mkdir(parents=True)
    for remote in CATALOG[name].files:
        (folder / name / remote.name).write_bytes(b"x")
    return folder / name


@pytest.fixture
def no_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fashion-MNIST only where the test puts it, whatever this machine has installed."""
    monkeypatch.setitem(
        CATALOG, "fashion-mnist", dataclasses.replace(CATALOG["fashion-mnist"], system_dirs=())
    )


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """mnist's mirrors replaced by one HTTP server on loopback (the outside border, stood in)."""
    root = tmp_path / "mirror"
    root.mkdir()
    files = []
    for remote in CATALOG["mnist"].files:
        payload = f"stand-in for {remote.name}".encode()
        (root / remote.name).write_bytes(payload)
        files.append(RemoteFile(remote.name, hashlib.sha256(payload).hexdigest()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    mnist = dataclasses.replace(CATALOG["mnist"], files=tuple(files), mirrors=(url,))
    monkeypatch.setitem(CATALOG, "mnist", mnist)
    yield url
    server.shutdown()


def test_a_local_copy_is_used_and_said_where(tmp_path: Path) -> None:
    folder = put_files(tmp_path, "mnist")
    used, choice = resolve_dataset(MNIST, DataSources(tmp_path / "data", tmp_path, False))
    assert used.name == "mnist" and used.fallback is None
    assert (choice.used, choice.source, choice.where, choice.reason) == (
        "mnist",
        "local",
        str(folder),
        None,
    )


def test_a_download_records_the_mirror(tmp_path: Path, mirror: str) -> None:
    used, choice = resolve_dataset(MNIST, DataSources(tmp_path, allow_download=True))
    assert (used.name, choice.source, choice.where) == ("mnist", "download", mirror)
    assert (tmp_path / "datasets" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_the_fallback_stands_in_and_says_why(tmp_path: Path, no_debian: None) -> None:
    put_files(tmp_path, "fashion-mnist")
    used, choice = resolve_dataset(MNIST, DataSources(tmp_path / "data", tmp_path, False))
    assert (used.name, choice.requested, choice.used) == ("fashion-mnist", "mnist", "fashion-mnist")
    assert choice.reason is not None
    assert "'mnist' is not on this machine and downloads are off" in choice.reason


def test_a_dead_mirror_falls_back(tmp_path: Path, mirror: str, no_debian: None) -> None:
    CATALOG["mnist"] = dataclasses.replace(CATALOG["mnist"], mirrors=("http://127.0.0.1:9/",))
    put_files(tmp_path, "fashion-mnist")
    _, choice = resolve_dataset(MNIST, DataSources(tmp_path / "data", tmp_path, True))
    assert choice.used == "fashion-mnist"
    assert choice.reason is not None and "could not be downloaded" in choice.reason


def test_nothing_to_be_had_names_what_to_put_where(tmp_path: Path, no_debian: None) -> None:
    with pytest.raises(DatasetUnavailable) as raised:
        resolve_dataset(MNIST, DataSources(tmp_path, allow_download=False))
    message = str(raised.value)
    assert str(tmp_path / "datasets" / "mnist") in message
    assert "nor its fallback" in message and "apt-get install dataset-fashion-mnist" in message


def test_a_resumed_run_keeps_its_data_set(tmp_path: Path) -> None:
    put_files(tmp_path, "mnist")
    put_files(tmp_path, "fashion-mnist")
    sources = DataSources(tmp_path / "data", tmp_path, False)
    used, choice = resolve_dataset(MNIST, sources, only="fashion-mnist")
    assert used.name == choice.used == "fashion-mnist" and choice.reason is not None


def test_generated_and_shipped_sets_need_no_files() -> None:
    _, choice = resolve_dataset(DatasetSpec(name="digits"), DataSources(allow_download=False))
    assert (choice.used, choice.source) == ("digits", "shipped")
    _, choice = resolve_dataset(DatasetSpec(name="regression1d"), DataSources())
    assert (choice.used, choice.source, choice.where) == ("regression1d", "generated", None)


def small_mnist_spec() -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "small",
            "dataset": {
                "name": "mnist",
                "fallback": "fashion-mnist",
                "train_size": 256,
                "test_size": 64,
            },
            "variants": [{"name": "mlp", "model": {"kind": "mlp", "hidden": [8]}}],
            "training": {"epochs": 1, "batch_size": 128},
        }
    )


@needs_debian
def test_training_reports_the_data_set_before_the_first_step(tmp_path: Path) -> None:
    class Recording(MemorySink):
        def on_progress(self, done: int, total: int) -> None:
            assert self.dataset is not None  # known before anything is trained
            super().on_progress(done, total)

    sink = Recording()
    config = TrainingConfig(DataSources(tmp_path, allow_download=False))
    result = train(small_mnist_spec(), sink, device="cpu", config=config)
    assert result.status == "succeeded"
    assert result.dataset == sink.dataset and sink.dataset is not None
    assert (sink.dataset.used, sink.dataset.where) == ("fashion-mnist", str(DEBIAN_FASHION_MNIST))
    assert sink.checkpoint is not None and sink.checkpoint["dataset"] == "fashion-mnist"


@needs_debian
def test_the_command_line_takes_its_data_from_flags_not_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "mnist" folders (Fashion-MNIST's files, the same format) in the flag's and the env's folder.
    for where in ("flag", "env"):
        (tmp_path / where / "mnist").mkdir(parents=True)
        for remote in CATALOG["mnist"].files:
            link = tmp_path / where / "mnist" / remote.name
            link.symlink_to(DEBIAN_FASHION_MNIST / remote.name)
    monkeypatch.setenv("BNLAB_DATASETS_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("BNLAB_ALLOW_DOWNLOAD", "true")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(small_mnist_spec().model_dump_json())
    out = tmp_path / "out.json"
    flags = ["--device", "cpu", "--no-download", "--data-dir", str(tmp_path / "data")]
    argv = [str(spec_file), *flags, "--datasets-dir", str(tmp_path / "flag"), "--out", str(out)]
    assert main(argv) == 0
    dataset = json.loads(out.read_text())["dataset"]
    assert (dataset["used"], dataset["where"]) == ("mnist", str(tmp_path / "flag" / "mnist"))
    # Without the flag the core finds no mnist (BNLAB_DATASETS_DIR is the service's, not its),
    # and --no-download keeps it from being fetched.
    bare = {**json.loads(spec_file.read_text()), "dataset": {"name": "mnist"}}
    spec_file.write_text(json.dumps(bare))
    assert main([str(spec_file), *flags]) == 2


def test_the_core_imports_no_settings_database_or_queue() -> None:
    code = (
        "import sys, worker.training, worker.training.__main__\n"
        "bad = {'shared.config', 'shared.db', 'sqlalchemy', 'celery', 'pydantic_settings'}\n"
        "print(sorted(bad & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_failed_download_is_not_tried_again_at_once(
    tmp_path: Path, mirror: str, no_debian: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where packets are dropped, each try waits out the timeout: the next experiment must not.
    import shared.datasets

    CATALOG["mnist"] = dataclasses.replace(CATALOG["mnist"], mirrors=("http://127.0.0.1:9/",))
    put_files(tmp_path, "fashion-mnist")
    tried: list[str] = []
    fetch = shared.datasets._fetch_checked

    def counted(url: str, *rest: Any) -> None:
        tried.append(url)
        fetch(url, *rest)

    monkeypatch.setattr(shared.datasets, "_fetch_checked", counted)
    sources = DataSources(tmp_path / "data", tmp_path, True)
    for _ in range(2):
        _, choice = resolve_dataset(MNIST, sources)
        assert choice.used == "fashion-mnist"
    assert len(tried) == 1
    assert choice.reason is not None and "not tried again for" in choice.reason
    monkeypatch.setattr(shared.datasets, "DOWNLOAD_RETRY_S", 0.0)
    resolve_dataset(MNIST, sources)
    assert len(tried) == 2
