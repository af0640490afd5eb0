"""How many threads the BLAS library under numpy may start in a vocalmix process (and
whether numpy asks for huge pages: :func:`no_numpy_hugepages`).

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

Importing vocalmix as a library does not: a caller's process has imported numpy before
vocalmix could say anything. Set ``OPENBLAS_NUM_THREADS=1`` before numpy is imported to
get the command line's speed and digits (measured in-process on 2 cores, the model's
estimate of a 3-minute song: 3.7-3.9 s against 4.1-4.9 s). Lowering the count for the
duration of each library call (``threadpoolctl``) was tried and not kept: with the
OpenBLAS of numpy's wheels (0.3.31), a count set from one thread after another thread
had set one did not take effect, so a call made on a server's worker thread would run
unlimited, or leave the caller's process on one thread.
"""

from __future__ import annotations

import os
import sys

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


def worker_env() -> dict[str, str]:
    """The settings above, as a worker process started by something other than this
    process (a Ray actor) must be given them: each of :data:`BLAS_THREAD_VARS` (an empty
    value reads as unset, the BLAS library's default, as in a plain process), and
    :data:`NUMPY_HUGEPAGE_VAR` when it is set (numpy refuses an empty one)."""
    env = {v: os.environ.get(v, "") for v in BLAS_THREAD_VARS}
    if os.environ.get(NUMPY_HUGEPAGE_VAR):
        env[NUMPY_HUGEPAGE_VAR] = os.environ[NUMPY_HUGEPAGE_VAR]
    return env


__all__ = ["BLAS_THREAD_VARS", "NUMPY_HUGEPAGE_VAR", "no_numpy_hugepages", "pin_blas_threads",
           "worker_env"]
