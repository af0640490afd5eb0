"""The ``vocalmix`` command line: a thin wrapper over :mod:`vocalmix.pipeline`.

Errors a user can cause print one line (``vocalmix: error: ...``) and exit with code 2,
a mistyped command line too (``vocalmix mix: error: ... (see vocalmix mix --help)``);
progress goes to stderr (``--quiet`` silences it, and what native decoders print there
is kept out of it); results go to stdout. Every command that writes plans its outputs
first (:class:`vocalmix.core.audio.OutputPlan`): all are checked before any work and
written together, so an interrupted run leaves the previous files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import typing
from collections.abc import Callable, Iterator, Sequence
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
from vocalmix.core.threads import no_numpy_hugepages, pin_blas_threads
from vocalmix.frontends.checks import check_json_outputs, check_sample_rate, show_notes

if TYPE_CHECKING:
    import numpy as np

    from vocalmix.core.params import MixParams
    from vocalmix.core.progress import ProgressEvent
    from vocalmix.frontends.plots import AnalysisCurves

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


#: the arguments being parsed (for the hints of :meth:`_Parser.error`)
_ARGV: list[str] = []


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: where an option's help names the audio formats an output may have; filled in from
#: :data:`vocalmix.core.audio.AUDIO_FORMATS` when the help is shown (building the parser
#: imports nothing beyond the standard library)
AUDIO_OUT = "{audio formats}"


def audio_output_formats() -> str:
    """The file extensions an audio output may have, as the help lists them:
    ``.wav, .flac, .ogg, .aiff, .aif``."""
    from vocalmix.core.audio import AUDIO_FORMATS

    return ", ".join(AUDIO_FORMATS)


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with :data:`AUDIO_OUT` replaced by the audio output formats."""

    def _expand_help(self, action: argparse.Action) -> str:
        text = super()._expand_help(action)
        return text.replace(AUDIO_OUT, audio_output_formats()) if AUDIO_OUT in text else text


#: the song lengths ``vocalmix demo`` makes, s: from the shortest input vocalmix mixes
#: (:data:`vocalmix.core.audio.MIN_DURATION_S`, so that the files it writes can be mixed
#: and rendered again as it suggests) to five minutes, the length of a song
DEMO_DURATION_S = (0.5, 300.0)


def _demo_duration(text: str) -> float:
    """``--duration-s`` of ``vocalmix demo``, s: a number in :data:`DEMO_DURATION_S`."""
    lo, hi = DEMO_DURATION_S
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not lo <= v <= hi:  # NaN and the infinities too
        raise argparse.ArgumentTypeError(
            f"the song's length must be a number of seconds from {lo:g} to {hi:g}, got {text!r}")
    return v


