"""Benchmark of the live mixer (a script, not a test): time per block at 48 kHz.

For block sizes 64, 128, 256 and 512 samples, runs :class:`vocalmix.core.stream.LiveMixer`
with the full chain (high-pass, four EQ bands, compressor and make-up, vocal gain, a
reverb send, backing gain, true-peak limiter) over a synthesised song, one block at a
time as an audio callback would, pinned to one core with one BLAS thread, with the
processors kept out of deep idle states where permitted (as ``vocalmix live`` does on a
sound device: :class:`vocalmix.live.LowLatencyCpu`). Each block's
processing time is divided by the block's duration: the mean of that ratio is the
inverse real-time factor; the 99th percentile and the worst block say whether a callback
would meet its deadline. Both reverb types are measured, and the ``vocalmix live`` gain
ride (a :class:`vocalmix.live.LiveSession`) on top of the synthetic one.

    python bench/bench_live.py [--duration-s 20] [--repeats 1] [--mode callback|batch]
                               [--no-pm-qos] [--md FILE]
    python bench/bench_live.py --ride-table   # the gain ride on the real stems instead

``--ride-table`` runs a live session (block 256) on each song of ``$VOCALMIX_DATA/stems``
with each method, with and without a 3 s rehearsal (the take's opening line), and prints
its vocal-to-mix against ``vocalmix mix`` of the whole take, and the ride's fastest move.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration-s", type=float, default=20.0, help="song length, s")
    ap.add_argument("--repeats", type=int, default=1, help="runs per case")
    ap.add_argument("--blocks", default="64,128,256,512")
    ap.add_argument("--md", help="also write the markdown table to this file")
    ap.add_argument("--mode", choices=("callback", "batch"), default="callback",
                    help="callback (default): blocks arrive in real time and are processed "
                    "at real-time priority (SCHED_FIFO), as an audio callback is; batch: "
                    "back to back at the highest normal priority (nice -20), faster to run")
    ap.add_argument("--no-pm-qos", action="store_true",
                    help="callback mode without the PM QoS request (idle states as they are)")
    ap.add_argument("--ride-table", action="store_true",
                    help="the gain ride on the real stems instead of the block timings")
    args = ap.parse_args()
    if args.ride_table:
        return ride_table(args.md)

    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    priority = "normal"
    paced = args.mode == "callback"
    if paced:
        try:  # an audio callback thread runs at real-time priority (JACK, PipeWire, ...)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            priority = "SCHED_FIFO 10, blocks paced in real time"
        except (OSError, AttributeError):
            priority = "normal (real-time priority was refused), blocks paced in real time"
        if args.no_pm_qos:
            priority += "; processor idle states as they are (--no-pm-qos)"
        else:
            from vocalmix.live import LowLatencyCpu

            cpu = LowLatencyCpu().__enter__()  # held until the process ends, as on a device
            priority += "; " + cpu.note
    else:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, -20)
            priority = "nice -20, blocks back to back"
        except (OSError, AttributeError):
            priority = "normal, blocks back to back"

    import gc
    from dataclasses import replace

    import numpy as np

    from vocalmix.core.params import Compressor, EqBand, HighPass, MixParams, Reverb, VocalChain
    from vocalmix.core.stream import LiveMixer
    from vocalmix.synth import synthesize_song

    sr = 48000
    vocal, backing = synthesize_song(sample_rate=sr, duration_s=args.duration_s, seed=7)
    base = MixParams(vocal=VocalChain(
        highpass=HighPass(True, 90.0),
        eq_bands=(EqBand("low_shelf", 200.0, -2.0, 0.7), EqBand("peak", 1200.0, 2.0, 1.2),
                  EqBand("peak", 3000.0, 3.0, 1.0), EqBand("high_shelf", 9000.0, 1.5, 0.7)),
        compressor=Compressor(threshold_db=-24.0, ratio=4.0, attack_ms=10.0,
                              release_ms=120.0, makeup_db=6.0),
        gain_db=4.0))  # loud enough for the limiter to act
    cases = {
        "freeverb": replace(base, vocal=replace(base.vocal, reverb=Reverb(
            type="freeverb", room_size=0.5, wet_level_db=-14.0, pre_delay_ms=20.0))),
        "synthetic": replace(base, vocal=replace(base.vocal, reverb=Reverb(
            type="synthetic", decay_s=2.5, wet_level_db=-14.0, pre_delay_ms=20.0))),
    }
    blocks = [int(b) for b in args.blocks.split(",")]
    rows = []

    def run(make, bs: int) -> tuple[list[float], float]:
        m = make(bs)
        out = np.zeros((bs, 2), np.float32)
        n = (vocal.shape[0] // bs) * bs
        times = []
        gc.collect()
        gc.disable()
        dur = bs / sr
        start = time.perf_counter()
        try:
            for i, t in enumerate(range(0, n, bs)):
                if paced:  # the next callback comes one block after the previous one
                    wait = start + i * dur - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                v, b = vocal[t : t + bs], backing[t : t + bs]
                t0 = time.perf_counter()
                m.process(v, b, out=out)
                times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
        mixer = getattr(m, "mixer", m)
        return times, mixer.latency_samples

    makers = {name: (lambda bs, p=p: LiveMixer(p, sr, bs, stems=False))
              for name, p in cases.items()}

    def session(bs: int):
        from vocalmix.live import LiveSession, plan_live

        plan = plan_live(backing, sr, params=cases["synthetic"])
        return LiveSession(plan, bs)

    if not os.environ.get("BENCH_NO_RIDE"):
        makers["synthetic + gain ride"] = session
    for name, make in makers.items():
        for bs in blocks:
            dur = bs / sr
            runs = []
            lat = 0
            for _ in range(args.repeats):
                times, lat = run(make, bs)
                runs.append(np.array(times) / dur)
            r = np.array(runs)  # (repeats, blocks)
            best = r[np.argmin(np.percentile(r, 99, axis=1))]
            floor = r.min(axis=0)  # each block's least disturbed run
            rows.append((name, bs, 1e3 * dur, best.mean(), float(np.percentile(best, 99)),
                         best.max(), float(np.percentile(floor, 99)), floor.max(),
                         1.0 / best.mean(), lat))
            print(f"{name:22s} block {bs:4d}: mean {best.mean():6.3f} p99 "
                  f"{np.percentile(best, 99):6.3f} worst {best.max():6.3f} | per-block min "
                  f"p99 {np.percentile(floor, 99):6.3f} worst {floor.max():6.3f}",
                  file=sys.stderr)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"Song: {args.duration_s:g} s stereo {sr} Hz (synthesised); full chain (high-pass, "
        "4 EQ bands, compressor + make-up, vocal gain, reverb send, backing gain, "
        f"true-peak limiter); one core, priority {priority}; {args.repeats} runs per case. "
        "Block time as a "
        "fraction of the block's duration: mean, 99th percentile and worst of the run with "
        "the lowest 99th percentile, then the 99th percentile and worst of each block's "
        "fastest run (what the block costs without interference from other processes). "
        f"Load average when the run ended: {load:.1f} on {os.cpu_count()} cores.",
        "",
        "| chain | block (samples) | block (ms) | mean | 99th pct | worst | 99th pct, "
        "fastest runs | worst, fastest runs | x real time | latency (samples) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, bs, ms, mean, p99, worst, fp99, fworst, rtf, lat in rows:
        lines.append(f"| {name} | {bs} | {ms:.2f} | {mean:.3f} | {p99:.3f} | {worst:.3f} | "
                     f"{fp99:.3f} | {fworst:.3f} | {rtf:.1f} | {lat} |")
    text = "\n".join(lines)
    print(text)
    if args.md:
        from pathlib import Path

        Path(args.md).write_text(text + "\n")
    return 0


def ride_table(md: str | None) -> int:
    """Live vocal-to-mix against the offline mix's on the real stems (see the doc)."""
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import golden_renders

    from vocalmix.core.measure import integrated_loudness
    from vocalmix.live import LiveSession, plan_live, simulate
    from vocalmix.pipeline import mix

    root = Path(os.environ.get("VOCALMIX_DATA", Path(__file__).resolve().parents[2]
                               / "shared" / "data")) / "stems"
    lines = ["| song | method | rehearsal | live vocal-to-mix (LU) | offline (LU) | "
             "difference (LU) | fastest move (dB/s) | vocal gain live end / offline (dB) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        v, b, sr = golden_renders.load_stem_song(folder)
        for method in ("baseline", "model"):
            off, _, _ = mix(v, b, sr, method=method)
            for reh_s in (3.0, None):
                reh = None if reh_s is None else v[: int(reh_s * sr)]
                session = LiveSession(plan_live(b, sr, rehearsal=reh, method=method), 256,
                                      stems=True)
                sim = simulate(v, b, session)
                assert sim.vocal is not None and sim.backing is not None
                v2m = integrated_loudness(sim.vocal, sr) - integrated_loudness(
                    sim.vocal + sim.backing, sr)
                o = float(off.achieved.vocal_to_mix_lu or np.nan)
                rate = float(np.abs(np.diff(sim.gain_db)).max() * sr)
                lines.append(
                    f"| {folder.name} | {method} | {'3 s' if reh_s else 'none'} | {v2m:+.2f} | "
                    f"{o:+.2f} | {v2m - o:+.2f} | {rate:.2f} | "
                    f"{session.mixer.fader.current_db:+.2f} / {off.vocal.gain_db:+.2f} |")
                print(lines[-1], file=sys.stderr)
    text = "\n".join(lines)
    print(text)
    if md:
        Path(md).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
