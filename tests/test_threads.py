"""The command line runs numpy's BLAS on one thread unless the user chose a count, and
numpy's arrays in ordinary pages unless the user chose huge pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

from vocalmix.core.threads import BLAS_THREAD_VARS

#: prints the BLAS variables after the command line's ``--version`` (which imports no
#: numpy), or after pin_blas_threads in a process that imported numpy first
_SCRIPT = """
import json, os, sys
from vocalmix.core.threads import BLAS_THREAD_VARS
if sys.argv[1] == "numpy-first":
    import numpy  # noqa: F401
    from vocalmix.core.threads import pin_blas_threads
    took = pin_blas_threads()
else:
    from vocalmix.frontends import cli
    took = "numpy" not in sys.modules
    try:
        cli.main(["--version"])
    except SystemExit:
        pass
import numpy
from numpy._core.multiarray import _get_madvise_hugepage
print(json.dumps({"took": took, "env": {v: os.environ.get(v) for v in BLAS_THREAD_VARS},
                  "hugepage_var": os.environ.get("NUMPY_MADVISE_HUGEPAGE"),
                  "hugepages": bool(_get_madvise_hugepage())}))
"""


def _run(mode: str, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in BLAS_THREAD_VARS and k != "NUMPY_MADVISE_HUGEPAGE"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], env={**base, **env},
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_command_line_pins_one_blas_thread():
    r = _run("cli")
    assert r["took"] is True
    assert r["env"] == {v: "1" for v in BLAS_THREAD_VARS}


def test_a_count_the_user_chose_is_kept_and_an_empty_one_is_set():
    r = _run("cli", OPENBLAS_NUM_THREADS="3", OMP_NUM_THREADS="")
    assert r["env"]["OPENBLAS_NUM_THREADS"] == "3"
    assert r["env"]["OMP_NUM_THREADS"] == "1"
    assert r["env"]["MKL_NUM_THREADS"] == "1"


def test_after_numpy_is_imported_nothing_is_changed():
    # the BLAS library has read its settings: setting them now would only mislead the
    # process's children into another thread count than its own
    r = _run("numpy-first")
    assert r["took"] is False
    assert r["env"] == {v: None for v in BLAS_THREAD_VARS}


def test_the_command_line_keeps_numpy_off_huge_pages_unless_the_user_chose():
    r = _run("cli")
    assert r["hugepage_var"] == "0" and r["hugepages"] is False
    r = _run("cli", NUMPY_MADVISE_HUGEPAGE="1")
    assert r["hugepage_var"] == "1" and r["hugepages"] is True
    r = _run("numpy-first")  # too late: nothing is set
    assert r["hugepage_var"] is None


def test_worker_env_passes_the_thread_counts_and_a_set_huge_page_choice(monkeypatch):
    from vocalmix.core.threads import NUMPY_HUGEPAGE_VAR, worker_env

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(NUMPY_HUGEPAGE_VAR, "0")
    env = worker_env()
    assert env["OPENBLAS_NUM_THREADS"] == "1" and env["OMP_NUM_THREADS"] == ""
    assert env[NUMPY_HUGEPAGE_VAR] == "0"
    monkeypatch.setenv(NUMPY_HUGEPAGE_VAR, "")  # numpy refuses an empty value: not passed
    assert NUMPY_HUGEPAGE_VAR not in worker_env()
    monkeypatch.delenv(NUMPY_HUGEPAGE_VAR)
    assert NUMPY_HUGEPAGE_VAR not in worker_env()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert set(worker_env()) == set(BLAS_THREAD_VARS)


def test_a_worker_given_an_empty_omp_count_gets_one_scipys_fft_can_read(monkeypatch):
    # the empty OMP_NUM_THREADS a worker gets (unset here) is OpenBLAS's default, but
    # SciPy 1.18's FFT (DUCC) reads it when its own variable is unset, and fails: every
    # song of a Ray batch failed with "could not convert ''". DUCC gets "0", its own
    # choice; a DUCC count the driver set is passed on as it is
    from vocalmix.core.threads import DUCC_THREAD_VAR, worker_env

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(DUCC_THREAD_VAR, raising=False)
    env = worker_env()
    assert env["OMP_NUM_THREADS"] == "" and env[DUCC_THREAD_VAR] == "0"
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # OpenMP's nested form: DUCC cannot
    assert worker_env()[DUCC_THREAD_VAR] == "0"
    monkeypatch.setenv("OMP_NUM_THREADS", " +3 ")  # DUCC can
    assert DUCC_THREAD_VAR not in worker_env()
    monkeypatch.setenv(DUCC_THREAD_VAR, "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    assert worker_env()[DUCC_THREAD_VAR] == "2"


def test_which_thread_counts_duccs_fft_reads():
    from vocalmix.core.threads import _ducc_reads

    # as measured with SciPy 1.18.1's FFT: these ran...
    assert all(_ducc_reads(v) for v in ("4", " 4", "4 ", "+4", "04", "0"))
    # ...and these raised RuntimeError
    assert not any(_ducc_reads(v) for v in ("", " ", "-1", "4.0", "abc", "4,2", "\u0664"))


#: an FFT of the core in a process whose OMP_NUM_THREADS SciPy 1.18's FFT cannot read
_FFT_SCRIPT = """
import json, os, numpy as np
from vocalmix.core import kernels
x = np.sin(np.arange(64.0))
ok = np.allclose(kernels.rfft(x), np.fft.rfft(x)) and np.allclose(kernels.irfft(np.fft.rfft(x)), x)
print(json.dumps({"ok": bool(ok), "ducc": os.environ.get("DUCC0_NUM_THREADS")}))
"""


def test_the_cores_ffts_run_whatever_omp_count_the_process_has():
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                             "DUCC0_NUM_THREADS")}
    for omp, ducc in (("", "0"), ("4,2", "0"), ("1", None)):
        out = subprocess.run([sys.executable, "-c", _FFT_SCRIPT],
                             env={**base, "OMP_NUM_THREADS": omp},
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        assert json.loads(out.stdout.strip().splitlines()[-1]) == {"ok": True, "ducc": ducc}
    out = subprocess.run([sys.executable, "-c", _FFT_SCRIPT],
                         env={**base, "OMP_NUM_THREADS": "", "DUCC0_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"ok": True, "ducc": "1"}


#: counts the BLAS libraries' threads around one_blas_thread and the library's calls, in a
#: process started without the BLAS variables (as a library caller's may be); the counts
#: are set to 3 first, so that a one-core machine tests the same thing
_LIBRARY_SCRIPT = """
import json, sys, threading
import numpy as np
from threadpoolctl import ThreadpoolController

