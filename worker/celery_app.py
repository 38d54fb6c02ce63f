"""The Celery worker: `celery -A worker.celery_app worker -Q gpu,cpu,any --pool solo`."""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from shared.broker import make_celery
from shared.config import get_settings
from shared.db import reset_engines
from shared.logs import configure_logging

log = logging.getLogger(__name__)

configure_logging()
app = make_celery(get_settings(), "bnlab-worker")
app.conf.include = ["worker.tasks"]


@signals.worker_process_init.connect
def _fresh_engine_after_fork(**_: Any) -> None:
    # A pooled connection inherited from the parent must never be shared (celery#1564).
    reset_engines()


@signals.worker_init.connect
def _limit_torch_threads(**_: Any) -> None:
    threads = get_settings().torch_threads
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    from worker.heartbeat import start_heartbeat

    queues = sorted(q.name for q in app.amqp.queues.consume_from.values())
    start_heartbeat(get_settings(), queues, app)


@signals.worker_shutting_down.connect
def _stop_training(**_: Any) -> None:
    from worker.heartbeat import request_shutdown

    request_shutdown()
