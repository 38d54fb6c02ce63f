"""The data set catalogue: shapes and tasks, where the files are, and how to fetch them.

No torch and no service settings here: the API validates specs against the catalogue, and the
training core (worker/training/) finds or downloads the files and turns them into tensors. Where
to look is a `DataSources` value its caller builds (the worker from Settings, the CLI from flags).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Task = Literal["classification", "regression"]

# Per socket operation: a mirror behind a black hole must not hold a worker for minutes.
DOWNLOAD_TIMEOUT_S = 10.0
# After a failed download, the same data set is not tried again for this long (per process and
# target folder): where packets to the mirrors are dropped rather than refused, every attempt
# waits out the timeout for each mirror, and a worker would pay that on every experiment.
DOWNLOAD_RETRY_S = 300.0
_failed_downloads: dict[Path, tuple[float, str]] = {}
# Where Debian's `dataset-fashion-mnist` package puts the files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class DataSources:
    """Where data set files are looked for, and whether missing ones may be downloaded."""

    # Downloads land in data_dir/datasets/<name>, which is also searched.
    data_dir: Path = Path(".data")
    # Searched first: <name>/ folders inside (BNLAB_DATASETS_DIR, --datasets-dir).
    datasets_dir: Path | None = None
    allow_download: bool = True

    @property
    def download_dir(self) -> Path:
        """The folder downloaded data sets go to (one subfolder each)."""
        return self.data_dir / "datasets"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a downloadable data set, with the SHA-256 it must have."""

    name: str
    sha256: str


@dataclass(frozen=True)
class DatasetInfo:
    """What a data set looks like to a model."""

    name: str
    task: Task
    input_shape: tuple[int, ...]
    num_outputs: int
    # Training examples in the full split; None where the spec's `n` decides.
    train_examples: int | None = None
    files: tuple[RemoteFile, ...] = ()
    mirrors: tuple[str, ...] = ()
    system_dirs: tuple[Path, ...] = ()

    @property
    def downloadable(self) -> bool:
        """True for the data sets that live in files (the rest are generated or shipped)."""
        return bool(self.files)


_IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# Published digests of the canonical files (the same bytes on every mirror).
_MNIST_SHA256 = (
    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
)
_FASHION_SHA256 = (
    "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
)

CATALOG: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        "classification",
        (1, 28, 28),
        10,
        60_000,
        files=tuple(RemoteFile(n, h) for n, h in zip(_IDX_NAMES, _MNIST_SHA256, strict=True)),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        "classification",
        (1, 28, 28),
        10,
        60_000,
        files=tuple(RemoteFile(n, h) for n, h in zip(_IDX_NAMES, _FASHION_SHA256, strict=True)),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        system_dirs=(DEBIAN_FASHION_MNIST,),
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        "classification",
        (3, 32, 32),
        10,
        50_000,
        files=(
            RemoteFile(
                "cifar-10-python.tar.gz",
                "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            ),
        ),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
    ),
    # 1797 images, of which a fixed 80% train.
    "digits": DatasetInfo("digits", "classification", (1, 8, 8), 10, 1_437),
    "regression1d": DatasetInfo("regression1d", "regression", (1,), 1),
    "wide-scale": DatasetInfo("wide-scale", "classification", (2,), 2),
}


def same_shape(a: DatasetInfo, b: DatasetInfo) -> bool:
    """Whether a model built for one data set trains on the other (a fallback must)."""
    return (a.task, a.input_shape, a.num_outputs) == (b.task, b.input_shape, b.num_outputs)


class DatasetUnavailable(Exception):
    """The data set's files are neither here nor downloadable; the message says what to do."""


def candidate_dirs(info: DatasetInfo, sources: DataSources) -> list[Path]:
    """Folders searched for a data set's files, in order."""
    dirs = []
    if sources.datasets_dir is not None:
        dirs.append(sources.datasets_dir / info.name)
    dirs.append(sources.download_dir / info.name)
    dirs.extend(info.system_dirs)
    return dirs


def find_local(info: DatasetInfo, sources: DataSources) -> Path | None:
    """The first folder that holds every file of the data set, or None."""
    for folder in candidate_dirs(info, sources):
        if all((folder / f.name).is_file() for f in info.files):
            return folder
    return None


