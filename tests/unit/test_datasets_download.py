"""The real download code, against local HTTP mirrors standing in for the public ones."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.datasets import (
    CATALOG,
    DEBIAN_FASHION_MNIST,
    DatasetInfo,
    DatasetUnavailable,
    DataSources,
    download,
    ensure_local,
    sha256_of,
)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback serving a folder: the stand-in for a public mirror."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", root
    server.shutdown()


def fashion_with_mirrors(*mirrors: str) -> DatasetInfo:
    return dataclasses.replace(CATALOG["fashion-mnist"], mirrors=mirrors, system_dirs=())


@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (apt)"
)
def test_download_fetches_every_file_and_checks_it(
    mirror: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = mirror
    for name in CATALOG["fashion-mnist"].files:
        (root / name.name).write_bytes((DEBIAN_FASHION_MNIST / name.name).read_bytes())
    dead = "http://127.0.0.1:9/"  # nothing listens on the discard port: the next mirror is tried
    target = download(fashion_with_mirrors(dead, url), tmp_path / "out")
    for remote in CATALOG["fashion-mnist"].files:
        assert sha256_of(target / remote.name) == remote.sha256


def test_corrupt_mirror_is_refused_and_leaves_no_file(
    mirror: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = mirror
    for remote in CATALOG["fashion-mnist"].files:
        (root / remote.name).write_bytes(b"not the data set")
    with pytest.raises(DatasetUnavailable, match="checksum mismatch"):
        download(fashion_with_mirrors(url), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_and_not_downloadable_says_what_to_do(tmp_path: Path) -> None:
    sources = DataSources(data_dir=tmp_path, allow_download=False)
    with pytest.raises(DatasetUnavailable) as raised:
        ensure_local("mnist", sources)
    message = str(raised.value)
    assert "downloads are off" in message and "train-images-idx3-ubyte.gz" in message
    # The folder it names is where a lookup really goes.
    assert str(tmp_path / "datasets" / "mnist") in message
    assert "a folder 'mnist' under BNLAB_DATASETS_DIR" in message


def test_local_copy_in_datasets_dir_wins(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    for remote in CATALOG["mnist"].files:
        (folder / remote.name).write_bytes(b"x")
    sources = DataSources(data_dir=tmp_path / "data", datasets_dir=tmp_path, allow_download=False)
    assert ensure_local("mnist", sources) == folder
