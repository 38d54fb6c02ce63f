"""Data sets as whole tensors: read once per worker process, moved to a device once."""

from __future__ import annotations

import gzip
import io
import logging
import pickle
import tarfile
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.datasets import CATALOG, DataSources, Task, ensure_local
from shared.spec import DatasetSpec

log = logging.getLogger(__name__)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CIFAR_MEMBERS = {
    "train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
    "test": ["cifar-10-batches-py/test_batch"],
}
GRID_POINTS = 200


@dataclass(eq=False)
class Dataset:
    """A split data set as tensors: float32 inputs, int64 labels (float32 column for regression)."""

    task: Task
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    # Regression only: inputs on which prediction curves are drawn.
    x_grid: torch.Tensor | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.x_train.device

    def to_device(self, device: str | torch.device) -> Dataset:
        """The same data on `device`, copied once and then reused."""
        device = torch.device(device)
        if device == self.device:
            return self
        key = f"device:{device}"
        if key not in self._cache:
            self._cache[key] = Dataset(
                self.task,
                self.x_train.to(device),
                self.y_train.to(device),
                self.x_test.to(device),
                self.y_test.to(device),
                x_grid=None if self.x_grid is None else self.x_grid.to(device),
            )
        return self._cache[key]

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-feature mean and std of the training inputs (std 1 where a feature is constant)."""
        if "stats" not in self._cache:
            std, mean = torch.std_mean(self.x_train, dim=0, correction=0)
            std = torch.where(std > 1e-6, std, torch.ones_like(std))
            self._cache["stats"] = (mean, std)
        return self._cache["stats"]

    def normalized(self) -> Dataset:
        """Inputs standardised with training-set statistics (for `normalize_inputs` variants)."""
        if "normalized" not in self._cache:
            mean, std = self.stats()
            grid = None if self.x_grid is None else (self.x_grid - mean) / std
            self._cache["normalized"] = Dataset(
                self.task,
                (self.x_train - mean) / std,
                self.y_train,
                (self.x_test - mean) / std,
                self.y_test,
                x_grid=grid,
            )
        return self._cache["normalized"]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip-compressed) as an array of its stored shape."""
    with gzip.open(path, "rb") as stream:
        raw = stream.read()
    if raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path.name} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != np.prod(dims):
        raise ValueError(f"{path.name}: header says {dims} but holds {data.size} values")
    return data.reshape(dims)


def _images(pixels: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / 255.0).reshape(-1, *shape)


def _load_idx(folder: Path, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    arrays = {}
    for split, (images, labels) in IDX_FILES.items():
        arrays[f"x_{split}"] = _images(read_idx(folder / images), shape)
        arrays[f"y_{split}"] = torch.from_numpy(read_idx(folder / labels).astype(np.int64))
    return arrays


class _ArraysOnly(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and nothing else: no code runs from the file."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_cifar(folder: Path, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    arrays = {}
    with tarfile.open(folder / "cifar-10-python.tar.gz", "r:gz") as tar:
        for split, members in CIFAR_MEMBERS.items():
            images, labels = [], []
            for member in members:
                stream = tar.extractfile(member)
                if stream is None:
                    raise ValueError(f"{member} is not a file in the CIFAR-10 archive")
                batch = _ArraysOnly(io.BytesIO(stream.read()), encoding="bytes").load()
                images.append(np.asarray(batch[b"data"], dtype=np.uint8))
                labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
            arrays[f"x_{split}"] = _images(np.concatenate(images), shape)
            arrays[f"y_{split}"] = torch.from_numpy(np.concatenate(labels))
    return arrays


def _load_digits() -> dict[str, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target.astype(np.int64), test_size=0.2, stratify=digits.target, random_state=0
    )
    return {
        k: torch.from_numpy(np.ascontiguousarray(v))
        for k, v in {
            "x_train": x_train,
            "y_train": y_train,
            "x_test": x_test,
            "y_test": y_test,
        }.items()
    }


@lru_cache(maxsize=4)
def _files(name: str, folder: Path | None) -> dict[str, torch.Tensor]:
    """The full splits of a file-backed data set; cached so a process reads each once."""
    shape = CATALOG[name].input_shape
    log.info("reading data set %s from %s", name, folder)
    if name == "digits":
        return _load_digits()
    assert folder is not None
    return _load_cifar(folder, shape) if name == "cifar10" else _load_idx(folder, shape)


def _regression1d(spec: DatasetSpec) -> dict[str, torch.Tensor]:
    """Study 3: y = x + noise on x = linspace(-1, 1, n); the test set redraws the noise."""
    g = torch.Generator().manual_seed(spec.seed)
    x = torch.linspace(-1.0, 1.0, spec.n).unsqueeze(1)
    y_train = x + spec.noise * torch.randn(x.shape, generator=g)
    y_test = x + spec.noise * torch.randn(x.shape, generator=g)
    grid = torch.linspace(-1.1, 1.1, GRID_POINTS).unsqueeze(1)
    return {"x_train": x, "y_train": y_train, "x_test": x.clone(), "y_test": y_test, "x_grid": grid}


def _wide_scale(spec: DatasetSpec) -> dict[str, torch.Tensor]:
    """Two features on scales 20x apart; the class is the sign of a margin both share equally.

    noise/10 is the std of Gaussian noise on the margin (which spans [-2, 2]), so the default
    noise 0.3 mislabels about 1% of the points, all near the boundary.
    """
    g = torch.Generator().manual_seed(spec.seed)

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.rand(spec.n, 2, generator=g) * 2 - 1
        margin = u[:, 0] + u[:, 1] + 0.1 * spec.noise * torch.randn(spec.n, generator=g)
        return u * torch.tensor([200.0, 10.0]), (margin > 0).long()

    x_train, y_train = draw()
    x_test, y_test = draw()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


# A worker serves many experiments: keep the few most recent data sets, not all of them.
_LOADED: OrderedDict[DatasetSpec, Dataset] = OrderedDict()
_LOADED_MAX = 4


def _first(tensor: torch.Tensor, n: int | None) -> torch.Tensor:
    # clone() so a small slice does not pin the full split in memory.
    return tensor if n is None or n >= len(tensor) else tensor[:n].clone()


def load_dataset(spec: DatasetSpec, sources: DataSources | None = None) -> Dataset:
    """The data set named by a spec (never its fallback: see resolve.py), first train_size /
    test_size examples; cached per process."""
    if spec in _LOADED:
        _LOADED.move_to_end(spec)
        return _LOADED[spec]
    info = CATALOG[spec.name]
    if spec.name == "regression1d":
        arrays = _regression1d(spec)
    elif spec.name == "wide-scale":
        arrays = _wide_scale(spec)
    else:
        arrays = _files(spec.name, ensure_local(spec.name, sources or DataSources()))
    dataset = Dataset(
        info.task,
        _first(arrays["x_train"], spec.train_size),
        _first(arrays["y_train"], spec.train_size),
        _first(arrays["x_test"], spec.test_size),
        _first(arrays["y_test"], spec.test_size),
        x_grid=arrays.get("x_grid"),
    )
    _LOADED[spec] = dataset
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)
    return dataset
