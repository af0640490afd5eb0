"""Throughput of `vocalmix batch`: songs per hour per core (a script, not a test).

Synthesises N stereo 44.1 kHz songs (3 minutes by default) and mixes all of them with:

* the local process pool (``vocalmix batch``'s engine) with 1 and 2 workers;
* one ``vocalmix mix`` process per song, 1 and 2 at a time (what a shell loop does);
* Ray Data (``--engine ray``) on a local Ray with 1 and 2 CPUs, when Ray is installed
  (its start-up, ``ray.init``, is timed separately and left out of the rate);

plus the same songs one at a time in this process, warm (the mixing alone). Every
process runs with one BLAS thread. Reported per configuration:

* **CPU s per song** and **songs/hour/core** from the user + system time of every process
  involved (workers, driver, Ray's daemons; Ray's by sampling its process tree): on a
  machine shared with other work this is steadier than wall time;
* the **fixed start-up CPU per run** (start and warm the workers, hash the inputs, read
  the journal), measured by running the same batch again with every row skipped, and the
  marginal **per-song overhead over a warm worker** (CPU per song without the fixed
  part, minus the warm in-process mixing);
* wall time and songs/hour by wall time;
* and, on ``--short-songs`` songs of 1 s (where overhead shows most), the wall-time
  per-song overhead over a warm worker: the steady-state interval between two finished
  songs with one worker (pool or Ray actor), or a ``vocalmix mix`` process's wall time,
  minus the time of the same job in a warm process.

    python bench/bench_batch.py [--songs 6] [--duration-s 180] [--workers 1 2] [--md FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _synth(folder: Path, n: int, duration_s: float, sr: int) -> Path:
    import csv

    import soundfile as sf

    from vocalmix.synth import synthesize_song

    rows = []
    for i in range(n):
        v, b = synthesize_song(sample_rate=sr, duration_s=duration_s, seed=100 + i)
        vp, bp = folder / f"song{i}.vocal.wav", folder / f"song{i}.backing.wav"
        sf.write(vp, v, sr, subtype="PCM_24")
        sf.write(bp, b, sr, subtype="PCM_24")
        rows.append({"id": f"song{i}", "vocal": str(vp), "backing": str(bp)})
        print(f"  synthesised song {i + 1}/{n}", file=sys.stderr, flush=True)
    m = folder / "manifest.csv"
    with open(m, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "vocal", "backing"])
        w.writeheader()
        w.writerows(rows)
    return m


def _proc_table() -> tuple[dict[int, tuple[float, float]], dict[int, list[int]]]:
    """Every process's ``(own CPU s, reaped children's CPU s)`` (user + system, Linux
    /proc) and the child pids of each pid."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu: dict[int, tuple[float, float]] = {}
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            text = Path("/proc", d, "stat").read_text()
        except OSError:
            continue
        f = text[text.rindex(")") + 2:].split()
        # fields after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
        cpu[int(d)] = ((int(f[11]) + int(f[12])) / tick, (int(f[13]) + int(f[14])) / tick)
        children.setdefault(int(f[1]), []).append(int(d))
    return cpu, children


def _descendants(children: dict[int, list[int]], pid: int) -> list[int]:
    """The pids below ``pid`` in the process tree."""
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _tree_cpu_s() -> float:
    """CPU seconds (user + system) used by this process and all its descendants, live
    or reaped (a reaped process counts in its parent's cutime/cstime)."""
    cpu, children = _proc_table()
    me = os.getpid()
    return sum(sum(cpu.get(p, (0.0, 0.0))) for p in (me, *_descendants(children, me)))


class _TreeSampler:
    """CPU of this process's descendants by sampling /proc 4 times a second: Ray's
    workers are children of its raylet, which reaps them out of sight of this process,
    so reaped-children accounting misses them. Each process counts with the last value
    seen (user + system, its own, not its children's); a process ending between two
    samples loses at most 0.25 s."""

    def __init__(self) -> None:
        import threading

        self.first = self._sample()
        self.last = dict(self.first)
        self.self0 = time.process_time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _sample() -> dict[int, float]:
        cpu, children = _proc_table()
        return {p: cpu[p][0] for p in _descendants(children, os.getpid()) if p in cpu}

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.last.update(self._sample())

    def stop(self) -> float:
        """CPU seconds used since the start by this process and its descendants."""
        self._stop.set()
        self._thread.join()
        self.last.update(self._sample())
        kids = sum(v - self.first.get(pid, 0.0) for pid, v in self.last.items())
        return kids + time.process_time() - self.self0


