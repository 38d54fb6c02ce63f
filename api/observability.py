"""Prometheus: HTTP requests counted by a middleware, the rest read from the database at scrape.

`GET /metrics` needs a token like every other route (the operator makes one for Prometheus), and
shows every owner's numbers, but no names or ids of experiments.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import generate_latest as render
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import CeleryDep, SessionDep, SettingsDep
from api.routes.workers import queue_depths
from shared.fleet import read_workers
from shared.models import Experiment
from shared.status import ExperimentStatus

# The *_created series only repeat process start times; leave them out of the scrape.
disable_created_metrics()
HTTP = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "bnlab_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=HTTP
)
LATENCY = Histogram(
    "bnlab_http_request_duration_seconds",
    "Time to answer a request (to the start of the response body)",
    ["method", "route"],
    registry=HTTP,
)


class RequestMetricsMiddleware:
    """Counts every answer by the route's template (never the raw path) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)
                REQUESTS.labels(scope["method"], template, str(status)).inc()
            await send(message)

        await self.app(scope, receive, send_status)


router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    operation_id="metrics-prometheus",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def prometheus(session: SessionDep, settings: SettingsDep, celery: CeleryDep) -> Response:
    """Experiments by status, queue depth, workers, training steps and speed; HTTP requests."""
    counts = dict(
        session.execute(select(Experiment.status, func.count()).group_by(Experiment.status)).all()
    )
    experiments = GaugeMetricFamily("bnlab_experiments", "Experiments by status", labels=["status"])
    for status in ExperimentStatus:
        experiments.add_metric([status.value], counts.get(status, 0))
    depth = GaugeMetricFamily("bnlab_queue_depth", "Messages waiting per queue", labels=["queue"])
    for queue, count in queue_depths(celery).items():
        if count is not None:
            depth.add_metric([queue], count)
    workers = read_workers(session, None, settings.heartbeat_stale_s)
    alive = [w for w in workers if w.alive]
    steps = CounterMetricFamily(
        "bnlab_training_steps", "Optimizer steps trained, per worker", labels=["worker"]
    )
    step_time = GaugeMetricFamily(
        "bnlab_training_step_seconds", "Seconds per optimizer step, last beat", labels=["worker"]
    )
    for w in alive:
        steps.add_metric([w.id], w.steps_total)
        if w.steps_per_s:
            step_time.add_metric([w.id], 1.0 / w.steps_per_s)
    families: list[Metric] = [
        experiments,
        depth,
        GaugeMetricFamily("bnlab_workers_alive", "Workers seen recently", value=len(alive)),
        GaugeMetricFamily(
            "bnlab_workers_busy", "Workers training now", value=sum(w.busy for w in alive)
        ),
        steps,
        step_time,
    ]
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Fixed(families))
    return Response(render(scrape) + render(HTTP), media_type=CONTENT_TYPE_LATEST)


class _Fixed(Collector):
    """A collector that yields metric families already read."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families
