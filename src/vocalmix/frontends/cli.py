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
from typing import TYPE_CHECKING

from vocalmix._version import __version__
from vocalmix.core.errors import (
    AudioTooLargeError,
    ChannelLayoutError,
    OutputExistsError,
    OverwriteInputError,
    VocalmixError,
)

if TYPE_CHECKING:
    from vocalmix.core.progress import ProgressEvent

#: what the command line adds to a library error's message, by class
HINTS: dict[type[VocalmixError], str] = {
    AudioTooLargeError: " (or raise the limit: $VOCALMIX_MAX_DECODED_MB)",
    ChannelLayoutError: " (pass --fold mean or --fold first2)",
    OutputExistsError: "; pass --force to replace it",
    OverwriteInputError: "; choose another output path",
}


def error_line(e: VocalmixError) -> str:
    """The one line the command line prints for a library error, with its hint."""
    hint = next((h for cls, h in HINTS.items() if isinstance(e, cls)), "")
    return f"vocalmix: error: {e}{hint}"


class _Progress:
    """Timestamped progress lines on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, event: ProgressEvent | str) -> None:
        if self.quiet:
            return
        msg = event if isinstance(event, str) else event.message
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


def _add_genre(p: argparse.ArgumentParser) -> None:
    p.add_argument("--genre", default=None,
                   help="the song's genre, if known: one of MUSDB18's genre names (Country, "
                   "Electronic, Heavy Metal, Jazz, Pop, Pop/Rock, Rap, Reggae, Rock, "
                   "Singer/Songwriter) or 'other'; the model method's level head uses it")


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("vocal", help="vocal take (WAV, FLAC, OGG, MP3)")
    p.add_argument("backing", help="backing track (WAV, FLAC, OGG, MP3)")
    p.add_argument(
        "--fold",
        choices=("error", "mean", "first2"),
        default="error",
        help="what to do with files of more than 2 channels (default: refuse)",
    )


#: Subcommands whose parser lives with the code they run, imported only when that
#: subcommand is the one asked for: (name, one-line help, module with ``register_cli``).
EXTRA_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("train", "fit the learned models (level, EQ, reverb)", "vocalmix.training.train"),
    ("evaluate", "measure the learned models on held-out data", "vocalmix.training.evaluate"),
    ("fit-reverb", "fit the synthetic reverb to impulse responses (writes presets)",
     "vocalmix.training.fitreverb"),
    ("serve", "run the web page and HTTP API (vocalmix studio)",
     "vocalmix.frontends.server.app"),
)


def _command_of(argv: Sequence[str] | None) -> str | None:
    """The subcommand named in ``argv`` (the first argument that is not an option)."""
    for a in sys.argv[1:] if argv is None else argv:
        if not a.startswith("-"):
            return a
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests).

    Building it imports nothing beyond the standard library: the subcommands in
    :data:`EXTRA_COMMANDS` get their full parser (and import their module) only when
    ``argv`` names them, so ``vocalmix --help`` and ``--version`` start at once.
    """
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
    _add_genre(p)
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
    _add_genre(p)
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

    _register_extra(sub, _command_of(argv))
    return ap


def _register_extra(sub: argparse._SubParsersAction, command: str | None) -> None:
    """Add the :data:`EXTRA_COMMANDS`: the named one in full, the others as a name and
    a help line (enough for ``vocalmix --help``). An import error of the named one's
    module is a bug and propagates."""
    import importlib

    for name, help_, module in EXTRA_COMMANDS:
        if name == command:
            importlib.import_module(module).register_cli(sub)
        else:
            sub.add_parser(name, help=help_)


def _default_method() -> str:
    from vocalmix.estimators.registry import default_method

    return default_method()


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
        f"targets:  vocal-to-mix {_fmt(t.vocal_to_mix_lu, 'LU')}"
        f"{' while singing' if t.vocal_to_mix_measure == 'singing' else ''}, vocal LRA "
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


def cmd_mix(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import check_outputs, read_params
    from vocalmix.pipeline import mix

    progress = _Progress(args.quiet)
    inputs = [args.vocal, args.backing] + ([args.params_in] if args.params_in else [])
    outs = [args.output] + ([args.params_out] if args.params_out else [])
    check_outputs(outs + _stem_paths(args.stems_out), inputs, force=args.force)
    base = read_params(args.params_in) if args.params_in else None
    if args.reverb_preset:  # fail before any work on an unknown name
        from vocalmix.estimators.presets import preset_reverb

        preset_reverb(args.reverb_preset)
    vocal, backing, sr, _ = _load_pair(args, progress)
    params, rendered, est = mix(
        vocal, backing, sr,
        method=args.method or _default_method(), base=base,
        reverb_preset=args.reverb_preset or None, genre=args.genre,
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
    from vocalmix.core.resolve import sync_freeverb_decay
    from vocalmix.pipeline import render_params

    progress = _Progress(args.quiet)
    inputs = [args.vocal, args.backing, args.params]
    outs = [args.output] + ([args.params_out] if args.params_out else [])
    check_outputs(outs + _stem_paths(args.stems_out), inputs, force=args.force)
    params = read_params(args.params)
    vocal, backing, sr, _ = _load_pair(args, progress)
    synced = sync_freeverb_decay(params, sr)
    if synced is not params:
        progress(f"reverb decay_s set to {synced.vocal.reverb.decay_s:.2f} s, what the "
                 "freeverb's room size and damping give")
    params, rendered = render_params(vocal, backing, sr, synced, progress)
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
        vocal, backing, sr, method=args.method or _default_method(), genre=args.genre,
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


_COMMANDS = {
    "mix": cmd_mix,
    "render": cmd_render,
    "estimate": cmd_estimate,
    "analyze": cmd_analyze,
    "analyse": cmd_analyze,
    "demo": cmd_demo,
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
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None) or _COMMANDS[args.command]
    try:
        return int(func(args) or 0)
    except VocalmixError as e:
        print(error_line(e), file=sys.stderr)
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