def counts():
    return [lib.get_num_threads()
            for lib in ThreadpoolController().select(user_api="blas").lib_controllers]

for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
    lib.set_num_threads(3)
from vocalmix import pipeline
from vocalmix.core.threads import one_blas_thread
from vocalmix.synth import synthesize_song
import vocalmix

# a first mix and render, not observed, so that the calls observed below import nothing:
# counts() makes a threadpoolctl controller, which walks the loaded libraries under the
# dynamic loader's lock calling back into Python, and hangs the process if another thread
# imports an extension module meanwhile (seen with the oldest releases once allowed)
_v, _b = synthesize_song(sample_rate=44100, duration_s=4.0, seed=3)
vocalmix.render(_v, _b, vocalmix.mix(_v, _b, 44100, method="baseline").params, 44100)

out = {"before": counts()}
with one_blas_thread():
    out["inside"] = counts()
    with one_blas_thread():
        out["nested"] = counts()
    out["after nested"] = counts()
out["after"] = counts()

# two calls overlapping on two threads: a starts, b starts, a ends, b ends
a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
def a():
    with one_blas_thread():
        a_in.set(); b_in.wait(10)
    a_out.set()
def b():
    a_in.wait(10)
    with one_blas_thread():
        b_in.set(); a_out.wait(10)
        out["b after a ended"] = counts()
    out["after both"] = counts()
threads = [threading.Thread(target=f) for f in (a, b)]
for t in threads: t.start()
for t in threads: t.join()

# the library's calls: the estimate, and the render up to its achieved figures (measured
# after the master stage)
seen = {}
choose, achieved = pipeline.choose_targets, pipeline.measure_achieved
def choose_targets(*a, **k):
    seen.setdefault("estimate", counts())
    return choose(*a, **k)
def measure_achieved(*a, **k):
    seen.setdefault("render", counts())
    return achieved(*a, **k)
pipeline.choose_targets, pipeline.measure_achieved = choose_targets, measure_achieved
v, bk = synthesize_song(sample_rate=44100, duration_s=4.0, seed=3)
r = vocalmix.mix(v, bk, 44100, method="baseline")
seen["mix"] = seen.pop("estimate"), seen.pop("render")
vocalmix.render(v, bk, r.params, 44100)
seen["render alone"] = seen.pop("render")
out["calls"] = seen
out["after calls"] = counts()
print(json.dumps(out))
"""


def _library(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARS}
    out = subprocess.run([sys.executable, "-c", _LIBRARY_SCRIPT], env={**base, **env},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_library_calls_run_blas_on_one_thread_and_give_the_count_back():
    r = _library()
    n = len(r["before"])
    assert n >= 1 and r["before"] == [3] * n
    one = [1] * n
    assert r["inside"] == r["nested"] == r["after nested"] == one
    assert r["after"] == [3] * n
    # counted, not nested: the count stays one until the last call ends
    assert r["b after a ended"] == one and r["after both"] == [3] * n
    assert r["calls"] == {"mix": [one, one], "render alone": one}
    assert r["after calls"] == [3] * n


def test_library_calls_keep_a_count_the_user_chose():
    r = _library(OPENBLAS_NUM_THREADS="3")
    n = len(r["before"])
    three = [3] * n
    assert r["inside"] == r["b after a ended"] == three
    assert r["calls"] == {"mix": [three, three], "render alone": three}


def test_the_libraries_are_walked_again_only_after_an_import(monkeypatch):
    # making threadpoolctl's controller walks the loaded libraries under the dynamic
    # loader's lock; a thread importing an extension module meanwhile hangs the process.
    # A library call walks them only when a module was imported since the last walk.
    import threadpoolctl

    from vocalmix.core import threads

    made = []
    real = threadpoolctl.ThreadpoolController

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            made.append(1)
            super().__init__()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Counted)
    for var in BLAS_THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "_controller", None)
    for _ in range(3):
        with threads.one_blas_thread():
            pass
    assert len(made) == 1
    monkeypatch.setitem(sys.modules, "vocalmix_test_imported_later", types.ModuleType("m"))
    with threads.one_blas_thread():
        pass
    assert len(made) == 2
    with threads.one_blas_thread():
        pass
    assert len(made) == 2
