"""The Celery worker: `celery -A worker.celery_app worker -Q gpu,cpu,any --pool solo`."""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from shared.broker import make_celery
from shared.config import get_settings
from shared.logs import configure_logging

log = logging.getLogger(__name__)

configure_logging()
app = make_celery(get_settings(), "bnlab-worker")
app.conf.include = ["worker.tasks"]
# No worker_process_init engine reset: the worker runs `--pool solo`, which never forks, so no
# connection is inherited (the handler would never fire). A prefork pool would need one.


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
