"""The Celery configuration both sides share: the API only sends, the worker consumes."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import uuid
from queue import Empty
from time import monotonic_ns
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

from shared.config import Settings

log = logging.getLogger(__name__)

TRAIN_TASK = "bnlab.train_experiment"
REAP_TASK = "bnlab.reap"
QUEUES = ("gpu", "cpu", "any")


_SENT = itertools.count()  # this process's messages, in order, should two share a clock reading


class AtomicFilesystemChannel(filesystem.Channel):
    """kombu's filesystem channel, with messages that appear whole and are taken by one reader.

    kombu writes a message straight under its final name, where a reader may find it half
    written; and takes it with shutil.move to the system's temporary folder, a copy and a delete
    when that is another file system. Here a message is written under a name no queue matches
    and renamed into place, and a reader claims it by renaming it into the processed folder
    beside the queue (same file system): both renames are atomic.
    """

    # kombu's own classes name the second parameter differently (message, payload).
    def _put(self, queue: Any, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # Readers take names in sorted order: a zero-padded nanosecond clock (one for every
        # process on the machine) keeps messages first in, first out, even several within one
        # millisecond (a sweep sends all its points at once).
        name = f"{monotonic_ns():020d}_{next(_SENT):012d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # "<ms>_<uuid>.<queue>.msg.tmp": _get, _size and _purge match "<queue>.msg" exactly.
        partial = final + ".tmp"
        try:
            with open(partial, "wb") as stream:
                stream.write(str_to_bytes(dumps(message)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:
                continue  # another reader took it first
            try:
                with open(claimed, "rb") as stream:
                    payload = stream.read()
                os.unlink(claimed)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {claimed!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise Empty()


class AtomicFilesystemTransport(filesystem.Transport):
    """The filesystem transport with AtomicFilesystemChannel (the embedded default's broker)."""

    Channel = AtomicFilesystemChannel


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
        # The URL stays filesystem://; kombu takes the class from here when one is given.
        config["broker_transport"] = f"{__name__}:AtomicFilesystemTransport"
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            # The folder is polled; kombu's default of once a second would idle a short job.
            "polling_interval": 0.02,
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