def _offset_ms(text: str) -> float | str:
    """``--vocal-offset-ms``: ``auto`` or a number of ms (its range is checked with the
    params')."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a number of milliseconds or 'auto', got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and a pointer to ``--help``."""

    def __init__(self, *args: typing.Any, **kwargs: typing.Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        hint = ""
        for a in _ARGV:
            if (a.startswith("-") and len(a) > 2 and ("." in a or "/" in a) and "=" not in a
                    and not _is_number(a)):
                hint = (f"; {a!r} was read as an option: write ./{a} for a file of that "
                        "name")
                break
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def _add_targets(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target overrides (the resolvers find the settings)")
    g.add_argument("--vocal-to-mix-lu", type=float, help="vocal loudness against the mix, LU")
    g.add_argument("--vocal-lra-lu", type=float, help="vocal loudness range after compression, LU")
    g.add_argument("--reverb-decay-s", type=float, help="reverb decay time T30, s")
    g.add_argument("--mix-lufs", type=float, metavar="LUFS",
                   help="integrated loudness of the master, LUFS (e.g. -14 for streaming); "
                        "the true-peak limiter keeps the ceiling (default: leave it, turned "
                        "down only as far as keeps the limiter from taking more than "
                        "0.5 LU off it)")
    s = p.add_argument_group("steering")
    s.add_argument("--amount", type=float, default=None,
                   help="how much of the chosen processing to apply: 0 none, 1 as chosen "
                        "(default), 2 twice as much")
    s.add_argument("--vocal-offset-ms", type=_offset_ms, default=None, metavar="MS|auto",
                   help="move the take against the backing before anything else, ms: "
                        "positive later, negative earlier (-40 sets right a take recorded "
                        "40 ms late); 'auto': by the recording's latency where the take "
                        "carries a copy of the backing (sung along to speakers), else not "
                        "at all; default: the --params-in document's, else 0")
    s.add_argument("--lock", action="append", default=[], metavar="PATH",
                   help="keep this setting or target as it is when re-resolving (e.g. "
                        "vocal.gain_db, vocal.compressor); repeatable")
    s.add_argument("--reference-vocal", metavar="FILE",
                   help="a reference mix's vocal stem: mix like it (with --reference-backing)")
    s.add_argument("--reference-backing", metavar="FILE",
                   help="the reference mix's backing stem")
    s.add_argument("--explain", action="store_true",
                   help="print why each setting and target was chosen, one line each")


def _add_genre(p: argparse.ArgumentParser) -> None:
    p.add_argument("--genre", default=None,
                   help="the song's genre, if known: one of MUSDB18's genre names (Country, "
                   "Electronic, Heavy Metal, Jazz, Pop, Pop/Rock, Rap, Reggae, Rock, "
                   "Singer/Songwriter) or 'other'; the model method's level head uses it")


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("vocal", help="vocal take (WAV, FLAC, OGG, MP3, AIFF, M4A, WebM...)")
    p.add_argument("backing", help="backing track (WAV, FLAC, OGG, MP3, AIFF, M4A, WebM...)")
    p.add_argument(
        "--fold",
        choices=("error", "mean", "first2"),
        default="error",
        help="what to do with files of more than 2 channels (default: refuse)",
    )
    p.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help="rate of the mix, Hz (default: the higher of the two inputs' rates; "
                        "the other input is resampled with soxr)")


#: Subcommands whose parser lives with the code they run, imported only when that
#: subcommand is the one asked for: (name, one-line help, module with ``register_cli``).
EXTRA_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("train", "fit the learned models (level, EQ, dynamics, reverb)", "vocalmix.training.train"),
    ("evaluate", "measure the learned models on held-out data", "vocalmix.training.evaluate"),
    ("fit-reverb", "fit the synthetic reverb to impulse responses (writes presets)",
     "vocalmix.training.fitreverb"),
    ("diffvox-prior", "summarise engineers' vocal chains (DiffVox presets) as a prior",
     "vocalmix.training.diffvox"),
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
    ap = _Parser(
        prog="vocalmix",
        description="Mix a vocal into a backing track and hand back editable parameters.",
    )
    ap.add_argument("--version", action="version", version=f"vocalmix {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("mix", help="estimate parameters, render the mix")
    _add_inputs(p)
    p.add_argument("-o", "--output", required=True, help=f"the mix ({AUDIO_OUT})")
    p.add_argument("--params-out", help="write the params document here (a .json file)")
    p.add_argument("--params-in", help="start from this params document's settings and "
                   "targets, re-resolving gain, compressor and reverb size")
    p.add_argument("--stems-out", help="folder for vocal.wav, vocal_dry.wav, backing.wav")
    _add_bit_depth(p)
    p.add_argument("--method", choices=("baseline", "model"), default=None,
                   help="estimator (default: model when its shipped weights beat the "
                   "baseline in their cross-validation, else baseline)")
    p.add_argument("--reverb-preset", metavar="PRESET",
                   help="use a reverb preset: a shipped one by name (see vocalmix presets), "
                   "or one that vocalmix fit-reverb wrote, as FILE.json#NAME (or FILE.json "
                   "when it holds one)")
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    _add_genre(p)
    _add_targets(p)
    _add_common(p)

    p = sub.add_parser("render", help="render exactly the settings of a params document")
    _add_inputs(p)
    p.add_argument("params", help="params document (JSON)")
    p.add_argument("-o", "--output", required=True, help=f"the mix ({AUDIO_OUT})")
    p.add_argument("--params-out", help="write the params with achieved figures here (a "
                   ".json file)")
    p.add_argument("--stems-out", help="folder for vocal.wav, vocal_dry.wav, backing.wav")
    _add_bit_depth(p)
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    _add_common(p)

    p = sub.add_parser("estimate", help="parameters only, no rendering")
    _add_inputs(p)
    p.add_argument("-o", "--output", required=True, help="params document (a .json file)")
    p.add_argument("--method", choices=("baseline", "model"), default=None)
    p.add_argument("--force", action="store_true", help="replace an existing output")
    _add_genre(p)
    _add_targets(p)
    _add_common(p)

    p = sub.add_parser("analyze", aliases=["analyse"],
                       help="loudness, LRA, true peak, tempo and spectrum")
    p.add_argument("files", nargs="+", help="audio files")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list (with each file's 1/3-octave spectrum)")
    p.add_argument("--plot", metavar="PNG",
                   help="draw the files' short-term loudness over time and their "
                   "1/3-octave spectra into this PNG (needs matplotlib)")
    p.add_argument("--force", action="store_true", help="replace an existing --plot file")
    p.add_argument("--fold", choices=("error", "mean", "first2"), default="error")
    _add_common(p)

    p = sub.add_parser("demo", help="synthesise a short song, mix it, explain what it did")
    p.add_argument("-o", "--output-dir", default="vocalmix-demo",
                   help="folder for the files (a later demo replaces the files an earlier "
                   "one wrote there, unless they were changed)")
    p.add_argument("--duration-s", type=_demo_duration, default=12.0,
                   help=f"song length, s ({DEMO_DURATION_S[0]:g} to {DEMO_DURATION_S[1]:g}; "
                   "default 12)")
    p.add_argument("--method", choices=("baseline", "model"), default=None)
    p.add_argument("--force", action="store_true", help="replace existing files")
    _add_common(p)

    p = sub.add_parser("presets", help="list the reverb presets (name, type, decay)")
    p.add_argument("file", nargs="?", help="a presets file that vocalmix fit-reverb wrote "
                   "(default: the shipped presets)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    _add_common(p)

    p = sub.add_parser(
        "batch", help="mix every pair of a manifest or folder, resumably",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=BATCH_HELP,
    )
    p.add_argument("source", help="manifest (.csv or .parquet) or a folder of pairs")
    p.add_argument("--out", required=True, help="output folder (mixes, params, results)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes (local) or Ray actors at once, one core each "
                   "(default: all cores; with --address: the cluster's CPUs)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: a process pool on this machine; ray: Ray Data "
                   "(pip install 'vocalmix[ray]')")
    p.add_argument("--address", help="Ray cluster to run on (e.g. ray://head:10001 or auto; "
                   "default: start a local Ray)")
    p.add_argument("--method", choices=("baseline", "model"), default=None,
                   help="estimator of rows without a method cell (default: as vocalmix mix)")
    p.add_argument("--fold", choices=("error", "mean", "first2"), default="error",
                   help="files of more than 2 channels, for rows without a fold cell")
    p.add_argument("--format", choices=("wav", "flac", "mp3", "ogg"), default="wav",
                   dest="mix_format", help="the mixes' format: 24-bit WAV (default) or "
                   "FLAC, MP3 (LAME's highest quality; mixes at 8-48 kHz) or Ogg Vorbis")
    _add_bit_depth(p, "the WAV or FLAC mixes' samples: 16-bit PCM (with TPDF dither), "
                   "24-bit PCM (default) or 32-bit float (WAV)")
    p.add_argument("--retry-failed", action="store_true",
                   help="mix failed rows again even if nothing about them changed")
    _add_common(p)

    p = sub.add_parser("live", help="mix block by block as a live session would, and "
                       "report latency, block timing and the difference from offline")
    _add_inputs(p)
    p.add_argument("-o", "--output", required=True,
                   help=f"the live mix ({AUDIO_OUT}), time-aligned with the inputs")
    p.add_argument("--block-size", type=int, default=128, help="samples per block (default 128)")
    p.add_argument("--params", help="mix with exactly these settings (no estimation, no ride)")
    p.add_argument("--rehearsal", help="a sound check sung over the backing (vocal file): "
                   "settings are estimated on it before the song")
    p.add_argument("--rehearsal-start-s", type=float, default=None,
                   help="where in the backing the rehearsal was sung, s (default 0; at "
                   "least half a second before the backing ends)")
    p.add_argument("--method", choices=("baseline", "model"), default=None)
    p.add_argument("--no-ride", action="store_true", help="keep the vocal gain fixed")
    p.add_argument("--log-out", help="write the live log (every change and when) here (a "
                   ".json file)")
    p.add_argument("--params-out", help="write the settings the session ended with here (a "
                   ".json file)")
    p.add_argument("--stems-out", help="folder for vocal.wav, vocal_dry.wav, backing.wav")
    _add_bit_depth(p)
    p.add_argument("--device", action="store_true",
                   help="run on the default sound device (needs sounddevice); VOCAL '-' "
                   "takes the vocal from the input device")
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    _add_common(p)

    _register_extra(sub, _command_of(argv))
    return ap


BATCH_HELP = """\
Mix every (vocal, backing) pair of a manifest into OUT: OUT/mix/<id>.wav and
OUT/params/<id>.json per row (the id made safe as a file name), and the table
OUT/results.parquet (with pyarrow) and OUT/results.csv, one row per manifest row (id,
status ok/failed, error_code, error, mix_path, params_json, achieved figures, timings,
input SHA-256, code version).
Rows finish into OUT/results.jsonl as they go: run the same command again after an
interruption and it skips every row whose inputs, settings and code version are
unchanged. Exit code 0 when every row is ok, 1 when some failed.

manifest (CSV or Parquet), one row per song:
  id, vocal, backing     required; paths absolute or relative to the manifest
  method                 baseline | model
  vocal_to_mix_lu, vocal_lra_lu, reverb_decay_s   target overrides
  reverb_preset          a named reverb preset
  params_in              a params document to start from
  fold                   error | mean | first2
  (an empty cell: the batch default; other columns are ignored)

folder of pairs: <id>.vocal.wav + <id>.backing.wav, or <id>/vocal.wav + <id>/backing.wav
(any of .wav .flac .aiff .ogg .opus .mp3 .m4a .mp4 .webm .mka .aac); its manifest is
written to OUT/manifest.csv.
"""


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


@contextlib.contextmanager
def _decoder_noise(args: argparse.Namespace) -> Iterator[None]:
    """Keep what native decoders print on the process's stderr off the terminal while the
    block runs (:func:`vocalmix.core.audio.captured_native_stderr`); shown with
    ``--debug``."""
    from vocalmix.core.audio import captured_native_stderr

    noise: list[str] = []
    try:
        with captured_native_stderr() as noise:
            yield
    finally:
        if getattr(args, "debug", False):
            for line in noise:
                print(f"vocalmix: decoder: {line}", file=sys.stderr)


def _read(path: str, args: argparse.Namespace, label: str | None = None):
    """:func:`vocalmix.core.audio.read_audio`, the decoders' noise kept off the
    terminal."""
    from vocalmix.core.audio import read_audio

    with _decoder_noise(args):
        return read_audio(path, label=label, fold=args.fold)


def _read_both(args: argparse.Namespace):
    """The vocal and the backing (:func:`_read`), decoded on two threads (libsndfile
    releases the GIL); the vocal's error first when both fail."""
    from concurrent.futures import ThreadPoolExecutor

    from vocalmix.core.audio import read_audio

    with _decoder_noise(args), ThreadPoolExecutor(2) as pool:
        fv = pool.submit(read_audio, args.vocal, label=f"vocal {args.vocal}", fold=args.fold)
        fb = pool.submit(read_audio, args.backing, label=f"backing {args.backing}",
                         fold=args.fold)
        return fv.result(), fb.result()


def _load_pair(args: argparse.Namespace, progress: _Progress, *, analysed: bool = False):
    """``(vocal, backing, sample_rate, notes)`` read and paired.

    ``analysed``: the pair is only analysed and mixed by this process (``mix``,
    ``estimate``), so it is handed on read-only under a digest of its own
    (:func:`~vocalmix.core.dsp.frozen` ``unique``): the analyses still share their
    results, keyed by these arrays, and no SHA-1 of the samples is computed to find an
    equal signal elsewhere, which a process mixing one pair does not hold (the batch and
    the server, which do, read their inputs apart: 28 ms of CPU per 3-minute stereo
    input)."""
    from vocalmix.core.audio import prepare_pair

    progress(f"reading {args.vocal} and {args.backing}")
    v, b = _read_both(args)
    vs, bs, sr, notes = prepare_pair(v, b, sample_rate=args.sample_rate)
    show_notes(notes, progress)
    if analysed:
        from vocalmix.core.dsp import frozen

        vs, bs = frozen(vs, unique=True), frozen(bs, unique=True)
    return vs, bs, sr, notes


def _add_bit_depth(p: argparse.ArgumentParser,
                   what: str = "the mix's samples in a WAV, AIFF or FLAC: 16-bit PCM (with "
                   "TPDF dither, for a CD or a distributor that asks for it), 24-bit PCM "
                   "(default) or 32-bit float (WAV and AIFF); the stems keep theirs") -> None:
    # (core.audio.BIT_DEPTHS' keys, written out: building the parser imports no audio code)
    p.add_argument("--bit-depth", type=int, choices=(16, 24, 32), default=None, help=what)


def _mix_subtype(args: argparse.Namespace) -> str | None:
    """libsndfile's subtype for the mix of ``--bit-depth`` (``None``: the default);
    :class:`~vocalmix.core.errors.OutputError` for a depth the output cannot hold."""
    from vocalmix.core.audio import bit_depth_subtype

    return bit_depth_subtype(args.output, args.bit_depth)


def _plan_results(args: argparse.Namespace, inputs: Sequence[str], progress: _Progress):
    """The :class:`~vocalmix.core.audio.OutputPlan` of ``mix`` and ``render``: the mix,
    the stems, the params document; checked now, before any work."""
    from vocalmix.core.audio import OutputPlan

    plan = OutputPlan(audio=[args.output, *_stem_paths(args.stems_out)],
                      files=[args.params_out] if args.params_out else [],
                      inputs=inputs, force=args.force)
    for n in plan.notes:
        progress(n)
    return plan


def _write_pending(plan, args, pending, progress) -> tuple[MixParams, list[Path]]:
    """Commit the outputs of a :class:`vocalmix.pipeline.Pending` render: the stems (final)
    first, then the mix a block at a time as the limiter finishes it, in the blocks a
    whole mix is written in (the same file), then the params document with the achieved
    figures (a function the commit calls once the audio is written). Returns ``(params
    with the achieved figures, the paths written)``; the render's helper threads have
    ended when it returns or raises."""
    from vocalmix.core.audio import WRITE_BLOCK, AudioData, BlockSource

    r = pending.render
    mix = BlockSource(((b,) for b in pending.mix_blocks(WRITE_BLOCK)), r.sample_rate)
    # the master's limiter keeps the mix within its ceiling (at most 0 dBTP)
    contents: dict[str | Path, typing.Any] = {
        args.output: mix.output(0, _mix_subtype(args), within_full_scale=True)}
    written: list[Path] = [Path(args.output)]
    if args.params_out:
        contents[args.params_out] = lambda: pending.result()[0].to_json()
        written.append(Path(args.params_out))
    stems = _stem_paths(args.stems_out)
    if stems:
        for path, data in zip(stems, (r.vocal, r.vocal_dry, r.backing), strict=True):
            contents[path] = AudioData(data, r.sample_rate)
            written.append(path)
    try:
        plan.commit(contents)
    finally:
        pending.close()
    progress("wrote " + ", ".join(str(p) for p in written))
    return pending.result()[0], written


def _prefetch(*, estimate: bool = True) -> None:
    """Import, on a daemon thread, the modules the command will need, while the inputs
    are decoded (the decoders release the GIL; the imports are Python work): the mixing
    path, and when ``estimate``, the estimators. The command imports what it uses again
    once the inputs are read (an import finished here is then a look-up; an error here
    is raised there). No SciPy package: the mixing path runs SciPy's compiled loops
    only (:mod:`vocalmix.core.kernels`), the corrective EQ's fit included."""
    import importlib
    import threading

    def run() -> None:
        with contextlib.suppress(Exception):  # the caller's own import says why
            importlib.import_module("vocalmix.pipeline")
            if estimate:
                importlib.import_module("vocalmix.estimators.registry")

    threading.Thread(target=run, name="vocalmix-prefetch", daemon=True).start()


def _long_pair(args: argparse.Namespace, progress: _Progress):
    """The inputs as a :class:`vocalmix.longform.LongPair` when they are too long to mix
    whole (checked a block at a time), else ``None``."""
    from vocalmix.longform import open_long_pair

    with _decoder_noise(args):
        return open_long_pair(args.vocal, args.backing, fold=args.fold,
                              sample_rate=args.sample_rate, progress=progress)


def _write_long(plan, args, pair, params, progress):
    """Render a long pair a block at a time into the planned outputs; returns the params
    with the whole mix's achieved figures, and the paths written."""
    from vocalmix.longform import write_long

    # (not under _decoder_noise: it would hide the progress lines written meanwhile)
    params, written = write_long(plan, pair, params, args.output,
                                 stems=_stem_paths(args.stems_out),
                                 params_out=args.params_out, progress=progress,
                                 mix_subtype=_mix_subtype(args))
    progress("wrote " + ", ".join(str(p) for p in written))
    return params, written


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
        f"{' while singing' if t.vocal_to_mix_measure == 'singing' else ''}, "
        + (f"vocal momentary range {_fmt(t.vocal_momentary_range_lu, 'LU', 1)} (the "
           "compressor's target; LRA not used)"
           if t.vocal_momentary_range_lu is not None
           else f"vocal LRA {_fmt(t.vocal_lra_lu, 'LU', 1)}")
        + f", reverb decay {_fmt(t.reverb_decay_s, 's')}",
        "settings: "
        + (f"take moved {v.offset_ms:+g} ms, " if v.offset_ms != 0.0 else "")
        + f"vocal gain {_fmt(v.gain_db, 'dB')}, compressor "
        f"{v.compressor.threshold_db:.1f} dB / {v.compressor.ratio:g}:1 (make-up "
        f"{_fmt(v.compressor.makeup_db, 'dB')}), "
        f"high-pass {v.highpass.cutoff_frequency_hz:.0f} Hz, "
        f"{len(v.eq_bands)} EQ band(s), {_reverb_summary(v.reverb)}"
        + (f", master gain {_fmt(params.master.gain_db, 'dB')}"
           if params.master.gain_db != 0.0 else ""),
    ]
    for b in v.eq_bands:
        lines.append(f"          EQ {b.kind} {b.freq_hz:.0f} Hz {b.gain_db:+.1f} dB Q {b.q:.2f}"
                     f" ({b.source})")
    if a.vocal_to_mix_lu is not None:
        lines.append(
            f"achieved: vocal-to-mix {_fmt(a.vocal_to_mix_lu, 'LU')} (vocal-to-backing "
            f"{_fmt(a.vocal_to_backing_lu, 'LU')}), vocal LRA {_fmt(a.vocal_lra_lu, 'LU', 1)}"
            + (f", momentary range {_fmt(a.vocal_momentary_range_lu, 'LU', 1)}"
               if t.vocal_momentary_range_lu is not None else "")
            + ", "
            f"mix {_fmt(a.mix_integrated_lufs, 'LUFS', 1)}, true peak "
            f"{_fmt(a.mix_true_peak_dbtp, 'dBTP')}, master gain reduction "
            f"{_fmt(a.master_gain_reduction_db, 'dB')}"
        )
    for p in written:
        lines.append(f"wrote {p}")
    return "\n".join(lines)


def _reference(args: argparse.Namespace, sample_rate: int, progress: _Progress):
    """The reference stems at the mix's rate (one length), or ``None``."""
    rv, rb = getattr(args, "reference_vocal", None), getattr(args, "reference_backing", None)
    if rv is None and rb is None:
        return None
    from vocalmix.core.audio import prepare_pair
    from vocalmix.core.errors import ParamsError

    if rv is None or rb is None:
        raise ParamsError("a reference needs both its vocal and its backing stem")
    progress(f"reading the reference {rv} and {rb}")
    v = _read(rv, args, label=f"reference vocal {rv}")
    b = _read(rb, args, label=f"reference backing {rb}")
    # (a reference is a human mix: its vocal stem is the engineer's, channels and all)
    vs, bs, _sr, _notes = prepare_pair(v, b, sample_rate=sample_rate, vocal_channels=False)
    return vs, bs


def _explain(params) -> str:
    """Each reason of a params document on one line."""
    lines = []
    for r in params.reasons:
        conf = f", confidence {r.confidence:.2f}" if r.confidence is not None else ""
        lines.append(f"why {r.path}: [{r.source}{conf}] {r.text}")
    return "\n".join(lines)


def _steering(args: argparse.Namespace) -> dict:
    """The pipeline's keyword arguments from the target and steering options."""
    return dict(vocal_to_mix_lu=args.vocal_to_mix_lu, vocal_lra_lu=args.vocal_lra_lu,
                reverb_decay_s=args.reverb_decay_s, mix_lufs=args.mix_lufs,
                amount=args.amount, vocal_offset_ms=args.vocal_offset_ms,
                locks=tuple(args.lock))


def _preset(ref: str):
    """``(name, library)`` of a ``--reverb-preset`` value, checked before any work."""
    from vocalmix.core.params import MixParams
    from vocalmix.estimators.presets import apply_preset, resolve_preset_ref

    name, library = resolve_preset_ref(ref)
    apply_preset(MixParams(), name, library)  # an unknown or malformed preset fails now
    return name, library


def cmd_mix(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import read_params

    progress = _Progress(args.quiet)
    check_sample_rate(args.sample_rate)
    inputs = [args.vocal, args.backing] + ([args.params_in] if args.params_in else [])
    inputs += [f for f in (args.reference_vocal, args.reference_backing) if f]
    preset = None
    if args.reverb_preset:
        ref = args.reverb_preset
        if "#" in ref or ref.lower().endswith(".json"):
            inputs.append(ref.rsplit("#", 1)[0] if "#" in ref else ref)
        preset = _preset(ref)
    plan = _plan_results(args, inputs, progress)
    check_json_outputs(("--params-out", args.params_out))
    _mix_subtype(args)  # a depth the output cannot hold is refused before any work
    base = read_params(args.params_in) if args.params_in else None
    _prefetch()
    pair = _long_pair(args, progress)
    loaded = _load_pair(args, progress, analysed=True) if pair is None else None
    from vocalmix.pipeline import mix_pending

    if loaded is not None:
        sr, frames = loaded[2], loaded[0].shape[0]
    else:
        sr, frames = pair.sample_rate, pair.frames
    plan.require_space(frames, sample_rate=sr)
    reference = _reference(args, sr, progress)
    kwargs = dict(
        method=args.method or _default_method(), base=base,
        reverb_preset=preset[0] if preset else None,
        preset_library=preset[1] if preset else None,
        genre=args.genre, reference=reference,
        reference_label=f"the reference {args.reference_vocal}" if reference else "",
        progress=progress, **_steering(args),
    )
    if loaded is not None:
        # the mix is written as the limiter makes it (the stems first, they are final)
        pending = mix_pending(loaded[0], loaded[1], sr, **kwargs)
        show_notes(pending.estimate.notes if pending.estimate is not None else (), progress)
        params, written = _write_pending(plan, args, pending, progress)
    else:
        from vocalmix.longform import estimate_long

        est = estimate_long(pair, **kwargs)
        show_notes(est.notes, progress)
        params, written = _write_long(plan, args, pair, est.params, progress)
    print(_summary(params, written))
    if base is not None:
        from vocalmix.pipeline import moved_settings

        moved = moved_settings(base, params)
        print("moved: " + ("; ".join(moved) if moved else "nothing (every setting kept)"))
    if args.explain:
        print(_explain(params))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import read_params

    progress = _Progress(args.quiet)
    check_sample_rate(args.sample_rate)
    inputs = [args.vocal, args.backing, args.params]
    plan = _plan_results(args, inputs, progress)
    check_json_outputs(("--params-out", args.params_out))
    _mix_subtype(args)  # a depth the output cannot hold is refused before any work
    params = read_params(args.params)
    _prefetch(estimate=False)
    pair = _long_pair(args, progress)
    if pair is not None:
        from vocalmix.core.resolve import sync_derived, sync_notes

        plan.require_space(pair.frames, sample_rate=pair.sample_rate)
        synced = sync_derived(params, pair.sample_rate)
        show_notes((*pair.notes, *sync_notes(params, synced)), progress)
        params, written = _write_long(plan, args, pair, synced, progress)
        print(_summary(params, written))
        return 0
    vocal, backing, sr, _ = _load_pair(args, progress)
    from vocalmix.core.resolve import sync_derived, sync_notes
    from vocalmix.pipeline import render_params_pending

    plan.require_space(vocal.shape[0], sample_rate=sr)
    synced = sync_derived(params, sr)
    for note in sync_notes(params, synced):
        progress(note)
    # the mix is written as the limiter makes it (the stems first, they are final)
    pending = render_params_pending(vocal, backing, sr, synced, progress)
    params, written = _write_pending(plan, args, pending, progress)
    print(_summary(params, written))
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import OutputPlan

    progress = _Progress(args.quiet)
    check_sample_rate(args.sample_rate)
    inputs = [args.vocal, args.backing]
    inputs += [f for f in (args.reference_vocal, args.reference_backing) if f]
    plan = OutputPlan(files=[args.output], inputs=inputs, force=args.force)
    check_json_outputs(("-o", args.output))
    for n in plan.notes:
        progress(n)
    _prefetch()
    pair = _long_pair(args, progress)
    if pair is None:
        vocal, backing, sr, _ = _load_pair(args, progress, analysed=True)
    else:
        sr = pair.sample_rate
    from vocalmix.pipeline import estimate_params

    reference = _reference(args, sr, progress)
    kwargs = dict(
        method=args.method or _default_method(), genre=args.genre, reference=reference,
        reference_label=f"the reference {args.reference_vocal}" if reference else "",
        progress=progress, **_steering(args),
    )
    if pair is None:
        est = estimate_params(vocal, backing, sr, **kwargs)
    else:
        from vocalmix.longform import estimate_long

        est = estimate_long(pair, **kwargs)
    show_notes(est.notes, progress)
    plan.commit({args.output: est.params.to_json()})
    print(_summary(est.params, [Path(args.output)]))
    if args.explain:
        print(_explain(est.params))
    return 0


def _analysis(path: str, fold: str = "error", debug: bool = False, *, curves: bool = False,
              progress: Callable[[ProgressEvent | str], None] | None = None
              ) -> tuple[dict, AnalysisCurves | None]:
    """The ``analyze`` figures of one file as a JSON-ready dict, and with ``curves`` its
    short-term loudness and spectrum, unrounded, for a plot. A file too long to hold
    whole (:func:`vocalmix.longform.measure_long`) is measured a block at a time, with
    ``progress`` lines."""
    from vocalmix.core.dsp import (
        AUDIBLE_THIRD_OCTAVE_HZ,
        AUDIBLE_THIRD_OCTAVE_NOMINAL,
        third_octave_spectrum_db,
    )
    from vocalmix.core.measure import measure, short_term_loudness
    from vocalmix.core.progress import ProgressEvent, no_progress
    from vocalmix.estimators.tempo import estimate_tempo
    from vocalmix.longform import measure_long, open_long_file

    args = argparse.Namespace(fold=fold, debug=debug)
    shown = progress or no_progress
    with _decoder_noise(args):
        reader = open_long_file(path, fold=fold)
    short_term: np.ndarray | None
    if reader is not None:  # too long to hold whole: checked and measured a block at a time
        shown(ProgressEvent("read", 0.0, f"{path}: {reader.frames / reader.sample_rate / 60:.1f}"
                            " min, too long to hold whole: checking it a block at a time"))
        with _decoder_noise(args):  # (not the measuring pass: it would hide its progress)
            reader.scan("audio", remove_offset=False)
        long = measure_long(reader, progress=shown)
        m, spectrum, tempo = long.measurement, long.spectrum_db, long.tempo_bpm
        rate, channels, short_term = long.sample_rate, long.channels, long.short_term_lufs
    else:
        from vocalmix.core.parallel import beside

        a = _read(path, args)
        # the spectrum and the tempo on a second thread while this one measures the
        # loudness figures (their filters, FFTs and resampling let go of the GIL)
        (spectrum, tempo), m = beside(
            lambda: (third_octave_spectrum_db(a.samples, a.sample_rate),
                     estimate_tempo(a.samples, a.sample_rate)),
            lambda: measure(a.samples, a.sample_rate))
        rate, channels = a.sample_rate, a.source_channels
        short_term = short_term_loudness(a.samples, a.sample_rate) if curves else None

    def num(v: float, digits: int = 3) -> float | None:
        return round(float(v), digits) if math.isfinite(v) else None

    row = {
        "path": path,
        "sample_rate": rate,
        "channels": channels,
        "duration_s": round(m.duration_s, 4),
        "integrated_lufs": num(m.integrated_lufs),
        "lra_lu": num(m.lra_lu),
        "true_peak_dbtp": num(m.true_peak_dbtp),
        # (None: no steady pulse, or too short to read one; the mix then assumes 120)
        "tempo_bpm": num(tempo, 1),
        # dB re a full-scale sine per 1/3-octave band, by its nominal centre in Hz
        # (None: a band the file's rate cannot hold)
        "spectrum_db": {name: num(v, 1) if not math.isnan(v) else None
                        for name, v in zip(AUDIBLE_THIRD_OCTAVE_NOMINAL, spectrum,
                                           strict=True)},
    }
    if not curves:
        return row, None
    from vocalmix.frontends.plots import AnalysisCurves

    assert short_term is not None
    return row, AnalysisCurves(Path(path).name, short_term, 0.1, AUDIBLE_THIRD_OCTAVE_HZ,
                               spectrum, m.integrated_lufs)


def analyze_file(path: str, fold: str = "error", debug: bool = False) -> dict:
    """The ``analyze`` figures of one file, as a JSON-ready dict: rate, channels, length
    (s), integrated loudness (LUFS), LRA (LU), true peak (dBTP), tempo (BPM, ``None``
    when no steady pulse is found) and the long-term level per 1/3-octave band (dB re
    a full-scale sine, by the band's centre in Hz)."""
    return _analysis(path, fold, debug)[0]


def _spectral_centre(spectrum: dict[str, float | None]) -> float | None:
    """The power-weighted mean of the bands' centres on a log scale, Hz (the spectrum's
    centre of gravity, for the one-line summary)."""
    pairs = [(float(f), 10.0 ** (v / 10.0)) for f, v in spectrum.items() if v is not None]
    total = sum(p for _f, p in pairs)
    if total <= 0:
        return None
    return float(2.0 ** (sum(math.log2(f) * p for f, p in pairs) / total))


def cmd_analyze(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import OutputPlan

    progress = _Progress(args.quiet or args.json)
    plan = None
    if args.plot:
        from vocalmix.core.errors import OutputError
        from vocalmix.frontends.plots import require_matplotlib

        if Path(args.plot).suffix.lower() != ".png":
            raise OutputError(f"{args.plot}: --plot writes a PNG image; give a .png name")
        require_matplotlib()
        plan = OutputPlan(files=[args.plot], inputs=args.files, force=args.force)
    rows, curves = [], []
    for f in args.files:
        progress(f"measuring {f}")
        row, drawn = _analysis(f, args.fold, args.debug, curves=plan is not None,
                               progress=progress)
        rows.append(row)
        if drawn is not None:
            curves.append(drawn)
    if plan is not None:
        from vocalmix.frontends.plots import analysis_png

        progress(f"drawing {args.plot}")
        plan.commit({args.plot: analysis_png(curves)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            tempo = (f"tempo {r['tempo_bpm']} BPM" if r["tempo_bpm"] is not None
                     else "tempo unclear")
            centre = _spectral_centre(r["spectrum_db"])
            level = (f"{r['integrated_lufs']} LUFS" if r["integrated_lufs"] is not None
                     else "silent (under the -70 LUFS gate)")
            peak = (f"{r['true_peak_dbtp']} dBTP" if r["true_peak_dbtp"] is not None
                    else "-inf dBTP")
            print(
                f"{r['path']}: {r['sample_rate']} Hz, {r['channels']} ch, {r['duration_s']:.2f} s, "
                f"{level}, LRA {r['lra_lu']} LU, true peak {peak}, {tempo}"
                + (f", spectral centre {centre:.0f} Hz" if centre is not None else "")
            )
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


#: the file ``vocalmix demo`` leaves in its folder: the SHA-256 of each file it wrote, so
#: that the next demo replaces exactly those, and only while nobody changed them
DEMO_MARKER = ".vocalmix-demo.json"
DEMO_FORMAT = "vocalmix.demo-outputs"
DEMO_FILES = ("vocal_in.wav", "backing_in.wav", "mix.wav", "params.json",
              "stems/vocal.wav", "stems/vocal_dry.wav", "stems/backing.wav")


def _demo_replaceable(out: Path) -> tuple[list[Path], bool]:
    """The files of ``out`` that the last demo wrote and nobody changed since, and
    whether ``out``'s marker file (if any) is the demo's own."""
    from vocalmix.core.audio import file_sha256, read_json_text

    marker = out / DEMO_MARKER
    if not os.path.lexists(marker):
        return [], True
    try:
        doc = json.loads(read_json_text(marker))
    except (VocalmixError, ValueError, RecursionError):
        return [], False
    if not isinstance(doc, dict) or doc.get("format") != DEMO_FORMAT:
        return [], False
    files = doc.get("files")
    if not isinstance(files, dict):
        return [], False
    return [out / n for n in DEMO_FILES
            if isinstance(files.get(n), str) and file_sha256(out / n) == files[n]], True


def cmd_demo(args: argparse.Namespace) -> int:
    from vocalmix.core.audio import AudioData, OutputPlan, file_sha256, write_text
    from vocalmix.core.errors import OutputExistsError
    from vocalmix.pipeline import mix
    from vocalmix.synth import synthesize_song

    progress = _Progress(args.quiet)
    out = Path(args.output_dir)
    ours, marker_ok = _demo_replaceable(out)
    if not marker_ok and not args.force:
        raise OutputExistsError(f"{out / DEMO_MARKER}: already exists, and vocalmix demo did "
                                "not write it")
    paths = [out / n for n in DEMO_FILES]
    plan = OutputPlan(audio=[p for p in paths if p.suffix == ".wav"],
                      files=[out / "params.json"], force=args.force, replaceable=ours)
    for n in plan.notes:
        progress(n)
    sr = 44100
    plan.require_space(int(args.duration_s * sr) + 1)
    progress(f"synthesising a {args.duration_s:g} s song (vocal line, drums, bass, chords)")
    vocal, backing = synthesize_song(sample_rate=sr, duration_s=args.duration_s)
    params, rendered, est = mix(vocal, backing, sr, method=args.method or _default_method(),
                                progress=progress)
    for n in est.notes:
        progress(n)
    data: list[AudioData | str] = [AudioData(x, sr) for x in (vocal, backing, rendered.mix)]
    data += [params.to_json()]
    data += [AudioData(x, sr) for x in (rendered.vocal, rendered.vocal_dry, rendered.backing)]
    plan.commit(dict(zip(paths, data, strict=True)))
    # the marker follows the group: a kill between the two leaves the old marker, and the
    # next demo then refuses the files it cannot vouch for (--force replaces them)
    digests = {n: file_sha256(p) for n, p in zip(DEMO_FILES, paths, strict=True)}
    write_text(out / DEMO_MARKER, json.dumps({"format": DEMO_FORMAT, "files": digests},
                                             indent=1) + "\n", force=True)
    written = paths
    print(_summary(params, written))
    print(
        f"\nEdit {out / 'params.json'} (e.g. vocal.gain_db) and re-render with:\n"
        f"  vocalmix render {out / 'vocal_in.wav'} {out / 'backing_in.wav'} "
        f"{out / 'params.json'} -o {out / 'mix_edited.wav'}\n"
        f"or change a target (e.g. targets.vocal_to_mix_lu) and re-resolve with:\n"
        f"  vocalmix mix {out / 'vocal_in.wav'} {out / 'backing_in.wav'} --params-in "
        f"{out / 'params.json'} -o {out / 'mix_retargeted.wav'}"
    )
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from vocalmix.estimators.presets import preset_rows, presets_from_file

    rows = preset_rows(presets_from_file(args.file) if args.file else None)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no presets")
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        decay = "n/a" if r["decay_s"] is None else f"{r['decay_s']:.2f} s"
        wet = "" if r["wet_level_db"] is None else f", wet {r['wet_level_db']:+.1f} dB"
        print(f"{r['name']:<{width}}  {r['type']:<9} {r['origin'] or '-':<10} decay {decay}{wet}")
    return 0


def _clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class _BatchBar:
    """The batch's progress on stderr: a bar redrawn in place on a terminal, a line
    every 10 s (and at the end) otherwise."""

    WIDTH = 24

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last_print = -1e9
        self.last = ""
        self.drawn = False

    def line(self, s) -> str:
        finished = s.ok + s.failed + s.skipped
        frac = finished / s.total if s.total else 1.0
        fill = int(round(self.WIDTH * frac))
        return (f"[{'#' * fill}{'.' * (self.WIDTH - fill)}] {finished}/{s.total} "
                f"done, {s.failed} failed, {s.skipped} skipped | "
                f"{s.songs_per_min:.1f} songs/min | ETA {_clock(s.eta_s)}")

    def __call__(self, s) -> None:
        if self.quiet:
            return
        try:
            self._show(s)
        except OSError:  # (its reader gone, as `| head` leaves it: the batch goes on)
            self.quiet = True

    def _show(self, s) -> None:
        now = time.perf_counter()
        if self.tty:
            print("\r" + self.line(s) + "\x1b[K", end="", file=sys.stderr, flush=True)
            self.drawn = True
        else:
            text = self.line(s)
            if (now - self.last_print >= 10.0 or s.remaining == 0) and text != self.last:
                self.last_print, self.last = now, text
                print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.drawn and not self.quiet:
            with contextlib.suppress(OSError):
                print(file=sys.stderr, flush=True)
        self.drawn = False


def cmd_batch(args: argparse.Namespace) -> int:
    from vocalmix.batch import run_batch
    from vocalmix.core.errors import ParamsError

    if args.address and args.engine != "ray":
        raise ParamsError("--address names a Ray cluster: use it with --engine ray")
    bar = _BatchBar(args.quiet)
    try:
        summary = run_batch(
            args.source, args.out, workers=args.workers, engine=args.engine,
            address=args.address, method=args.method, fold=args.fold,
            mix_format=args.mix_format, bit_depth=args.bit_depth,
            retry_failed=args.retry_failed, progress=bar,
            worker_init=_batch_worker_init,
        )
    finally:
        bar.close()
    s = summary.status
    lines = [f"{s.total} rows: {s.total - len(summary.failures)} ok, {len(summary.failures)} "
             f"failed ({s.ok + s.failed} run now, {s.skipped} already done) in "
             f"{_clock(s.elapsed_s)}"]
    if summary.unknown_columns:
        lines.append("ignored manifest columns: " + ", ".join(summary.unknown_columns))
    for rid, code, msg in summary.failures[:20]:
        lines.append(f"failed {rid}: {code}: {msg}")
    if len(summary.failures) > 20:
        lines.append(f"... and {len(summary.failures) - 20} more failed rows (see the table)")
    lines += [f"note: {n}" for n in summary.notes]
    lines += [f"wrote {p}" for p in summary.results]
    print("\n".join(lines))
    return 1 if summary.failures else 0


def cmd_live(args: argparse.Namespace) -> int:
    from vocalmix.frontends.livecmd import run_live

    return run_live(args, _Progress(args.quiet))


_COMMANDS = {
    "batch": cmd_batch,
    "mix": cmd_mix,
    "render": cmd_render,
    "estimate": cmd_estimate,
    "analyze": cmd_analyze,
    "analyse": cmd_analyze,
    "demo": cmd_demo,
    "presets": cmd_presets,
    "live": cmd_live,
}


def _tune_malloc(single_arena: bool = True) -> None:
    """Keep freed memory for reuse instead of returning it to the kernel (glibc only).

    Mixing allocates a few dozen full-length float arrays (64 MB each for 3 minutes of
    stereo); by default glibc maps each one fresh and unmaps it when freed, so every
    allocation pays its page faults again. Raising the mmap and trim thresholds lets the
    heap reuse them: about 25% less wall time on a 3-minute mix here (bench/bench.py).
    The pipeline still hands the free memory back between its stages
    (:mod:`vocalmix.core.memory`).

    ``single_arena``: also keep every thread's allocations in one arena (glibc's
    ``M_ARENA_MAX`` 1). The two decoding threads and the estimators' second thread
    would each get an arena of their own, whose free memory only that arena's threads
    reuse: about 40 MB more at the peak of a 3-minute mix with the model. Not for
    ``live`` and ``serve``: long-running processes whose audio and request threads
    should not wait for one another's allocations.

    Only the command-line process (and its batch workers) does this; importing vocalmix
    as a library does not.
    """
    from vocalmix.core.memory import c_library

    try:
        libc = c_library("c")
        m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
        libc.mallopt(m_mmap_threshold, 1 << 30)
        libc.mallopt(m_trim_threshold, 1 << 31)
        if single_arena:
            libc.mallopt(m_arena_max, 1)
    except (OSError, AttributeError):
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread while a command runs (:func:`_sigterm_raises`).

    A :class:`KeyboardInterrupt`, so that whatever an interrupt (Ctrl-C) cleans up is
    cleaned up for it too: the outputs being written are rolled back (the previous files
    stay, no scratch file is left), the batch's pool is shut down."""


#: the exit code after SIGTERM: a program ended by it, as the shell reports it (128 + 15)
TERMINATED_EXIT = 143
#: the exit code after SIGINT (Ctrl-C), 128 + 2
INTERRUPTED_EXIT = 130


def _stop_children() -> None:
    """Pass SIGTERM on to this process's multiprocessing children (the batch's pool
    workers, the live session's background estimate), which would otherwise finish
    their work first: the workers roll their writes back as the command does
    (:func:`_batch_worker_init`)."""
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return
    with contextlib.suppress(Exception):  # a child gone meanwhile; nothing to stop
        for child in mp.active_children():
            child.terminate()


def _raise_terminated(_signum: int, _frame: object) -> None:
    """The SIGTERM handler: pass the signal on to the children, raise
    :class:`Terminated`; a second SIGTERM is ignored, so that it does not cut the
    clean-up short (SIGKILL still ends the process at once)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _stop_children()
    raise Terminated


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM (what ``kill``, ``timeout``, systemd and ``docker
    stop`` send) raises :class:`Terminated` in the main thread, as SIGINT raises
    :class:`KeyboardInterrupt`; the previous handler is put back afterwards. Nothing is
    changed when called outside the main thread."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _batch_worker_init() -> None:
    """What every worker process of ``vocalmix batch`` runs first: the allocator's
    settings (:func:`_tune_malloc`) and SIGTERM raising :class:`Terminated`, so that a
    worker told to stop (by the batch, :func:`_stop_children`, or with its whole process
    group) rolls back the outputs it is writing instead of leaving scratch files."""
    import signal

    _tune_malloc()
    signal.signal(signal.SIGTERM, _raise_terminated)


#: commands that handle SIGTERM themselves: the server (uvicorn shuts down gracefully)
OWN_SIGTERM_COMMANDS = frozenset({"serve"})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vocalmix`` console script; returns the exit code.

    SIGTERM ends a command as Ctrl-C does (what it was writing is rolled back), with
    :data:`TERMINATED_EXIT` instead of :data:`INTERRUPTED_EXIT`; ``serve`` handles it
    itself (uvicorn's graceful shutdown)."""
    pin_blas_threads()  # before anything imports numpy
    no_numpy_hugepages()
    _tune_malloc(single_arena=_command_of(argv) not in ("live", "serve"))
    _ARGV[:] = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None) or _COMMANDS[args.command]
    on_sigterm = (contextlib.nullcontext() if args.command in OWN_SIGTERM_COMMANDS
                  else _sigterm_raises())
    try:
        _refuse_empty_options(parser, args)
        with on_sigterm:
            return int(func(args) or 0)
    except VocalmixError as e:
        print(error_line(e), file=sys.stderr)
        return e.exit_code
    except Terminated:
        print("vocalmix: terminated", file=sys.stderr)
        return TERMINATED_EXIT
    except KeyboardInterrupt:
        print("vocalmix: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except Exception as e:  # an internal error: one line unless --debug
        if isinstance(e, BrokenPipeError) and _reader_gone():
            _stdout_gone()  # the output's reader went away (`vocalmix ... | head`)
            return CLOSED_PIPE_EXIT
        if getattr(args, "debug", False) or os.environ.get("VOCALMIX_DEBUG"):
            raise
        print(
            f"vocalmix: internal error: {type(e).__name__}: {e} (run with --debug for details "
            "and please report it)",
            file=sys.stderr,
        )
        return 3


def _refuse_empty_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """:class:`ParamsError` for an option given an empty value (``--stems-out ""``, as
    ``--stems-out "$UNSET"`` gives): it was taken as not given, so no stems were written
    and no params document or preset was used, without a word."""
    from vocalmix.core.errors import ParamsError

    actions = list(getattr(parser, "_actions", ()))
    for a in tuple(actions):
        if isinstance(a, argparse._SubParsersAction):
            sub = a.choices.get(getattr(args, "command", None) or "")
            actions += list(sub._actions) if sub is not None else []
    for a in actions:
        if not a.option_strings or not hasattr(args, a.dest):
            continue
        value = getattr(args, a.dest)
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            raise ParamsError(f"{a.option_strings[-1]} is empty; give a value, or leave the "
                              "option out")


#: the exit code when the output's reader went away: a program killed by SIGPIPE, as
#: the shell reports it (128 + 13)
CLOSED_PIPE_EXIT = 141


def _reader_gone() -> bool:
    """Whether the standard output is a pipe whose reader has closed it (``poll`` reports
    an error on its write end), as opposed to another pipe of the program breaking."""
    import select

    try:
        p = select.poll()
        p.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & select.POLLERR for _fd, ev in p.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _stdout_gone() -> None:
    """Point the standard output at the null device: its reader closed the pipe, and the
    interpreter's flush at exit would report the same error again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


#: the one-shot commands whose process ends as soon as they return (:func:`run`)
QUICK_EXIT_COMMANDS = frozenset({"mix", "render", "estimate", "analyze", "analyse", "demo",
                                 "presets"})


def run() -> typing.NoReturn:
    """The ``vocalmix`` console script (and ``python -m vocalmix``): :func:`main`, then
    the process's exit with its code.

    After a one-shot command (:data:`QUICK_EXIT_COMMANDS`) the standard streams are
    flushed and the process ends at once (``os._exit``), without the interpreter's
    tear-down: freeing every module's objects one by one (numpy's, SciPy's, the
    caches of the analyses) took 0.1-0.15 s after a mix, work the operating system does
    at once when the process ends. Those commands have committed and closed their
    outputs when they return, and start nothing that outlives them but helper threads
    whose results are no longer wanted (an analysis cancelled by an error; a prefetch),
    which the normal exit would wait for. Other commands (``batch``, ``serve``,
    ``live``, training) end the usual way: their pools and servers shut down through it.
    A stream that cannot be flushed also ends the usual way, which reports it; when
    the reader of the output has gone away (``vocalmix presets | head -1``), without a
    message and with :data:`CLOSED_PIPE_EXIT`, as a program killed by SIGPIPE."""
    code = main()
    if _command_of(None) in QUICK_EXIT_COMMANDS:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:  # what was left for a reader that went away
            _stdout_gone()
            sys.exit(code or CLOSED_PIPE_EXIT)
        except (OSError, ValueError):
            sys.exit(code)
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
