"""Batch mode: mix a catalogue of (vocal, backing) pairs, resumably, on a local process
pool or on Ray Data.

The unit of work is :func:`mix_job`: one manifest row in, one result row out. It is pure
per song (what it writes depends only on the row, the settings and the code version),
never raises for a bad song (a missing, undecodable or silent file becomes a ``failed``
row with the error's stable code as ``error_code`` and its message as ``error``), and
makes exactly the library calls of ``vocalmix mix``, so a batch mix is bit-identical to
a single one.

**Manifest** (CSV or Parquet; column names are case-insensitive):

========================  ===========================================================
``id`` (required)         unique name of the row; the outputs are named after it
``vocal``, ``backing``    audio files (WAV, FLAC, OGG, MP3, AIFF, M4A, WebM...), absolute or
                          relative to the manifest's folder
``method``                ``baseline`` or ``model`` (default: the batch's ``--method``)
``vocal_to_mix_lu``       target overrides, as ``vocalmix mix --vocal-to-mix-lu`` etc.
``vocal_lra_lu``
``reverb_decay_s``
``vocal_offset_ms``       the take moved against the backing, ms, or ``auto``
                          (``--vocal-offset-ms``: negative sets right a take recorded late)
``reverb_preset``         a named reverb preset (``vocalmix mix --reverb-preset``)
``genre``                 the song's genre, for the level model (``vocalmix mix --genre``)
``params_in``             a params document to start from (``vocalmix mix --params-in``)
``fold``                  ``error``, ``mean`` or ``first2`` for files of > 2 channels
========================  ===========================================================

An empty cell means "not set". Other columns are ignored (the driver lists them).

**A folder of pairs** is read as a manifest by naming convention: ``<id>.vocal.<ext>``
beside ``<id>.backing.<ext>``, or a sub-folder ``<id>/`` holding ``vocal.<ext>`` and
``backing.<ext>``. The manifest it makes is written to ``OUT/manifest.csv``.

**Outputs** under the output folder ``OUT``: ``mix/<name>.wav`` (24-bit, as ``vocalmix
mix``) and ``params/<name>.json`` where ``<name>`` is :func:`safe_name` of the id;
``results.jsonl`` (the append-only journal: one JSON line per finished row, written as
each row finishes), and ``results.parquet`` (with pyarrow) and ``results.csv``: the
table, one row per manifest row in manifest order, rewritten atomically from the journal
every few seconds and at the end. A run killed at any point loses no finished row; the
next run reads the journal and skips every row whose inputs (content SHA-256), settings
and code version hash to the ``job_key`` of its finished result.

**Inputs are never overwritten.** The manifest, the output folder and every row's
planned outputs are checked before anything is made in ``OUT``: a manifest that is one of
the results files is refused, and a row whose outputs would replace a file that another
row reads (say, a second pass that reads ``OUT/mix/a.wav`` as a backing while its row
``a`` would write it again) is not mixed: it fails with ``output.is_input``, and the rows
that read the file get it intact (:func:`plan_conflicts`). The local pool's workers end
with the driver, even one killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import re
import stat
import threading
import time
import unicodedata
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from vocalmix._version import __version__
from vocalmix.core.errors import DataError, DependencyError, OutputError, VocalmixError
from vocalmix.core.progress import warnings_of
from vocalmix.core.threads import worker_env

#: Bumped when the outputs' layout or the result columns change (part of every job key).
BATCH_FORMAT = 1
REQUIRED_COLUMNS = ("id", "vocal", "backing")
SETTING_COLUMNS = ("method", "vocal_to_mix_lu", "vocal_lra_lu", "reverb_decay_s",
                   "vocal_offset_ms", "reverb_preset", "genre", "params_in", "fold")
#: the number columns (the pipeline's keyword arguments of those names)
TARGET_COLUMNS = ("vocal_to_mix_lu", "vocal_lra_lu", "reverb_decay_s", "vocal_offset_ms")
#: the audio files a folder of pairs is read for, the preferred first when a pair
#: has two formats of one file (lossless first; then what phones and browsers record)
AUDIO_EXT = (".wav", ".flac", ".aiff", ".aif", ".ogg", ".opus", ".mp3", ".m4a", ".mp4",
             ".webm", ".mka", ".aac", ".3gp", ".amr")
JOURNAL = "results.jsonl"
RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
FOLDER_MANIFEST = "manifest.csv"
LOCK = ".batch.lock"

#: Result columns and their types (``str``, ``float``, ``int``); all but ``id``,
#: ``status``, ``job_key`` and ``code_version`` may be empty.
RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "str"),
    ("status", "str"),  # ok | failed
    ("error_code", "str"),  # the vocalmix.core.errors code (audio.unreadable...), or internal
    ("error", "str"),  # a message a person can act on
    ("vocal", "str"),  # input paths as resolved
    ("backing", "str"),
    ("vocal_sha256", "str"),
    ("backing_sha256", "str"),
    ("settings_json", "str"),  # the effective per-row settings
    ("method", "str"),  # the estimator that made the targets (after any fallback)
    ("mix_path", "str"),  # relative to the output folder
    ("params_path", "str"),
    ("params_json", "str"),  # the params document, as written to params_path
    ("sample_rate_hz", "int"),
    ("duration_s", "float"),
    ("target_vocal_to_mix_lu", "float"),
    ("target_vocal_lra_lu", "float"),
    ("target_reverb_decay_s", "float"),
    ("vocal_to_mix_lu", "float"),  # achieved figures
    ("vocal_to_backing_lu", "float"),
    ("vocal_lra_lu", "float"),
    ("mix_integrated_lufs", "float"),
    ("mix_true_peak_dbtp", "float"),
    ("master_gain_reduction_db", "float"),
    ("notes", "str"),  # JSON list
    ("warnings", "str"),  # JSON list: the notes that begin with "warning:", without it
    ("job_key", "str"),
    ("code_version", "str"),
    ("model_version", "str"),
    ("hash_s", "float"),  # timings, s
    ("read_s", "float"),
    ("estimate_s", "float"),
    ("resolve_s", "float"),
    ("render_s", "float"),
    ("write_s", "float"),
    ("total_s", "float"),
)
COLUMN_NAMES = tuple(c for c, _ in RESULT_COLUMNS)
#: Columns that differ between two runs of the same job (timings); every other column
#: is a function of the row, its inputs and the code version.
VOLATILE_COLUMNS = ("hash_s", "read_s", "estimate_s", "resolve_s", "render_s", "write_s",
                    "total_s")


# --- code version and names -------------------------------------------------------------

_OUTPUT_SOURCES = ("core", "estimators", "pipeline.py", "_version.py", "assets")
_DEPENDENCIES = ("numpy", "scipy", "soundfile", "soxr", "pyebur128", "pedalboard")


def _tree_hash(parts: Iterable[str]) -> hashlib._Hash:
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for part in parts:
        p = root / part
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            if f.suffix in (".pyc", ".pyo") or "__pycache__" in f.parts:
                continue
            h.update(str(f.relative_to(root).as_posix()).encode() + b"\0")
            h.update(f.read_bytes())
    return h


@lru_cache(maxsize=1)
def model_version() -> str:
    """SHA-256 (12 hex digits) of the shipped model and preset files (``assets/``)."""
    return _tree_hash(["assets"]).hexdigest()[:12]


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<version>+<12 hex digits>``: the package version and a hash of everything a mix
    depends on (the sources of core, estimators and pipeline, the shipped models, the
    versions of the numeric libraries, :data:`BATCH_FORMAT`). A change to any of them
    changes every job key, so a re-run mixes again."""
    from importlib.metadata import PackageNotFoundError, version

    h = _tree_hash(_OUTPUT_SOURCES)
    h.update(f"batch-format {BATCH_FORMAT}".encode())
    for dep in _DEPENDENCIES:
        try:
            h.update(f"{dep} {version(dep)}".encode())
        except PackageNotFoundError:
            h.update(f"{dep} ?".encode())
    return f"{__version__}+{h.hexdigest()[:12]}"


_UNSAFE = re.compile(r"[^\w .()+,-]+")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
             *(f"lpt{i}" for i in range(10))}
MAX_NAME_BYTES = 120


