"""Plot latency through HTTP: cold render against the cache (200 and 304), side by side.

    python -m bench.bench_plots [--experiments 3] [--repeat 20]

Trains the seed-bn-mlp study `--experiments` times (each one's plots are cold once), then asks
for every plot of each: the first request renders (cold), the next `--repeat` come from the
in-process cache, with and without If-None-Match, from a stack (API under uvicorn and a Celery
worker) on the embedded default. Targets: cached < 20 ms, cold < 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import urllib.error
import urllib.request

from scripts.stack import Stack

PLOTS = [
    "loss.png",
    "loss.svg",
    "eval.png",
    "distributions.png",
    "activations.png?step=10",
    "activations.png",
    "activations.svg",
    "activations.gif",
    "activations.json",
]


def timed_get(url: str, token: str | None, etag: str | None = None) -> tuple[float, int, str]:
    """Milliseconds, status and ETag of one GET."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if etag:
        headers["If-None-Match"] = etag
    request = urllib.request.Request(url, headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            status, tag = response.status, response.headers.get("ETag", "")
    except urllib.error.HTTPError as exc:
        status, tag = exc.code, exc.headers.get("ETag", "")
    return (time.perf_counter() - started) * 1000, status, tag


def study(stack: Stack) -> str:
    """Train seed-bn-mlp to the end; its id."""
    status, body = stack.request("POST", "/api/v1/experiments", {"preset": "seed-bn-mlp"})
    assert status == 201, body
    done = stack.wait_finished(body["id"], timeout_s=600)
    assert done["status"] == "succeeded", done
    return str(body["id"])


def measure(base: str, ids: list[str], token: str | None, repeat: int) -> None:
    """Print, per plot, the median cold, cached-200 and cached-304 latency."""
    print(f"{'plot':28s} {'cold ms':>9s} {'200 ms':>8s} {'304 ms':>8s} {'cold/200':>9s}")
    for plot in PLOTS:
        cold, warm, revalidated = [], [], []
        for experiment_id in ids:
            url = f"{base}/api/v1/experiments/{experiment_id}/plots/{plot}"
            ms, status, etag = timed_get(url, token)
            assert status == 200, (plot, status)
            cold.append(ms)
            for _ in range(repeat):
                warm.append(timed_get(url, token)[0])
                ms, status, _ = timed_get(url, token, etag)
                assert status == 304, (plot, status)
                revalidated.append(ms)
        c, w, r = (statistics.median(x) for x in (cold, warm, revalidated))
        print(f"{plot:28s} {c:9.1f} {w:8.1f} {r:8.1f} {c / w:9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiments", type=int, default=3, help="cold samples per plot")
    parser.add_argument("--repeat", type=int, default=20, help="cached requests per experiment")
    args = parser.parse_args()
    env = {"BNLAB_DATABASE_URL": "", "BNLAB_BROKER_URL": ""}
    env["BNLAB_DATA_DIR"] = tempfile.mkdtemp(prefix="bnlab-bench-")
    with Stack(env=env) as stack:
        ids = [study(stack) for _ in range(args.experiments)]
        measure(stack.url, ids, stack.token, args.repeat)


if __name__ == "__main__":
    main()
