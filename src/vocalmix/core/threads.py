"""How many threads the BLAS library under numpy may start in a vocalmix process (and
whether numpy asks for huge pages: :func:`no_numpy_hugepages`; and that SciPy's FFT can
read its thread count: :func:`fft_threads_readable`).

vocalmix runs its own work in parallel: the two inputs decode on two threads, the
estimators' analyses run on two threads, renders run beside the measurements that read
them (:mod:`vocalmix.core.parallel`). OpenBLAS, the BLAS library of numpy's and SciPy's
wheels, starts another thread per core for each matrix product large enough, and keeps
those threads spinning between products. On cores that vocalmix's own threads already
use, they compete for the CPU. Measured on 2 cores, a 3-minute song, whole process
(interleaved runs of ``vocalmix mix`` and ``vocalmix estimate``):

- the model's mix: 4.1-4.3 s with one BLAS thread against 4.5-4.9 s, and about 1 s less
  CPU time;
- the estimate alone: 3.7 s against 3.8-4.5 s.

A threaded product also sums in an order that depends on the number of threads. The
params of one input then differ in their 11th digit between machines with different
core counts, and a mix can differ by one 24-bit step in a few samples. With one BLAS
thread, they do not depend on the core count.

:func:`pin_blas_threads` sets the thread count to 1 unless the user chose one. The
command line calls it first, so its batch workers (which inherit its environment) and
its server do the same.

A library caller's process has imported numpy before vocalmix could set anything, so
the library's calls (``vocalmix.mix``, ``estimate``, ``render``, the web page's mixes
and a live mixer's rehearsal) run inside :func:`one_blas_thread` instead: the BLAS
libraries loaded in the process (found by ``threadpoolctl``) are set to one thread when
the first such call starts and back to their count when the last one ends, unless the
user chose a count in one of :data:`BLAS_THREAD_VARS`. Measured in-process on 2 cores,
warm model mixes of a 3-minute song (``vocalmix.mix``) in processes started without the
variables: 1.34-1.47 s and 2.3-2.45 s of CPU each, against 1.59-1.92 s and 2.8-3.4 s
before; and the params document is the command line's to the bit, where a threaded
BLAS had moved its last digits.

The calls are counted, not nested: ``threadpoolctl``'s own ``threadpool_limits``
restores, when a call ends, the count its start found, so of two calls overlapping on
a server's threads the first to end would have left the other running on every core,
and the last the process on one thread. Other threads of the caller's process that
multiply large matrices meanwhile run on one BLAS thread too.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

#: the variables by which OpenMP, OpenBLAS and MKL are told their thread count; each is
#: read once, when the library loads
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_blas_threads() -> bool:
    """Set each of :data:`BLAS_THREAD_VARS` that is unset (or empty) to ``"1"``.

    Only before numpy is imported, as the BLAS library reads them when it loads; a value
    the user set is kept. Returns whether the settings could still take effect (numpy
    was not imported yet)."""
    return _set_before_numpy(dict.fromkeys(BLAS_THREAD_VARS, "1"))


def _set_before_numpy(values: dict[str, str]) -> bool:
    """Set each environment variable of ``values`` that is unset (or empty) to its value,
    if numpy is not imported yet (it reads them as it loads); returns whether it was not."""
    if "numpy" in sys.modules:
        return False
    for var, value in values.items():
        if not os.environ.get(var):
            os.environ[var] = value
    return True


#: numpy's switch for asking the kernel for transparent huge pages for its large arrays
#: (``madvise(MADV_HUGEPAGE)``), read once when numpy loads
NUMPY_HUGEPAGE_VAR = "NUMPY_MADVISE_HUGEPAGE"


def no_numpy_hugepages() -> bool:
    """Set :data:`NUMPY_HUGEPAGE_VAR` to ``"0"`` unless the user set it: numpy's large
    arrays then live in ordinary 4 KB pages.

    numpy asks for huge pages where the kernel gives them only on request (Linux's
    transparent huge pages in ``madvise`` mode, the common default). A mix allocates and
    frees dozens of full-length arrays, and the allocator hands freed memory back between
    stages (:mod:`vocalmix.core.memory`), so the kernel likely keeps making (and zeroing)
    fresh 2 MB pages.
    Measured on this project's 2-core VM, a 3-minute song, interleaved fresh processes:
    the model's mix 3.42 s against 3.70 s median (8 of 10 rounds faster; 0.6 s of system
    time against 1.0 s), the estimate 2.93 s against 3.19 s, the baseline's mix about
    the same; peak memory the same. The values computed do not change. Only before numpy
    is imported; returns whether it could still take effect."""
    return _set_before_numpy({NUMPY_HUGEPAGE_VAR: "0"})


#: the variable by which SciPy's FFT library (DUCC, since SciPy 1.18) is told its thread
#: pool's size; where it is unset, DUCC reads ``OMP_NUM_THREADS`` instead
DUCC_THREAD_VAR = "DUCC0_NUM_THREADS"


def _ducc_reads(value: str) -> bool:
    """Whether DUCC reads ``value`` as a thread count: a whole number, ``+`` allowed,
    blanks around it (an empty value, a negative one, ``4.0`` or OpenMP's nested
    ``4,2`` make it raise)."""
    s = value.strip()
    s = s[1:] if s.startswith("+") else s
    return s.isascii() and s.isdigit()


def _ducc_env(omp: str | None) -> dict[str, str]:
    """``{DUCC_THREAD_VAR: "0"}`` (DUCC's own choice, as with neither variable set) when
    :data:`DUCC_THREAD_VAR` is unset and DUCC would read ``omp`` (``OMP_NUM_THREADS``'s
    value, ``None`` when unset) and fail; else nothing."""
    if os.environ.get(DUCC_THREAD_VAR) is not None or omp is None or _ducc_reads(omp):
        return {}
    return {DUCC_THREAD_VAR: "0"}


def fft_threads_readable() -> bool:
    """Set :data:`DUCC_THREAD_VAR` to ``"0"`` where SciPy's FFTs would otherwise fail.

    SciPy 1.18's DUCC reads its thread count from ``OMP_NUM_THREADS`` when its own
    variable is unset, the first time an FFT runs, and raises ``RuntimeError: could not
    convert '' to desired data type`` for a value it cannot read as one whole number:
    an empty ``OMP_NUM_THREADS=`` (which a Ray worker of :func:`worker_env` gets, and
    which OpenBLAS reads as unset), or OpenMP's own nested form ``4,2``. Every FFT of a
    mix would fail. ``"0"`` is DUCC's own choice of pool size; vocalmix's FFTs run on
    one thread each whatever the pool. Nothing is changed when DUCC would read the
    value, or when its own variable is set. Returns whether it set it."""
    env = _ducc_env(os.environ.get("OMP_NUM_THREADS"))
    os.environ.update(env)
    return bool(env)


def worker_env() -> dict[str, str]:
    """The settings above, as a worker process started by something other than this
    process (a Ray actor) must be given them: each of :data:`BLAS_THREAD_VARS` (an empty
    value reads as unset, the BLAS library's default, as in a plain process),
    :data:`DUCC_THREAD_VAR` where DUCC could not read the ``OMP_NUM_THREADS`` given (see
    :func:`fft_threads_readable`), and :data:`NUMPY_HUGEPAGE_VAR` when it is set (numpy
    refuses an empty one)."""
    env = {v: os.environ.get(v, "") for v in BLAS_THREAD_VARS}
    env.update(_ducc_env(env["OMP_NUM_THREADS"]))
    if os.environ.get(DUCC_THREAD_VAR) is not None:
        env[DUCC_THREAD_VAR] = os.environ[DUCC_THREAD_VAR]
    if os.environ.get(NUMPY_HUGEPAGE_VAR):
        env[NUMPY_HUGEPAGE_VAR] = os.environ[NUMPY_HUGEPAGE_VAR]
    return env


def blas_count_chosen() -> bool:
    """Whether one of :data:`BLAS_THREAD_VARS` is set (and not empty): by the user, or by
    :func:`pin_blas_threads` to 1."""
    return any(os.environ.get(v) for v in BLAS_THREAD_VARS)


_BLAS_LOCK = threading.Lock()
#: the calls inside :func:`one_blas_thread` now
_blas_calls = 0
#: the BLAS libraries :func:`one_blas_thread` set to one thread, each with its count before
_blas_restore: list[tuple[Any, int]] = []


#: ``threadpoolctl``'s controller of the process's libraries (guarded by ``_BLAS_LOCK``)
#: and the number of modules imported when it was made
_controller: Any = None
_controller_modules = -1


def _blas_libraries() -> list[Any]:
    """``threadpoolctl``'s controllers of the BLAS libraries loaded in the process (call
    with ``_BLAS_LOCK`` held).

    Making ``threadpoolctl``'s controller walks the loaded libraries with glibc's
    ``dl_iterate_phdr``, which calls back into Python while it holds the dynamic
    loader's lock. Another thread importing an extension module at that moment holds
    the interpreter's lock and waits in ``dlopen`` for the loader's: the process hangs
    for good (seen in a test that made one while a mix's own thread imported ``soxr``,
    with the oldest releases ``pyproject.toml`` named before). So the controller is made again only
    when a module has been imported since the last one (a new BLAS library comes with
    an extension module): in a process past its first calls, a call walks nothing, and
    saves the walk's 3 ms."""
    global _controller, _controller_modules
    modules = len(sys.modules)
    if _controller is None or modules != _controller_modules:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
        _controller_modules = modules
    return list(_controller.select(user_api="blas").lib_controllers)


def _blas_to_one() -> list[tuple[Any, int]]:
    """Set each BLAS library loaded in the process that runs more than one thread to one;
    returns them with their counts before. Nothing if ``threadpoolctl`` cannot tell."""
    try:
        libs = _blas_libraries()
        changed = []
        for lib in libs:
            n = int(lib.get_num_threads() or 1)
            if n > 1:
                _set_count(lib, 1)
                changed.append((lib, n))
        return changed
    except Exception:  # noqa: BLE001 - a library it cannot drive: run as the caller set it
        return []


def _set_count(lib: Any, n: int) -> None:
    """Set the thread count of one BLAS library (a ``threadpoolctl`` controller) from
    this thread. ``threadpoolctl`` lets only the first thread that set an OpenBLAS count
    set it again (its pool is the process's), and silently ignores the others: the calls
    of :func:`one_blas_thread` are counted under one lock instead, so that thread's
    control is cleared before and after (public ``clear_controlling_thread``)."""
    clear = getattr(type(lib), "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)
    try:
        lib.set_num_threads(n)
    finally:
        if clear is not None:
            clear()


def _blas_back(changed: list[tuple[Any, int]]) -> None:
    for lib, n in changed:
        try:
            _set_count(lib, n)
        except Exception:  # noqa: BLE001 - as above
            pass


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the body with the process's BLAS libraries on one thread (see the module's
    text), unless the user chose a count (:func:`blas_count_chosen`): the command line
    and its workers have their count set before numpy loads, and pass here at no cost.

    Thread-safe and counted: the count goes to one as the first of overlapping calls
    starts and back as the last one ends."""
    global _blas_calls, _blas_restore
    if blas_count_chosen():
        yield
        return
    with _BLAS_LOCK:
        if _blas_calls == 0:
            _blas_restore = _blas_to_one()
        _blas_calls += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_calls -= 1
            if _blas_calls == 0:
                _blas_back(_blas_restore)
                _blas_restore = []


F = TypeVar("F", bound=Callable[..., Any])


def on_one_blas_thread(f: F) -> F:
    """``f`` run inside :func:`one_blas_thread`."""
    @wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return f(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


__all__ = ["BLAS_THREAD_VARS", "DUCC_THREAD_VAR", "NUMPY_HUGEPAGE_VAR", "blas_count_chosen",
           "fft_threads_readable", "no_numpy_hugepages", "on_one_blas_thread",
           "one_blas_thread", "pin_blas_threads", "worker_env"]
