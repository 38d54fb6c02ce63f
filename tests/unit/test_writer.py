"""The sink's writer thread: jobs in order, nothing after a failure, the poll while idle."""

from __future__ import annotations

import functools
import threading

import pytest

from worker.timings import Timings
from worker.writer import BACKLOG, Writer


def test_jobs_run_in_the_order_given_and_close_waits_for_all() -> None:
    done: list[int] = []
    writer = Writer(Timings())
    for i in range(3 * BACKLOG):  # more than the backlog: submit waits, nothing is dropped
        writer.submit(functools.partial(done.append, i))
    writer.close()
    assert done == list(range(3 * BACKLOG))


def test_nothing_runs_after_a_failed_job_and_its_error_reaches_the_caller() -> None:
    done: list[str] = []

    def fail() -> None:
        raise OSError("disk full")

    writer = Writer(Timings())
    writer.submit(lambda: done.append("rows"))
    writer.submit(fail)
    writer.submit(lambda: done.append("checkpoint"))  # must not overtake the failed rows
    with pytest.raises(RuntimeError, match="writing to the database failed: .*disk full") as raised:
        writer.close()
    assert done == ["rows"]
    assert isinstance(raised.value.__cause__, OSError)


def test_between_runs_while_the_writer_waits_for_work() -> None:
    polled = threading.Event()
    writer = Writer(Timings(), between=polled.set, every_s=0.01)
    assert polled.wait(timeout=30)  # with no job at all
    writer.close()


def test_a_failing_poll_is_raised_like_a_failed_write() -> None:
    def lost_connection() -> None:
        raise ConnectionError("server closed the connection")

    writer = Writer(Timings(), between=lost_connection, every_s=0.01)  # polls first thing
    with pytest.raises(RuntimeError) as raised:
        writer.close()
    assert isinstance(raised.value.__cause__, ConnectionError)
