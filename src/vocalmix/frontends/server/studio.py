"""What the server's jobs do, and the views of a mix that the routes return.

:class:`Studio` ties the storage (:class:`~vocalmix.frontends.server.storage.Store`) to
the job queue (:class:`~vocalmix.frontends.server.jobs.JobQueue`). Each job calls the
library (:mod:`vocalmix.pipeline`, :mod:`vocalmix.core`) and writes its result into the
mix's folder; no signal processing happens here beyond drawing data for the page
(waveform peaks).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vocalmix.core.audio import (
    BIT_DEPTHS,
    DecodeCache,
    file_identity,
    prepare_pair,
    read_audio,
    write_audio,
    write_text,
)
from vocalmix.core.errors import AudioError
from vocalmix.core.measure import sample_peak
from vocalmix.core.params import MixParams, Reason
from vocalmix.core.progress import ProgressEvent, warnings_of
from vocalmix.frontends.server.errors import ApiError, busy, from_exception, not_found
from vocalmix.frontends.server.jobs import JobQueue, QueueFull, Reservation
from vocalmix.frontends.server.storage import REV_RE, Store, own_file
from vocalmix.frontends.server.uploads import FORM_FILES, NAME_LIMIT, REFERENCE_FILES

log = logging.getLogger("vocalmix.server")

STEM_KINDS = ("mix", "vocal", "vocal_dry", "backing")
AUDIO_KINDS = (*STEM_KINDS, "plain")
#: the formats the audio is handed out in: media type and extension (WAV as rendered,
#: the others encoded from it on the first request and kept with the revision)
AUDIO_ENCODINGS = {"wav": ("audio/wav", ".wav"), "flac": ("audio/flac", ".flac"),
                   "mp3": ("audio/mpeg", ".mp3"), "ogg": ("audio/ogg", ".ogg"),
                   "wav16": ("audio/wav", "-16bit.wav"), "flac16": ("audio/flac", "-16bit.flac")}
#: the encodings written at a bit depth of their own, by libsndfile subtype (16-bit PCM:
#: TPDF-dithered, :class:`vocalmix.core.audio.Tpdf16`)
AUDIO_SUBTYPES = {"wav16": BIT_DEPTHS[16], "flac16": BIT_DEPTHS[16]}
PEAK_COLUMNS = 1200
EQ_CURVE_POINTS = 240
DEMO_SAMPLE_RATE = 44100
#: the most notes a mix keeps (the params document's own bound)
MAX_NOTES = 64
#: the share of a new mix's work done when the pipeline starts and when it ends
PIPELINE_SPAN = (0.05, 0.85)


def write_wav(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """24-bit PCM WAV, or 32-bit float when a sample reaches full scale (never clip:
    :func:`~vocalmix.core.audio.write_audio` chooses)."""
    write_audio(path, x, sample_rate, force=True)


#: the waveform columns summarised at a time by :func:`waveform_peaks`
PEAK_GROUP = 64


def waveform_peaks(x: np.ndarray, columns: int = PEAK_COLUMNS) -> dict[str, list[float]]:
    """Per-column peak and RMS of ``|x|`` (the louder channel), for drawing a waveform.

    ``x``: float ``(n, channels)``. Returns ``{"peak": [...], "rms": [...]}``, linear
    full-scale amplitude, ``min(columns, n)`` values each.

    The columns are summarised :data:`PEAK_GROUP` at a time, the same values as over the
    whole signal at once (each column's rows in the same order): a 3-minute stem's
    full-length magnitudes and float64 squares were 96 MB of fresh memory, 0.085-0.2 s per
    waveform against 0.01-0.02 s.
    """
    x = np.asarray(x)
    n = x.shape[0]
    cols = max(1, min(columns, n))
    edges = np.linspace(0, n, cols + 1).astype(np.int64)
    edges[-1] = n
    peak = np.empty(cols, np.float32)
    rms = np.empty(cols, np.float64)
    for g in range(0, cols, PEAK_GROUP):
        e = edges[g : min(g + PEAK_GROUP, cols) + 1]
        # the louder channel's |x| at each sample, a channel at a time (numpy's
        # np.abs(x).max(axis=1) reduces rows of two samples one at a time: 0.30 s against
        # 0.01 s for 3 minutes of stereo)
        a = sample_peak(np.asarray(x[e[0] : e[-1]], dtype=np.float32))
        starts = e[:-1] - e[0]
        peak[g : g + len(starts)] = np.maximum.reduceat(a, starts)
        rms[g : g + len(starts)] = np.add.reduceat(np.square(a, dtype=np.float64), starts)
    rms = np.sqrt(rms / np.diff(edges).astype(np.float64))
    return {"peak": np.round(peak, 4).tolist(), "rms": np.round(rms, 4).tolist()}


#: a revision's file naming what each of its stems was made from (:func:`stem_recipes`)
STEMS_FILE = "stems.json"


def stem_recipes(d: Path, params: MixParams, rendered: Any) -> dict[str, str]:
    """What each stem of a render follows from besides the renderer: a digest of the mix
    folder's stored inputs' identity (:func:`_inputs_signature`), the rate and length, the
    vocal chain as rendered (:func:`vocalmix.core.amount.effective`) for the vocal and
    the dry vocal, the backing's settings for the backing, and vocalmix's version. Two
    renders of one mix with equal recipes made the same samples of that stem (a render of
    given settings is deterministic, and a mix's stems are those a render of its settings
    makes, to the bit)."""
    import hashlib
    import json

    from vocalmix import __version__
    from vocalmix.core.amount import effective

    sig = _inputs_signature(d)
    if sig is None:  # (inputs that cannot be read name no recipe: nothing is reused)
        return {}
    doc = effective(params).to_dict()
    common = {"version": __version__, "sample_rate": rendered.sample_rate,
              "frames": int(rendered.mix.shape[0])}

    def digest(part: dict[str, Any]) -> str:
        text = json.dumps({**common, **part}, sort_keys=True, allow_nan=True)
        return hashlib.sha256(text.encode()).hexdigest()

    vocal = digest({"inputs": sig, "vocal": doc["vocal"]})
    # the backing stem is the stored backing at its gain: the take does not enter it, so
    # that takes over one stored backing file (a link, ``backing_from``) share it
    backing = digest({"backing_input": sig[FORM_FILES.index("backing")],
                      "backing": doc["backing"]})
    return {"vocal": vocal, "vocal_dry": vocal, "backing": backing}


def _inputs_signature(d: Path) -> tuple | None:
    """The identity of mix folder ``d``'s stored inputs (:func:`~vocalmix.core.audio.
    file_identity` of each), ``None`` when one cannot be read."""
    ids = tuple(file_identity(d / f"{k}_in.wav") for k in FORM_FILES)
    return None if None in ids else ids


def _link_stem(src: Path, dst: Path, kind: str) -> bool:
    """Link the stem ``kind`` of revision folder ``src`` into ``dst``, with the encodings
    of it that ``src`` keeps (written whole under the mix's lock, as the link is); whether
    it could (a file system without hard links cannot)."""
    try:
        os.link(src / f"{kind}.wav", dst / f"{kind}.wav")
    except OSError:
        return False
    for fmt, (_media, ext) in AUDIO_ENCODINGS.items():
        if fmt != "wav" and own_file(src / f"{kind}{ext}"):
            with contextlib.suppress(OSError):
                os.link(src / f"{kind}{ext}", dst / f"{kind}{ext}")
    return True


@dataclass(frozen=True)
class Steering:
    """What a request asks of the resolvers besides a params document.

    Attributes:
        targets: target overrides by name (``vocal_to_mix_lu``, ``vocal_lra_lu``,
            ``reverb_decay_s``), in their units.
        mix_lufs: the mix-loudness target, LUFS (``None``: unchanged, unless
            ``mix_lufs_off``).
        mix_lufs_off: turn the mix-loudness target off (the master back to unity gain,
            or as far down as keeps the limiter from taking more than 0.5 LU off it).
        momentary_range_lu: the vocal's momentary-loudness-range target, LU: the
            compressor is resolved to it instead of the LRA target (``None``: unchanged,
            unless ``momentary_range_off``).
        momentary_range_off: turn the momentary-range target off (the compressor follows
            ``targets.vocal_lra_lu`` again).
        amount: how much of the chosen processing to apply, 0-2 (``None``: unchanged).
        locks: the locked paths; ``None`` leaves the document's as they are. A new mix
            adds them to its starting document's; an edit replaces the document's list.
        genre: the song's genre, for the model method (canonical name or ``None``).
        preset: a reverb preset's name.
        vocal_offset_ms: move the take against the backing, ms, or ``"auto"``
            (:func:`vocalmix.pipeline.estimate_params`; ``None``: the document's).
    """

    targets: dict[str, float] = field(default_factory=dict)
    mix_lufs: float | None = None
    mix_lufs_off: bool = False
    momentary_range_lu: float | None = None
    momentary_range_off: bool = False
    amount: float | None = None
    locks: tuple[str, ...] | None = None
    genre: str | None = None
    preset: str | None = None
    vocal_offset_ms: float | str | None = None

    def resolves(self) -> bool:
        """Whether it asks for a re-resolve (anything but nothing)."""
        return bool(self.targets or self.mix_lufs is not None or self.mix_lufs_off
                    or self.momentary_range_lu is not None or self.momentary_range_off
                    or self.amount is not None or self.locks is not None or self.preset
                    or self.vocal_offset_ms is not None)

    def apply(self, base: MixParams, *, add_locks: bool) -> MixParams:
        """``base`` with the locks (added or replacing), the mix-loudness target off if
        asked and the momentary-range target set or off (a value set is the user's
        reason); the rest goes to :func:`vocalmix.pipeline.mix` (:meth:`kwargs`)."""
        if self.locks is not None:
            locks = (*base.locks, *self.locks) if add_locks else self.locks
            base = replace(base, locks=tuple(dict.fromkeys(locks)))
        if self.mix_lufs_off:
            base = replace(base, targets=replace(base.targets, mix_lufs=None),
                           reasons=tuple(r for r in base.reasons
                                         if r.path not in ("targets.mix_lufs",
                                                           "master.gain_db")))
        if self.momentary_range_lu is not None or self.momentary_range_off:
            path = "targets.vocal_momentary_range_lu"
            v = self.momentary_range_lu
            base = replace(base, targets=replace(base.targets, vocal_momentary_range_lu=v),
                           reasons=tuple(r for r in base.reasons if r.path != path))
            if v is not None:
                base = base.with_reasons(Reason(path, "user", f"given by the user: {v:g} LU"))
        return base

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`vocalmix.pipeline.mix` it sets."""
        return {**self.targets, "mix_lufs": self.mix_lufs, "amount": self.amount,
                "genre": self.genre, "reverb_preset": self.preset,
                "vocal_offset_ms": self.vocal_offset_ms}


def _leaves(obj: Any, path: str, out: dict[str, Any]) -> dict[str, Any]:
    """The settings of a part of a params document by path (a list is one value)."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        where = f"{path}.{f.name}"
        if is_dataclass(v):
            _leaves(v, where, out)
        else:
            out[where] = v
    return out


def hand_reasons(before: MixParams, after: MixParams) -> MixParams:
    """``after`` with a reason of source ``user`` for each setting that differs from
    ``before`` (an edit rendered exactly), unless the client changed the reasons itself
    (then they are its own)."""
    if after.reasons != before.reasons:
        return after
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for part in ("vocal", "backing", "master"):
        _leaves(getattr(before, part), part, old)
        _leaves(getattr(after, part), part, new)
    reasons = []
    for path, v in new.items():
        if old.get(path) == v:
            continue
        if isinstance(v, tuple):
            text = "edited by hand"
        elif isinstance(v, float):
            text = f"set by hand: {v:g}"
        else:
            text = f"set by hand: {v}"
        reasons.append(Reason(path, "user", text))
    return after.with_reasons(*reasons) if reasons else after


def moved_entries(before: MixParams, after: MixParams) -> list[dict[str, Any]]:
    """What a re-resolve moved (:func:`vocalmix.pipeline.moved_settings`), as
    ``{"path", "before", "after", "text"}`` entries."""
    from vocalmix.pipeline import moved_settings

    a = _leaves(before.vocal, "vocal", _leaves(before.master, "master", {}))
    b = _leaves(after.vocal, "vocal", _leaves(after.master, "master", {}))
    out = []
    for line in moved_settings(before, after):
        path = line.split(":", 1)[0]
        out.append({"path": path, "before": a.get(path), "after": b.get(path), "text": line})
    return out


def _drop_uploads(d: Path) -> None:
    """Remove the raw uploads of the mix folder ``d`` (the inputs are kept as decoded)."""
    for k in (*FORM_FILES, *REFERENCE_FILES):
        with contextlib.suppress(OSError):
            (d / f"upload_{k}").unlink()


def upload_label(kind: str, filename: str | None) -> str:
    """``vocal take.wav``: how messages name an upload (printable, at most
    :data:`NAME_LIMIT` characters of its name)."""
    name = Path((filename or "").replace("\\", "/")).name
    name = "".join(c if c.isprintable() else "?" for c in name)[:NAME_LIMIT]
    return f"{kind} {name}".strip()


class Studio:
    """The server's work: making, editing and deriving mixes, as queued jobs.

    Args:
        store: the mix folders.
        jobs: the queue every heavy job goes through.
        max_decoded_bytes: largest decoded upload, bytes of float32 samples (see
            :func:`vocalmix.core.audio.read_audio`).
    """

    def __init__(self, store: Store, jobs: JobQueue, *, max_decoded_bytes: int,
                 keep_edits_bytes: int | None = None) -> None:
        from vocalmix.core.render import KEEP_MAX_BYTES

        self.store = store
        self.jobs = jobs
        self.max_decoded_bytes = int(max_decoded_bytes)
        #: the most memory the mix edited last keeps of each of its inputs, its vocal
        #: parts and its compressor's resolution for the next edit, bytes (0: nothing)
        self.keep_edits_bytes = int(KEEP_MAX_BYTES if keep_edits_bytes is None
                                    else keep_edits_bytes)
        #: the decoded inputs of the mix edited last (:meth:`inputs`)
        self._held: tuple[tuple, np.ndarray, np.ndarray, int] | None = None
        #: guards what is kept for the next job (the held inputs, the stored backing's and
        #: the backing stem's records below): each is read or replaced whole under it
        self._held_lock = threading.Lock()
        #: the backing upload decoded last, for the next take over it (``backing_from``
        #: links the same file into each new mix's folder)
        self._backing = DecodeCache(self.keep_edits_bytes)
        #: a mix's stored backing input written from that decode's very samples (a weak
        #: reference to them: a decode replaced is not held), with the file's identity
        #: (:meth:`_store_backing` links it)
        self._stored_backing: tuple[weakref.ref, Path, tuple[int, int, int, int]] | None = None
        #: the backing stem saved last: its recipe (:func:`stem_recipes`), revision folder,
        #: file identity and waveform, for the next mix whose backing stem has that recipe
        #: (a take over the same stored backing: :meth:`_shared_backing_stem`)
        self._backing_stem: tuple[str, Path, tuple, Any] | None = None

    # --- views ---------------------------------------------------------------------------
    @staticmethod
    def links(mid: str) -> dict[str, str]:
        base = f"/api/mixes/{mid}"
        out = {k: f"{base}/audio/{k}" for k in AUDIO_KINDS}
        out.update(self=base, params_file=f"{base}/params.json", edit=f"{base}/params",
                   analysis=f"{base}/analysis", peaks=f"{base}/peaks")
        return out

    def view(self, mid: str, d: Path) -> dict[str, Any]:
        """What ``GET /api/mixes/{id}`` answers."""
        meta = self.store.meta(d)
        status = meta.get("status")
        status = status if status in ("mixing", "done", "failed") else "failed"
        rev = int(meta.get("revision") or 0)
        params = (self.store.read_json(self.store.rev_dir(d, rev), "params.json")
                  if status == "done" else None)
        live = self.store.progress(mid)
        if status == "done":
            prog = {"stage": "done", "fraction": 1.0, "message": "done"}
        elif live is not None:
            prog = live
        else:
            stage = str(meta.get("stage") or status)
            prog = {"stage": stage, "fraction": 0.0, "message": stage}
        moved = meta.get("moved") if status == "done" else None
        notes = [str(n) for n in list(meta.get("notes") or [])[:MAX_NOTES]]
        return {"id": mid, "status": status, "revision": rev, "progress": prog,
                "params": params, "notes": notes, "warnings": warnings_of(notes),
                "moved": list(moved)[:MAX_NOTES] if isinstance(moved, list) else [],
                "error": meta.get("error"), "name": meta.get("name", "vocalmix"),
                "sample_rate": meta.get("sample_rate"), "duration_s": meta.get("duration_s"),
                "links": self.links(mid)}

    def require_done(self, d: Path) -> dict[str, Any]:
        """The meta of a finished mix; 409 while it is being made or if it failed."""
        meta = self.store.meta(d)
        if meta.get("status") == "mixing":
            raise ApiError(409, "the mix is still being made: poll GET /api/mixes/{id} "
                                "until its status is done", code="mix.not_ready")
        if meta.get("status") != "done":
            err = (meta.get("error") or {}).get("detail", "unknown reason")
            raise ApiError(409, f"this mix failed ({err}); upload the files again",
                           code="mix.failed")
        return meta

    def current_params(self, d: Path, meta: dict[str, Any]) -> MixParams:
        rd = self.store.rev_dir(d, int(meta.get("revision") or 0))
        return MixParams.from_dict(self.store.read_json(rd, "params.json"))

    # --- the queue -------------------------------------------------------------------------
    def submit(self, mid: str, fn: Callable[[], Any], *,
               reservation: Reservation | None = None) -> Future:
        """Queue ``fn`` as a job of mix ``mid`` (after any job of the same mix); the mix
        is pinned (not expired, not recovered) until the job ends. 503 when full."""
        self.store.pin(mid)
        try:
            fut = (reservation.submit(fn, key=mid) if reservation is not None
                   else self.jobs.submit(fn, key=mid))
        except QueueFull as e:
            self.store.unpin(mid)
            raise busy(e.queued) from None
        fut.add_done_callback(lambda _f: self.store.unpin(mid))
        return fut

    def reserve(self) -> Reservation:
        """A place in the queue for a job to come; 503 when full."""
        try:
            return self.jobs.reserve()
        except QueueFull as e:
            raise busy(e.queued) from None

    def _progress(self, mid: str, span: tuple[float, float] = PIPELINE_SPAN
                  ) -> Callable[[ProgressEvent], None]:
        lo, hi = span

        def report(ev: ProgressEvent) -> None:
            f = None if ev.fraction is None else lo + (hi - lo) * ev.fraction
            self.store.set_progress(mid, ev.stage, f, ev.message)

        return report

    # --- making a mix --------------------------------------------------------------------
    def _recording_failure(self, mid: str, d: Path, body: Callable[[], dict[str, Any]]
                           ) -> dict[str, Any]:
        """Run the job of a new mix; a failure is written to its meta (for GET) and
        raised as an :class:`ApiError`."""
        try:
            return body()
        except Exception as e:
            err = from_exception(e)
            if err.status >= 500:
                log.error("mix %s failed", mid, exc_info=e)
            _drop_uploads(d)  # (up to the upload limit each, kept to the expiry for nothing)
            with contextlib.suppress(Exception):
                if d.is_dir():
                    self.store.write_meta(d, status="failed", stage="failed", job=None,
                                          error={"status": err.status, "code": err.code,
                                                 "detail": err.detail})
            self.store.clear_progress(mid)
            raise err from None

    def make_mix(self, mid: str, d: Path, *, filenames: dict[str, str], fold: str,
                 method: str, base: MixParams | None, steering: Steering,
                 backing_from: str | None = None) -> dict[str, Any]:
        """The job of ``POST /api/mixes``: decode the uploads (and the reference's
        stems, at the mix's rate), mix, save. The backing's raw upload is kept in the
        folder (:meth:`~vocalmix.frontends.server.storage.Store.keep_backing`) for later
        mixes to use; ``backing_from``: the mix it came from, if it is such a one."""

        def body() -> dict[str, Any]:
            with self.store.lock(mid):
                if not d.is_dir():
                    raise not_found(mid)
                self.store.write_meta(d, stage="decode")
                self.store.set_progress(mid, "decode", 0.02, "decoding the uploads")
                v, b, sr, notes = self.decode_uploads(d, filenames, fold)
                if backing_from is not None:
                    notes = [f"backing: the one uploaded with mix {backing_from} "
                             f"({upload_label('', filenames.get('backing')).strip()})",
                             *notes]
                reference = self.decode_reference(d, filenames, fold, sr)
                self.store.keep_backing(d, filenames.get("backing") or "")
                self.store_inputs(d, v, b, sr)
                label = ("the " + upload_label("reference", filenames.get(REFERENCE_FILES[0]))
                         if reference is not None else "")
                return self._mix_and_save(mid, d, v, b, sr, method=method, base=base,
                                          steering=steering, notes=notes,
                                          reference=reference, reference_label=label)

        return self._recording_failure(mid, d, body)

    def make_demo(self, mid: str, d: Path, *, duration_s: float, seed: int,
                  method: str) -> dict[str, Any]:
        """The job of ``POST /api/demo``: synthesise the song, mix, save."""

        def body() -> dict[str, Any]:
            from vocalmix.synth import synthesize_song

            with self.store.lock(mid):
                if not d.is_dir():
                    raise not_found(mid)
                self.store.set_progress(mid, "synthesise", 0.02, "synthesising the demo song")
                v, b = synthesize_song(sample_rate=DEMO_SAMPLE_RATE, duration_s=duration_s,
                                       seed=seed)
                self.store_inputs(d, v, b, DEMO_SAMPLE_RATE)
                return self._mix_and_save(mid, d, v, b, DEMO_SAMPLE_RATE, method=method,
                                          base=None, steering=Steering(),
                                          notes=["the synthesised demo song"])

        return self._recording_failure(mid, d, body)

    def decode_uploads(self, d: Path, filenames: dict[str, str], fold: str
                       ) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
        """Decode and pair the two uploads (limits checked from their headers first)."""
        audio = self._decode_two(d, fold, FORM_FILES,
                                 lambda k: upload_label(k, filenames.get(k)))
        return prepare_pair(audio[0], audio[1], max_decoded_bytes=self.max_decoded_bytes)

    def _decode_two(self, d: Path, fold: str, kinds: tuple[str, ...],
                    label: Callable[[str], str]) -> tuple[Any, Any]:
        """The two uploads ``kinds`` (named in messages by ``label``) decoded on two
        threads (libsndfile and FFmpeg let go of the GIL: two 3-minute MP3s 0.23 -> 0.12
        s), the first one's error first when both fail."""
        from vocalmix.core.parallel import beside

        def one(k: str) -> Callable[[], Any]:
            # (a new mix's backing through the kept decode: takes over one instrumental)
            read = (self._backing.read if kinds == FORM_FILES and k == "backing"
                    else read_audio)
            return lambda: read(d / f"upload_{k}", label=label(k), fold=fold,
                                max_decoded_bytes=self.max_decoded_bytes)

        first, second = kinds
        b, a = beside(one(second), one(first))
        return a, b

    def decode_reference(self, d: Path, filenames: dict[str, str], fold: str, sr: int
                         ) -> tuple[np.ndarray, np.ndarray] | None:
        """The reference mix's stems at the mix's rate ``sr`` (Hz), one length, or
        ``None`` when none was sent (limits checked from their headers first, and again
        at the mix's rate)."""
        if not all(k in filenames for k in REFERENCE_FILES):
            return None
        audio = self._decode_two(d, fold, REFERENCE_FILES,
                                 lambda k: upload_label(k.replace("_", " "), filenames.get(k)))
        # (a reference is a human mix: its vocal stem is the engineer's, channels and all)
        rv, rb, _sr, _notes = prepare_pair(audio[0], audio[1], sample_rate=sr,
                                           max_decoded_bytes=self.max_decoded_bytes,
                                           vocal_channels=False)
        return rv, rb

    def store_inputs(self, d: Path, v: np.ndarray, b: np.ndarray, sr: int) -> None:
        """Write a new mix's inputs (32-bit float WAV); float32 stereo ones, which read
        back as the same samples, are kept as the mix's decoded inputs (:meth:`inputs`)
        and made read-only."""
        write_audio(d / "vocal_in.wav", v, sr, force=True, subtype="FLOAT")
        self._store_backing(d / "backing_in.wav", b, sr)
        _drop_uploads(d)
        self.store.write_meta(d, sample_rate=sr, duration_s=v.shape[0] / sr)
        if all(a.dtype == np.float32 and a.ndim == 2 and a.shape[1] == 2 for a in (v, b)):
            self._hold(d, v, b, sr)

    def _store_backing(self, out: Path, b: np.ndarray, sr: int) -> None:
        """Write the backing input ``b`` to ``out``, or hard-link the stored input of an
        earlier mix when both were written from the backing decode kept for
        ``backing_from`` (:attr:`_backing`), unchanged by the pairing (same rate, no
        offset taken out, no padding): the same file, not written again."""
        kept = self._backing.last
        mine = kept is not None and b is kept.samples and kept.sample_rate == sr
        with self._held_lock:
            stored = self._stored_backing
        if mine and kept is not None and stored is not None and stored[0]() is kept.samples:
            _samples, src, ident = stored
            if file_identity(src) == ident:
                try:
                    os.link(src, out)
                    return
                except OSError:
                    pass  # (no hard links here, or the file just went: written instead)
        write_audio(out, b, sr, force=True, subtype="FLOAT")
        written = file_identity(out)
        if mine and kept is not None and written is not None:
            with self._held_lock:
                self._stored_backing = (weakref.ref(kept.samples), out, written)

    def inputs(self, d: Path) -> tuple[np.ndarray, np.ndarray, int]:
        """The stored inputs of a mix (404 if they are gone), read-only.

        Those of the mix asked for last are kept in memory (up to :attr:`keep_edits_bytes`)
        while its files are unchanged: an edit then neither decodes them again nor hashes
        them again for the analyses and the vocal parts it reuses
        (:func:`vocalmix.core.render.remembered_parts`)."""
        sig = _inputs_signature(d)
        with self._held_lock:
            held = self._held
        if sig is not None and held is not None and held[0] == (d.name, sig):
            return held[1], held[2], held[3]
        try:
            v, b = (read_audio(d / f"{k}_in.wav", label=f"stored {k}",
                               max_decoded_bytes=self.max_decoded_bytes)
                    for k in FORM_FILES)
        except AudioError as e:  # the folder vanished or was tampered with
            raise ApiError(404, f"the inputs of mix {d.name!r} are gone ({e})",
                           code="mix.inputs_gone") from None
        return self._hold(d, v.samples, b.samples, v.sample_rate)

    def _hold(self, d: Path, v: np.ndarray, b: np.ndarray, sr: int
              ) -> tuple[np.ndarray, np.ndarray, int]:
        """Make the decoded inputs ``v`` and ``b`` of mix folder ``d`` read-only and keep
        them for :meth:`inputs` while its files are those of now (and they are at most
        :attr:`keep_edits_bytes`)."""
        for a in (v, b):
            a.flags.writeable = False
        sig = _inputs_signature(d)
        with self._held_lock:
            self._held = (((d.name, sig), v, b, sr)
                          if sig is not None and v.nbytes + b.nbytes <= self.keep_edits_bytes
                          else None)
        return v, b, sr

    def _keeps(self, vocal: np.ndarray) -> bool:
        """Whether a render or resolve of the take ``vocal`` keeps its vocal parts or its
        compressor's resolution for the next edit: two signals of its size within
        :attr:`keep_edits_bytes` (the library keeps at most 256 MB of each:
        :data:`vocalmix.core.render.KEEP_MAX_BYTES`)."""
        return 0 < 2 * vocal.nbytes <= self.keep_edits_bytes

    def forget_inputs(self, mid: str) -> None:
        """Drop the kept inputs (:meth:`inputs`) when they are mix ``mid``'s (deleted or
        expired)."""
        with self._held_lock:
            if self._held is not None and self._held[0][0] == mid:
                self._held = None
                from vocalmix.core.render import forget_parts
                from vocalmix.pipeline import forget_resolutions

                forget_parts()  # (what its last edits remembered, most likely)
                forget_resolutions()

    def _mix_and_save(self, mid: str, d: Path, v: np.ndarray, b: np.ndarray, sr: int, *,
                      method: str, base: MixParams | None, steering: Steering,
                      notes: list[str], reference: tuple[np.ndarray, np.ndarray] | None = None,
                      reference_label: str = "") -> dict[str, Any]:
        from vocalmix.pipeline import mix

        if base is not None:
            base = steering.apply(base, add_locks=True)
        locks = steering.locks if base is None and steering.locks else ()
        params, rendered, est = mix(v, b, sr, method=method, base=base, locks=locks,
                                    reference=reference,
                                    reference_label=reference_label or "the reference",
                                    progress=self._progress(mid), remember=self._keeps(v),
                                    **steering.kwargs())
        moved = moved_entries(base, params) if base is not None else []
        return self.save(mid, d, params, rendered, notes + list(est.notes), moved)

    # --- editing a mix --------------------------------------------------------------------
    def edit(self, mid: str, *, given: MixParams | None, steering: Steering,
             resolve: bool) -> dict[str, Any]:
        """The job of ``PUT /api/mixes/{id}/params``: render ``given`` exactly, or
        re-resolve (new targets, amount, locks, mix loudness, a preset, ``resolve``)
        keeping the locked settings, and render; save as the next revision with what
        the re-resolve moved."""
        from vocalmix.core.resolve import sync_derived, sync_notes
        from vocalmix.pipeline import mix, render_params

        with self.store.locked(mid) as d:
            meta = self.require_done(d)
            v, b, sr = self.inputs(d)
            self.store.write_meta(d, job={"kind": "edit", "started": time.time()})
            try:
                current = self.current_params(d, meta)
                moved: list[dict[str, Any]] = []
                if given is not None and not (steering.resolves() or resolve):
                    new = sync_derived(hand_reasons(current, given), sr)
                    params, rendered = render_params(v, b, sr, new,
                                                     remember_parts=self._keeps(v))
                    notes = ["rendered the edited settings", *sync_notes(given, new)]
                else:
                    base = steering.apply(given if given is not None else current,
                                          add_locks=False)
                    # (the compressor's resolution is kept for the next retarget)
                    params, rendered, est = mix(v, b, sr, base=base,
                                                remember=self._keeps(v), **steering.kwargs())
                    notes = list(est.notes)
                    moved = moved_entries(base, params)
                return self.save(mid, d, params, rendered, notes, moved)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.store.write_meta(d, job=None)
                raise

    # --- saving a render -------------------------------------------------------------------
    def save(self, mid: str, d: Path, params: MixParams, rendered: Any,
             notes: list[str], moved: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Write a render as the next revision folder, then make it current (meta, with
        what a re-resolve ``moved``), then drop revisions older than the one before;
        returns the mix's view."""
        self.store.set_progress(mid, "write", PIPELINE_SPAN[1], "writing the audio files")
        rev = int(self.store.meta(d).get("revision") or 0) + 1
        rd = self.store.rev_dir(d, rev)
        if rd.exists():  # left by an interrupted render
            shutil.rmtree(rd)
        os.mkdir(rd, 0o700)
        sr = rendered.sample_rate
        peaks: dict[str, Any] = {"sample_rate": sr, "duration_s": rendered.mix.shape[0] / sr,
                                 "columns": 0}
        recipes = stem_recipes(d, params, rendered)
        kept = self._unchanged_stems(d, rev - 1, recipes)
        # a take over the stored backing of another mix: that mix's backing stem, linked
        shared = None if "backing" in kept else self._shared_backing_stem(recipes)
        if shared is not None:
            kept["backing"] = shared[1]
        # the dry vocal of a chain with no sends holds the vocal's samples: the same file
        alias = ({"vocal_dry": "vocal"} if not getattr(rendered, "sends", True)
                 and "vocal_dry" not in kept else {})
        # the stems the last revision has already, made from the same inputs and settings,
        # are linked from it with their waveforms (and encodings): a gain edit writes the
        # mix and the vocal only, a master edit the mix only. The other files are written
        # on two threads (libsndfile lets go of the GIL) while this one reads the
        # waveforms: a 3-minute song's save 0.61 -> 0.38 s. (Writing the stems while the
        # limiter still makes the mix gained nothing more: the master stage keeps both
        # cores busy.)
        with ThreadPoolExecutor(2, thread_name_prefix="vocalmix-save") as pool:
            written = {kind: pool.submit(write_wav, rd / f"{kind}.wav", getattr(rendered, kind),
                                         sr)
                       for kind in STEM_KINDS if kind not in kept and kind not in alias}
            for kind in STEM_KINDS:
                if kind != "vocal_dry":
                    peaks[kind] = (kept[kind] if kind in kept
                                   else waveform_peaks(getattr(rendered, kind)))
                    peaks["columns"] = len(peaks[kind]["peak"])
            for w in written.values():
                w.result()  # (the first failure raised, once all have ended)
        for kind in kept:
            src = (shared[0] if shared is not None and kind == "backing"
                   else self.store.rev_dir(d, rev - 1))
            if not _link_stem(src, rd, kind):
                write_wav(rd / f"{kind}.wav", getattr(rendered, kind), sr)
        self._remember_backing_stem(recipes, rd, peaks.get("backing"))
        for kind, same in alias.items():
            try:
                os.link(rd / f"{same}.wav", rd / f"{kind}.wav")
            except OSError:
                write_wav(rd / f"{kind}.wav", getattr(rendered, kind), sr)
        write_text(rd / "peaks.json", json_text(peaks), force=True)
        write_text(rd / STEMS_FILE, json_text(recipes), force=True)
        write_text(rd / "params.json", params.to_json(), force=True)
        self.store.write_meta(d, status="done", stage="done", error=None, job=None,
                              notes=notes[:MAX_NOTES], moved=json_safe(moved or []),
                              revision=rev)
        for p in d.iterdir():
            m = REV_RE.fullmatch(p.name)
            if m and int(m.group(1)) < rev - 1 and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
        os.utime(d)  # the time to live counts from the last change
        self.store.clear_progress(mid)
        return self.view(mid, d)

    def _shared_backing_stem(self, recipes: dict[str, str]) -> tuple[Path, Any] | None:
        """``(revision folder, waveform)`` of the backing stem saved last when it has the
        recipe of this render's (the same stored backing file, rate, length and backing
        settings) and its file is still the one saved (not replaced, not removed with
        its mix or revision); else ``None``."""
        with self._held_lock:
            last = self._backing_stem
        if last is None or not recipes or last[0] != recipes.get("backing"):
            return None
        _recipe, rd, ident, wave = last
        if not own_file(rd / "backing.wav") or file_identity(rd / "backing.wav") != ident:
            return None
        return rd, wave

    def _remember_backing_stem(self, recipes: dict[str, str], rd: Path, wave: Any) -> None:
        """Remember revision folder ``rd``'s backing stem for :meth:`_shared_backing_stem`."""
        ident = file_identity(rd / "backing.wav")
        if not recipes or ident is None or not isinstance(wave, dict):
            return
        with self._held_lock:
            self._backing_stem = (recipes["backing"], rd, ident, wave)

    def _unchanged_stems(self, d: Path, prev: int, recipes: dict[str, str]
                         ) -> dict[str, Any]:
        """The stems of revision ``prev`` made from the same recipe as this render's
        (:func:`stem_recipes`), each with its waveform (``None`` for ``vocal_dry``, which
        has none): ``{}`` when there is no such revision or it cannot be read."""
        if prev < 1:
            return {}
        pd = self.store.rev_dir(d, prev)
        try:
            before = self.store.read_json(pd, STEMS_FILE)
            old_peaks = self.store.read_json(pd, "peaks.json")
        except (ApiError, OSError):
            return {}
        if not isinstance(before, dict) or not isinstance(old_peaks, dict):
            return {}
        out: dict[str, Any] = {}
        for kind, recipe in recipes.items():
            wave = old_peaks.get(kind) if kind != "vocal_dry" else None
            if (before.get(kind) == recipe and own_file(pd / f"{kind}.wav")
                    and (kind == "vocal_dry" or isinstance(wave, dict))):
                out[kind] = wave
        return out

    # --- derived views ----------------------------------------------------------------------
    def cached_plain(self, d: Path, meta: dict[str, Any]) -> Path | None:
        return self._kept(d, meta, "plain.wav")

    def _kept(self, d: Path, meta: dict[str, Any], name: str) -> Path | None:
        """The current revision's file ``name`` when it is there (made on request)."""
        p = self.store.rev_dir(d, int(meta.get("revision") or 0)) / name
        return p if p.is_file() and not p.is_symlink() else None

    def make_plain(self, mid: str) -> Path:
        """The job behind ``GET .../audio/plain``: the loudness-matched plain sum of the
        inputs (:func:`vocalmix.pipeline.plain_sum`), cached in the revision's folder."""
        with self.store.locked(mid) as d:
            return self._plain(d, self.require_done(d))

    def _plain(self, d: Path, meta: dict[str, Any]) -> Path:
        """:meth:`make_plain` of the mix folder ``d``, whose lock the caller holds."""
        from vocalmix.pipeline import plain_sum

        cached = self.cached_plain(d, meta)
        if cached is not None:
            return cached
        params = self.current_params(d, meta)
        v, b, sr = self.inputs(d)
        p = plain_sum(v, b, sr, params)
        out = self.store.rev_dir(d, int(meta.get("revision") or 0)) / "plain.wav"
        write_wav(out, p.samples, sr)
        return out

    def cached_encoded(self, d: Path, meta: dict[str, Any], kind: str, fmt: str
                       ) -> Path | None:
        """The revision's ``kind`` audio in the format ``fmt`` (:data:`AUDIO_ENCODINGS`)
        when it exists already."""
        if fmt == "wav" and kind != "plain":  # rendered with the revision
            return self.store.rev_dir(d, int(meta.get("revision") or 0)) / f"{kind}.wav"
        return self._kept(d, meta, kind + AUDIO_ENCODINGS[fmt][1])

    def make_encoded(self, mid: str, kind: str, fmt: str) -> Path:
        """The job behind ``GET .../audio/{kind}?format=fmt``: the WAV (for ``plain``
        made first) encoded as ``fmt``, kept in the revision's folder. 422 when the
        format cannot hold the mix's rate (MP3 above 48 kHz)."""
        from vocalmix.core.audio import format_holds, format_rate_problem, transcode

        with self.store.locked(mid) as d:
            meta = self.require_done(d)
            cached = self.cached_encoded(d, meta, kind, fmt)
            if cached is not None:
                return cached
            rd = self.store.rev_dir(d, int(meta.get("revision") or 0))
            src = self._plain(d, meta) if kind == "plain" else rd / f"{kind}.wav"
            sr = int(self.store.read_json(rd, "peaks.json").get("sample_rate") or 0)
            out = rd / (kind + AUDIO_ENCODINGS[fmt][1])
            if sr and not format_holds(out, sr):
                raise ApiError(422, f"{format_rate_problem(out, sr)}: ask for format=flac "
                                    "or format=wav", code="request.format")
            return transcode(src, out, force=True, subtype=AUDIO_SUBTYPES.get(fmt))

    def masking(self, mid: str) -> dict[str, Any]:
        """The job behind ``GET .../analysis`` when not cached: the masking analysis of
        the inputs (:func:`vocalmix.estimators.masking.analyse_masking`)."""
        from vocalmix.estimators.masking import analyse_masking

        with self.store.locked(mid) as d:
            self.require_done(d)
            with contextlib.suppress(ApiError, OSError):
                return dict(self.store.read_json(d, "analysis.json"))
            v, b, sr = self.inputs(d)
            m = analyse_masking(v, b, sr)
            a = {"sample_rate": sr, "band_edges_hz": m.band_edges_hz.tolist(),
                 "band_centres_hz": m.band_centres_hz.tolist(), "vocal_db": m.vocal_db.tolist(),
                 "backing_db": m.backing_db.tolist(), "masking_db": m.masking_db.tolist(),
                 "weight": m.weight.tolist(), "proposed_gain_db": m.gain_db.tolist(),
                 "suggested_highpass_hz": m.highpass_hz}
            write_text(d / "analysis.json", json_text(a), force=True)
            return a

    @staticmethod
    def analysis(masking: dict[str, Any], params: MixParams) -> dict[str, Any]:
        """The masking analysis with the vocal EQ's response
        (:func:`vocalmix.core.dsp.eq_response_db`) and the vocal's band levels after it."""
        from vocalmix.core.dsp import eq_band_gain_db, eq_response_db, max_filter_hz

        sr = int(masking["sample_rate"])
        chain = params.vocal
        freqs = np.geomspace(20.0, min(20000.0, max_filter_hz(sr)), EQ_CURVE_POINTS)
        curve = eq_response_db(chain, freqs, sr)
        gains = eq_band_gain_db(chain, np.asarray(masking["band_edges_hz"]), sr)
        after = [round(float(lvl + g), 3) for lvl, g in zip(masking["vocal_db"], gains,
                                                            strict=True)]
        hp = chain.highpass
        return {**masking, "vocal_after_eq_db": after, "eq_freqs_hz": freqs.tolist(),
                "eq_response_db": np.round(curve, 3).tolist(),
                "eq_bands": [{"kind": e.kind, "freq_hz": e.freq_hz, "gain_db": e.gain_db,
                              "q": e.q, "source": e.source} for e in chain.eq_bands],
                "highpass_hz": hp.cutoff_frequency_hz if hp.enabled else None}


def json_safe(x: Any) -> Any:
    """``x`` with non-finite numbers as ``None`` and tuples as lists (JSON-ready)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def json_text(obj: Any) -> str:
    """Compact JSON with non-finite numbers written as null (never ``NaN``)."""
    import json

    return json.dumps(json_safe(obj), allow_nan=False)


__all__ = ["AUDIO_KINDS", "STEM_KINDS", "Steering", "Studio", "hand_reasons", "moved_entries",
           "waveform_peaks", "write_wav"]
