"""``vocalmix live``: a live session from files (or on a sound device), with its figures.

From files, the session runs block by block as an audio callback would and the command
reports the latency, the processing time per block against the block's duration, and how
the live mix differs from the offline one:

* with ``--params``, the settings are fixed and the live mix is compared sample by sample
  with ``vocalmix render`` of the same settings (latency aligned);
* without, the session plans from the backing (and ``--rehearsal``), rides the vocal gain
  and settles its EQ and compressor (:mod:`vocalmix.live`); its log is replayed offline
  (the same mix, sample for sample) and its vocal-to-mix is compared with ``vocalmix mix``
  on the whole take.

Imported only when the command runs (the parser stays light).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vocalmix.core.errors import AudioError, ParamsError


def _dbfs(x: float) -> str:
    return "-inf dBFS (identical)" if x == 0.0 else f"{20.0 * math.log10(x):.1f} dBFS"


def _ms(samples: float, sr: int) -> str:
    return f"{1e3 * samples / sr:.2f} ms"


def _load_note() -> str:
    """A warning when other processes compete for the CPU (the timings then show them)."""
    import os

    if not hasattr(os, "getloadavg"):
        return ""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cores:
        return ""
    return (f"; load average {load:.1f} on {cores} cores: other processes shared the CPU, "
            "see bench/bench_live.py for timings without them")


def _rehearsal_start_s(args: argparse.Namespace) -> float:
    """``--rehearsal-start-s``, s: a finite number of 0 or more, given with
    ``--rehearsal`` (where in the backing it begins is checked once the backing is read:
    :func:`_rehearsal`)."""
    start = args.rehearsal_start_s
    if start is None:
        return 0.0
    if not args.rehearsal:
        raise ParamsError("--rehearsal-start-s says where in the backing the --rehearsal take "
                          "was sung: give --rehearsal FILE too, or leave it out")
    if not (math.isfinite(start) and start >= 0.0):
        raise ParamsError(f"--rehearsal-start-s {start:g} is out of range: give where in the "
                          "backing the rehearsal begins, in seconds from its start (0 or more)")
    return float(start)


def _rehearsal(args: argparse.Namespace, backing: np.ndarray, sample_rate: int,
               start_s: float, progress: Callable[[str], None]) -> np.ndarray:
    """The ``--rehearsal`` take at the session's rate (Hz), float32 ``(m, 2)``, checked as
    the vocal is (:func:`vocalmix.core.audio.prepare_pair`: a silent or DC-only take is
    refused, a DC offset is taken out), and so is the part of ``backing`` (the session's,
    ``(n, 2)``) it was sung over, from ``start_s`` (s): it must begin at least
    :data:`~vocalmix.core.audio.MIN_DURATION_S` before the backing ends and hold sound."""
    from vocalmix.core.audio import MIN_DURATION_S, Audio, prepare_pair, read_audio, resample

    length_s = backing.shape[0] / sample_rate
    latest = length_s - MIN_DURATION_S
    if start_s > latest:
        raise ParamsError(
            f"--rehearsal-start-s {start_s:g} is out of range: the backing {args.backing} is "
            f"{length_s:.2f} s long, so the rehearsal must begin between 0 and {latest:.2f} s "
            f"(at least {MIN_DURATION_S:g} s before its end)")
    reh = read_audio(args.rehearsal, label=f"rehearsal {args.rehearsal}", fold=args.fold)
    x = resample(reh.samples, reh.sample_rate, sample_rate)
    start = int(round(start_s * sample_rate))
    under = backing[start : start + x.shape[0]]
    take = Audio(x, sample_rate, path=args.rehearsal, notes=reh.notes, label=reh.label)
    part = Audio(under, sample_rate, path=args.backing,
                 label=f"backing {args.backing} from {start_s:g} s (under the rehearsal)")
    checked, _under, _sr, notes = prepare_pair(take, part, sample_rate=sample_rate)
    for n in notes:
        if n.startswith("vocal: "):  # the take's DC offset, taken out
            progress("rehearsal: " + n.removeprefix("vocal: "))
        elif n in reh.notes:
            progress(n)
    if reh.sample_rate != sample_rate:
        progress(f"rehearsal resampled from {reh.sample_rate} Hz to {sample_rate} Hz")
    past = (x.shape[0] - under.shape[0]) / sample_rate
    if past > 0:
        progress(f"rehearsal: runs {past:.2f} s past the end of the backing (silence there)")
    return checked[: x.shape[0]]


def run_live(args: argparse.Namespace, progress: Callable[[str], None]) -> int:
    from vocalmix.core.audio import (
        AudioData,
        OutputPlan,
        bit_depth_subtype,
        prepare_pair,
        read_audio,
        read_params,
        resample,
    )
    from vocalmix.core.measure import integrated_loudness
    from vocalmix.frontends.checks import check_json_outputs, check_sample_rate, show_notes
    from vocalmix.live import (
        LiveSession,
        RideConfig,
        plan_live,
        replay_log,
        simulate,
        sound_device,
    )

    if args.block_size < 1 or args.block_size > 65536:
        raise ParamsError(f"--block-size {args.block_size} is out of range: 1 to 65536 samples")
    check_sample_rate(args.sample_rate)
    rehearsal_start_s = _rehearsal_start_s(args)
    from_device = args.vocal == "-"
    inputs = [p for p in (args.vocal, args.backing, args.params, args.rehearsal)
              if p and p != "-"]
    if args.stems_out is not None and (from_device or args.device):
        raise ParamsError("--stems-out is written by a simulated session only; on a sound "
                          "device the mix (and the take recorded) are: leave it out")
    stems = ([Path(args.stems_out) / n for n in ("vocal.wav", "vocal_dry.wav", "backing.wav")]
             if args.stems_out else [])
    # the take recorded from the device is kept beside the mix: planned with it, so that a
    # take that could not be written is refused before the song, not after it
    take_path = Path(args.output).with_suffix(".take.wav") if from_device else None
    files = [p for p in (args.log_out, args.params_out) if p]
    outputs = OutputPlan(audio=[args.output, *([take_path] if take_path else []), *stems],
                         files=files, inputs=inputs, force=args.force)
    # (planned as audio, so an -o the writer cannot make is refused before the session)
    check_json_outputs(("--log-out", args.log_out), ("--params-out", args.params_out))
    mix_subtype = bit_depth_subtype(args.output, args.bit_depth)  # likewise its depth
    sd = None
    if args.device or from_device:
        sd, why = sound_device()
        if sd is None:
            if from_device:
                raise AudioError(f"VOCAL '-' needs a sound device: {why}")
            print(f"vocalmix live: no sound device: {why}; simulating from the files")
    progress(f"reading {args.backing}" + ("" if from_device else f" and {args.vocal}"))
    b_audio = read_audio(args.backing, label=f"backing {args.backing}", fold=args.fold)
    if from_device:
        vocal, sr = None, args.sample_rate or b_audio.sample_rate
        backing = resample(b_audio.samples, b_audio.sample_rate, sr)
        if sr != b_audio.sample_rate:
            progress(f"backing resampled from {b_audio.sample_rate} Hz to {sr} Hz")
    else:
        v_audio = read_audio(args.vocal, label=f"vocal {args.vocal}", fold=args.fold)
        vocal, backing, sr, notes = prepare_pair(v_audio, b_audio, sample_rate=args.sample_rate)
        show_notes(notes, progress)
    outputs.check_rates(sr)
    outputs.require_space(backing.shape[0], sample_rate=sr)
    bs = args.block_size
    params = read_params(args.params) if args.params else None
    rehearsal = None
    if args.rehearsal:
        rehearsal = _rehearsal(args, backing, sr, rehearsal_start_s, progress)
    plan = plan_live(backing, sr, rehearsal=rehearsal, params=params, method=args.method,
                     rehearsal_start_s=rehearsal_start_s, progress=progress)
    for n in plan.notes:
        progress(n)
    ride = RideConfig(enabled=params is None and not args.no_ride)
    session = LiveSession(plan, bs, ride=ride, stems=True, background=sd is not None)
    lat_all = session.mixer.latency_samples
    waits = lat_all - session.mixer.limiter_latency_samples  # the backing, for a moved take
    lines = [f"live: {sr} Hz, block {bs} samples ({_ms(bs, sr)}), latency "
             f"{lat_all} samples ({_ms(lat_all, sr)}, the limiter's look-ahead"
             + (f" and the backing's {_ms(waits, sr)} wait for the take moved earlier"
                if waits else "") + ")"]
    later = session.mixer.vocal_latency_samples - session.mixer.limiter_latency_samples
    if later:
        lines.append(f"warning: the take is moved {_ms(later, sr)} later (vocal.offset_ms): "
                     "the singer hears their voice that much late; for monitoring, set "
                     "vocal.offset_ms to 0")
    if sd is not None:
        from vocalmix.live import run_on_device

        mix_played, take = run_on_device(sd, session, backing, vocal, progress=progress)
        lat = session.mixer.latency_samples
        mix = mix_played[lat : lat + backing.shape[0]]
        log = session.log()
        contents: dict[Any, Any] = {args.output: AudioData(mix, sr, mix_subtype)}
        if take_path is not None:
            contents[take_path] = AudioData(take, sr)
        lines.append("ran on the sound device (per-block timings are the device's callbacks)")
    else:
        assert vocal is not None
        progress(f"simulating the live session block by block ({bs} samples)")
        sim = simulate(vocal, backing, session)
        r = sim.block_ratios(sr)
        ms = 1e3 * sim.block_times_s
        lines.append(
            f"block time: mean {ms.mean():.3f} ms, 99th percentile {np.percentile(ms, 99):.3f} "
            f"ms, worst {ms.max():.3f} ms = {100 * r.mean():.1f}% / "
            f"{100 * np.percentile(r, 99):.1f}% / {100 * r.max():.1f}% of the block's "
            f"{_ms(bs, sr)}; {1.0 / r.mean():.1f}x real time ({r.size} blocks, stems kept)"
            + _load_note())
        mix = sim.mix
        assert sim.log is not None and sim.vocal is not None and sim.backing is not None
        log = sim.log
        if params is not None:
            from vocalmix.core.render import render

            progress("rendering the same settings offline")
            off = render(vocal, backing, sr, params)
            d = float(np.abs(mix - off.mix).max())
            dv = float(np.abs(sim.vocal - off.vocal).max())
            lines.append(f"vs the offline render of the same settings: peak difference "
                         f"{_dbfs(d)} in the mix, {_dbfs(dv)} in the vocal stem (live output "
                         f"advanced by the latency)")
        else:
            from vocalmix.pipeline import mix as offline_mix

            progress("replaying the session's log offline")
            # (each comparison's render is let go once measured: three mixes' stems held
            # to the end took a 3-minute song's session to 1.3 GB)
            d = float(np.abs(mix - replay_log(vocal, backing, log).mix).max())
            gains = sim.gain_db
            rate = float(np.abs(np.diff(gains)).max() * sr) if gains.size > 1 else 0.0
            lines.append(
                f"ride: vocal gain {plan.params.vocal.gain_db:+.2f} -> "
                f"{session.mixer.fader.current_db:+.2f} dB (range {gains.min():+.2f} to "
                f"{gains.max():+.2f} dB), fastest {rate:.2f} dB/s (limit "
                f"{session.ride.rate_db_per_s:g} dB/s), {len(log.events)} change(s)"
                + (f"; settle estimate {sim.background_s:.2f} s (background)"
                   if sim.background_s else ""))
            lines.append(f"vs the offline replay of the log: peak difference {_dbfs(d)}")
            progress("mixing the whole take offline (vocalmix mix) for comparison")
            p_off, r_off, _ = offline_mix(vocal, backing, sr, method=plan.method)
            d_off = float(np.abs(mix - r_off.mix).max())
            del r_off
            v2m_live = integrated_loudness(sim.vocal, sr) - integrated_loudness(
                sim.vocal + sim.backing, sr)
            v2m_off = float(p_off.achieved.vocal_to_mix_lu or float("nan"))
            lines.append(
                f"vs `vocalmix mix` of the whole take ({plan.method}): vocal-to-mix live "
                f"{v2m_live:+.2f} LU, offline {v2m_off:+.2f} LU (difference "
                f"{v2m_live - v2m_off:+.2f} LU); vocal gain offline {p_off.vocal.gain_db:+.2f} dB;"
                f" mix peak difference {_dbfs(d_off)}")
        contents = {args.output: AudioData(mix, sr, mix_subtype)}
        for path, data in zip(stems, (sim.vocal, sim.vocal_dry, sim.backing), strict=False):
            assert data is not None
            contents[path] = AudioData(data, sr)
    lines += session.warnings()  # (shown with -q too)
    if args.log_out:
        contents[args.log_out] = log.to_json()
    if args.params_out:
        contents[args.params_out] = log.final_params.to_json()
    # every output at once: a full disk or a kill leaves the previous files, not a part
    written = outputs.commit(contents)
    # (the settle's warnings, as a take sung along to speakers, shown with -q too)
    show_notes(session.notes[len(plan.notes):], progress)
    lines += [f"wrote {p}" for p in written]
    print("\n".join(lines))
    return 0
