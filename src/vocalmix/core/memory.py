"""Handing the C allocator's free memory back to the system between pipeline stages.

The mixing pipeline's stages have different working sets: the estimators analyse the
input pair (on two threads) with full-length downmixes and blocks of spectra, the
resolvers render the vocal's parts, the render sums and limits them. What one stage
frees stays mapped by the C allocator (glibc's ``malloc``) in the arena of the thread
that freed it, and the command line asks glibc to keep it (it raises the trim and mmap
thresholds, so that freed arrays are reused without new page faults: ``_tune_malloc``
in :mod:`vocalmix.frontends.cli`). A later stage reuses that memory only where its own
arrays fit into the free holes, and only from the same arena, so the resident size
climbed stage by stage above what was live: a 3-minute song mixed with the model
peaked about 150 MB over it.

:func:`release_free_memory` is the one place vocalmix trims the allocator; the pipeline
(:mod:`vocalmix.pipeline`) calls it where one stage's temporaries are gone and the next
stage's are not yet made (before the estimators, before the resolvers, before the final
sum), so that the peak is what a stage itself needs. A call takes a few milliseconds,
plus the page faults of the memory mapped again afterwards.
"""

from __future__ import annotations

import ctypes
import sys
from functools import cache, lru_cache
from typing import Any


@cache
def c_library(name: str) -> Any:
    """The C library ``name`` (``"c"``, ``"m"``) through ctypes: glibc's file name
    (``libc.so.6``) first, then where ``ctypes.util.find_library`` finds it (importing
    ``ctypes.util`` and asking it takes about 25 ms, which every process would pay);
    ``None`` when neither loads."""
    try:
        return ctypes.CDLL(f"lib{name}.so.6")
    except OSError:
        pass
    from ctypes.util import find_library

    found = find_library(name)
    try:
        return ctypes.CDLL(found) if found else None
    except OSError:
        return None


@lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or ``None`` where there is none (not Linux, or another C
    library such as musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = c_library("c").malloc_trim
    except AttributeError:  # no such library, or no malloc_trim in it
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Return the free memory the C allocator holds, in every arena, to the system
    (glibc's ``malloc_trim(0)``: whole free pages only, live memory is not touched); a
    no-op where there is no glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


__all__ = ["release_free_memory"]
