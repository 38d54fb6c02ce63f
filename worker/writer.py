"""The sink's database writes, in order, on a thread of their own, so training never waits on them.

Jobs run one after another in the order given: rows before the checkpoint that covers them,
so a stored checkpoint never gets ahead of the rows it resumes after. At most BACKLOG jobs
wait; past that, the training thread waits too (a database slower than training is held to its
own pace rather than let memory grow). The first job that fails stops every later one, and its
error is raised in the training thread at the next submit, or at close.

Between jobs, and at least every `every_s` while idle, the thread also runs `between` (the
sink's poll: was the experiment cancelled, is it still held), so the training thread never
waits on a query to learn that.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from worker.timings import Timings

BACKLOG = 8

Job = Callable[[], None]


class Writer:
    """A thread running submitted jobs in order; `close` waits for all of them."""

    def __init__(
        self, timings: Timings, between: Callable[[], None] | None = None, every_s: float = 0.2
    ) -> None:
        self.timings = timings
        self.between, self.every_s = between, every_s
        self.last_between = 0.0
        self.jobs: queue.Queue[Job | None] = queue.Queue(maxsize=BACKLOG)
        self.error: BaseException | None = None  # not yet raised in the training thread
        self.failed = False
        self.thread = threading.Thread(target=self._run, name="bnlab-writer", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        """Queue a job (waiting while BACKLOG are queued); raises an earlier job's error."""
        self._raise()
        with self.timings.phase("writes waited for"):
            self.jobs.put(job)

    def close(self) -> None:
        """Run every queued job, stop the thread, and raise the first error if any."""
        if self.thread.is_alive():
            # Apart from the waits in training: the last flush's rows are written here.
            with self.timings.phase("writes waited for at close"):
                self.jobs.put(None)
                self.thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            # The cause in the message too: the experiment's error shows this line alone.
            raise RuntimeError(f"writing to the database failed: {error!r}") from error

    def _run(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            if self.failed:
                continue  # nothing is written after a failed write: order is the guarantee
            started = time.perf_counter()
            try:
                job()
            except BaseException as exc:  # handed to the training thread, which decides
                self.error, self.failed = exc, True
            self.timings.add("writes (own thread)", time.perf_counter() - started)

    def _next(self) -> Job | None:
        """The next job, running `between` whenever every_s has passed while waiting for it."""
        while True:
            wait = self.last_between + self.every_s - time.monotonic()
            if self.between is not None and wait <= 0 and not self.failed:
                self.last_between = time.monotonic()
                try:
                    with self.timings.phase("polls (own thread)"):
                        self.between()
                except Exception as exc:  # like a failed write: the training thread decides
                    self.error, self.failed = exc, True
                continue
            try:
                return self.jobs.get(timeout=None if self.between is None else max(wait, 0.0))
            except queue.Empty:
                continue