def safe_name(row_id: str) -> str:
    """A file name for a row id: the id itself when it is a plain name, else the id with
    every character outside letters, digits, space and ``._-()+,`` replaced by ``_``,
    leading/trailing dots and spaces removed, cut to 120 bytes, plus ``-`` and 10 hex
    digits of the id's SHA-256 (so two ids never share a name). No id can name a path
    outside the output folder (``../x``, ``/etc/x``, ``a\\b`` all become plain names)."""
    nfc = unicodedata.normalize("NFC", row_id)
    s = _UNSAFE.sub("_", nfc).strip(" .")
    while len(s.encode("utf-8")) > MAX_NAME_BYTES:
        s = s[:-1]
    s = s.rstrip(" .")
    if s and s == row_id and s.split(".")[0].lower() not in _RESERVED:
        return s
    # (surrogateescape: an id from a file name that is not UTF-8 still hashes)
    digest = hashlib.sha256(row_id.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{s or 'song'}-{digest}"


#: the formats a batch writes its mixes in (``--format``; the file extension)
MIX_FORMATS = ("wav", "flac", "mp3", "ogg")


def output_paths(row_id: str, mix_format: str = "wav") -> tuple[str, str]:
    """``(mix_path, params_path)`` of a row, relative to the output folder; the mix in
    ``mix_format`` (:data:`MIX_FORMATS`)."""
    n = safe_name(row_id)
    return f"mix/{n}.{mix_format}", f"params/{n}.json"


# --- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchConfig:
    """What every job of a batch shares.

    Attributes:
        out_dir: the output folder (absolute).
        base_dir: the folder relative input paths are resolved against (the manifest's).
        method: the estimator of rows without a ``method`` cell (``baseline``/``model``);
            ``None``: the shipped default (:func:`vocalmix.estimators.registry.default_method`).
        fold: what to do with files of more than 2 channels, for rows without ``fold``.
        mix_format: the mixes' format (:data:`MIX_FORMATS`): 24-bit WAV or FLAC, MP3 at
            LAME's highest quality (mixes at 8-48 kHz), Ogg Vorbis.
        bit_depth: the WAV or FLAC mixes' bits per sample (16, dithered; 24; 32-bit
            float, WAV only: :data:`vocalmix.core.audio.BIT_DEPTHS`); ``None``: 24.
        refused: ``(id, message)`` of the rows not to mix because their outputs would
            replace a file that another row (or the batch itself) reads
            (:func:`plan_conflicts`); each becomes a failed row with the code
            ``output.is_input`` and the message, unless it is skipped as already done
            (then it writes nothing either).
    """

    out_dir: str
    base_dir: str = ""
    method: str | None = None
    fold: str = "error"
    refused: tuple[tuple[str, str], ...] = ()
    mix_format: str = "wav"
    bit_depth: int | None = None


@dataclass(frozen=True)
class JobSpec:
    """One row, checked and resolved against its :class:`BatchConfig`."""

    id: str
    vocal: str
    backing: str
    method: str
    fold: str
    vocal_to_mix_lu: float | None = None
    vocal_lra_lu: float | None = None
    reverb_decay_s: float | None = None
    reverb_preset: str | None = None
    params_in: str | None = None
    genre: str | None = None
    vocal_offset_ms: float | str | None = None  # ms, or "auto"
    mix_format: str = "wav"
    bit_depth: int | None = None

    def settings(self) -> dict[str, Any]:
        """The settings that shape the mix, as a JSON-ready dict (a row without a take
        offset keeps the job key it had before the column existed)."""
        out = {"method": self.method, "fold": self.fold,
               "vocal_to_mix_lu": self.vocal_to_mix_lu, "vocal_lra_lu": self.vocal_lra_lu,
               "reverb_decay_s": self.reverb_decay_s, "reverb_preset": self.reverb_preset,
               "params_in": self.params_in, "genre": self.genre}
        if self.vocal_offset_ms is not None:
            out["vocal_offset_ms"] = self.vocal_offset_ms
        if self.mix_format != "wav":  # (a WAV batch keeps the keys it had before)
            out["mix_format"] = self.mix_format
        if self.bit_depth is not None:  # (likewise a batch at the default depth)
            out["bit_depth"] = self.bit_depth
        return out


def _key(name: Any) -> str:
    return str(name).strip().lstrip("\ufeff").strip().lower()


def _cell(row: Mapping[str, Any], name: str) -> str | None:
    """A cell as a stripped string; ``None`` when absent, empty or NaN."""
    for k, v in row.items():
        if _key(k) != name:
            continue
        if v is None:
            return None
        if hasattr(v, "item") and not isinstance(v, str | bytes):
            v = v.item()  # numpy scalars (Ray batches)
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        s = str(v).strip()
        return s or None
    return None


def row_id(row: Mapping[str, Any]) -> str:
    """The id of a manifest row (``""`` when it has none)."""
    return _cell(row, "id") or ""


@lru_cache(maxsize=1)
def _shipped_default_method() -> str:
    from vocalmix.estimators.registry import default_method as best

    return best()


def default_method(method: str | None = None) -> str:
    """``method`` or, when ``None``, the shipped default estimator."""
    return method or _shipped_default_method()


def _path(value: str | None, base_dir: str) -> str | None:
    if value is None:
        return None
    p = Path(os.path.expanduser(value))
    if not p.is_absolute() and base_dir:
        p = Path(base_dir) / p
    return os.path.abspath(p)


def parse_row(row: Mapping[str, Any], config: BatchConfig) -> JobSpec:
    """Check a manifest row and resolve it against ``config``; raises
    :class:`~vocalmix.core.errors.DataError` (no id, no vocal, no backing) or
    :class:`~vocalmix.core.errors.ParamsError` (a setting that is not valid)."""
    from vocalmix.core.audio import FOLD_MODES
    from vocalmix.core.errors import ParamsError
    from vocalmix.estimators.registry import METHODS

    rid = row_id(row)
    if not rid:
        raise DataError("the row has no id")
    for col in ("vocal", "backing", "params_in", "reverb_preset"):
        if "\0" in (_cell(row, col) or ""):  # (no file system takes one)
            raise DataError(f"row {rid!r}: the {col} cell holds a NUL character, which no "
                            "path can; check how the manifest was written")
    paths = {}
    for col in ("vocal", "backing"):
        v = _path(_cell(row, col), config.base_dir)
        if v is None:
            raise DataError(f"row {rid!r}: the {col} cell is empty; give the {col} file's path")
        paths[col] = v
    method = default_method(_cell(row, "method") or config.method)
    if method not in METHODS:
        raise ParamsError(f"row {rid!r}: method {method!r} is not one of "
                          f"{', '.join(METHODS)}")
    fold = _cell(row, "fold") or config.fold
    if fold not in FOLD_MODES:
        raise ParamsError(f"row {rid!r}: fold {fold!r} is not one of {', '.join(FOLD_MODES)}")
    targets: dict[str, Any] = {}
    for col in TARGET_COLUMNS:
        s = _cell(row, col)
        if s is None:
            targets[col] = None
            continue
        if col == "vocal_offset_ms" and s.lower() == "auto":
            targets[col] = "auto"
            continue
        try:
            x = float(s)
        except ValueError:
            raise ParamsError(f"row {rid!r}: {col} {s!r} is not a number") from None
        if not math.isfinite(x):
            raise ParamsError(f"row {rid!r}: {col} {s!r} is not a finite number")
        targets[col] = x
    preset = _cell(row, "reverb_preset")
    file = _preset_file(preset)
    if preset is not None and file is not None:  # (a file, read from the manifest's folder)
        preset = str(_path(file, config.base_dir)) + preset[len(file):]
    return JobSpec(id=rid, vocal=paths["vocal"], backing=paths["backing"], method=method,
                   fold=fold, reverb_preset=preset,
                   params_in=_path(_cell(row, "params_in"), config.base_dir),
                   genre=_cell(row, "genre"), mix_format=config.mix_format,
                   bit_depth=config.bit_depth, **targets)


def _preset_file(ref: str | None) -> str | None:
    """The file a ``reverb_preset`` cell reads (``FILE.json#NAME``, ``FILE.json`` or a path,
    as :func:`~vocalmix.estimators.presets.resolve_preset_ref` tells them apart); ``None``
    for the name of a shipped preset."""
    if not ref:
        return None
    if "#" in ref:
        return ref.rsplit("#", 1)[0]
    if ref.lower().endswith(".json") or "/" in ref or os.sep in ref:
        return ref
    return None


def _input_files(spec: JobSpec) -> list[tuple[str, str]]:
    """``(what, path)`` of every file a row reads: its ``vocal`` and ``backing`` and, when
    set, its ``params_in`` and its ``reverb_preset`` file."""
    out = [("vocal", spec.vocal), ("backing", spec.backing)]
    if spec.params_in:
        out.append(("params_in", spec.params_in))
    preset = _preset_file(spec.reverb_preset)
    if preset:
        out.append(("reverb_preset", preset))
    return out


#: SHA-256 digests this process made, by the file's identity (device, inode, size,
#: modification time): a backing many rows name is read and hashed once per worker
_FILE_HASHES: dict[tuple[int, int, int, int], str] = {}
_FILE_HASHES_LOCK = threading.Lock()
#: the most digests kept
FILE_HASHES_KEPT = 256


def _sha256_file(path: str | None) -> str | None:
    """SHA-256 of a regular file's bytes, ``None`` when it is absent, unreadable or not a
    regular file. A pipe, device or socket is never opened (``os.stat`` first): opening a
    named pipe blocks until a writer comes, and ``/dev/zero`` never ends; such a row then
    fails with the readers' error. A file hashed before with the same identity is not
    read again (an edited file gets a new modification time, a replaced one a new
    inode)."""
    if path is None:
        return None
    h = hashlib.sha256()
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _FILE_HASHES_LOCK:
            hit = _FILE_HASHES.get(ident)
        if hit is not None:
            return hit
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    digest = h.hexdigest()
    with _FILE_HASHES_LOCK:
        while _FILE_HASHES and len(_FILE_HASHES) >= FILE_HASHES_KEPT:
            _FILE_HASHES.pop(next(iter(_FILE_HASHES)))  # (the oldest)
        if FILE_HASHES_KEPT > 0:
            _FILE_HASHES[ident] = digest
    return digest


@lru_cache(maxsize=1)
def _backings() -> Any:
    """The backing this worker decoded last, kept for the next row over the same file
    (:class:`vocalmix.core.audio.DecodeCache`, up to
    :data:`vocalmix.core.render.KEEP_MAX_BYTES`): a catalogue of takes over one
    instrumental decodes it once per worker."""
    from vocalmix.core.audio import DecodeCache
    from vocalmix.core.render import KEEP_MAX_BYTES

    return DecodeCache(KEEP_MAX_BYTES)


def _job_key(settings: Mapping[str, Any], hashes: Mapping[str, str | None],
             paths: Mapping[str, str | None]) -> str:
    """The key of a job: content hashes of the inputs (a missing file counts by its
    path), the settings, the code version and :data:`BATCH_FORMAT`."""
    inputs = {k: (hashes[k] if hashes[k] is not None else f"missing:{paths[k]}")
              for k in sorted(hashes)}
    doc = {"format": BATCH_FORMAT, "code": code_version(), "settings": dict(settings),
           "inputs": inputs}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


def _blank(rid: str) -> dict[str, Any]:
    r: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
    r.update(id=rid, code_version=code_version(), model_version=model_version())
    return r


def _fin(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


#: the error codes (prefixes) of a failure that comes from the run, not from the song:
#: a later run tries such a row again (see :meth:`ResultStore.done_keys`)
RUN_FAILURES = ("output.", "internal", "worker.", "dependency.")


def _error_fields(e: BaseException) -> tuple[str, str]:
    if isinstance(e, VocalmixError):
        return e.code, str(e)
    if isinstance(e, MemoryError):
        return "internal.out_of_memory", ("out of memory while mixing this song; run fewer "
                                          "--workers at once")
    return "internal", (f"{type(e).__name__}: {e} (an internal error: please report "
                        "it with this song)")


@dataclass
class _Prepared:
    """A row after parsing and hashing: enough to key it, and to run or skip it."""

    rid: str
    row: dict[str, Any]  # the result row so far
    spec: JobSpec | None
    problem: BaseException | None
    key: str
    t0: float


def _prepare(row: Mapping[str, Any], config: BatchConfig) -> _Prepared:
    t0 = time.perf_counter()
    rid = row_id(row)
    out = _blank(rid)
    out["vocal"] = _path(_cell(row, "vocal"), config.base_dir)
    out["backing"] = _path(_cell(row, "backing"), config.base_dir)
    spec: JobSpec | None = None
    problem: BaseException | None = None
    try:
        spec = parse_row(row, config)
    except Exception as e:  # a bad row is a failed result, never an exception
        problem = e
    if spec is not None:
        settings: dict[str, Any] = spec.settings()
        paths = {"vocal": spec.vocal, "backing": spec.backing}
        if spec.params_in:
            paths["params_in"] = spec.params_in
        preset_file = _preset_file(spec.reverb_preset)
        if preset_file:  # (an edited presets file is a new job, as an edited input is)
            paths["reverb_preset"] = preset_file
        out["settings_json"] = json.dumps(settings, sort_keys=True)
    else:
        settings = {"unparsed_row": {_key(k): _cell(row, _key(k)) for k in row}}
        paths = {"vocal": out["vocal"], "backing": out["backing"]}
    hashes = {k: _sha256_file(p) for k, p in paths.items()}
    out["vocal_sha256"], out["backing_sha256"] = hashes["vocal"], hashes["backing"]
    out["job_key"] = _job_key(settings, hashes, paths)
    out["hash_s"] = time.perf_counter() - t0
    return _Prepared(rid, out, spec, problem, out["job_key"], t0)


def mix_job(row: Mapping[str, Any], config: BatchConfig) -> dict[str, Any]:
    """Mix one manifest row into ``config.out_dir`` and return its result row.

    Reads the vocal and backing the row names, mixes them with exactly the library calls
    of ``vocalmix mix`` (the row's method, targets, preset and params document), writes
    ``mix/<name>.wav`` and ``params/<name>.json`` atomically (``<name>`` = :func:`safe_name`
    of the id; an earlier output of the same row is replaced, an input never) and returns
    a dict with the columns of :data:`RESULT_COLUMNS`. Never raises for a bad song: the
    row comes back with ``status`` ``failed``, ``error_code`` (the ``code`` of the
    :mod:`vocalmix.core.errors` error, or ``internal``) and ``error`` (its message).
    """
    return _execute(_prepare(row, config), config)


def _execute(prep: _Prepared, config: BatchConfig) -> dict[str, Any]:
    out = prep.row
    timings = {"read_s": 0.0, "estimate_s": 0.0, "resolve_s": 0.0, "render_s": 0.0,
               "write_s": 0.0}
    try:
        if prep.problem is not None:
            raise prep.problem
        assert prep.spec is not None
        _mix_into(prep.spec, config, out, timings)
        out["status"] = "ok"
    except Exception as e:  # never raise for a bad song: it becomes a failed row
        out["status"] = "failed"
        out["error_code"], out["error"] = _error_fields(e)
        for k in ("mix_path", "params_path", "params_json"):
            out[k] = None
        if out["error_code"] != "output.is_input":
            gone = _withdraw_earlier_mix(prep, config)
            if gone:
                out["error"] += (f" (this row's earlier mix, of other inputs or settings, "
                                 f"was removed: {', '.join(gone)})")
    out.update(timings)
    out["total_s"] = time.perf_counter() - prep.t0
    return out


def _withdraw_earlier_mix(prep: _Prepared, config: BatchConfig) -> list[str]:
    """Remove what an earlier run wrote under a failed row's name (its mix in any format,
    its params document), relative paths of those removed. A row mixes again only when
    its inputs, settings or document changed, so those files describe another mix: left
    in ``mix/``, they would be taken for this row's. Never a file the row reads."""
    from vocalmix.core.audio import withdraw_outputs

    root = Path(config.out_dir)
    rels = [output_paths(prep.rid, fmt)[0] for fmt in MIX_FORMATS]
    rels.append(output_paths(prep.rid)[1])
    inputs = ([path for _, path in _input_files(prep.spec)] if prep.spec is not None
              else [p for p in (prep.row.get("vocal"), prep.row.get("backing")) if p])
    gone = {str(p) for p in withdraw_outputs([root / r for r in rels], inputs)}
    return [r for r in rels if str(root / r) in gone]


def _mix_into(spec: JobSpec, config: BatchConfig, out: dict[str, Any],
              timings: dict[str, float]) -> None:
    """The body of ``vocalmix mix`` for one row (same calls, same order)."""
    from vocalmix.core.audio import (
        OutputPlan,
        _refuse_special_file,
        bit_depth_subtype,
        check_outputs,
        prepare_pair,
        read_audio,
        read_params,
        write_audio,
        write_params,
    )
    from vocalmix.core.errors import OverwriteInputError
    from vocalmix.estimators.presets import preset_reverb, resolve_preset_ref
    from vocalmix.longform import estimate_long, open_long_pair, write_long
    from vocalmix.pipeline import mix

    for rid, message in config.refused:  # its outputs would replace another row's input
        if rid == spec.id:
            raise OverwriteInputError(message)
    for what in ("vocal", "backing"):  # a pipe or a device: refused, never opened
        path = getattr(spec, what)
        _refuse_special_file(Path(path), f"{what} {path}")
    root = Path(config.out_dir)
    mix_rel, params_rel = output_paths(spec.id, spec.mix_format)
    inputs = [path for _, path in _input_files(spec)]
    preset = None
    if spec.reverb_preset:  # an unknown preset fails before any work
        preset = resolve_preset_ref(spec.reverb_preset)
        preset_reverb(*preset)
    check_outputs([root / mix_rel, root / params_rel], inputs, force=True)
    t = time.perf_counter()
    base = read_params(spec.params_in) if spec.params_in else None
    kwargs: dict[str, Any] = dict(
        method=spec.method, base=base, reverb_preset=preset[0] if preset else None,
        preset_library=preset[1] if preset else None, genre=spec.genre,
        vocal_to_mix_lu=spec.vocal_to_mix_lu, vocal_lra_lu=spec.vocal_lra_lu,
        reverb_decay_s=spec.reverb_decay_s, vocal_offset_ms=spec.vocal_offset_ms,
    )
    pair = open_long_pair(spec.vocal, spec.backing, fold=spec.fold)
    if pair is not None:  # too long to hold whole: estimated on excerpts, written as made
        timings["read_s"] = time.perf_counter() - t
        _check_rate(root / mix_rel, pair.sample_rate)
        est = estimate_long(pair, **kwargs)
        notes: list[str] = []  # the pair's notes are in est.notes
        sr, duration_s = pair.sample_rate, pair.duration_s
        t = time.perf_counter()
        plan = OutputPlan(audio=[root / mix_rel], files=[root / params_rel], inputs=inputs,
                          force=True)
        params, _ = write_long(plan, pair, est.params, root / mix_rel,
                               params_out=root / params_rel,
                               mix_subtype=bit_depth_subtype(mix_rel, spec.bit_depth))
        timings["render_s"] = timings["write_s"] = time.perf_counter() - t
    else:
        v = read_audio(spec.vocal, label=f"vocal {spec.vocal}", fold=spec.fold)
        b = _backings().read(spec.backing, label=f"backing {spec.backing}", fold=spec.fold)
        vocal, backing, sr, notes = prepare_pair(v, b)
        del v, b
        _check_rate(root / mix_rel, sr)
        duration_s = vocal.shape[0] / float(sr)
        timings["read_s"] = time.perf_counter() - t
        params, rendered, est = mix(vocal, backing, sr, **kwargs)
        timings["render_s"] = est.timings_s.get("render", 0.0)
        t = time.perf_counter()
        write_audio(root / mix_rel, rendered.mix, sr, force=True, inputs=inputs,
                    subtype=bit_depth_subtype(mix_rel, spec.bit_depth))
        write_params(root / params_rel, params, force=True, inputs=inputs)
        timings["write_s"] = time.perf_counter() - t
    timings["estimate_s"] = est.timings_s.get("estimate", 0.0)
    timings["resolve_s"] = est.timings_s.get("resolve", 0.0)
    a, tg = params.achieved, params.targets
    out.update(
        method=params.provenance.method, mix_path=mix_rel, params_path=params_rel,
        params_json=params.to_json(), sample_rate_hz=int(sr),
        duration_s=duration_s,
        target_vocal_to_mix_lu=_fin(tg.vocal_to_mix_lu),
        target_vocal_lra_lu=_fin(tg.vocal_lra_lu),
        target_reverb_decay_s=_fin(tg.reverb_decay_s),
        vocal_to_mix_lu=_fin(a.vocal_to_mix_lu), vocal_to_backing_lu=_fin(a.vocal_to_backing_lu),
        vocal_lra_lu=_fin(a.vocal_lra_lu), mix_integrated_lufs=_fin(a.mix_integrated_lufs),
        mix_true_peak_dbtp=_fin(a.mix_true_peak_dbtp),
        master_gain_reduction_db=_fin(a.master_gain_reduction_db),
        notes=json.dumps(list(notes) + list(est.notes)),
        warnings=json.dumps(warnings_of(list(notes) + list(est.notes))),
    )


def _check_rate(mix_path: Path, sample_rate: int) -> None:
    """Refuse, before the mix is made, a mix format that cannot hold its rate (MP3)."""
    from vocalmix.core.audio import format_rate_problem
    from vocalmix.core.errors import OutputError

    why = format_rate_problem(mix_path, sample_rate)
    if why is not None:
        raise OutputError(f"{mix_path}: {why}; mix it with --format flac or wav")


def run_or_skip(row: Mapping[str, Any], config: BatchConfig,
                done: Mapping[str, str]) -> dict[str, Any] | None:
    """:func:`mix_job`, or ``None`` when ``done`` maps the row's id to its job key (the
    row's inputs, settings and code version are those of a finished result)."""
    prep = _prepare(row, config)
    if prep.rid and done.get(prep.rid) == prep.key:
        return None
    return _execute(prep, config)


WARM_UP_SONG_S = 5.0


def warm_up(method: str | None = None) -> None:
    """Make a worker process warm, once, so that no song pays for it: import the mixing
    code, load the shipped models and presets, and mix a short synthesised song in
    memory with ``method`` (default: the shipped default), which imports what the first
    mix would import lazily (about 200 modules) and fills the filter caches. Caches hold
    pure functions' results, so a warm worker mixes bit for bit like a cold process."""
    import numpy as np

    from vocalmix import pipeline
    from vocalmix.core.errors import ModelError
    from vocalmix.estimators import eq, level, presets, reverb

    for load in (level.shipped_model, eq.shipped_model, reverb.shipped_model):
        with contextlib.suppress(ModelError):
            load()
    presets.presets()
    code_version()
    sr = 44100
    t = np.arange(int(WARM_UP_SONG_S * sr)) / sr
    rng = np.random.default_rng(0)
    # a sung-like tone that comes and goes, over noise that pulses at 120 BPM
    v = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.7 * t) > 0)
    b = 0.1 * rng.standard_normal(t.size) * np.exp(-8 * ((t * 2) % 1))
    vocal = np.repeat(v[:, None], 2, axis=1).astype(np.float32)
    backing = np.repeat(b[:, None], 2, axis=1).astype(np.float32)
    with contextlib.suppress(Exception):  # a warm-up never stops a worker
        pipeline.mix(vocal, backing, sr, method=default_method(method))


