"""The ``vocalmix`` command line: a thin wrapper over :mod:`vocalmix.pipeline`.

Errors a user can cause print one line (``vocalmix: error: ...``) and exit with code 2;
progress goes to stderr (``--quiet`` silences it); results go to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from vocalmix._version import __version__
from vocalmix.core.errors import VocalmixError


class _Progress:
    """Timestamped progress lines on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:6.2f} s] {msg}", file=sys.stderr, flush=True)


def _fmt(v: float | None, unit: str, nd: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:+.{nd}f} {unit}" if unit in ("LU", "dB") else f"{v:.{nd}f} {unit}"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def _add_targets(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target overrides (the resolvers find the settings)")
    g.add_argument("--vocal-to-mix-lu", type=float, help="vocal loudness against the mix, LU")
    g.add_argument("--vocal-lra-lu", type=float, help="vocal loudness range after compression, LU")
    g.add_argument("--reverb-decay-s", type=float, help="reverb decay time T30, s")


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("vocal", help="vocal take (WAV, FLAC, OGG, MP3)")
    p.add_argument("backing", help="backing track (WAV, FLAC, OGG, MP3)")
    p.add_argument(
        "--fold",
        choices=("error", "mean", "first2"),
        default="error",
        help="what to do with files of more than 2 channels (default: refuse)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    ap = argparse.ArgumentParser(
        prog="vocalmix",
        description="Mix a vocal into a backing track and hand back editable parameters.",
    )
    ap.add_argument("--version", action="version", version=f"vocalmix {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("mix", help="estimate parameters, render the mix")
    _add_inputs(p)
    p.add_argument("-o", "--output", required=True, help="the mix (.wav, .flac, .ogg)")
    p.add_argument("--params-out", help="write the params document (JSON) here")
    p.add_argument("--params-in", help="start from this params document's settings and "
                   "targets, re-resolving gain, compressor and reverb size")
    p.add_argument("--stems-out", help="folder for vocal.wav, vocal_dry.wav, backing.wav")
    p.add_argument("--method", choices=("baseline", "model"), default=None,
                   help="estimator (default: model when its shipped weights beat the "
                   "baseline in their cross-validation, else baseline)")
    p.add_argument("--reverb-preset", help="use a named reverb preset (see vocalmix presets)")
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    _add_targets(p)
    _add_common(p)

    p = sub.add_parser("render", help="render exactly the settings of a params document")
    _add_inputs(p)
    p.add_argument("params", help="params document (JSON)")
    p.add_argument("-o", "--output", required=True, help="the mix (.wav, .flac, .ogg)")
    p.add_argument("--params-out", help="write the params with achieved figures here")
    p.add_argument("--stems-out", help="folder for vocal.wav, vocal_dry.wav, backing.wav")
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    _add_common(p)

    p = sub.add_parser("estimate", help="parameters only, no rendering")
    _add_inputs(p)
    p.add_argument("-o", "--output", required=True, help="params document (JSON)")
    p.add_argument("--method", choices=("baseline", "model"), default=None)
    p.add_argument("--force", action="store_true", help="replace an existing output")
    _add_targets(p)
    _add_common(p)

    p = sub.add_parser("analyze", aliases=["analyse"], help="loudness, LRA and true peak")
    p.add_argument("files", nargs="+", help="audio files")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--fold", choices=("error", "mean", "first2"), default="error")
    _add_common(p)

    p = sub.add_parser("demo", help="synthesise a short song, mix it, explain what it did")
    p.add_argument("-o", "--output-dir", default="vocalmix-demo", help="folder for the files")
    p.add_argument("--duration-s", type=float, default=12.0, help="song length, s")
    p.add_argument("--method", choices=("baseline", "model"), default=None)
    p.add_argument("--force", action="store_true", help="replace existing files")
    _add_common(p)

    p = sub.add_parser("live", help="mix block by block as a live session would, and "
                       "report latency, block timing and the difference from offline")
    _add_inputs(p)
    p.add_argument("-o", "--output", required=True,
                   help="the live mix (.wav, .flac, .ogg), time-aligned with the inputs")
    p.add_argument("--block-size", type=int, default=128, help="samples per block (default 128)")
    p.add_argument("--params", help="mix with exactly these settings (no estimation, no ride)")
    p.add_argument("--rehearsal", help="a sound check sung over the backing (vocal file): "
                   "settings are estimated on it before the song")
    p.add_argument("--rehearsal-start-s", type=float, default=0.0,
                   help="where in the backing the rehearsal was sung, s (default 0)")
    p.add_argument("--method", choices=("baseline", "model"), default=None)
    p.add_argument("--no-ride", action="store_true", help="keep the vocal gain fixed")
    p.add_argument("--log-out", help="write the live log (every change and when) here")
    p.add_argument("--params-out", help="write the settings the session ended with here")
    p.add_argument("--stems-out", help="folder for vocal.wav, vocal_dry.wav, backing.wav")
    p.add_argument("--device", action="store_true",
                   help="run on the default sound device (needs sounddevice); VOCAL '-' "
                   "takes the vocal from the input device")
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    _add_common(p)

    _register_extra(sub)
    return ap


def _register_extra(sub: argparse._SubParsersAction) -> None:
    """Subcommands of optional capabilities (training, evaluation, server...)."""
    import importlib

    for mod in ("vocalmix.training.train", "vocalmix.training.evaluate",
                "vocalmix.frontends.server.app", "vocalmix.training.fitreverb"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        reg = getattr(m, "register_cli", None)
        if reg is not None:
            reg(sub)


def _default_method() -> str:
    try:
        from vocalmix.estimators import level as models

        return models.default_method()
    except ImportError:
        return "baseline"


def _stem_paths(folder: str | None) -> list[Path]:
    if not folder:
        return []
    d = Path(folder)
    return [d / "vocal.wav", d / "vocal_dry.wav", d / "backing.wav"]


def _load_pair(args: argparse.Namespace, progress: _Progress):
    from vocalmix.core.audio import prepare_pair, read_audio

    progress(f"reading {args.vocal} and {args.backing}")
    v = read_audio(args.vocal, label=f"vocal {args.vocal}", fold=args.fold)
    b = read_audio(args.backing, label=f"backing {args.backing}", fold=args.fold)
    vs, bs, sr, notes = prepare_pair(v, b)
    for n in notes:
        progress(n)
    return vs, bs, sr, notes


def _write_results(args, params, rendered, inputs, progress) -> list[Path]:
    from vocalmix.core.audio import write_audio, write_params

    sr = rendered.sample_rate
    written = [write_audio(args.output, rendered.mix, sr, force=args.force, inputs=inputs)]
    if getattr(args, "params_out", None):
        written.append(write_params(args.params_out, params, force=args.force, inputs=inputs))
    stems = _stem_paths(getattr(args, "stems_out", None))
    if stems:
        for path, data in zip(stems, (rendered.vocal, rendered.vocal_dry, rendered.backing),
                              strict=True):
            written.append(write_audio(path, data, sr, force=args.force, inputs=inputs))
    progress("wrote " + ", ".join(str(p) for p in written))
    return written


def _reverb_summary(rv) -> str:
    if not rv.enabled:
        return "no reverb"
    if rv.type == "synthetic":
        return (f"reverb synthetic {rv.decay_s:.2f} s at 1 kHz (x{rv.band_decay_ratios[0]:.2f} "
                f"at 125 Hz, x{rv.band_decay_ratios[-1]:.2f} at 8 kHz), pre-delay "
                f"{rv.pre_delay_ms:.0f} ms, at {rv.wet_level_db:.0f} dB")
    return (f"reverb room_size {rv.room_size:.3f} ({rv.decay_s:.2f} s) at "
            f"{rv.wet_level_db:.0f} dB")


def _summary(params, written: Sequence[Path] = ()) -> str:
    t, a, v = params.targets, params.achieved, params.vocal
    lines = [
        f"method: {params.provenance.method}",
        f"targets:  vocal-to-mix {_fmt(t.vocal_to_mix_lu, 'LU')}, vocal LRA "
        f"{_fmt(t.vocal_lra_lu, 'LU', 1)}, reverb decay {_fmt(t.reverb_decay_s, 's')}",
        f"settings: vocal gain {_fmt(v.gain_db, 'dB')}, compressor "
        f"{v.compressor.threshold_db:.1f} dB / {v.compressor.ratio:g}:1 (make-up "
        f"{_fmt(v.compressor.makeup_db, 'dB')}), "
        f"high-pass {v.highpass.cutoff_frequency_hz:.0f} Hz, "
        f"{len(v.eq_bands)} EQ band(s), {_reverb_summary(v.reverb)}",
    ]
    for b in v.eq_bands:
        lines.append(f"          EQ {b.kind} {b.freq_hz:.0f} Hz {b.gain_db:+.1f} dB Q {b.q:.2f}"
                     f" ({b.source})")
    if a.vocal_to_mix_lu is not None:
        lines.append(
            f"achieved: vocal-to-mix {_fmt(a.vocal_to_mix_lu, 'LU')} (vocal-to-backing "
            f"{_fmt(a.vocal_to_backing_lu, 'LU')}), vocal LRA {_fmt(a.vocal_lra_lu, 'LU', 1)}, "
            f"mix {_fmt(a.mix_integrated_lufs, 'LUFS', 1)}, true peak "
            f"{_fmt(a.mix_true_peak_dbtp, 'dBTP')}, master gain reduction "
            f"{_fmt(a.master_gain_reduction_db, 'dB')}"
        )
    for p in written:
        lines.append(f"wrote {p}")
    return "\n".join(lines)


def _apply_preset(params, name: str | None):
    if not name:
        return params
    from vocalmix.estimators.presets import apply_preset

    return apply_preset(params, name)


def cmd_mix(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import check_outputs, read_params
    from vocalmix.pipeline import mix

    progress = _Progress(args.quiet)
    inputs = [args.vocal, args.backing] + ([args.params_in] if args.params_in else [])
    outs = [args.output] + ([args.params_out] if args.params_out else [])
    check_outputs(outs + _stem_paths(args.stems_out), inputs, force=args.force)
    base = read_params(args.params_in) if args.params_in else None
    if args.reverb_preset:  # fail before any work on an unknown name
        from vocalmix.core.params import MixParams
        from vocalmix.estimators.presets import apply_preset

        apply_preset(MixParams(), args.reverb_preset)
    vocal, backing, sr, _ = _load_pair(args, progress)
    method = args.method or _default_method()
    if args.reverb_preset:
        if base is None:
            from vocalmix.pipeline import choose_targets

            base, _n = choose_targets(vocal, backing, sr, method, progress)
        base = _apply_preset(base, args.reverb_preset)
    params, rendered, est = mix(
        vocal, backing, sr,
        method=method, base=base,
        vocal_to_mix_lu=args.vocal_to_mix_lu, vocal_lra_lu=args.vocal_lra_lu,
        reverb_decay_s=args.reverb_decay_s, progress=progress,
    )
    for n in est.notes:
        progress(n)
    written = _write_results(args, params, rendered, inputs, progress)
    print(_summary(params, written))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import check_outputs, read_params
    from vocalmix.pipeline import render_params

    progress = _Progress(args.quiet)
    inputs = [args.vocal, args.backing, args.params]
    outs = [args.output] + ([args.params_out] if args.params_out else [])
    check_outputs(outs + _stem_paths(args.stems_out), inputs, force=args.force)
    params = read_params(args.params)
    vocal, backing, sr, _ = _load_pair(args, progress)
    params, rendered = render_params(vocal, backing, sr, params, progress)
    written = _write_results(args, params, rendered, inputs, progress)
    print(_summary(params, written))
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import check_outputs, write_params
    from vocalmix.pipeline import estimate_params

    progress = _Progress(args.quiet)
    inputs = [args.vocal, args.backing]
    check_outputs([args.output], inputs, force=args.force)
    vocal, backing, sr, _ = _load_pair(args, progress)
    est = estimate_params(
        vocal, backing, sr, method=args.method or _default_method(),
        vocal_to_mix_lu=args.vocal_to_mix_lu, vocal_lra_lu=args.vocal_lra_lu,
        reverb_decay_s=args.reverb_decay_s, progress=progress,
    )
    for n in est.notes:
        progress(n)
    p = write_params(args.output, est.params, force=args.force, inputs=inputs)
    print(_summary(est.params, [p]))
    return 0


def analyze_file(path: str, fold: str = "error") -> dict:
    """The ``analyze`` figures of one file, as a JSON-ready dict."""
    from vocalmix.core.audio import read_audio
    from vocalmix.core.measure import measure

    a = read_audio(path, fold=fold)
    m = measure(a.samples, a.sample_rate)

    def num(v: float) -> float | None:
        return round(float(v), 3) if math.isfinite(v) else None

    return {
        "path": path,
        "sample_rate": a.sample_rate,
        "channels": a.source_channels,
        "duration_s": round(a.duration_s, 4),
        "integrated_lufs": num(m.integrated_lufs),
        "lra_lu": num(m.lra_lu),
        "true_peak_dbtp": num(m.true_peak_dbtp),
    }


def cmd_analyze(args: argparse.Namespace) -> int:
    progress = _Progress(args.quiet or args.json)
    rows = []
    for f in args.files:
        progress(f"measuring {f}")
        rows.append(analyze_file(f, args.fold))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(
                f"{r['path']}: {r['sample_rate']} Hz, {r['channels']} ch, {r['duration_s']:.2f} s, "
                f"{r['integrated_lufs']} LUFS, LRA {r['lra_lu']} LU, "
                f"true peak {r['true_peak_dbtp']} dBTP"
            )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import check_outputs, write_audio, write_params
    from vocalmix.pipeline import mix
    from vocalmix.synth import synthesize_song

    progress = _Progress(args.quiet)
    out = Path(args.output_dir)
    names = ["vocal_in.wav", "backing_in.wav", "mix.wav", "params.json"]
    stems = [out / "stems" / n for n in ("vocal.wav", "vocal_dry.wav", "backing.wav")]
    check_outputs([out / n for n in names] + stems, force=args.force)
    sr = 44100
    progress(f"synthesising a {args.duration_s:g} s song (vocal line, drums, bass, chords)")
    vocal, backing = synthesize_song(sample_rate=sr, duration_s=args.duration_s)
    params, rendered, est = mix(vocal, backing, sr, method=args.method or _default_method(),
                                progress=progress)
    for n in est.notes:
        progress(n)
    written = [
        write_audio(out / "vocal_in.wav", vocal, sr, force=args.force),
        write_audio(out / "backing_in.wav", backing, sr, force=args.force),
        write_audio(out / "mix.wav", rendered.mix, sr, force=args.force),
        write_params(out / "params.json", params, force=args.force),
    ]
    for path, data in zip(stems, (rendered.vocal, rendered.vocal_dry, rendered.backing),
                          strict=True):
        written.append(write_audio(path, data, sr, force=args.force))
    print(_summary(params, written))
    print(
        f"\nEdit {out / 'params.json'} (e.g. vocal.gain_db) and re-render with:\n"
        f"  vocalmix render {out / 'vocal_in.wav'} {out / 'backing_in.wav'} "
        f"{out / 'params.json'} -o {out / 'mix_edited.wav'}\n"
        f"or change a target (e.g. targets.vocal_lra_lu) and re-resolve with:\n"
        f"  vocalmix mix {out / 'vocal_in.wav'} {out / 'backing_in.wav'} --params-in "
        f"{out / 'params.json'} -o {out / 'mix_retargeted.wav'}"
    )
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from vocalmix.frontends.livecmd import run_live

    return run_live(args, _Progress(args.quiet))


_COMMANDS = {
    "mix": cmd_mix,
    "render": cmd_render,
    "estimate": cmd_estimate,
    "analyze": cmd_analyze,
    "analyse": cmd_analyze,
    "demo": cmd_demo,
    "live": cmd_live,
}


def _tune_malloc() -> None:
    """Keep freed memory for reuse instead of returning it to the kernel (glibc only).

    Mixing allocates a few dozen full-length float arrays (64 MB each for 3 minutes of
    stereo); by default glibc maps each one fresh and unmaps it when freed, so every
    allocation pays its page faults again. Raising the mmap and trim thresholds lets the
    heap reuse them: about 25% less wall time on a 3-minute mix here (bench/bench.py).
    Only the command-line process does this; importing vocalmix as a library does not.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 31)
    except (OSError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vocalmix`` console script; returns the exit code."""
    _tune_malloc()
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None) or _COMMANDS[args.command]
    try:
        return int(func(args) or 0)
    except VocalmixError as e:
        print(f"vocalmix: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("vocalmix: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an internal error: one line unless --debug
        if getattr(args, "debug", False) or os.environ.get("VOCALMIX_DEBUG"):
            raise
        print(
            f"vocalmix: internal error: {type(e).__name__}: {e} (run with --debug for details "
            "and please report it)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
