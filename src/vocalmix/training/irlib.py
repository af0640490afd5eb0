"""A library of named impulse responses to fit the reverb to.

:func:`library` yields :class:`LibraryIR` items from four origins, in this order:

``pedalboard``
    pedalboard's built-in ``Reverb`` (JUCE's Freeverb) on a grid of ``room_size``
    (0.2, 0.5, 0.8, 0.95) x ``damping`` (0, 0.5, 1), width 1, rendered by
    :func:`vocalmix.core.reverb.render_freeverb_ir` (wet only; bit-identical across runs).
``calf``
    Calf Reverb (Debian ``calf-plugins``), an LV2 plug-in, run by ffmpeg's ``lv2``
    filter. URI ``http://calf.sourceforge.net/plugins/Reverb`` (``lv2ls``; ports from
    ``lv2info``): ``decay_time`` (0.4-15, default 1.5; *not* its T60, see below),
    ``hf_damp`` (2000-20000 Hz, default 5000), ``room_size`` (enumeration 0 Small,
    1 Medium, 2 Large, 3 Tunnel-like, 4 Large/smooth, 5 Experimental; default 2),
    ``diffusion`` (0-1, default 0.5), ``amount`` (wet, 0-2, default 0.25), ``dry``
    (0-2, default 1), ``predelay`` (0-500 ms, default 0), ``bass_cut`` (20-20000 Hz,
    default 300), ``treble_cut`` (20-20000 Hz, default 5000), ``on``, ``level_in``,
    ``level_out`` (1). Rendered with ``dry=0``, ``amount=1`` and the wet EQ open
    (``bass_cut=20``, ``treble_cut=20000``), on the grid ``room_size`` (0, 1, 2, 4) x
    ``decay_time`` (0.4, 0.8, 1.6) at ``hf_damp`` 5000, ``diffusion`` 0.5, ``predelay`` 0,
    plus five variations of the Large room at ``decay_time`` 0.8: ``hf_damp`` 2500 and
    12000, ``diffusion`` 0.1 and 0.9, ``predelay`` 25 ms. ``decay_time`` is a knob, not a
    reverberation time: the measured broadband T30 of the wet IR is 1.3 to 3.2 times it
    (0.4 s gives 0.52-0.80 s, 0.8 s 1.38-2.43 s, 1.6 s 3.1-5.1 s; longer for larger rooms
    and higher diffusion); every Calf item records both, ``info["decay_time_s"]`` and
    ``info["wet_t30_s"]``.
``tap``
    TAP Reverberator (Debian ``tap-plugins``), a LADSPA plug-in, run by ffmpeg's
    ``ladspa`` filter: file ``tap_reverb.so``, label ``tap_reverb``, unique ID 2142
    (``analyseplugin``). Controls, in ffmpeg's ``c0..c7`` order: ``Decay [ms]`` (0-10000,
    default 2500), ``Dry Level [dB]`` (-70 to 10, default 0), ``Wet Level [dB]`` (-70 to
    10, default 0), ``Comb Filters``, ``Allpass Filters``, ``Bandpass Filter``,
    ``Enhanced Stereo`` (toggles, default on), ``Reverb Type`` (0-42: the 43 room types
    of :data:`TAP_TYPES`, default 0). Rendered with all toggles on, wet 0 dB, on the grid
    of the eight types ``Ambience``, ``Cathedral``, ``Drum Chamber``, ``Hall (Medium)``,
    ``Plate (Medium)``, ``Room (Small)``, ``Room (Medium)``, ``Vocal Plate`` x ``Decay``
    1000 and 3000 ms (measured broadband T30 0.53-0.58 s and 1.58-1.85 s, except
    Cathedral at 1000 ms: 1.25 s). Its dry level cannot be switched off (-70 dB is the
    minimum and is applied, not muted): the render is made at -70 dB dry and that dry impulse,
    ``10^(-70/20)``, is subtracted (checked against a render at 0 dB dry: their
    difference is the dry impulse alone, at the input's position). Its wet output starts
    at the input sample itself (0.23, 0.48, 0.24 x the impulse in the first three
    samples: the all-pass chain passes part of the input straight through), so a TAP
    send's "direct sound" is partly wet.
``real``
    Every audio file under ``<data root>/ir`` (all sub-folders; see
    :func:`vocalmix.training.data.data_root`) except the guitar-cabinet IRs ``direct_cabinet_*``;
    files with more than two channels (true-stereo IRs) are folded to the mean of their
    channels, as ``vocalmix fit-reverb`` does.

Rendering a plug-in: a unit impulse in both channels, after 8192 samples of silence (Calf
ramps its gains over the first 64 samples of a run, so an impulse at sample 0 would come
out scaled), is piped as raw float32 through ffmpeg (``-f f32le ... pipe:0`` to
``pipe:1``: no temporary audio files); the lead-in is cut off. The latency is measured
from a render with the dry path on and the wet path off (the impulse's position in the
output) and stripped; it is 0 samples for both plug-ins here. Rendered IRs end where the
energy still to come falls below -100 dB of the total. With ``verify=True`` every
rendered IR (pedalboard's too) is rendered twice and compared bit for bit
(``info["deterministic"]``); a difference is reported on the ``log`` callback.

The item to fit, :attr:`LibraryIR.ir`, is the response of a reverb *send*: the dry unit
impulse at sample 0 plus the wet IR at the source's own default wet-to-dry gain ratio
(pedalboard ``wet_level 0.33`` / ``dry_level 0.4``; Calf ``amount 0.25`` / ``dry 1``;
TAP 0 dB / 0 dB), so its direct-to-reverberant balance is the plug-in's default mix. A
real IR is used as measured. The plug-in sources are optional: when ffmpeg or a plug-in
is missing they are skipped with a one-line reason (see :func:`plugin_status`); the
library then holds the built-in reverb and the real IRs alone.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocalmix.core.errors import AudioError

__all__ = [
    "CALF_GRID",
    "CALF_URI",
    "ORIGINS",
    "PEDALBOARD_GRID",
    "TAP_GRID",
    "TAP_TYPES",
    "LibraryIR",
    "calf_wet_ir",
    "library",
    "plugin_status",
    "read_ir",
    "real_ir_paths",
    "tap_wet_ir",
]

ORIGINS = ("pedalboard", "calf", "tap", "real")
LEAD_IN = 8192  # samples of silence before the impulse (plug-in gain smoothing settles)
TAIL_DB = -100.0  # rendered IRs end where the energy still to come is this far down
MAX_IR_S = 60.0

#: pedalboard.Reverb grid: (room_size, damping), width 1
PEDALBOARD_GRID: tuple[tuple[float, float], ...] = tuple(
    (r, d) for r in (0.2, 0.5, 0.8, 0.95) for d in (0.0, 0.5, 1.0))
PEDALBOARD_WET_OVER_DRY = 0.33 / 0.4  # pedalboard.Reverb defaults wet_level / dry_level

CALF_URI = "http://calf.sourceforge.net/plugins/Reverb"
CALF_ROOMS = {0: "small", 1: "medium", 2: "large", 3: "tunnel", 4: "large_smooth",
              5: "experimental"}
CALF_BASE = {"hf_damp": 5000.0, "diffusion": 0.5, "predelay": 0.0}
#: Calf Reverb grid: dicts of decay_time, room_size, hf_damp, diffusion, predelay (ms)
CALF_GRID: tuple[dict[str, float], ...] = (
    *({"decay_time": t, "room_size": r, **CALF_BASE} for r in (0, 1, 2, 4)
      for t in (0.4, 0.8, 1.6)),
    {"decay_time": 0.8, "room_size": 2, **CALF_BASE, "hf_damp": 2500.0},
    {"decay_time": 0.8, "room_size": 2, **CALF_BASE, "hf_damp": 12000.0},
    {"decay_time": 0.8, "room_size": 2, **CALF_BASE, "diffusion": 0.1},
    {"decay_time": 0.8, "room_size": 2, **CALF_BASE, "diffusion": 0.9},
    {"decay_time": 0.8, "room_size": 2, **CALF_BASE, "predelay": 25.0},
)
CALF_FIXED = {"bass_cut": 20.0, "treble_cut": 20000.0, "on": 1.0, "level_in": 1.0,
              "level_out": 1.0}
CALF_WET_OVER_DRY = 0.25 / 1.0  # Calf Reverb defaults amount / dry

TAP_LIBRARY = ("tap_reverb.so", "tap_reverb")
#: TAP Reverberator's room types, index = its "Reverb Type" control
TAP_TYPES = (
    "AfterBurn", "AfterBurn (Long)", "Ambience", "Ambience (Thick)",
    "Ambience (Thick) - HD", "Cathedral", "Cathedral - HD", "Drum Chamber", "Garage",
    "Garage (Bright)", "Gymnasium", "Gymnasium (Bright)", "Gymnasium (Bright) - HD",
    "Hall (Small)", "Hall (Medium)", "Hall (Large)", "Hall (Large) - HD", "Plate (Small)",
    "Plate (Medium)", "Plate (Large)", "Plate (Large) - HD", "Pulse Chamber",
    "Pulse Chamber (Reverse)", "Resonator (96 ms)", "Resonator (152 ms)",
    "Resonator (208 ms)", "Room (Small)", "Room (Medium)", "Room (Large)",
    "Room (Large) - HD", "Slap Chamber", "Slap Chamber - HD", "Slap Chamber (Bright)",
    "Slap Chamber (Bright) - HD", "Smooth Hall (Small)", "Smooth Hall (Medium)",
    "Smooth Hall (Large)", "Smooth Hall (Large) - HD", "Vocal Plate", "Vocal Plate - HD",
    "Warble Chamber", "Warehouse", "Warehouse - HD",
)
#: TAP grid: (reverb type index, decay ms)
TAP_GRID: tuple[tuple[int, float], ...] = tuple(
    (t, d) for t in (2, 5, 7, 14, 18, 26, 27, 38) for d in (1000.0, 3000.0))
TAP_DRY_MIN_DB = -70.0
TAP_WET_OVER_DRY = 1.0  # TAP Reverberator (LADSPA) defaults: dry 0 dB, wet 0 dB

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LibraryIR:
    """One impulse response of the library.

    Attributes:
        name: unique name (the preset name), e.g. ``calf_large_decay0.8``.
        origin: ``"real"``, ``"pedalboard"``, ``"calf"`` or ``"tap"``.
        source: what it is, one line: the file (relative to the data root) or the plug-in
            and its settings.
        settings: the plug-in's parameters (empty for a real IR).
        ir: the response to fit, float32 ``(n, channels)``: a real IR as read, or the
            send of a rendered reverb (dry unit impulse at sample 0 + wet at the source's
            default wet-to-dry ratio, see the module docstring).
        sample_rate: Hz.
        wet: the rendered wet-only IR ``(n, 2)`` (``None`` for a real IR).
        info: measured facts, e.g. ``wet_t30_s`` (broadband T30 of ``wet``),
            ``decay_time_s`` (Calf's knob), ``latency_samples``, ``deterministic``.
    """

    name: str
    origin: str
    source: str
    settings: dict
    ir: np.ndarray
    sample_rate: int
    wet: np.ndarray | None = None
    info: dict = field(default_factory=dict)


# --- real IRs ---------------------------------------------------------------------------


def read_ir(path: str | Path) -> tuple[np.ndarray, int]:
    """An impulse response file: :func:`vocalmix.core.audio.read_impulse_response`."""
    from vocalmix.core.audio import read_impulse_response

    return read_impulse_response(path, max_duration_s=MAX_IR_S)


def real_ir_paths(root: str | Path | None = None) -> list[Path]:
    """The real IR files under ``root/ir`` (default: the data root), sorted, cabinets out."""
    from vocalmix.training.data import audio_files, data_root

    base = (Path(root) if root is not None else data_root()) / "ir"
    return [p for p in audio_files(base) if not p.name.startswith("direct_cabinet_")]


# --- rendering --------------------------------------------------------------------------


def _trim_tail(x: np.ndarray, floor_db: float = TAIL_DB) -> np.ndarray:
    """``x`` up to where the energy still to come falls below ``floor_db`` of the total."""
    e = (np.asarray(x, np.float64) ** 2).sum(axis=1)
    rem = np.cumsum(e[::-1])[::-1]
    if not rem[0] > 0:
        return x
    keep = np.flatnonzero(rem >= rem[0] * 10.0 ** (floor_db / 10.0))
    return x[: int(keep[-1]) + 1 if keep.size else x.shape[0]]


def _send(wet: np.ndarray, ratio: float) -> np.ndarray:
    """Dry unit impulse at sample 0 plus ``ratio`` x ``wet``, float32 ``(n, 2)``."""
    out = np.asarray(wet, np.float64) * ratio
    out[0] += 1.0
    return out.astype(np.float32)


def _ffmpeg_render(filt: str, n: int, sample_rate: int) -> np.ndarray:
    """A unit impulse (after :data:`LEAD_IN` zeros) through an ffmpeg audio filter.

    Raw float32 stereo in on stdin, out on stdout. Returns ``(LEAD_IN + n, 2)`` float32.
    """
    x = np.zeros((LEAD_IN + n, 2), np.float32)
    x[LEAD_IN] = 1.0
    fmt = ["-f", "f32le", "-ar", str(sample_rate), "-ac", "2"]
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", *fmt, "-i", "pipe:0",
           "-af", filt, *fmt, "pipe:1"]
    p = subprocess.run(cmd, input=x.tobytes(), capture_output=True, check=False)
    if p.returncode != 0:
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"ffmpeg failed ({p.returncode}): {err[-1] if err else '?'}")
    y = np.frombuffer(p.stdout, np.float32).reshape(-1, 2)
    if y.shape[0] != x.shape[0]:
        raise RuntimeError(f"ffmpeg returned {y.shape[0]} samples for {x.shape[0]}")
    return y.copy()


def _latency(y_dry: np.ndarray) -> int:
    """Samples between the input impulse and its dry copy in a dry-only render."""
    return int(np.argmax(np.abs(y_dry[:, 0]))) - LEAD_IN


def _calf_filter(settings: dict[str, float], dry: float, wet: float) -> str:
    ctl = {**CALF_FIXED, **settings, "dry": dry, "amount": wet}
    c = "|".join(f"{k}={v:g}" for k, v in ctl.items())
    uri = CALF_URI.replace(":", r"\\:")  # escaped for the filter graph and the option parser
    return f"lv2=p={uri}:c={c}"


def calf_wet_ir(settings: dict[str, float], sample_rate: int = 44100,
                length_s: float | None = None) -> tuple[np.ndarray, int]:
    """Wet-only stereo IR of Calf Reverb at ``settings`` and its latency (stripped).

    ``settings``: ``decay_time``, ``room_size``, ``hf_damp``, ``diffusion``,
    ``predelay`` (the other controls as in :data:`CALF_FIXED`). Default length
    ``6 x decay_time + predelay + 1 s``; trimmed at -100 dB.
    """
    if length_s is None:
        length_s = 6.0 * settings["decay_time"] + settings.get("predelay", 0.0) / 1e3 + 1.0
    n = int(round(length_s * sample_rate))
    lat = _latency(_ffmpeg_render(_calf_filter(settings, 1.0, 0.0), 256, sample_rate))
    y = _ffmpeg_render(_calf_filter(settings, 0.0, 1.0), n + max(lat, 0), sample_rate)
    return _trim_tail(y[LEAD_IN + lat:LEAD_IN + lat + n]), lat


def _tap_filter(type_index: int, decay_ms: float, dry_db: float) -> str:
    lib, label = TAP_LIBRARY
    c = f"c0={decay_ms:g}|c1={dry_db:g}|c2=0|c3=1|c4=1|c5=1|c6=1|c7={type_index:d}"
    return f"ladspa=f={lib.removesuffix('.so')}:p={label}:c={c}"


def tap_wet_ir(type_index: int, decay_ms: float, sample_rate: int = 44100,
               length_s: float | None = None) -> tuple[np.ndarray, int]:
    """Wet-only stereo IR of TAP Reverberator (type, decay in ms) and its latency.

    Rendered at the minimum dry level (-70 dB), whose impulse is then subtracted; a
    second render at 0 dB dry checks that the two differ by the dry impulse alone.
    Default length ``2 x decay + 1 s``; trimmed at -100 dB.
    """
    if length_s is None:
        length_s = 2.0 * decay_ms / 1e3 + 1.0
    n = int(round(length_s * sample_rate))
    lo = _ffmpeg_render(_tap_filter(type_index, decay_ms, TAP_DRY_MIN_DB), n, sample_rate)
    hi = _ffmpeg_render(_tap_filter(type_index, decay_ms, 0.0), n, sample_rate)
    d = hi.astype(np.float64) - lo
    lat = _latency(d)
    g = 10.0 ** (TAP_DRY_MIN_DB / 20.0)
    rest = d.copy()
    rest[LEAD_IN + lat] -= 1.0 - g
    if not (np.abs(rest).max() < 1e-5 and lat >= 0):
        raise RuntimeError("TAP Reverberator's dry path is not a plain gain as expected")
    y = lo[LEAD_IN + lat:LEAD_IN + lat + n].astype(np.float64)
    y[0] -= g
    return _trim_tail(y.astype(np.float32)), lat


def plugin_status() -> dict[str, str | None]:
    """Whether each plug-in source can render: ``{origin: None (ok) or the reason}``."""
    out: dict[str, str | None] = {}
    if shutil.which("ffmpeg") is None:
        why = "ffmpeg not found (apt-get install ffmpeg)"
        return {"calf": why, "tap": why}
    probe = {
        "calf": (_calf_filter({"decay_time": 0.4, "room_size": 2, **CALF_BASE}, 0.0, 1.0),
                 "Calf Reverb LV2 not available (apt-get install calf-plugins)"),
        "tap": (_tap_filter(26, 500.0, TAP_DRY_MIN_DB),
                "TAP Reverberator LADSPA not available (apt-get install tap-plugins)"),
    }
    for origin, (filt, why) in probe.items():
        try:
            y = _ffmpeg_render(filt, 2048, 44100)
            out[origin] = None if np.abs(y).max() > 0 else f"{why}: renders silence"
        except (RuntimeError, OSError) as e:
            out[origin] = f"{why}: {e}"
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _measure(wet: np.ndarray, sample_rate: int) -> float:
    from vocalmix.core.reverb import reverberation_time

    return reverberation_time(wet, sample_rate, "T30")


def _pedalboard_items(sample_rate: int, verify: bool, log: Log) -> Iterator[LibraryIR]:
    import pedalboard

    from vocalmix.core.reverb import render_freeverb_ir

    for room, damp in PEDALBOARD_GRID:
        wet = _trim_tail(render_freeverb_ir(room, damp, 1.0, sample_rate))
        info = {"wet_t30_s": _measure(wet, sample_rate), "wet_over_dry": PEDALBOARD_WET_OVER_DRY}
        if verify:
            again = _trim_tail(render_freeverb_ir(room, damp, 1.0, sample_rate))
            info["deterministic"] = again.shape == wet.shape and bool(np.array_equal(again, wet))
            if not info["deterministic"]:
                log(f"pedalboard room_size={room:g} damping={damp:g}: two renders differ")
        yield LibraryIR(
            name=f"pedalboard_room{room:.2f}_damp{damp:.1f}", origin="pedalboard",
            source=f"pedalboard {pedalboard.__version__} Reverb room_size={room:g} "
                   f"damping={damp:g} width=1",
            settings={"room_size": room, "damping": damp, "width": 1.0},
            ir=_send(wet, PEDALBOARD_WET_OVER_DRY), sample_rate=sample_rate, wet=wet,
            info=info)


def _plugin_item(origin: str, settings: dict, sample_rate: int, verify: bool,
                 log: Log) -> LibraryIR:
    if origin == "calf":
        wet, lat = calf_wet_ir(settings, sample_rate)
        room = CALF_ROOMS[int(settings["room_size"])]
        name = f"calf_{room}_decay{settings['decay_time']:g}"
        for k, short in (("hf_damp", "hfdamp"), ("diffusion", "diff"), ("predelay", "predelay")):
            if settings[k] != CALF_BASE[k]:
                name += f"_{short}{settings[k]:g}"
        source = ("Calf Reverb LV2 " + CALF_URI + " " + " ".join(
            f"{k}={v:g}" for k, v in {**settings, **CALF_FIXED}.items())
            + f" (room {room}), dry 0, amount 1")
        ratio = CALF_WET_OVER_DRY
        info = {"decay_time_s": settings["decay_time"]}
    else:
        t, decay_ms = int(settings["type"]), float(settings["decay_ms"])
        wet, lat = tap_wet_ir(t, decay_ms, sample_rate)
        name = f"tap_{_slug(TAP_TYPES[t])}_{decay_ms:g}ms"
        source = (f"TAP Reverberator LADSPA tap_reverb.so (2142) decay={decay_ms:g} ms "
                  f"type={t} ({TAP_TYPES[t]}), combs/allpasses/bandpass/enhanced stereo on, "
                  "wet 0 dB, dry -70 dB removed")
        ratio = TAP_WET_OVER_DRY
        info = {"decay_ms": decay_ms, "type_name": TAP_TYPES[t]}
    info.update(latency_samples=lat, wet_over_dry=ratio, wet_t30_s=_measure(wet, sample_rate))
    if verify:
        again = (calf_wet_ir(settings, sample_rate)[0] if origin == "calf"
                 else tap_wet_ir(int(settings["type"]), float(settings["decay_ms"]),
                                 sample_rate)[0])
        same = again.shape == wet.shape and bool(np.array_equal(again, wet))
        info["deterministic"] = same
        if not same:
            diff = (float(np.abs(again[: len(wet)] - wet[: len(again)]).max())
                    if again.size and wet.size else math.nan)
            log(f"{name}: two renders differ (max |difference| {diff:.3g})")
    return LibraryIR(name=name, origin=origin, source=source, settings=dict(settings),
                     ir=_send(wet, ratio), sample_rate=sample_rate, wet=wet, info=info)


def library(
    origins: Iterable[str] = ORIGINS,
    *,
    sample_rate: int = 44100,
    data_dir: str | Path | None = None,
    verify: bool = False,
    log: Log | None = None,
) -> Iterator[LibraryIR]:
    """Yield the library's impulse responses, origin by origin (see the module docstring).

    Args:
        origins: which of ``pedalboard``, ``calf``, ``tap``, ``real`` to include.
        sample_rate: rate of the rendered IRs, Hz (real IRs keep their own rate).
        data_dir: the data root holding ``ir/`` (default :func:`vocalmix.training.data.data_root`).
        verify: render every rendered IR (pedalboard and plug-ins) twice and record
            whether the two are bit-identical (``info["deterministic"]``).
        log: where one-line notes go (a skipped source or file, a non-deterministic
            render); default stderr.
    """
    log = log or _stderr
    origins = tuple(origins)
    bad = set(origins) - set(ORIGINS)
    if bad:
        raise ValueError(f"unknown IR origins {sorted(bad)}; known: {', '.join(ORIGINS)}")
    status = plugin_status() if {"calf", "tap"} & set(origins) else {}
    for origin in origins:
        if origin == "pedalboard":
            yield from _pedalboard_items(sample_rate, verify, log)
        elif origin in ("calf", "tap"):
            if status.get(origin):
                log(f"skipping the {origin} IRs: {status[origin]}")
                continue
            grid = (CALF_GRID if origin == "calf"
                    else [{"type": t, "decay_ms": d} for t, d in TAP_GRID])
            for settings in grid:
                try:
                    yield _plugin_item(origin, settings, sample_rate, verify, log)
                except (RuntimeError, OSError) as e:
                    log(f"skipping a {origin} IR ({settings}): {e}")
        else:
            from vocalmix.training.data import data_root

            root = Path(data_dir) if data_dir is not None else data_root()
            paths = real_ir_paths(root)
            if not paths:
                log(f"skipping the real IRs: none found under {root / 'ir'}")
            stems = [p.stem for p in paths]
            for p in paths:
                try:
                    x, sr = read_ir(p)
                except (OSError, ValueError, AudioError) as e:
                    log(f"skipping {p}: {e}")
                    continue
                rel = p.relative_to(root).as_posix()
                # a stem found in two folders is named folder_stem
                name = p.stem if stems.count(p.stem) == 1 else f"{p.parent.name}_{p.stem}"
                yield LibraryIR(name=name, origin="real", source=rel, settings={}, ir=x,
                                sample_rate=sr, info={"channels_in_file": _channels(p)})


def _channels(p: Path) -> int:
    from vocalmix.core.audio import channel_count

    return channel_count(p)
