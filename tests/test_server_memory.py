"""The server's job queue hands a finished job's free memory back to the system.

``vocalmix serve`` raises glibc's mmap and trim thresholds, as every command does, so
that a mix reuses the arrays it frees instead of mapping them afresh. In a process that
lives on between jobs, the freed memory of each worker thread's arena would otherwise
stay resident: a server fed 3-minute songs climbed from 0.8 GB to 1.2 GB idle over 24
mixes, with the same work live after each.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="glibc's allocator and /proc are Linux's")

CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from vocalmix.core.memory import c_library
    from vocalmix.frontends.cli import _tune_malloc
    from vocalmix.frontends.server.jobs import JobQueue

    if c_library("c") is None or not hasattr(c_library("c"), "malloc_trim"):
        print("no-glibc"); sys.exit(0)
    _tune_malloc(single_arena=False)  # what `vocalmix serve` sets

    def rss_mb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def job():
        # 48 arrays of 8 MB, each written (resident), all freed when the job returns:
        # a mix's temporaries in a worker thread's arena
        held = [np.ones(1 << 20) for _ in range(48)]
        return rss_mb(), sum(float(a[0]) for a in held)

    q = JobQueue(workers=1, queue_size=1)
    before = rss_mb()
    during, _ = q.submit(job).result()
    after = during
    for _ in range(100):  # the worker trims after handing on the result
        after = rss_mb()
        if after < before + 50 and q.stats()["running"] == 0:
            break
        time.sleep(0.02)
    print(f"{before:.0f} {during:.0f} {after:.0f}")
""")


def test_a_finished_job_leaves_no_freed_arrays_resident():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    if out == ["no-glibc"]:
        pytest.skip("no glibc malloc_trim in this C library")
    before, during, after = (float(v) for v in out)
    assert during > before + 300, f"the job's arrays were not resident: {out}"
    assert after < before + 50, (
        f"{after - before:.0f} MB of a finished job's freed memory stayed resident "
        f"(RSS {before:.0f} MB before the job, {during:.0f} MB in it, {after:.0f} MB after)")
