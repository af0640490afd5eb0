"""A bounded job queue: a fixed number of workers, a fixed number of waiting jobs.

Every piece of heavy work of the server (a new mix, the demo, a re-render, the plain sum,
the masking analysis) is a job. At most ``workers`` run at once; at most ``queue_size``
more wait; beyond that :meth:`JobQueue.submit` raises :class:`QueueFull` and the server
answers 503 at once instead of piling up threads and memory. Jobs with the same ``key``
(a mix id) run one after the other, in order, so two edits of one mix never occupy two
workers with one of them waiting on the other.

A request that waits for its job awaits the job's future without holding a thread, so
waiting clients never starve the server of threads (``/api/health`` stays instant).
Worker threads are started when there is work and end when the queue is empty.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from vocalmix.core.memory import release_free_memory


class QueueFull(Exception):
    """Every worker is busy and the queue is full."""

    def __init__(self, queued: int) -> None:
        super().__init__(f"{queued} jobs are waiting")
        self.queued = queued


@dataclass
class _Job:
    fn: Callable[[], Any]
    key: Hashable | None
    future: Future = field(default_factory=Future)


class Reservation:
    """A place in the queue, taken before a job is ready (e.g. while its upload arrives),
    so a request that would be refused is refused before its body is read. Use as a
    context manager: the place is given back unless :meth:`submit` used it."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self._open = True

    def submit(self, fn: Callable[[], Any], *, key: Hashable | None = None) -> Future:
        if not self._open:
            raise RuntimeError("this reservation was used or released")
        self._open = False
        return self._queue._enqueue(_Job(fn, key), reserved=True)

    def release(self) -> None:
        if self._open:
            self._open = False
            self._queue._release()

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


class JobQueue:
    """``workers`` threads at most, ``queue_size`` waiting jobs at most.

    Args:
        workers: jobs run at once (at least 1).
        queue_size: jobs that may wait for a worker (at least 0).
    """

    def __init__(self, workers: int, queue_size: int, *, name: str = "vocalmix-job") -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError(f"workers must be at least 1 and queue_size at least 0, got "
                             f"{workers} and {queue_size}")
        self.workers = int(workers)
        self.queue_size = int(queue_size)
        self._name = name
        self._lock = threading.Lock()
        self._ready: deque[_Job] = deque()
        self._behind: dict[Hashable, deque[_Job]] = {}  # jobs after one of the same key
        self._keys: set[Hashable] = set()  # keys with a job ready or running
        self._running = 0
        self._waiting = 0  # ready + behind
        self._reserved = 0
        self._threads = 0
        self._seq = 0

    # --- admission ---------------------------------------------------------------------
    def _admit(self) -> None:
        """Count one more job in, or raise :class:`QueueFull` (call with the lock held)."""
        if self._running + self._waiting + self._reserved >= self.workers + self.queue_size:
            raise QueueFull(self._waiting + self._reserved)

    def reserve(self) -> Reservation:
        """A place for a job to come (raises :class:`QueueFull`)."""
        with self._lock:
            self._admit()
            self._reserved += 1
        return Reservation(self)

    def _release(self) -> None:
        with self._lock:
            self._reserved -= 1

    def submit(self, fn: Callable[[], Any], *, key: Hashable | None = None) -> Future:
        """Run ``fn()`` on a worker; its result or exception goes to the returned future.
        Raises :class:`QueueFull` when every worker is busy and the queue is full."""
        return self._enqueue(_Job(fn, key), reserved=False)

    def _enqueue(self, job: _Job, *, reserved: bool) -> Future:
        with self._lock:
            if reserved:
                self._reserved -= 1
            else:
                self._admit()
            self._waiting += 1
            if job.key is not None and job.key in self._keys:
                self._behind.setdefault(job.key, deque()).append(job)
            else:
                if job.key is not None:
                    self._keys.add(job.key)
                self._ready.append(job)
                self._spawn()
        return job.future

    # --- workers ---------------------------------------------------------------------------
    def _spawn(self) -> None:
        """Start a worker if a job is ready and a worker may be added (lock held)."""
        if self._ready and self._threads < self.workers:
            self._threads += 1
            self._seq += 1
            threading.Thread(target=self._work, name=f"{self._name}-{self._seq}",
                             daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._ready:
                    self._threads -= 1
                    return
                job = self._ready.popleft()
                self._waiting -= 1
                self._running += 1
            try:
                if job.future.set_running_or_notify_cancel():
                    try:
                        result = job.fn()
                    except BaseException as e:  # handed to whoever waits for the job
                        job.future.set_exception(e)
                    else:
                        job.future.set_result(result)
            finally:
                with self._lock:
                    self._running -= 1
                    if job.key is not None:
                        behind = self._behind.get(job.key)
                        if behind:
                            self._ready.append(behind.popleft())
                            if not behind:
                                del self._behind[job.key]
                            self._spawn()
                        else:
                            self._keys.discard(job.key)
            # The command line's ``serve`` has glibc keep freed memory for reuse (its
            # mmap and trim thresholds raised): within a job that saves page faults, but
            # nothing would hand it back after the job, and an idle server would keep the
            # high-water mark of every worker thread's arena.
            release_free_memory()

    # --- state --------------------------------------------------------------------------------
    def busy(self, key: Hashable) -> bool:
        """Whether a job with ``key`` is waiting or running."""
        with self._lock:
            return key in self._keys

    def stats(self) -> dict[str, int]:
        """``workers``, ``queue_size``, ``running`` and ``waiting`` (reservations
        included) now."""
        with self._lock:
            return {"workers": self.workers, "queue_size": self.queue_size,
                    "running": self._running, "waiting": self._waiting + self._reserved}


__all__ = ["JobQueue", "QueueFull", "Reservation"]
