"""Two threads for work that lets go of the GIL (SciPy's filters, pocketfft, numpy's
arithmetic, libsndfile), with the results in the order a single thread would give them,
so that what they feed computes the same values to the bit."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

_END = object()


def zip_on_two_threads(a: Iterator[Any], b: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
    """``zip(a, b, strict=True)`` with each item of ``b`` made on a helper thread while
    this one makes ``a``'s: for two streams whose work lets go of the GIL, the same items
    in about half the time."""
    with ThreadPoolExecutor(1, thread_name_prefix="vocalmix-zip") as pool:
        while True:
            later = pool.submit(next, b, _END)
            try:
                xa = next(a, _END)
            finally:
                xb = later.result()
            if xa is _END and xb is _END:
                return
            if xa is _END or xb is _END:
                raise ValueError("zip_on_two_threads: the streams differ in length")
            yield xa, xb


def beside(there: Callable[[], T], here: Callable[[], R]) -> tuple[T, R]:
    """``(there(), here())``, ``there`` run on a helper thread while this one runs ``here``:
    two computations that let go of the GIL, in about the time of the longer one. An
    exception of either is raised here once both have ended."""
    with ThreadPoolExecutor(1, thread_name_prefix="vocalmix-beside") as pool:
        later = pool.submit(there)
        mine = here()
        return later.result(), mine


class Early(Generic[T]):
    """``fn()`` started now on a helper thread; :meth:`result` waits for it (and raises
    its exception). For work whose inputs are ready before its result is needed."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vocalmix-early")
        self._future = self._pool.submit(fn)
        self._pool.shutdown(wait=False)

    def result(self) -> T:
        return self._future.result()


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int = 2,
                ahead: int = 4) -> Generator[R, None, None]:
    """``map(fn, items)`` computed on ``workers`` threads, at most ``ahead`` results
    waiting (memory stays bounded whatever the number of items), yielded in order. An
    exception of ``fn`` is raised where its result would have been yielded; the items
    after it are not started."""
    pending: deque[Future[R]] = deque()
    source = iter(items)
    with ThreadPoolExecutor(workers, thread_name_prefix="vocalmix-map") as pool:
        try:
            for item in source:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


class Filling:
    """An array that a helper thread fills in row order while the caller reads the rows
    already filled: ``rows`` (made by the helper) yields, after each step, how many rows
    of ``array`` are final, ``len(array)`` last.

    :meth:`wait` blocks until a number of rows are final, :meth:`result` until all are
    (an error of the filler is raised there, in the caller's thread); :meth:`cancel`
    stops the filler after its current step (for a caller that gave up)."""

    def __init__(self, array: np.ndarray, rows: Callable[[], Iterator[int]]) -> None:
        self.array = array
        self._done = 0
        self._finished = False
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._fill, args=(rows,),
                                        name="vocalmix-filling", daemon=True)
        self._thread.start()

    def _fill(self, rows: Callable[[], Iterator[int]]) -> None:
        steps = rows()
        try:
            for done in steps:
                with self._cond:
                    self._done = done
                    self._cond.notify_all()
                if self._cancelled.is_set():
                    break
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            self._error = e
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()  # a generator stopped early lets go of its own helpers now
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def wait(self, rows: int) -> None:
        """Return once at least ``rows`` rows are final; the filler's error if it failed
        before them."""
        with self._cond:
            while self._done < rows and not self._finished:
                self._cond.wait()
            if self._done >= rows:
                return  # final, whatever happened to the rows after them
            if self._error is not None:
                raise self._error
            raise RuntimeError(f"Filling: stopped at row {self._done} of {rows}")

    def result(self) -> np.ndarray:
        """The whole array, once every row is final."""
        self.wait(len(self.array))
        self._thread.join()
        return self.array

    def cancel(self) -> None:
        """Stop the filler after its current step and wait for it (its rows are then
        incomplete: do not read them)."""
        self._cancelled.set()
        self._thread.join()


__all__ = ["Filling", "ordered_map", "zip_on_two_threads"]
