"""The Celery configuration both sides share: the API only sends, the worker consumes."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError

from shared.config import Settings

log = logging.getLogger(__name__)

TRAIN_TASK = "bnlab.train_experiment"
REAP_TASK = "bnlab.reap"
QUEUES = ("gpu", "cpu", "any")


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for the configured broker (Redis, or the filesystem transport)."""
    config: dict[str, Any] = {
        "broker_url": settings.resolved_broker_url,
        # Results live in our own tables; Celery's result backend would be a second truth.
        "task_ignore_result": True,
        "result_backend": None,
        # A task is acknowledged once it finishes, and one at a time per worker process.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # The solo pool trains one task at a time, but Celery sizes its prefetch by the core
        # count: a busy worker would hold the next experiment back from an idle one.
        "worker_concurrency": 1,
        "task_default_queue": "any",
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "task_serializer": "json",
        "accept_content": ["json"],
    }
    if settings.broker_url:
        # Above the longest run, so Redis never hands a running task to a second worker.
        config["broker_transport_options"] = {"visibility_timeout": settings.visibility_timeout_s}
    else:
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            # The folder is polled; kombu's default of once a second would idle a short job.
            "polling_interval": 0.1,
        }
    return config


def make_celery(settings: Settings, name: str = "bnlab") -> Celery:
    """A Celery app configured for `settings`."""
    app = Celery(name)
    app.conf.update(celery_config(settings))
    return app


def send_training(celery: Celery, group_id: str, queue: str) -> None:
    """Send the training task for a committed seed group to its experiment's queue."""
    celery.send_task(TRAIN_TASK, args=[group_id, queue], queue=queue)


def queue_length(celery: Celery, queue: str) -> int | None:
    """Messages waiting in a broker queue, or None when the broker cannot be asked."""
    try:
        with celery.connection_for_write() as connection:
            declared = connection.default_channel.queue_declare(queue=queue, passive=True)
    except ChannelError:
        return 0  # Redis drops a list once it is empty: a queue it does not know holds nothing
    except Exception:
        log.warning("could not ask the broker how many messages queue %s holds", queue)
        return None
    return int(declared.message_count)
