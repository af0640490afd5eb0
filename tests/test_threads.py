"""The command line runs numpy's BLAS on one thread unless the user chose a count, and
numpy's arrays in ordinary pages unless the user chose huge pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
    assert set(worker_env()) == set(BLAS_THREAD_VARS)