def is_available(name: str, sources: DataSources) -> bool:
    """True when the data set is generated, shipped, or its files are already here."""
    info = CATALOG[name]
    return not info.downloadable or find_local(info, sources) is not None


def missing_message(info: DatasetInfo, sources: DataSources) -> str:
    """What a user must do to make a missing data set available."""
    where = sources.datasets_dir or sources.download_dir
    files = ", ".join(f.name for f in info.files)
    hint = " or `apt-get install dataset-fashion-mnist`" if info.name == "fashion-mnist" else ""
    why = "could not be downloaded" if sources.allow_download else "downloads are off"
    return (
        f"data set '{info.name}' is not on this machine and {why}: put {files} in "
        f"{where / info.name} (a folder '{info.name}' under BNLAB_DATASETS_DIR){hint}"
    )


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(info: DatasetInfo, target: Path, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Fetch every file of the data set into `target`, checking each SHA-256; first mirror wins."""
    _download(info, target, timeout_s)
    return target


def _download(info: DatasetInfo, target: Path, timeout_s: float) -> list[str]:
    """Fetch what is missing into `target`; returns the mirrors that served a file."""
    target.mkdir(parents=True, exist_ok=True)
    used: list[str] = []
    for remote in info.files:
        destination = target / remote.name
        if destination.is_file() and sha256_of(destination) == remote.sha256:
            continue
        errors = []
        for mirror in info.mirrors:
            try:
                _fetch_checked(mirror + remote.name, destination, remote.sha256, timeout_s)
                used += [] if mirror in used else [mirror]
                break
            except (OSError, ValueError) as exc:
                errors.append(f"{mirror}: {exc}")
        else:
            raise DatasetUnavailable(f"could not download {remote.name}: {'; '.join(errors)}")
    return used


def _fetch_checked(url: str, destination: Path, sha256: str, timeout_s: float) -> None:
    """Download to a temporary file, verify, then move into place, so no partial file remains."""
    log.info("downloading %s", url)
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                shutil.copyfileobj(response, tmp)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
    actual = sha256_of(tmp_path)
    if actual != sha256:
        tmp_path.unlink(missing_ok=True)
        raise ValueError(f"checksum mismatch for {url}: got {actual}, expected {sha256}")
    tmp_path.replace(destination)


@dataclass(frozen=True)
class Located:
    """Where a data set's files were found: a folder read, or the mirror that served them."""

    folder: Path | None
    source: Literal["local", "download", "generated", "shipped"]
    where: str | None = None


def locate(name: str, sources: DataSources) -> Located:
    """The data set's files, downloaded if allowed; DatasetUnavailable says what to do."""
    info = CATALOG[name]
    if not info.downloadable:
        shipped = name == "digits"  # scikit-learn's; the others are generated from the spec
        return Located(
            None, "shipped" if shipped else "generated", "scikit-learn" if shipped else None
        )
    folder = find_local(info, sources)
    if folder is not None:
        return Located(folder, "local", str(folder))
    if not sources.allow_download:
        raise DatasetUnavailable(missing_message(info, sources))
    target = sources.download_dir / info.name
    failed = _failed_downloads.get(target)
    if failed is not None and time.monotonic() - failed[0] < DOWNLOAD_RETRY_S:
        wait = DOWNLOAD_RETRY_S - (time.monotonic() - failed[0])
        raise DatasetUnavailable(
            f"{missing_message(info, sources)} ({failed[1]}; not tried again for {wait:.0f} s)"
        )
    try:
        mirrors = _download(info, target, DOWNLOAD_TIMEOUT_S)
    except DatasetUnavailable as exc:
        _failed_downloads[target] = (time.monotonic(), str(exc))
        raise DatasetUnavailable(f"{missing_message(info, sources)} ({exc})") from exc
    _failed_downloads.pop(target, None)
    return Located(target, "download", ", ".join(mirrors) or str(target))


def ensure_local(name: str, sources: DataSources) -> Path | None:
    """Folder holding the data set's files, downloading them if allowed; None if none needed."""
    return locate(name, sources).folder
