"""`Client`: the bnlab API over HTTP, as Python calls that return plain data."""

from __future__ import annotations

import itertools
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bnlab_client.config import load_config

FINISHED = ("succeeded", "failed", "cancelled")


class ApiError(Exception):
    """An answer of 4xx or 5xx: `status` and the API's own message (`detail`)."""

    def __init__(self, status: int, detail: str, method: str = "", path: str = "") -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.method = method
        self.path = path


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI's own validation errors: say where and what
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}"
            if isinstance(e, dict)
            else str(e)
            for e in detail
        )
    return detail if isinstance(detail, str) else str(detail)


@dataclass(frozen=True)
class Series:
    """One metric of one run: steps and their values, in step order."""

    steps: list[int]
    values: list[float]


@dataclass
class Metrics:
    """A run's metric series by key; `rows()` as plain tuples, `to_pandas()` as a DataFrame."""

    run_id: str
    series: dict[str, Series] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Series:
        return self.series[key]

    def keys(self) -> list[str]:
        return list(self.series)

    def rows(self) -> list[tuple[str, int, float]]:
        """(key, step, value) for every point: the long format, as the CSV export has it."""
        return [
            (key, step, value)
            for key, s in self.series.items()
            for step, value in zip(s.steps, s.values, strict=True)
        ]

    def to_pandas(self) -> Any:
        """A long DataFrame (columns key, step, value); needs pandas installed."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("Metrics.to_pandas() needs pandas: pip install pandas") from exc
        return pd.DataFrame(self.rows(), columns=["key", "step", "value"])


class Client:
    """The bnlab API. URL and token: arguments, else BNLAB_URL/BNLAB_TOKEN, else `bnlab login`."""

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout_s: float = 60.0
    ) -> None:
        config = load_config(url, token)
        self.url = config.url
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; ApiError carrying the API's message on 4xx/5xx."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach the API at {self.url} ({exc})", method, path) from exc
        if response.is_error:
            raise ApiError(response.status_code, _detail(response), method, path)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # Presets and experiments

    def whoami(self) -> dict[str, Any]:
        """Who the token acts for: {"owner", "auth"}."""
        return dict(self.json("GET", "/session"))

    def presets(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "/api/v1/presets"))

    def submit(
        self,
        preset: str | None = None,
        overrides: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Submit a preset (with overrides deep-merged into it) or a full spec; the experiment."""
        if (preset is None) == (spec is None):
            raise ValueError("give either preset= (and overrides=) or spec=")
        body = (
            {"spec": spec} if spec is not None else {"preset": preset, "overrides": overrides or {}}
        )
        return dict(self.json("POST", "/api/v1/experiments", json=body))

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/api/v1/experiments/{experiment_id}"))

    def experiments(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, up to `limit`, following the API's pages."""
        return list(itertools.islice(self.iter_experiments(status), limit))

    def findings(self, experiment_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"/api/v1/experiments/{experiment_id}/findings"))

    def cancel(self, experiment_id: str) -> dict[str, Any]:
        return dict(self.json("POST", f"/api/v1/experiments/{experiment_id}/cancel"))

    def wait(
        self,
        experiment_id: str,
        progress: bool = False,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        on_update: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the experiment finishes; with progress=True draw live bars on stderr.

        `on_update` sees the experiment at every poll (and may raise to stop waiting).
        """
        if progress:
            from bnlab_client.progress import watch

            return watch(self, experiment_id, poll_s, timeout_s, on_update=on_update)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = poll_s if deadline is None else deadline - time.monotonic()
            experiment = self.wait_once(experiment_id, min(poll_s, left))
            if on_update:
                on_update(experiment)
            if experiment["status"] in FINISHED:
                return experiment
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"experiment {experiment_id} not finished in {timeout_s} s")

    def wait_once(self, experiment_id: str, hold_s: float) -> dict[str, Any]:
        """The experiment the moment it finishes, or as it stands after hold_s (at most 30 s):
        the API's wait route, so a finish is seen at once rather than at the next poll."""
        hold = min(max(hold_s, 0.01), 30.0)
        path = f"/api/v1/experiments/{experiment_id}/wait"
        return dict(self.json("GET", path, params={"timeout_s": hold}))

    # Results

    def metrics(
        self, run_id: str, keys: list[str] | None = None, since_step: int | None = None
    ) -> Metrics:
        params: dict[str, Any] = {"key": keys or []}
        if since_step is not None:
            params["since_step"] = since_step
        body = self.json("GET", f"/api/v1/runs/{run_id}/metrics", params=params)
        return Metrics(
            run_id=run_id,
            series={k: Series(s["steps"], s["values"]) for k, s in body["series"].items()},
        )

    def histograms(self, run_id: str, **params: Any) -> dict[str, Any]:
        return dict(self.json("GET", f"/api/v1/runs/{run_id}/histograms", params=params))

    def plot(
        self, experiment_id: str, name: str, path: str | Path | None = None, **params: Any
    ) -> bytes:
        """A plot's bytes, in the format of `path`'s suffix (png without); written to `path`."""
        fmt = Path(path).suffix.lstrip(".").lower() if path else "png"
        url = f"/api/v1/experiments/{experiment_id}/plots/{name}.{fmt or 'png'}"
        content = self.request("GET", url, params=params).content
        if path:
            Path(path).write_bytes(content)
        return content

    # Exports: streamed to a file, never held whole in memory (except the zip's index)

    def _download(self, path: str, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.http.stream("GET", path) as response:
            if response.is_error:
                response.read()
                raise ApiError(response.status_code, _detail(response), "GET", path)
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return target

    def export_csv(self, experiment_id: str, path: str | Path) -> Path:
        """Every metric point, long format (experiment, run, variant, seed, key, step, value)."""
        return self._download(f"/api/v1/experiments/{experiment_id}/export.csv", Path(path))

    def export_histograms_csv(self, experiment_id: str, path: str | Path) -> Path:
        """Every histogram capture, one row per bin."""
        url = f"/api/v1/experiments/{experiment_id}/export/histograms.csv"
        return self._download(url, Path(path))

    def export_tensorboard(self, experiment_id: str, directory: str | Path) -> Path:
        """TensorBoard event files, one folder per run (variant/seed-N), under `directory`."""
        url = f"/api/v1/experiments/{experiment_id}/export/tensorboard.zip"
        directory = Path(directory)
        with tempfile.TemporaryDirectory() as scratch:
            archive_path = self._download(url, Path(scratch) / "tensorboard.zip")
            with zipfile.ZipFile(archive_path) as archive:
                for member in archive.namelist():
                    # From our own API, but no path may leave `directory` all the same.
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise ApiError(0, f"unsafe path in the archive: {member}")
                archive.extractall(directory)
        return directory

    # The fleet

    def workers(self) -> dict[str, Any]:
        """Workers (id, host, queues, device, what each trains, steps/s) and queue depths."""
        return dict(self.json("GET", "/api/v1/workers"))

    # Sweeps (issue 9) join here once the API has them: submit_sweep(), sweep(id), sweeps().

    def iter_experiments(self, status: str | None = None) -> Iterator[dict[str, Any]]:
        """Every experiment, newest first, one page at a time."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 200}
            if status:
                params["status"] = status
            if cursor:
                params["cursor"] = cursor
            page = self.json("GET", "/api/v1/experiments", params=params)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return
