"""Data sets load as whole tensors with the shapes, scales and splits the studies need."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.datasets import DEBIAN_FASHION_MNIST, DataSources
from shared.spec import DatasetSpec
from worker.training.data import load_dataset, read_idx


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


def test_read_idx_round_trips_and_rejects_truncated_files(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "images.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "images.gz"), images)
    with gzip.open(tmp_path / "bad.gz", "wb") as stream:
        stream.write(bytes([0, 0, 8, 1]) + np.array([10], dtype=">u4").tobytes() + b"abc")
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "bad.gz")


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="needs dataset-fashion-mnist (apt)")
def test_fashion_mnist_first_n_scaled_to_unit_range() -> None:
    spec = DatasetSpec(name="fashion-mnist", train_size=1000, test_size=300)
    data = load_dataset(spec, DataSources())
    assert data.x_train.shape == (1000, 1, 28, 28) and data.x_test.shape == (300, 1, 28, 28)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    assert set(data.y_train.tolist()) == set(range(10))
    assert load_dataset(spec, DataSources()) is data  # read once per process


def _cifar_batch(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    batch = {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"labels": rng.integers(0, 10, n).tolist(),
    }
    return pickle.dumps(batch)


def _write_cifar(folder: Path, members: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_cifar10_tarball_reads_into_images(tmp_path: Path) -> None:
    members = {f"data_batch_{i}": _cifar_batch(4, i) for i in range(1, 6)}
    members["test_batch"] = _cifar_batch(3, 9)
    _write_cifar(tmp_path / "cifar10", members)
    sources = DataSources(datasets_dir=tmp_path, allow_download=False)
    data = load_dataset(DatasetSpec(name="cifar10"), sources)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (3, 3, 32, 32)
    first = pickle.loads(members["data_batch_1"])
    expected = torch.from_numpy(first[b"data"][0].astype(np.float32) / 255).reshape(3, 32, 32)
    assert torch.equal(data.x_train[0], expected)
    assert data.y_train[:4].tolist() == first[b"labels"]


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.getenv, ("HOME",))


def test_cifar10_pickle_that_calls_code_is_refused(tmp_path: Path) -> None:
    members = {f"data_batch_{i}": pickle.dumps({b"data": _Exploit()}) for i in range(1, 6)}
    members["test_batch"] = _cifar_batch(3, 9)
    _write_cifar(tmp_path / "cifar10", members)
    sources = DataSources(datasets_dir=tmp_path, allow_download=False)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_dataset(DatasetSpec(name="cifar10", train_size=7), sources)


def test_digits_split_is_stratified_and_fixed() -> None:
    data = load_dataset(DatasetSpec(name="digits"))
    assert data.x_train.shape[1:] == (1, 8, 8)
    assert len(data.x_test) == pytest.approx(0.2 * 1797, abs=1)
    assert data.x_train.max() <= 1.0
    counts = torch.bincount(data.y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # stratified: about 36 per class
    again = load_dataset(DatasetSpec(name="digits", test_size=len(data.x_test)))
    assert torch.equal(again.x_test, data.x_test)


def test_regression1d_same_x_fresh_noise_and_a_grid() -> None:
    data = load_dataset(DatasetSpec(name="regression1d", n=50, noise=0.3, seed=3))
    assert data.task == "regression"
    assert data.x_train.shape == (50, 1) and torch.equal(data.x_train, data.x_test)
    assert torch.allclose(data.x_train[:, 0], torch.linspace(-1, 1, 50))
    assert not torch.equal(data.y_train, data.y_test)
    residual = data.y_train - data.x_train
    assert 0.15 < residual.std().item() < 0.45
    assert data.x_grid is not None and data.x_grid.shape == (200, 1)
    assert data.x_grid.min().item() == pytest.approx(
        -1.1
    ) and data.x_grid.max().item() == pytest.approx(1.1)
    other = load_dataset(DatasetSpec(name="regression1d", n=50, noise=0.3, seed=4))
    assert not torch.equal(other.y_train, data.y_train)


def test_wide_scale_features_differ_in_scale_and_normalize_fixes_it() -> None:
    data = load_dataset(DatasetSpec(name="wide-scale", n=2000, seed=0))
    spread = data.x_train.abs().amax(dim=0)
    assert spread[0] > 150 and spread[1] < 10.01
    assert 0.4 < data.y_train.float().mean().item() < 0.6
    normalized = data.normalized()
    std, mean = torch.std_mean(normalized.x_train, dim=0, correction=0)
    assert torch.allclose(mean, torch.zeros(2), atol=1e-5)
    assert torch.allclose(std, torch.ones(2), atol=1e-4)
    # The test split is standardised with the training statistics, not its own.
    train_mean, train_std = data.stats()
    assert torch.allclose(normalized.x_test, (data.x_test - train_mean) / train_std)