class _Stamps:
    """Times at which rows finished (a run_batch progress callback)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.done: list[float] = []
        self._n = 0

    def __call__(self, s) -> None:
        n = s.ok + s.failed + s.skipped
        while self._n < n:
            self._n += 1
            self.done.append(time.perf_counter() - self.t0)


def _batch_run(manifest: Path, out: Path, workers: int, engine: str, method: str) -> dict:
    from vocalmix import batch
    from vocalmix.frontends.cli import _tune_malloc

    def cpu_meter() -> Callable[[], float]:
        if engine == "ray":
            return _TreeSampler().stop
        c = _tree_cpu_s()  # the pool's workers are reaped children: exact
        return lambda: _tree_cpu_s() - c

    stamps = _Stamps()
    meter, t = cpu_meter(), time.perf_counter()
    s = batch.run_batch(manifest, out, workers=workers, engine=engine, method=method,
                        progress=stamps, worker_init=_tune_malloc)
    wall, cpu = time.perf_counter() - t, meter()
    assert s.status.ok == s.status.total, s.failures
    # the same batch again: every row is skipped, so this is the fixed cost of a run
    # (start the workers, warm them up, hash the inputs, read the journal)
    meter, t = cpu_meter(), time.perf_counter()
    s = batch.run_batch(manifest, out, workers=workers, engine=engine, method=method,
                        worker_init=_tune_malloc)
    fixed_wall, fixed_cpu = time.perf_counter() - t, meter()
    assert s.status.skipped == s.status.total
    d = stamps.done
    steady = (d[-1] - d[workers - 1]) / (len(d) - workers) if len(d) > workers else None
    return {"wall_s": wall, "cpu_s": cpu, "first_s": d[0], "fixed_cpu_s": fixed_cpu,
            "fixed_wall_s": fixed_wall, "steady_s": steady}


def _process_run(manifest: Path, out: Path, workers: int, method: str) -> dict:
    import csv

    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    out.mkdir(parents=True, exist_ok=True)

    def one(r: dict) -> None:
        subprocess.run([sys.executable, "-m", "vocalmix", "mix", r["vocal"], r["backing"],
                        "-o", str(out / f"{r['id']}.wav"), "--params-out",
                        str(out / f"{r['id']}.json"), "--method", method, "-q"],
                       check=True, stdout=subprocess.DEVNULL)

    c, t = _tree_cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, rows))
    return {"wall_s": time.perf_counter() - t, "cpu_s": _tree_cpu_s() - c}


def _warm_inprocess(manifest: Path, out: Path, method: str) -> dict:
    """mix_job per song in this process after a warm-up (the first song not counted)."""
    from vocalmix import batch

    m = batch.read_manifest(manifest)
    config = batch.BatchConfig(out_dir=str(out), base_dir=m.base_dir, method=method)
    batch.warm_up(method)
    batch.mix_job(m.rows[0], config)
    c, t = time.process_time(), time.perf_counter()
    hash_s = 0.0
    for row in m.rows[1:]:
        r = batch.mix_job(row, config)
        assert r["status"] == "ok", r["error"]
        hash_s += r["hash_s"]
    n = max(1, len(m.rows) - 1)
    return {"wall_s": (time.perf_counter() - t) / n * len(m.rows),
            "cpu_s": (time.process_time() - c) / n * len(m.rows), "hash_s": hash_s / n}


def _overhead(tmp: Path, n: int, duration_s: float, method: str, use_ray: bool) -> str:
    """Per-song overhead over a warm worker, by wall time, on short songs (where it is
    largest relative to the work): the steady-state interval between two finished songs
    with one worker, minus the time of the same job called in a warm process."""
    import csv

    folder = tmp / "short"
    folder.mkdir()
    manifest = _synth(folder, n, duration_s, 44100)
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))

    def inproc() -> float:
        return _warm_inprocess(manifest, folder / f"warm{time.monotonic_ns()}",
                               method)["wall_s"] / n

    def steady(engine: str) -> float:
        stamps = _Stamps()
        batch_mod.run_batch(manifest, folder / f"{engine}{time.monotonic_ns()}", workers=1,
                            engine=engine, method=method, progress=stamps)
        d = stamps.done
        return (d[-1] - d[0]) / (len(d) - 1)

    from vocalmix import batch as batch_mod

    warm_a = inproc()
    results = [("local pool, 1 worker", steady("local"))]
    if use_ray:
        import logging

        import ray

        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
        try:
            results.append(("Ray Data, 1 actor", steady("ray")))
        finally:
            ray.shutdown()
    k = min(n, 8)
    t = time.perf_counter()
    for r in rows[:k]:
        subprocess.run([sys.executable, "-m", "vocalmix", "mix", r["vocal"], r["backing"],
                        "-o", str(folder / f"{r['id']}.wav"), "--method", method, "-q",
                        "--force"], check=True, stdout=subprocess.DEVNULL)
    results.append(("`vocalmix mix`, one process per song", (time.perf_counter() - t) / k))
    warm = (warm_a + inproc()) / 2  # before and after: the machine's load drifts
    lines = [f"Per-song overhead over a warm worker ({n} songs of {duration_s:g} s, wall "
             f"time; the job itself takes {warm * 1000:.0f} ms in a warm process):", "",
             "| how | s per song | overhead per song |", "| --- | ---: | ---: |",
             f"| mix_job in a warm process | {warm:.3f} | 0 |"]
    for name, per in results:
        lines.append(f"| {name} | {per:.3f} | {(per - warm) * 1000:+.0f} ms |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=6)
    ap.add_argument("--duration-s", type=float, default=180.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--method", default="baseline")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--short-songs", type=int, default=30,
                    help="songs of --short-duration-s for the per-song overhead (0: skip)")
    ap.add_argument("--short-duration-s", type=float, default=1.0)
    ap.add_argument("--md", help="also write the markdown table to this file")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # every configuration: one BLAS thread per process

    from vocalmix.frontends.cli import _tune_malloc

    _tune_malloc()  # as the command line does, so in-process figures are comparable
    try:  # the driver imports pyarrow at its first results snapshot: not a per-song cost
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        pass
    tmp = Path(tempfile.mkdtemp(prefix="vocalmix-bench-batch-"))
    print(f"synthesising {args.songs} songs of {args.duration_s:g} s in {tmp}",
          file=sys.stderr)
    manifest = _synth(tmp, args.songs, args.duration_s, 44100)
    n = args.songs
    res: list[tuple[str, int, dict]] = []
    load0 = os.getloadavg()[0]
    try:
        print("in-process, warm", file=sys.stderr, flush=True)
        warm = _warm_inprocess(manifest, tmp / "warm", args.method)
        res.append(("one warm process, no pool (the mixing alone)", 1, warm))
        for w in args.workers:
            print(f"local pool, {w} worker(s)", file=sys.stderr, flush=True)
            r = _batch_run(manifest, tmp / f"pool{w}", w, "local", args.method)
            res.append((f"`vocalmix batch`, local pool (first song after "
                        f"{r['first_s']:.0f} s)", w, r))
        for w in args.workers:
            print(f"process per song, {w} at a time", file=sys.stderr, flush=True)
            res.append(("`vocalmix mix`, one process per song", w,
                        _process_run(manifest, tmp / f"proc{w}", w, args.method)))
        if not args.no_ray:
            try:
                import logging

                import ray
            except ImportError:
                print("ray is not installed: no Ray figures", file=sys.stderr)
            else:
                for w in args.workers:
                    print(f"ray, {w} CPU(s)", file=sys.stderr, flush=True)
                    t = time.perf_counter()
                    ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False,
                             logging_level=logging.ERROR)
                    init_s = time.perf_counter() - t
                    try:
                        r = _batch_run(manifest, tmp / f"ray{w}", w, "ray", args.method)
                    finally:
                        ray.shutdown()
                    res.append((f"`vocalmix batch --engine ray` (ray.init {init_s:.0f} s "
                                f"not counted; first song after {r['first_s']:.0f} s)", w, r))
        overhead = ""
        if args.short_songs:
            print("per-song overhead on short songs", file=sys.stderr, flush=True)
            try:
                import ray  # noqa: F401
                use_ray = not args.no_ray
            except ImportError:
                use_ray = False
            overhead = _overhead(tmp, args.short_songs, args.short_duration_s, args.method,
                                 use_ray)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    warm_cpu = warm["cpu_s"] / n
    warm_mix_cpu = warm_cpu - warm["hash_s"]  # what a song costs beyond hashing its inputs
    head = (f"{n} songs of {args.duration_s:g} s, stereo 44.1 kHz (synthesised), method "
            f"`{args.method}`, one BLAS thread per process, {cores} cores; load average "
            f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. CPU = user + "
            "system time of every process involved (workers, driver, Ray's daemons).")
    lines = [head, "",
             "| engine | workers | CPU s per song | songs/hour/core (by CPU) | fixed start-up "
             "CPU per run | per-song overhead over a warm worker (CPU) | wall (s) | "
             "songs/hour (wall) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, w, r in res:
        cpu = r["cpu_s"] / n
        if "fixed_cpu_s" in r:  # a pool: the marginal cost of one more song
            fixed = f"{r['fixed_cpu_s']:.1f} s"
            over = f"{((r['cpu_s'] - r['fixed_cpu_s']) / n - warm_mix_cpu) * 1000:+.0f} ms"
        elif r is warm:
            fixed, over = "-", "0"
        else:  # a process per song pays its start-up every time
            fixed, over = "every song", f"{(cpu - warm_cpu) * 1000:+.0f} ms"
        lines.append(f"| {name} | {w} | {cpu:.2f} | {3600 / cpu:.0f} | {fixed} | {over} | "
                     f"{r['wall_s']:.0f} | {n / r['wall_s'] * 3600:.0f} |")
    if overhead:
        lines += ["", overhead]
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
