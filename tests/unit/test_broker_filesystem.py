"""The embedded default's broker: a message appears whole or not at all, and one reader takes it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection

import shared.broker
from shared.broker import AtomicFilesystemTransport, celery_config
from shared.config import Settings

MESSAGES = 300


def channel(folder: Path) -> Any:
    """A channel of the transport Celery is configured with, on the embedded default's folders."""
    config = celery_config(Settings(data_dir=folder, database_url="", broker_url=""))
    assert config["broker_transport"] == "shared.broker:AtomicFilesystemTransport"
    connection = Connection(
        "filesystem://",
        transport=AtomicFilesystemTransport,
        transport_options=config["broker_transport_options"],
    )
    return connection.channel()


def drain(reader: Any, queue: str) -> Iterator[Any]:
    while True:
        try:
            yield reader._get(queue)
        except Empty:
            return


def test_a_message_being_written_is_invisible_to_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = channel(tmp_path), channel(tmp_path)
    seen_mid_write: list[list[Any]] = []
    real_replace = os.replace

    def replace_after_a_look(source: str, target: str) -> None:
        # The whole payload is on disk under its temporary name; a reader looks now.
        assert Path(source).stat().st_size > 100_000
        seen_mid_write.append(list(drain(reader, "any")))
        assert reader._size("any") == 0
        real_replace(source, target)

    monkeypatch.setattr(shared.broker.os, "replace", replace_after_a_look)
    writer._put("any", {"body": "x" * 200_000})
    assert seen_mid_write == [[]]
    assert list(drain(reader, "any")) == [{"body": "x" * 200_000}]


def test_readers_under_a_concurrent_writer_take_whole_messages_once(tmp_path: Path) -> None:
    writer = channel(tmp_path)
    taken: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        reader = channel(tmp_path)
        try:
            while not done.is_set() or reader._size("any"):
                taken.extend(drain(reader, "any"))
        except BaseException as exc:  # a partial message fails to decode here
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for i in range(MESSAGES):
        # Large enough that a write is not one page: a reader could catch it half done.
        writer._put("any", {"i": i, "body": str(i) * 20_000})
    done.set()
    for thread in readers:
        thread.join(60)
    assert errors == []
    assert sorted(m["i"] for m in taken) == list(range(MESSAGES))
    assert all(m["body"] == str(m["i"]) * 20_000 for m in taken)
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_messages_sent_at_once_are_taken_in_the_order_sent(tmp_path: Path) -> None:
    # A sweep sends all its points within a millisecond: the queue must stay first in, first out.
    writer, reader = channel(tmp_path), channel(tmp_path)
    for i in range(MESSAGES):
        writer._put("any", {"point": i})
    assert [m["point"] for m in drain(reader, "any")] == list(range(MESSAGES))
