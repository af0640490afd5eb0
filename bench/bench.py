"""Benchmark of `vocalmix mix` on a 3-minute stereo 44.1 kHz song (a script, not a test).

Times each stage in-process (read, analyse, estimate, resolve, render, write), the whole
command as a fresh process (the first run after installing counts byte-compilation and
cold caches separately from the warm runs), and a reference operation on the same
machine and the same two input files: ``ffmpeg -af ebur128`` over both when ffmpeg is
installed, else a plain ``soundfile`` read of both. Figures are printed as seconds, as
multiples of real time (song length / time) and as multiples of the reference time.

    python bench/bench.py [--duration-s 180] [--repeats 3] [--method baseline] [--md FILE]
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
from pathlib import Path


def _time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration-s", type=float, default=180.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--method", default="baseline")
    ap.add_argument("--md", help="also write the markdown table to this file")
    ap.add_argument("--one-core", action="store_true", default=True,
                    help="pin to one core (taskset) and one BLAS thread (default)")
    args = ap.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    os.environ.update({k: env[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    import numpy as np

    from vocalmix import pipeline
    from vocalmix.core.audio import prepare_pair, read_audio, write_audio, write_params
    from vocalmix.core.measure import measure
    from vocalmix.estimators import baseline
    from vocalmix.synth import synthesize_song

    sr, dur = 44100, args.duration_s
    tmp = Path(tempfile.mkdtemp(prefix="vocalmix-bench-"))
    print(f"synthesising a {dur:g} s stereo {sr} Hz song in {tmp}", file=sys.stderr)
    v, b = synthesize_song(sample_rate=sr, duration_s=dur, seed=7)
    vp, bp = tmp / "vocal.wav", tmp / "backing.wav"
    write_audio(vp, v, sr, subtype="PCM_16")
    write_audio(bp, b, sr, subtype="PCM_16")
    del v, b

    rows: list[tuple[str, float]] = []
    r = args.repeats
    t_read, (va, ba) = _time(lambda: (read_audio(vp), read_audio(bp)), r)
    rows.append(("read both inputs", t_read))
    vocal, backing, _, _ = prepare_pair(va, ba)
    t_an, _ = _time(lambda: (measure(vocal, sr), measure(backing, sr),
                             baseline.analyse(vocal, backing, sr)), r)
    rows.append(("analyse (loudness, LRA, true peak of both; tempo; masking)", t_an))
    t_est, (params, _n) = _time(
        lambda: pipeline.choose_targets(vocal, backing, sr, args.method), r)
    rows.append((f"estimate ({args.method}: analysis + targets)", t_est))
    t_res, (resolved, _n2, cache) = _time(
        lambda: pipeline._resolve(vocal, backing, sr, params), r)
    rows.append(("resolve (compressor threshold, reverb size, vocal gain)", t_res))
    from vocalmix.core.render import assemble

    def render_mix():
        rendered = assemble(cache.parts, backing, sr, resolved)
        return pipeline.measure_achieved(rendered, cache), rendered

    t_ren, (_ach, rendered) = _time(render_mix, r)
    rows.append(("render (gains, sum, true-peak master) + achieved figures", t_ren))
    t_ren2, (final, _r2) = _time(
        lambda: pipeline.render_params(vocal, backing, sr, resolved), r)
    rows.append(("`render` of a params file: whole chain + independent measurement", t_ren2))
    out = tmp / "out"

    def write_mix():
        shutil.rmtree(out, ignore_errors=True)
        write_audio(out / "mix.wav", rendered.mix, sr)
        write_params(out / "params.json", final)

    def write_stems():
        for name in ("vocal", "vocal_dry", "backing"):
            write_audio(out / "stems" / f"{name}.wav", getattr(rendered, name), sr, force=True)

    t_wr, _ = _time(write_mix, r)
    rows.append(("write mix (24-bit WAV) + params", t_wr))
    t_ws, _ = _time(write_stems, r)
    rows.append(("write 3 stems (optional)", t_ws))
    in_process = t_read + t_est + t_res + t_ren + t_wr

    # the whole command, as a user runs it
    exe = [sys.executable, "-m", "vocalmix.frontends.cli"]
    cmd = exe + ["mix", str(vp), str(bp), "-o", str(tmp / "cli_mix.wav"), "--params-out",
                 str(tmp / "cli_params.json"), "--method", args.method, "--force", "-q"]
    taskset = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    whole: list[float] = []
    for _ in range(r + 1):
        t = time.perf_counter()
        subprocess.run(taskset + cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        whole.append(time.perf_counter() - t)
    first, warm = whole[0], min(whole[1:])
    t = time.perf_counter()
    subprocess.run(taskset + exe[:1] + ["-c", "import vocalmix.pipeline, vocalmix.frontends.cli"],
                   check=True, env=env)
    t_import = time.perf_counter() - t

    if shutil.which("ffmpeg"):
        ref_name = "ffmpeg -af ebur128 over both inputs"

        def ref():
            for p in (vp, bp):
                subprocess.run(["ffmpeg", "-nostats", "-hide_banner", "-i", str(p), "-af",
                                "ebur128", "-f", "null", "-"], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        import soundfile as sf

        ref_name = "plain soundfile read of both inputs"

        def ref():
            sf.read(str(vp), dtype="float32")
            sf.read(str(bp), dtype="float32")

    t_ref, _ = _time(ref, r)

    lines = [
        f"Song: {dur:g} s stereo {sr} Hz (synthesised), method `{args.method}`, one core, "
        f"best of {r}. Reference: {ref_name} = {t_ref:.3f} s.",
        "",
        "| stage | time (s) | x real time | x reference |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, t in rows + [("in-process total of `mix` (read .. write mix)", in_process),
                           ("`vocalmix mix` as a process, warm", warm),
                           ("`vocalmix mix` as a process, first run", first),
                           ("python start + imports alone", t_import)]:
        lines.append(f"| {name} | {t:.3f} | {dur / t:.0f} | {t / t_ref:.1f} |")
    lines.append("")
    lines.append(f"(process times over {r} warm runs: median "
                 f"{statistics.median(whole[1:]):.3f} s)")
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n", encoding="utf-8")
    shutil.rmtree(tmp, ignore_errors=True)
    _ = np
    return 0


if __name__ == "__main__":
    sys.exit(main())
