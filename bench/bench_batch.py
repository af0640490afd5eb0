"""Throughput of `vocalmix batch`: songs per hour per core (a script, not a test).

Synthesises N stereo 44.1 kHz songs (3 minutes by default) and mixes all of them with:

* the local process pool (``vocalmix batch``'s engine) with 1 and 2 workers;
* one ``vocalmix mix`` process per song, 1 and 2 at a time (what a shell loop does);
* Ray Data (``--engine ray``) on a local Ray with 1 and 2 CPUs, when Ray is installed
  (its start-up, ``ray.init``, is timed separately and left out of the rate);

plus one song at a time in this process, warm (the pure mixing time). Reported: wall
time, songs per hour, songs per hour per core, and the **per-song overhead** over a warm
worker: for the pool and Ray, the steady-state interval between two finished songs minus
the time the job itself measured (IPC, scheduling, journal); for a process per song, the
process's wall time minus the warm in-process time (interpreter start, imports, models).

    python bench/bench_batch.py [--songs 6] [--duration-s 180] [--workers 1 2] [--md FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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

    stamps = _Stamps()
    t = time.perf_counter()
    s = batch.run_batch(manifest, out, workers=workers, engine=engine, method=method,
                        progress=stamps, worker_init=_tune_malloc)
    wall = time.perf_counter() - t
    assert s.status.ok == s.status.total, s.failures
    table = batch.read_results(out)
    job_s = statistics.mean(r["total_s"] for r in table)
    d = stamps.done
    # steady state: songs finish every (job time / workers) once every worker is busy
    steady = (d[-1] - d[workers - 1]) / (len(d) - workers) if len(d) > workers else float("nan")
    return {"wall_s": wall, "job_s": job_s, "first_s": d[0], "steady_s": steady,
            "overhead_s": steady * workers - job_s}


def _process_run(manifest: Path, out: Path, workers: int, method: str) -> dict:
    import csv

    rows = list(csv.DictReader(open(manifest, newline="")))
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)

    def one(r: dict) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vocalmix", "mix", r["vocal"], r["backing"],
                        "-o", str(out / f"{r['id']}.wav"), "--params-out",
                        str(out / f"{r['id']}.json"), "--method", method, "-q"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        times = list(ex.map(one, rows))
    wall = time.perf_counter() - t
    return {"wall_s": wall, "process_s": statistics.mean(times)}


def _warm_inprocess(manifest: Path, out: Path, method: str) -> float:
    """Mean time of mix_job per song in this process after a warm-up."""
    from vocalmix import batch

    m = batch.read_manifest(manifest)
    config = batch.BatchConfig(out_dir=str(out), base_dir=m.base_dir, method=method)
    batch.warm_up()
    times = []
    for row in m.rows:
        t = time.perf_counter()
        r = batch.mix_job(row, config)
        times.append(time.perf_counter() - t)
        assert r["status"] == "ok", r["error"]
    return statistics.mean(times[1:]) if len(times) > 1 else times[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=6)
    ap.add_argument("--duration-s", type=float, default=180.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--method", default="baseline")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--md", help="also write the markdown table to this file")
    args = ap.parse_args()

    from vocalmix.frontends.cli import _tune_malloc

    _tune_malloc()  # as the command line does, so in-process figures are comparable
    tmp = Path(tempfile.mkdtemp(prefix="vocalmix-bench-batch-"))
    print(f"synthesising {args.songs} songs of {args.duration_s:g} s in {tmp}",
          file=sys.stderr)
    manifest = _synth(tmp, args.songs, args.duration_s, 44100)
    n = args.songs
    # (engine, workers, wall s, steady-state s per song per worker, overhead)
    res: list[tuple[str, int, float, float, str]] = []
    try:
        print("in-process, warm", file=sys.stderr, flush=True)
        warm = _warm_inprocess(manifest, tmp / "warm", args.method)
        res.append(("one process, warm, no pool (pure mixing time)", 1, warm * n, warm, "0"))
        for w in args.workers:
            print(f"local pool, {w} worker(s)", file=sys.stderr, flush=True)
            r = _batch_run(manifest, tmp / f"pool{w}", w, "local", args.method)
            res.append((f"`vocalmix batch` local pool (first song after {r['first_s']:.1f} s)",
                        w, r["wall_s"], r["steady_s"] * w, f"{r['overhead_s'] * 1000:+.0f} ms"))
        for w in args.workers:
            print(f"process per song, {w} at a time", file=sys.stderr, flush=True)
            r = _process_run(manifest, tmp / f"proc{w}", w, args.method)
            res.append(("`vocalmix mix` process per song", w, r["wall_s"], r["process_s"],
                        f"{r['process_s'] - warm:+.2f} s"))
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
                    res.append((f"`vocalmix batch --engine ray` (+{init_s:.1f} s ray.init; "
                                f"first song after {r['first_s']:.1f} s)", w, r["wall_s"],
                                r["steady_s"] * w, f"{r['overhead_s'] * 1000:+.0f} ms"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    head = (f"{n} songs of {args.duration_s:g} s, stereo 44.1 kHz (synthesised), method "
            f"`{args.method}`, {cores} cores; warm in-process mix: {warm:.2f} s per song. "
            f"Load average at the end: {os.getloadavg()[0]:.1f}.")
    lines = [head, "",
             "| engine | workers | wall (s) | songs/hour | songs/hour/core | songs/hour/core, "
             "steady state | per-song overhead over a warm worker |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, w, wall, per_song, over in res:
        sph = n / wall * 3600
        lines.append(f"| {name} | {w} | {wall:.1f} | {sph:.0f} | {sph / w:.0f} | "
                     f"{3600 / per_song:.0f} | {over} |")
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