# --- manifests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """A manifest as read: rows as dicts (raw cells), in file order.

    Attributes:
        path: the manifest file (for a folder: the ``manifest.csv`` written for it).
        kind: ``csv`` or ``parquet``.
        rows: the rows, cells as read (strings for CSV).
        header: column names as written in the file.
        unknown_columns: columns that are neither required nor settings (ignored).
    """

    path: str
    kind: str
    rows: tuple[dict[str, Any], ...]
    header: tuple[str, ...]
    unknown_columns: tuple[str, ...] = ()

    @property
    def base_dir(self) -> str:
        """The folder relative paths are resolved against."""
        return str(Path(self.path).parent)

    @property
    def ids(self) -> list[str]:
        """Row ids in file order."""
        return [row_id(r) for r in self.rows]


def _require_pyarrow(what: str):
    try:
        import pyarrow
    except ImportError:
        raise DependencyError(f"{what} needs pyarrow: pip install 'vocalmix[batch]'") from None
    return pyarrow


def _read_csv(text: str, path: Path) -> tuple[list[dict[str, Any]], list[str], list[int]]:
    """The rows of a CSV manifest's text as :class:`csv.DictReader` makes them (blank lines
    skipped, missing cells ``None``), its header, and the line of the file each row starts
    on (1 = the header; a blank line or a quoted cell of several lines moves the rows below
    it). Raises :class:`~vocalmix.core.errors.DataError` for a row with more cells than the
    header has columns, or text the CSV reader refuses."""
    reader = csv.reader(io.StringIO(text))
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        header = next(reader, [])
        while True:
            first_line = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                break
            if not cells:  # a blank line
                continue
            if len(cells) > len(header):
                raise DataError(f"{path}:{first_line}: more cells than columns in the header")
            row: dict[str, Any] = dict(zip(header, cells, strict=False))
            for name in header[len(cells):]:
                row[name] = None
            rows.append(row)
            lines.append(first_line)
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV ({e})") from None
    return rows, header, lines


def _read_table(path: Path) -> tuple[list[dict[str, Any]], list[str], str, list[int]]:
    """``(rows, header, kind, where)``: ``where`` is each row's line in a CSV file, or its
    number (from 1) in a Parquet file."""
    if path.suffix.lower() in (".parquet", ".pq"):
        _require_pyarrow(f"{path}: reading a Parquet manifest")
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(str(path))
        except Exception as e:  # pyarrow raises several types for a bad file
            raise DataError(f"{path}: cannot be read as Parquet ({e})") from None
        rows = table.to_pylist()
        return rows, list(table.column_names), "parquet", list(range(1, len(rows) + 1))
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a spreadsheet's BOM
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the manifest as UTF-8 CSV ({e})") from None
    rows, header, lines = _read_csv(text, path)
    return rows, header, "csv", lines


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and check a CSV or Parquet manifest (see the module's docstring).

    Raises :class:`~vocalmix.core.errors.DataError` when the file is missing or
    unreadable, lacks a required column, or has an empty, duplicate or colliding id (two
    ids whose output names differ only in case). A CSV file's messages name the line a
    row starts on (``m.csv:4: empty id``); a Parquet file's, the row's number from 1.
    """
    p = Path(path)
    if not p.is_file():
        what = ("is not a regular file (a folder, pipe or device); give a CSV or Parquet "
                "file" if os.path.lexists(p) else "no such manifest file")
        raise DataError(f"{p}: {what}")
    return _checked_manifest(p, *_read_table(p))


