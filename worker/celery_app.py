"""The Celery worker: `celery -A worker.celery_app worker --pool solo`.

Without -Q it consumes the queues its machine can serve: `gpu`, `cpu` and `any` where torch
sees CUDA, `cpu` and `any` elsewhere. An explicit -Q is honoured, but a CPU-only worker drops
`gpu` from it with a warning: a `device: cuda` spec waits for a GPU worker rather than fail.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from celery import signals
from kombu import Exchange, Queue

from shared.broker import make_celery
from shared.config import get_settings
from shared.logs import configure_logging

log = logging.getLogger(__name__)

configure_logging()
app = make_celery(get_settings(), "bnlab-worker")
app.conf.include = ["worker.tasks"]


def served_queues(has_cuda: bool) -> list[str]:
    """The queues a worker consumes unless told otherwise: `gpu` only with CUDA."""
    return ["gpu", "cpu", "any"] if has_cuda else ["cpu", "any"]


HAS_CUDA = torch.cuda.is_available()
# The default set Celery consumes from when no -Q is given.
# Each bound as a queue Celery makes for a -Q name: its own direct exchange and routing key.
app.conf.task_queues = [Queue(q, Exchange(q), routing_key=q) for q in served_queues(HAS_CUDA)]
# No worker_process_init engine reset: the worker runs `--pool solo`, which never forks, so no
# connection is inherited (the handler would never fire). A prefork pool would need one.


@signals.worker_init.connect
def _limit_torch_threads(**_: Any) -> None:
    threads = get_settings().torch_threads
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


@signals.celeryd_after_setup.connect
def _no_gpu_queue_without_cuda(**_: Any) -> None:
    queues = app.amqp.queues
    chosen = list(queues.consume_from)
    if "gpu" in chosen and not HAS_CUDA:
        log.warning("this worker has no CUDA: not consuming queue gpu, asked for by -Q")
        chosen.remove("gpu")
        if not chosen:
            chosen = served_queues(False)
            log.warning("no other queue was asked for: consuming %s", ",".join(chosen))
    # Fixed from here on: a queue this process sends to (the reaper does) is not consumed.
    queues.select(chosen)


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    from worker.heartbeat import start_heartbeat

    queues = sorted(q.name for q in app.amqp.queues.consume_from.values())
    start_heartbeat(get_settings(), queues, app)


@signals.worker_shutting_down.connect
def _stop_training(**_: Any) -> None:
    from worker.heartbeat import request_shutdown

    request_shutdown()