def _checked_manifest(p: Path, rows: list[dict[str, Any]], header: list[str], kind: str,
                      where: list[int]) -> Manifest:
    """:func:`read_manifest`'s checks of a table read from ``p``."""
    names = [_key(h) for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DataError(f"{p}: a manifest needs the columns id, vocal, backing (missing "
                        f"{', '.join(missing)}; found {', '.join(header) or 'none'})")
    if len(set(names)) != len(names):
        raise DataError(f"{p}: a column name appears twice: {', '.join(header)}")
    seen: dict[str, int] = {}
    by_name: dict[str, str] = {}
    for i, r in zip(where, rows, strict=True):  # i: a CSV file's line, a Parquet row
        rid = row_id(r)
        at = f"{p}:{i}" if kind == "csv" else f"{p} row {i}"
        if not rid:
            raise DataError(f"{at}: empty id; every row needs a unique id")
        if rid in seen:
            first = f"line {seen[rid]}" if kind == "csv" else f"row {seen[rid]}"
            raise DataError(f"{at}: id {rid!r} already used on {first}; ids must be "
                            "unique")
        seen[rid] = i
        folded = safe_name(rid).casefold()
        if folded in by_name:
            raise DataError(f"{at}: ids {by_name[folded]!r} and {rid!r} would name the "
                            "same output files on a case-insensitive disk; rename one")
        by_name[folded] = rid
    known = set(REQUIRED_COLUMNS) | set(SETTING_COLUMNS)
    unknown = tuple(h for h, n in zip(header, names, strict=True) if n not in known)
    return Manifest(str(p.resolve()), kind, tuple(rows), tuple(header), unknown)


def _utf8(name: str) -> bool:
    """Whether ``name`` (as :func:`os.fsdecode` gives it) is valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: how to rename what an older system named in its own encoding (``convmv`` then the
#: folder, with ``-r`` for what is in it)
_RENAME_TO_UTF8 = "from an older system's encoding, e.g.: convmv -f latin1 -t utf8 --notest"


def _shown(path: str | os.PathLike[str]) -> str:
    """A path that may not be UTF-8, as its bytes read (``caf\\xe9``)."""
    return repr(os.fsencode(path))[2:-1]


def _refuse_non_utf8_folder(folder: Path, what: str, error: type[VocalmixError]) -> None:
    """Refuse, before any work, a folder whose path is not valid UTF-8: the rows' paths
    under it go into the results table, the journal and a folder's manifest, which are
    UTF-8 text (Parquet's file system cannot open such a path at all)."""
    if not _utf8(str(folder)):
        raise error(f"{what} {_shown(folder)}: its path is not valid UTF-8, which the "
                    "batch's tables cannot hold; rename it or the folder above it that is "
                    f"not ({_RENAME_TO_UTF8} FOLDER)")


def scan_folder(folder: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Manifest rows of a folder of pairs: ``<id>.vocal.<ext>`` + ``<id>.backing.<ext>``
    files, and sub-folders ``<id>/`` with ``vocal.<ext>`` + ``backing.<ext>``.

    A vocal without its backing (or the reverse) still gives a row, naming the file it
    expected, so that the batch reports it as failed instead of skipping it silently.
    Rows are sorted by id. :class:`~vocalmix.core.errors.DataError` for a file whose
    name is not valid UTF-8 (which the batch's tables, written in UTF-8, cannot name).
    """
    root = Path(folder).resolve()
    pairs: dict[str, dict[str, str]] = {}
    unnamed: list[Path] = []  # the audio files whose names are not UTF-8

    def pick(existing: str | None, cand: Path) -> str:
        if existing is None:
            return str(cand)
        old = Path(existing)  # two formats of one file: the first of AUDIO_EXT wins
        return existing if AUDIO_EXT.index(old.suffix.lower()) <= AUDIO_EXT.index(
            cand.suffix.lower()) else str(cand)

    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() in AUDIO_EXT:
            if not _utf8(p.name):
                unnamed.append(p)
                continue
            stem = p.name[: -len(p.suffix)]
            for role in ("vocal", "backing"):
                if stem.lower().endswith("." + role) and len(stem) > len(role) + 1:
                    rid = stem[: -len(role) - 1]
                    d = pairs.setdefault(rid, {})
                    d[role] = pick(d.get(role), p)
        elif p.is_dir():
            for q in sorted(p.iterdir()):
                if q.is_file() and q.suffix.lower() in AUDIO_EXT:
                    role = q.name[: -len(q.suffix)].lower()
                    if role in ("vocal", "backing") and not _utf8(str(q)):
                        unnamed.append(q)
                    elif role in ("vocal", "backing"):
                        d = pairs.setdefault(p.name, {})
                        d[role] = pick(d.get(role), q)
    if unnamed:
        from vocalmix.core.errors import DataError

        shown = ", ".join(_shown(p.relative_to(root)) for p in unnamed[:5])
        raise DataError(
            f"{root}: {len(unnamed)} audio file name(s) are not valid UTF-8, which the "
            f"batch's tables cannot hold: {shown}; rename them ({_RENAME_TO_UTF8} -r "
            "FOLDER)")
    rows = []
    for rid in sorted(pairs):
        d = pairs[rid]
        for role, other in (("vocal", "backing"), ("backing", "vocal")):
            if role not in d:
                q = Path(d[other])
                d[role] = (str(q.parent / f"{role}.*") if q.name.lower().startswith(other)
                           else str(q.parent / f"{rid}.{role}.*"))
        rows.append({"id": rid, "vocal": d["vocal"], "backing": d["backing"]})
    return rows


def _folder_manifest_text(src: Path, target: Path) -> str:
    """The CSV text of the manifest of the folder of pairs ``src``, checked as
    :func:`read_manifest` checks a file (as if it were ``target``), in memory: a folder
    whose pairs cannot make a manifest, or a ``target`` that holds a manifest no batch
    wrote (:func:`_refuse_replacing_a_users_manifest`), is refused before anything is
    written."""
    rows = scan_folder(src)
    if not rows:
        raise DataError(f"{src}: no pairs found; name them <id>.vocal.wav and "
                        "<id>.backing.wav, or <id>/vocal.wav and <id>/backing.wav, or "
                        "pass a manifest (CSV or Parquet with id, vocal, backing)")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(REQUIRED_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    text = buf.getvalue()
    table, header, lines = _read_csv(text, target)
    _checked_manifest(target, table, header, "csv", lines)
    _refuse_replacing_a_users_manifest(target)
    return text


def manifest_for(source: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Manifest:
    """The manifest of ``source``: a CSV/Parquet file, or a folder of pairs (whose rows
    are checked, then written to ``out_dir/manifest.csv``, atomically)."""
    src = Path(source)
    if src.is_dir():
        target = Path(out_dir) / FOLDER_MANIFEST
        return _written_manifest(_folder_manifest_text(src, target), target)
    return read_manifest(src)


def _refuse_replacing_a_users_manifest(target: Path) -> None:
    """:class:`OutputError` when ``target`` (where a folder's manifest is written) holds
    a manifest no batch wrote: one whose columns are not just ``id, vocal, backing`` or
    whose paths are not absolute (a folder's manifest has both), such as a person's own,
    kept in the output folder."""
    from vocalmix.core.errors import OutputError

    try:
        with open(target, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError, csv.Error):
        rows = [["?"]]
    ours = bool(rows) and rows[0] == list(REQUIRED_COLUMNS) and all(
        len(r) == 3 and os.path.isabs(r[1]) and os.path.isabs(r[2]) for r in rows[1:])
    if not ours:
        raise OutputError(
            f"{target}: is a manifest that no batch wrote (its columns or relative paths "
            "say so), and a folder's batch writes its manifest there; vocalmix never "
            "replaces it: choose another --out, or run the batch on that manifest")


def _written_manifest(text: str, target: Path) -> Manifest:
    """The manifest ``text`` of a folder of pairs (:func:`_folder_manifest_text`),
    written to ``target`` atomically and read back from it."""
    from vocalmix.core.audio import write_text

    write_text(target, text, force=True)
    return read_manifest(target)


# --- results: the journal and the table ---------------------------------------------------


def _format_csv(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


#: what a spreadsheet reads as the start of a formula (``=HYPERLINK(...)`` as a song id,
#: from a manifest built of titles people typed), and the quote that escapes them
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_TEXT_QUOTE = "'"
_TEXT_COLUMNS = frozenset(c for c, t in RESULT_COLUMNS if t == "str")


def _spreadsheet_safe(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would run it as a formula (or it
    begins with ``'`` itself, so that reading one quote back off is exact)."""
    return _TEXT_QUOTE + text if text.startswith((*_FORMULA_STARTS, _TEXT_QUOTE)) else text


def _write_results_csv(f: Any, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write result rows as CSV to the text file ``f``, one row at a time (see
    :func:`results_csv_text`)."""
    w = csv.writer(f, lineterminator="\n")
    w.writerow(COLUMN_NAMES)
    for r in rows:
        w.writerow([_spreadsheet_safe(_format_csv(r.get(c))) if c in _TEXT_COLUMNS
                    else _format_csv(r.get(c)) for c in COLUMN_NAMES])


def results_csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The CSV text of result rows (floats as their shortest exact repr; empty = none;
    text that a spreadsheet would take for a formula behind a ``'``, which
    :func:`read_results_csv` takes off again)."""
    buf = io.StringIO()
    _write_results_csv(buf, rows)
    return buf.getvalue()


def _text_cell(v: str) -> str:
    return v[1:] if v.startswith(_TEXT_QUOTE) else v


def read_results_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Result rows from a ``results.csv``, typed as :data:`RESULT_COLUMNS` says."""
    types = dict(RESULT_COLUMNS)
    conv: dict[str, Callable[[str], Any]] = {"str": _text_cell, "float": float, "int": int}
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            out.append({c: (conv[types[c]](v) if v != "" else None) for c, v in r.items()
                        if c in types})
    return out


def parquet_schema():
    """The pyarrow schema of ``results.parquet``."""
    pa = _require_pyarrow("results.parquet")
    t = {"str": pa.string(), "float": pa.float64(), "int": pa.int64()}
    return pa.schema([(c, t[k]) for c, k in RESULT_COLUMNS])


def _lock(fd: int, folder: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no guard against two batches in one folder
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DataError(f"{folder}: another vocalmix batch is writing its results here; "
                        "wait for it to finish or choose another --out") from None


#: the result columns kept compressed in the driver's memory between the table's rewrites
#: (a params document with its notes is 10-20 kB of JSON, about a third compressed): a
#: catalogue of 100 000 rows held 1.7 GB of them
_PACKED_COLUMNS = ("params_json", "notes", "settings_json")
#: rows a table rewrite holds at once (the CSV and Parquet files are written in chunks)
_SNAPSHOT_CHUNK = 1000


@dataclass(frozen=True)
class _Packed:
    """A long text cell, zlib-compressed in memory."""

    data: bytes

    def text(self) -> str:
        return zlib.decompress(self.data).decode("utf-8")


def _packed(row: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a result row with its long text cells compressed (:func:`_unpacked`)."""
    r = dict(row)
    for c in _PACKED_COLUMNS:
        v = r.get(c)
        if isinstance(v, str) and len(v) > 256:
            r[c] = _Packed(zlib.compress(v.encode("utf-8"), 1))
    return r


def _journal_line(row: Mapping[str, Any]) -> bytes:
    """A result row as one line of ``results.jsonl`` (UTF-8, the result columns only)."""
    return (json.dumps({c: row.get(c) for c in COLUMN_NAMES}, allow_nan=False,
                       separators=(",", ":")) + "\n").encode("utf-8")


def _arrow_table(lines: list[bytes], schema: Any) -> Any:
    """The pyarrow table of result rows given as their journal lines
    (:func:`_journal_line`), typed by ``schema``: the table ``pyarrow.Table.from_pylist``
    makes of the rows, to the bit (numbers go through their shortest ``repr``, which
    reads back to the same double), read by pyarrow's own JSON reader. pyarrow's
    converters of Python objects import pandas when it is installed, to check whether
    each input is one of its objects: 0.17 s of a batch's driver (and pandas' memory),
    once per run, for a table that holds no pandas object."""
    import pyarrow.json as pj

    data = b"".join(lines)
    return pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 20)),
        parse_options=pj.ParseOptions(explicit_schema=schema,
                                      unexpected_field_behavior="error"))


def _unpacked(row: Mapping[str, Any]) -> dict[str, Any]:
    """The result row as it was given to :func:`_packed`."""
    return {k: v.text() if isinstance(v, _Packed) else v for k, v in row.items()}


class ResultStore:
    """The results of a batch in its output folder.

    ``results.jsonl`` is the journal: :meth:`add` appends one line per finished row
    (one ``write`` call, then ``fsync``), so a kill at any moment keeps every row
    finished before it (a torn last line is ignored on reading). The table files
    (:meth:`snapshot`) are rewritten atomically from the journal, the latest row of
    each id. One batch at a time may use a folder (an advisory lock).
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        from vocalmix.core.audio import _why
        from vocalmix.core.errors import OutputError

        self.dir = Path(out_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"{self.dir}: cannot hold the batch's outputs ({_why(e)})"
                              ) from None
        try:
            _lock(self._lock_fd, self.dir)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.latest: dict[str, dict[str, Any]] = {}
        self.torn_lines = 0
        jpath = self.dir / JOURNAL
        if jpath.exists():
            for line in jpath.read_bytes().split(b"\n"):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    self.torn_lines += 1
                    continue
                if isinstance(r, dict) and r.get("id") and r.get("job_key"):
                    self.latest[str(r["id"])] = _packed(r)
        self._fd = os.open(jpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if size:
            with open(jpath, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # a torn last line: end it, never extend it
                    os.write(self._fd, b"\n")
        self._last_snapshot = 0.0
        self._snapshot_cost = 0.0
        self.parquet_written = False

    def done_keys(self, ids: Iterable[str], retry_failed: bool = False) -> dict[str, str]:
        """``{id: job_key}`` of the finished rows a run may skip: ``ok`` rows whose mix and
        params document are still on disk, and ``failed`` rows unless ``retry_failed``.
        A row that failed for a reason of the run rather than of the song
        (:data:`RUN_FAILURES`: its outputs would replace an input, the disk was full,
        memory ran out, the worker died, a dependency was missing, an internal error) is
        never skipped: every run tries it again, so that following the message (fewer
        ``--workers``, free space) works."""
        out = {}
        for i in ids:
            r = self.latest.get(i)
            if r is None:
                continue
            if r.get("status") == "ok":
                if not all(r.get(k) and (self.dir / str(r[k])).is_file()
                           for k in ("mix_path", "params_path")):
                    continue  # (an output removed since: made again)
            elif (retry_failed or r.get("status") != "failed"
                  or str(r.get("error_code")).startswith(RUN_FAILURES)):
                continue
            out[i] = str(r["job_key"])
        return out

    def add(self, row: Mapping[str, Any]) -> None:
        """Append a finished row to the journal (durably) and remember it."""
        view = memoryview(_journal_line(row))
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.latest[str(row["id"])] = _packed(row)

    def table(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The latest row of each of ``ids`` that has one, in the order of ``ids``."""
        return list(self.rows(ids))

    def rows(self, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        """:meth:`table`, one row at a time (each row's long cells unpacked as it comes)."""
        return (_unpacked(self.latest[i]) for i in ids if i in self.latest)

    def failures(self, ids: Sequence[str]) -> list[tuple[str, str, str]]:
        """``(id, error_code, error)`` of the failed rows among ``ids``, in their order."""
        return [(str(r["id"]), str(r["error_code"]), str(r["error"]))
                for r in (self.latest[i] for i in ids if i in self.latest)
                if r.get("status") == "failed"]

    def snapshot(self, ids: Sequence[str], *, force: bool = True) -> None:
        """Rewrite ``results.csv`` and (with pyarrow) ``results.parquet`` for ``ids``.
        Without ``force``, only when the last one is old enough (at least 10 s, and 20
        times what writing it took), so that big tables do not slow the batch."""
        now = time.monotonic()
        if not force and now - self._last_snapshot < max(10.0, 20 * self._snapshot_cost):
            return
        from vocalmix.core.audio import atomic_path

        # one row unpacked at a time for the CSV, a chunk of rows at a time for Parquet:
        # the rewrite holds no second copy of the table
        with atomic_path(self.dir / RESULTS_CSV) as tmp, \
                open(tmp, "w", newline="", encoding="utf-8") as f:
            _write_results_csv(f, self.rows(ids))
        try:
            import pyarrow.parquet as pq
        except ImportError:
            pass
        else:
            schema = parquet_schema()
            with atomic_path(self.dir / RESULTS_PARQUET) as tmp, \
                    pq.ParquetWriter(tmp, schema) as w:
                chunk: list[bytes] = []
                written = 0
                for r in self.rows(ids):
                    chunk.append(_journal_line(r))
                    if len(chunk) == _SNAPSHOT_CHUNK:
                        w.write_table(_arrow_table(chunk, schema))
                        written, chunk = written + len(chunk), []
                if chunk or not written:  # (an empty table is written as one)
                    w.write_table(_arrow_table(chunk, schema) if chunk
                                  else schema.empty_table())
            self.parquet_written = True
        self._snapshot_cost = time.monotonic() - now
        self._last_snapshot = time.monotonic()

    def compact(self) -> None:
        """Rewrite the journal with one line per id (atomically)."""
        from vocalmix.core.audio import atomic_path

        with atomic_path(self.dir / JOURNAL, ".jsonl") as tmp, open(tmp, "wb") as f:
            for packed in self.latest.values():
                f.write(_journal_line(_unpacked(packed)))
            f.flush()
            os.fsync(f.fileno())
        os.close(self._fd)
        self._fd = os.open(self.dir / JOURNAL, os.O_WRONLY | os.O_APPEND)

    def close(self) -> None:
        """Release the journal and the folder's lock."""
        for fd in (self._fd, self._lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The results table of a batch folder: ``results.parquet`` when pyarrow is
    installed, else ``results.csv``."""
    d = Path(out_dir)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return read_results_csv(d / RESULTS_CSV)
    return pq.read_table(str(d / RESULTS_PARQUET)).to_pylist()


# --- engines ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch is: rows in the manifest, finished this run (``ok``, ``failed``),
    skipped as already done, seconds since the run started."""

    total: int
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0
    last: str = ""

    @property
    def remaining(self) -> int:
        """Rows not yet finished or skipped."""
        return max(0, self.total - self.ok - self.failed - self.skipped)

    @property
    def songs_per_min(self) -> float:
        """Rows mixed (ok or failed) per minute this run."""
        n = self.ok + self.failed
        return 60.0 * n / self.elapsed_s if self.elapsed_s > 0 and n else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate (``None`` before the first row)."""
        r = self.songs_per_min
        return 60.0 * self.remaining / r if r > 0 else None


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run did."""

    status: BatchStatus
    out_dir: str
    failures: tuple[tuple[str, str, str], ...] = ()  # (id, error_code, error)
    results: tuple[str, ...] = ()  # the table files written
    unknown_columns: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


ProgressFn = Callable[[BatchStatus], None]
ENGINES = ("local", "ray")


class _Tracker:
    """Counts, the journal, periodic snapshots and progress calls of one run."""

    def __init__(self, store: ResultStore, ids: Sequence[str], progress: ProgressFn | None,
                 ) -> None:
        self.store, self.ids, self.progress = store, list(ids), progress
        self.t0 = time.perf_counter()
        self.status = BatchStatus(total=len(ids))
        self._last_tick = 0.0

    def record(self, row: Mapping[str, Any] | None, rid: str = "") -> None:
        s = self.status
        if row is None:
            self.status = replace(s, skipped=s.skipped + 1, last=rid)
        else:
            self.store.add(row)
            if row.get("status") == "ok":
                self.status = replace(s, ok=s.ok + 1, last=str(row["id"]))
            else:
                self.status = replace(s, failed=s.failed + 1, last=str(row["id"]))
            self.store.snapshot(self.ids, force=False)
        self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        now = time.perf_counter()
        self.status = replace(self.status, elapsed_s=now - self.t0)
        if self.progress is not None and (force or now - self._last_tick >= 1.0):
            self._last_tick = now
            self.progress(self.status)


# local process pool

_WORKER: dict[str, Any] = {}


JobFn = Callable[[Mapping[str, Any], BatchConfig, Mapping[str, str]], "dict[str, Any] | None"]


#: how often a pool worker checks that the batch driver that started it still runs, s
PARENT_POLL_S = 0.2
#: the exit status of a pool worker that ended because its driver was gone
PARENT_GONE_EXIT = 70
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _set_parent_death_signal() -> None:
    """Linux: have the kernel send this process SIGKILL when the thread that spawned it
    ends (``prctl(PR_SET_PDEATHSIG)``). The pool's workers are spawned by the thread that
    runs :func:`run_batch` (``ProcessPoolExecutor.submit`` starts them, as the pool has
    no ``max_tasks_per_child``, whose replacements its manager thread would start), which
    outlives the pool: the signal comes when the driver process dies. Elsewhere, or when
    the call fails, nothing happens (the polling of :func:`_exit_with_parent` remains)."""
    import sys

    if not sys.platform.startswith("linux"):
        return
    import signal

    from vocalmix.core.memory import c_library

    with contextlib.suppress(OSError, AttributeError):
        libc = c_library("c")
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _exit_with_parent(parent_pid: int) -> None:
    """End this process (``os._exit``) as soon as ``parent_pid``, the batch driver that
    spawned it, is gone.

    A driver killed by SIGKILL (``kill -9``, the out-of-memory killer) cannot shut its
    pool down: its workers would wait for work forever, holding their warm models, and
    one in the middle of a song would still write that song's outputs after the driver
    is gone (while a resumed batch may be writing the same song). A daemon thread checks
    every :data:`PARENT_POLL_S` seconds that ``parent_pid`` is still this process's parent
    (an orphan is adopted by another process); on Linux the kernel's parent-death signal
    (:func:`_set_parent_death_signal`) also ends it at once, even while native code holds
    the interpreter. A song cut short leaves only scratch files, which the next run in
    that folder removes."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # gone before the watch began
        os._exit(PARENT_GONE_EXIT)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(PARENT_GONE_EXIT)

    threading.Thread(target=watch, name="vocalmix-parent-watch", daemon=True).start()


def _pool_init(config: BatchConfig, done: dict[str, str],
               worker_init: Callable[[], None] | None, job: JobFn | None = None,
               parent_pid: int | None = None) -> None:
    """Set up a worker process: end it with its driver (``parent_pid``, the local pool's
    driver; ``None`` under Ray, whose actors live in Ray's processes), run
    ``worker_init``, warm up."""
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    if worker_init is not None:
        worker_init()
    _WORKER.update(config=config, done=done, job=job or run_or_skip)
    warm_up(config.method)


def _pool_job(row: dict[str, Any]) -> dict[str, Any] | None:
    return _WORKER["job"](row, _WORKER["config"], _WORKER["done"])


MAX_CRASHES = 2


def _failed_in_driver(r: Mapping[str, Any], config: BatchConfig, code: str,
                      message: str) -> dict[str, Any]:
    """A failed result made by the driver (the worker could not return one), keyed like
    the worker would have keyed it so that a re-run treats it as finished."""
    prep = _prepare(r, config)
    out = prep.row
    out.update(status="failed", error_code=code, error=message, total_s=0.0)
    return out


def _run_local(rows: Sequence[dict[str, Any]], config: BatchConfig, done: dict[str, str],
               tracker: _Tracker, workers: int,
               worker_init: Callable[[], None] | None, job: JobFn | None = None) -> None:
    """Rows through a pool of ``workers`` processes (spawned; each warms up once).

    A worker that dies (out of memory, a crash in native code) breaks the pool: the rows
    that were in flight are retried in a new pool one at a time, so the song that kills
    a worker is found; after :data:`MAX_CRASHES` crashes alone it becomes a failed row
    (``worker.crashed``) and the batch goes on.
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")  # no fork of a threaded parent; the same on every OS

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                   initializer=_pool_init,
                                   initargs=(config, done, worker_init, job, os.getpid()))

    pending: deque[dict[str, Any]] = deque(rows)
    suspects: set[str] = set()  # in flight when a worker died: retried one at a time
    crashes: dict[str, int] = {}
    inflight: dict[Future, dict[str, Any]] = {}
    pool = new_pool()
    try:
        while pending or inflight:
            limit = 1 if suspects else 2 * workers
            while pending and len(inflight) < limit:
                r = pending.popleft()
                inflight[pool.submit(_pool_job, r)] = r
            finished, _ = wait(list(inflight), timeout=1.0, return_when=FIRST_COMPLETED)
            crashed: list[dict[str, Any]] = []
            for f in finished:
                r = inflight.pop(f)
                rid = row_id(r)
                try:
                    res = f.result()
                except BrokenProcessPool:
                    crashed.append(r)
                    continue
                except Exception as e:  # e.g. a row that cannot be sent to a worker
                    code, msg = _error_fields(e)
                    res = _failed_in_driver(r, config, code, msg)
                suspects.discard(rid)
                tracker.record(res, rid)
            if crashed:
                crashed += list(inflight.values())
                inflight.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                if len(crashed) == 1:  # alone in flight: this song killed the worker
                    r = crashed[0]
                    rid = row_id(r)
                    crashes[rid] = crashes.get(rid, 0) + 1
                    if crashes[rid] >= MAX_CRASHES:
                        suspects.discard(rid)
                        tracker.record(_failed_in_driver(
                            r, config, "worker.crashed",
                            f"the worker process died {crashes[rid]} times while mixing "
                            "this song (out of memory, or a crash in a decoder); check its "
                            "files, or mix it alone with vocalmix mix"), rid)
                        crashed = []
                    else:
                        suspects.add(rid)
                else:
                    suspects.update(row_id(r) for r in crashed)
                pending.extendleft(reversed(crashed))
                pool = new_pool()
            tracker.tick()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)  # every worker exits before the batch returns


# Ray Data


class _RayMixer:
    """A Ray Data actor (one per worker): warms up once, then mixes one row per call and
    returns each result as one JSON string (so the driver gets the row exactly)."""

    def __init__(self, config: BatchConfig, done: dict[str, str],
                 worker_init: Callable[[], None] | None) -> None:
        _pool_init(config, done, worker_init)
        self.config, self.done = config, done

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        out = []
        for r in batch.to_pylist():
            res = run_or_skip(r, self.config, self.done)
            out.append(json.dumps({"id": row_id(r), "result": res}, allow_nan=False))
        return pa.table({"result": pa.array(out, type=pa.string())})


def _ray_read(manifest: Manifest) -> Any:
    import pyarrow as pa
    import ray.data

    if manifest.kind == "parquet":
        return ray.data.read_parquet(manifest.path)
    # the rows as the driver read them, every cell as text (an id "007" stays "007", an
    # empty or missing cell is empty): the file read again by Arrow's CSV reader refused
    # what the local engine's reader takes (a row with fewer cells than the header)
    table = pa.table({h: pa.array([str(r.get(h) or "") for r in manifest.rows], pa.string())
                      for h in manifest.header})
    return ray.data.from_arrow(table)


MAX_RAY_BLOCKS = 4096


def _run_ray(manifest: Manifest, config: BatchConfig, done: dict[str, str],
             tracker: _Tracker, workers: int | None, address: str | None,
             worker_init: Callable[[], None] | None) -> None:
    """Rows through Ray Data: ``read_csv``/``read_parquet`` -> ``map_batches`` over an
    actor pool (``num_cpus=1`` each; one actor per worker, warmed up once) -> results
    streamed back to the driver's journal as each row finishes. Against the cluster at
    ``address``, or a local Ray started (and stopped) here with ``workers`` CPUs."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise DependencyError("--engine ray needs Ray Data: pip install 'vocalmix[ray]'"
                              ) from None
    import logging

    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": logging.ERROR}
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=workers or default_workers(), **kw)
        started = True
    try:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        n_workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        n_rows = len(manifest.rows)
        # the manifest is read and split into blocks (one row each, up to MAX_RAY_BLOCKS)
        # before the actors start: a pool holding every CPU would otherwise leave none for
        # the read and repartition tasks (a deadlock when workers = CPUs)
        ds = _ray_read(manifest).repartition(max(1, min(n_rows, MAX_RAY_BLOCKS))).materialize()
        pool = ray.data.ActorPoolStrategy(size=max(1, min(n_workers, n_rows)))
        # a worker keeps the driver's BLAS thread count (the estimators' matrix products
        # round differently with another, vocalmix.core.threads) and numpy's huge-page
        # setting: the pool's processes inherit the driver's environment, and Ray's
        # actors get them here
        threads = worker_env()
        ds = ds.map_batches(
            _RayMixer, batch_size=1, batch_format="pyarrow", num_cpus=1, compute=pool,
            fn_constructor_kwargs={"config": config, "done": done, "worker_init": worker_init},
            runtime_env={"env_vars": threads},
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for text in batch.column("result").to_pylist():
                item = json.loads(text)
                tracker.record(item["result"], item["id"])
            tracker.tick()
    finally:
        if started:
            ray.shutdown()


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def plan_conflicts(manifest: Manifest, config: BatchConfig) -> dict[str, str]:
    """``{id: message}`` of the rows whose outputs (``mix/<name>.wav``,
    ``params/<name>.json`` under ``config.out_dir``) would replace a file that another
    row reads (its vocal, backing, params_in or reverb preset file, compared as
    :class:`~vocalmix.core.audio.OutputPlan` compares paths: through symlinks and hard
    links), or the manifest itself. Such a row is not mixed: it fails with
    ``output.is_input``, and the rows that read the file get it intact. (A row whose
    outputs are its own inputs is refused by its own output check.) Only stats files;
    reads none."""
    from vocalmix.core.audio import _path_keys

    # key -> [(row id, what, path)] of whatever reads that file
    readers: dict[Any, list[tuple[str | None, str, str]]] = {}
    for k in _path_keys(manifest.path):
        readers[k] = [(None, "manifest", manifest.path)]
    specs = []
    for r in manifest.rows:
        try:
            spec = parse_row(r, config)
        except Exception:  # a row that cannot be parsed fails alone; it reads nothing
            continue
        specs.append(spec)
        for what, path in _input_files(spec):
            for k in _path_keys(path):
                readers.setdefault(k, []).append((spec.id, what, path))
    root = Path(config.out_dir)
    refused: dict[str, str] = {}
    for spec in specs:
        for rel, output in zip(output_paths(spec.id, spec.mix_format),
                               ("mix", "params document"),
                               strict=True):
            dest = root / rel
            hit = next((h for k in _path_keys(dest) for h in readers.get(k, ())
                        if h[0] != spec.id), None)
            if hit is None:
                continue
            rid, what, path = hit
            whose = ("the manifest of this batch" if rid is None
                     else f"the {what} of row {rid!r}")
            shown = "" if os.path.abspath(path) == str(dest) else f" (as {path})"
            refused[spec.id] = (
                f"{dest}: is {whose}{shown}, and this row would write its {output} there; "
                "vocalmix never overwrites an input file, so this row is not mixed: move "
                "that file out of the output folder, or give the batch another output "
                "folder")
            break
    return refused


def _check_out_dir(out: Path, given: str | os.PathLike[str]) -> None:
    """Refuse (:class:`~vocalmix.core.errors.OutputError`) an output folder that is a
    file, or lies under one, before anything is made."""
    from vocalmix.core.errors import OutputError

    q = out
    while not os.path.lexists(q) and q != q.parent:
        q = q.parent
    if os.path.isdir(q):
        return
    if q == out:
        raise OutputError(f"{given}: is a file; give a folder for the batch's outputs")
    raise OutputError(f"{q}: is a file, but the output folder {given} needs a folder there")


def _refuse_results_over_manifest(source: Path, out: Path) -> None:
    """Refuse (:class:`~vocalmix.core.errors.OverwriteInputError`) a manifest that is one
    of the files the batch writes in ``out`` (``results.csv`` and ``results.parquet`` are
    manifests too), through symlinks and hard links, before anything is written."""
    from vocalmix.core.audio import _same_file
    from vocalmix.core.errors import OverwriteInputError

    for name in (RESULTS_CSV, RESULTS_PARQUET, JOURNAL, LOCK):
        if _same_file(out / name, source):
            raise OverwriteInputError(
                f"{source}: is the manifest this batch reads, and the batch would write "
                f"its results over it ({out / name}); vocalmix never overwrites an input "
                "file (copy the manifest out of the output folder)")


def run_batch(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    engine: str = "local",
    address: str | None = None,
    method: str | None = None,
    fold: str = "error",
    mix_format: str = "wav",
    bit_depth: int | None = None,
    retry_failed: bool = False,
    progress: ProgressFn | None = None,
    worker_init: Callable[[], None] | None = None,
) -> BatchSummary:
    """Mix every row of a manifest (CSV or Parquet file, or a folder of pairs) into
    ``out_dir``, skipping rows already finished there, and write the results table.

    ``engine``: ``local`` (a pool of ``workers`` processes, default: all cores) or
    ``ray`` (Ray Data on the cluster at ``address``, or on a local Ray started with
    ``workers`` CPUs). ``method`` and ``fold``: defaults for rows that do not set them.
    ``mix_format``: the mixes' format (:data:`MIX_FORMATS`); ``bit_depth``: a WAV or
    FLAC mix's bits per sample (:func:`vocalmix.core.audio.bit_depth_subtype`; an
    :class:`~vocalmix.core.errors.OutputError` for one its format cannot hold).
    ``retry_failed``: mix failed rows again even when nothing about them changed.
    ``progress`` is called with a :class:`BatchStatus` after every row and about once a
    second. ``worker_init`` runs once in every worker process before it warms up.

    Everything is checked before anything is made in ``out_dir``: raises
    :class:`~vocalmix.core.errors.DataError` for a manifest that cannot be used,
    :class:`~vocalmix.core.errors.OutputError` for an ``out_dir`` that is a file, and
    :class:`~vocalmix.core.errors.OverwriteInputError` for a manifest that is one of the
    results files the batch writes there; never for a bad song. A row whose outputs would
    replace a file another row reads is not mixed (:func:`plan_conflicts`).
    """
    from vocalmix.core.audio import FOLD_MODES, bit_depth_subtype
    from vocalmix.core.errors import ParamsError
    from vocalmix.estimators.registry import METHODS

    if engine not in ENGINES:
        raise ParamsError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if mix_format not in MIX_FORMATS:
        raise ParamsError(f"unknown mix format {mix_format!r}: use one of "
                          f"{', '.join(MIX_FORMATS)}")
    bit_depth_subtype(f"mix.{mix_format}", bit_depth)  # a depth it cannot hold: refused
    if method is not None and method not in METHODS:
        raise ParamsError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if fold not in FOLD_MODES:
        raise ParamsError(f"unknown fold {fold!r}: use one of {', '.join(FOLD_MODES)}")
    if workers is not None and workers < 1:
        raise ParamsError(f"--workers {workers}: give at least 1")
    out = Path(out_dir).resolve()
    src = Path(source)
    _refuse_non_utf8_folder(out, "output folder", OutputError)
    _refuse_non_utf8_folder(src.resolve() if src.is_dir() else src.resolve().parent,
                            "folder" if src.is_dir() else "manifest's folder", DataError)
    _check_out_dir(out, out_dir)
    folder_text = None
    if src.is_dir():  # its manifest is written once the folder is ours (the lock)
        folder_text = _folder_manifest_text(src, out / FOLDER_MANIFEST)
    else:
        manifest = read_manifest(src)  # reads only
        _refuse_results_over_manifest(src, out)
    with ResultStore(out) as store:
        if folder_text is not None:
            manifest = _written_manifest(folder_text, out / FOLDER_MANIFEST)
        config = BatchConfig(out_dir=str(out), base_dir=manifest.base_dir,
                             method=default_method(method), fold=fold, mix_format=mix_format,
                             bit_depth=bit_depth)
        config = replace(config, refused=tuple(plan_conflicts(manifest, config).items()))
        ids = manifest.ids
        done = store.done_keys(ids, retry_failed)
        tracker = _Tracker(store, ids, progress)
        tracker.tick(force=True)
        try:
            if engine == "local":
                n = max(1, min(workers or default_workers(), len(ids)))
                _run_local(list(manifest.rows), config, done, tracker, n, worker_init)
            else:
                _run_ray(manifest, config, done, tracker, workers, address, worker_init)
        finally:
            store.snapshot(ids)
        store.compact()
        tracker.tick(force=True)
        failures = store.failures(ids)
        files = [str(out / RESULTS_CSV)]
        if store.parquet_written:
            files.insert(0, str(out / RESULTS_PARQUET))
        notes = []
        if not store.parquet_written:
            notes.append("results.parquet not written: pyarrow is not installed "
                         "(pip install 'vocalmix[batch]')")
        if store.torn_lines:
            notes.append(f"{store.torn_lines} torn line(s) in the journal (a run killed "
                         "while writing) were ignored; their rows were mixed again")
        return BatchSummary(
            status=tracker.status, out_dir=str(out),
            failures=tuple(failures),
            results=tuple(files), unknown_columns=manifest.unknown_columns,
            notes=tuple(notes),
        )


__all__ = [
    "BatchConfig",
    "BatchStatus",
    "BatchSummary",
    "COLUMN_NAMES",
    "ENGINES",
    "JobSpec",
    "Manifest",
    "RESULT_COLUMNS",
    "ResultStore",
    "VOLATILE_COLUMNS",
    "code_version",
    "default_workers",
    "manifest_for",
    "mix_job",
    "model_version",
    "output_paths",
    "parse_row",
    "plan_conflicts",
    "read_manifest",
    "read_results",
    "read_results_csv",
    "run_batch",
    "run_or_skip",
    "safe_name",
    "scan_folder",
    "warm_up",
]
