"""MixParams: every setting of a mix, the targets that chose them, and what was achieved.

A :class:`MixParams` is a tree of frozen dataclasses with units in every field name
(``gain_db``, ``freq_hz``, ``threshold_db``, ``attack_ms``, ``decay_s``...). Field names
follow pedalboard's where pedalboard has the same knob. It serialises to one versioned
JSON document (:meth:`MixParams.to_json`) and back without loss
(:meth:`MixParams.from_json`); every value is range-checked on construction, so an edited
file with an absurd value fails with a :class:`~vocalmix.core.errors.ParamsError` naming the
field, its value and the allowed range.

Editing: change a *setting* (e.g. ``vocal.gain_db``) and run ``vocalmix render`` to hear
exactly that; change a *target* (e.g. ``targets.vocal_to_mix_lu``) and run
``vocalmix mix --params-in`` to let the resolvers find new settings for it.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

from vocalmix.core.errors import ParamsError

FORMAT = "vocalmix.params"
SCHEMA_VERSION = 2
#: versions this vocalmix reads; version 1 (no ``band_decay_ratios``) is a subset of 2
READABLE_VERSIONS = (1, 2)

EQ_KINDS = ("peak", "low_shelf", "high_shelf")
REVERB_TYPES = ("freeverb", "synthetic")
#: octave bands (Hz) of ``Reverb.band_decay_ratios``; the 1 kHz entry is the reference
DECAY_BANDS_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
#: allowed reverb decay settings (``Reverb.decay_s``, and any band's decay), s
REVERB_DECAY_RANGE_S = (0.1, 30.0)
#: allowed reverb decay targets (``Targets.reverb_decay_s``), s
TARGET_DECAY_RANGE_S = (0.2, 12.0)
METHODS = ("baseline", "model", "manual")


def _coerce(obj: object) -> None:
    """Store numpy scalars and ints given for float fields as plain Python floats."""
    for f in fields(obj):  # type: ignore[arg-type]
        v = getattr(obj, f.name)
        if f.type in ("float", "float | None") and isinstance(v, numbers.Real):
            if not isinstance(v, bool):
                object.__setattr__(obj, f.name, float(v))


def _check(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParamsError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not (lo <= value <= hi):
        raise ParamsError(f"{name} = {value} is out of range: allowed {lo} to {hi}")


def _check_opt(name: str, value: float | None, lo: float, hi: float) -> None:
    if value is not None:
        _check(name, value, lo, hi)


@dataclass(frozen=True)
class HighPass:
    """Vocal high-pass filter (pedalboard ``HighpassFilter``, 12 dB/octave)."""

    enabled: bool = True
    cutoff_frequency_hz: float = 80.0

    def __post_init__(self) -> None:
        _coerce(self)
        _check("vocal.highpass.cutoff_frequency_hz", self.cutoff_frequency_hz, 10.0, 1000.0)


@dataclass(frozen=True)
class EqBand:
    """One parametric EQ band: ``kind`` is ``peak``, ``low_shelf`` or ``high_shelf``."""

    kind: str = "peak"
    freq_hz: float = 1000.0
    gain_db: float = 0.0
    q: float = 0.707
    source: str = "manual"  # who chose it: "masking", "correction" or "manual"

    def __post_init__(self) -> None:
        _coerce(self)
        if self.kind not in EQ_KINDS:
            raise ParamsError(f"EQ band kind {self.kind!r} is not one of {', '.join(EQ_KINDS)}")
        _check("EQ band freq_hz", self.freq_hz, 20.0, 20000.0)
        _check("EQ band gain_db", self.gain_db, -24.0, 24.0)
        _check("EQ band q", self.q, 0.1, 20.0)


@dataclass(frozen=True)
class Compressor:
    """Vocal compressor (pedalboard ``Compressor``) plus make-up gain after it."""

    enabled: bool = True
    threshold_db: float = 0.0
    ratio: float = 1.0
    attack_ms: float = 10.0
    release_ms: float = 120.0
    makeup_db: float = 0.0

    def __post_init__(self) -> None:
        _coerce(self)
        _check("vocal.compressor.threshold_db", self.threshold_db, -80.0, 0.0)
        _check("vocal.compressor.ratio", self.ratio, 1.0, 50.0)
        _check("vocal.compressor.attack_ms", self.attack_ms, 0.1, 500.0)
        _check("vocal.compressor.release_ms", self.release_ms, 1.0, 5000.0)
        _check("vocal.compressor.makeup_db", self.makeup_db, -24.0, 48.0)


@dataclass(frozen=True)
class Reverb:
    """Vocal reverb on a send: wet signal added to the dry vocal.

    Two types, one set of fields (each type ignores the knobs of the other):

    * ``freeverb``: pedalboard's ``Reverb`` with ``room_size``, ``damping`` and ``width``;
      ``decay_s`` is the broadband T30 those knobs give (from a calibration of its
      rendered impulse responses, see :mod:`vocalmix.core.reverb`), and ``wet_level_db`` the
      gain applied to its output.
    * ``synthetic``: convolution with a synthesised impulse response, exponentially
      decaying noise whose T30 is ``decay_s`` at 1 kHz and ``decay_s x
      band_decay_ratios[i]`` in the octave band ``DECAY_BANDS_HZ[i]`` (125 Hz to 8 kHz;
      the 1 kHz entry is the reference, 1.0), interpolated in between; ``width``
      decorrelates the channels (0 mono, 1 uncorrelated). Its wet energy is normalised,
      so ``wet_level_db`` is the reverberant-to-direct energy ratio of the send, dB.
      Every value is rendered as written (see :func:`vocalmix.core.reverb.render_synthetic_ir`).

    ``pre_delay_ms`` delays the wet signal in both types.
    """

    enabled: bool = True
    type: str = "freeverb"
    decay_s: float = 1.5
    room_size: float = 0.3
    damping: float = 0.5
    width: float = 1.0
    wet_level_db: float = -14.0
    pre_delay_ms: float = 20.0
    band_decay_ratios: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        _coerce(self)
        if self.type not in REVERB_TYPES:
            raise ParamsError(f"reverb type {self.type!r} is not one of {REVERB_TYPES}")
        _check("vocal.reverb.decay_s", self.decay_s, *REVERB_DECAY_RANGE_S)
        _check("vocal.reverb.room_size", self.room_size, 0.0, 1.0)
        _check("vocal.reverb.damping", self.damping, 0.0, 1.0)
        _check("vocal.reverb.width", self.width, 0.0, 1.0)
        _check("vocal.reverb.wet_level_db", self.wet_level_db, -80.0, 6.0)
        _check("vocal.reverb.pre_delay_ms", self.pre_delay_ms, 0.0, 500.0)
        r = tuple(self.band_decay_ratios)
        if len(r) != len(DECAY_BANDS_HZ):
            raise ParamsError(
                f"vocal.reverb.band_decay_ratios must have {len(DECAY_BANDS_HZ)} values (one per "
                f"octave band {', '.join(f'{b:g}' for b in DECAY_BANDS_HZ)} Hz), got {len(r)}")
        for i, (b, v) in enumerate(zip(DECAY_BANDS_HZ, r, strict=True)):
            _check(f"vocal.reverb.band_decay_ratios[{i}] ({b:g} Hz)", v, 0.1, 4.0)
        if float(r[3]) != 1.0:
            raise ParamsError(
                "vocal.reverb.band_decay_ratios[3] (1000 Hz) is the reference and must be 1.0 "
                f"(got {r[3]}): change decay_s to scale every band")
        object.__setattr__(self, "band_decay_ratios", tuple(float(v) for v in r))
        longest = REVERB_DECAY_RANGE_S[1]
        if self.type == "synthetic" and self.decay_s * max(r) > longest:
            raise ParamsError(
                f"vocal.reverb: decay_s x the largest band ratio = {self.decay_s * max(r):.1f} s"
                f" is out of range: allowed up to {longest:g} s")


@dataclass(frozen=True)
class VocalChain:
    """The vocal chain, in render order: high-pass, EQ, compressor, gain, reverb."""

    highpass: HighPass = field(default_factory=HighPass)
    eq_bands: tuple[EqBand, ...] = ()
    compressor: Compressor = field(default_factory=Compressor)
    gain_db: float = 0.0
    reverb: Reverb = field(default_factory=Reverb)

    def __post_init__(self) -> None:
        _coerce(self)
        if len(self.eq_bands) > 12:
            raise ParamsError(f"at most 12 EQ bands are allowed, got {len(self.eq_bands)}")
        _check("vocal.gain_db", self.gain_db, -60.0, 60.0)


@dataclass(frozen=True)
class BackingChain:
    """The backing track: a gain only."""

    gain_db: float = 0.0

    def __post_init__(self) -> None:
        _coerce(self)
        _check("backing.gain_db", self.gain_db, -60.0, 24.0)


@dataclass(frozen=True)
class Master:
    """Master stage: a true-peak limiter that is transparent below ``ceiling_dbtp``."""

    ceiling_dbtp: float = -1.0
    lookahead_ms: float = 5.0
    release_ms: float = 80.0

    def __post_init__(self) -> None:
        _coerce(self)
        _check("master.ceiling_dbtp", self.ceiling_dbtp, -20.0, 0.0)
        _check("master.lookahead_ms", self.lookahead_ms, 0.5, 50.0)
        _check("master.release_ms", self.release_ms, 1.0, 2000.0)


@dataclass(frozen=True)
class Targets:
    """What the estimator aimed for; the resolvers turn these into settings.

    ``vocal_to_mix_lu``: integrated loudness of the processed vocal (reverb included)
    minus that of the pre-master mix, LU. ``vocal_lra_lu``: loudness range of the vocal
    after the compressor, before reverb, LU. ``reverb_decay_s``: reverb T30, s (the
    broadband T30 for ``freeverb``, the T30 at 1 kHz for ``synthetic``, whose other bands
    follow through ``band_decay_ratios``).
    """

    vocal_to_mix_lu: float = -3.0
    vocal_lra_lu: float = 14.0
    reverb_decay_s: float = 1.5

    def __post_init__(self) -> None:
        _coerce(self)
        _check("targets.vocal_to_mix_lu", self.vocal_to_mix_lu, -20.0, -0.5)
        _check("targets.vocal_lra_lu", self.vocal_lra_lu, 1.0, 30.0)
        _check("targets.reverb_decay_s", self.reverb_decay_s, *TARGET_DECAY_RANGE_S)


@dataclass(frozen=True)
class Achieved:
    """Measurements of the rendered mix (all pre-master except the ``mix_*`` figures)."""

    vocal_to_mix_lu: float | None = None
    vocal_to_backing_lu: float | None = None
    vocal_lra_lu: float | None = None
    mix_integrated_lufs: float | None = None
    mix_true_peak_dbtp: float | None = None
    master_gain_reduction_db: float | None = None

    def __post_init__(self) -> None:
        _coerce(self)
        _check_opt("achieved.vocal_to_mix_lu", self.vocal_to_mix_lu, -200.0, 200.0)
        _check_opt("achieved.vocal_to_backing_lu", self.vocal_to_backing_lu, -200.0, 200.0)
        _check_opt("achieved.vocal_lra_lu", self.vocal_lra_lu, 0.0, 200.0)
        _check_opt("achieved.mix_integrated_lufs", self.mix_integrated_lufs, -200.0, 30.0)
        _check_opt("achieved.mix_true_peak_dbtp", self.mix_true_peak_dbtp, -400.0, 30.0)
        _check_opt("achieved.master_gain_reduction_db", self.master_gain_reduction_db, 0, 200)


@dataclass(frozen=True)
class Provenance:
    """Who made these parameters."""

    method: str = "manual"
    vocalmix_version: str = ""
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _coerce(self)
        if self.method not in METHODS:
            raise ParamsError(f"method {self.method!r} is not one of {', '.join(METHODS)}")


@dataclass(frozen=True)
class MixParams:
    """Every setting of one mix, plus its targets, achieved figures and provenance."""

    vocal: VocalChain = field(default_factory=VocalChain)
    backing: BackingChain = field(default_factory=BackingChain)
    master: Master = field(default_factory=Master)
    targets: Targets = field(default_factory=Targets)
    achieved: Achieved = field(default_factory=Achieved)
    provenance: Provenance = field(default_factory=Provenance)
    version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        _coerce(self)
        if self.version not in READABLE_VERSIONS:
            raise ParamsError(
                f"params version {self.version} is not supported: this vocalmix reads "
                f"versions {', '.join(map(str, READABLE_VERSIONS))}"
            )
        # an older document is a subset of this schema: it is read as the current version
        object.__setattr__(self, "version", SCHEMA_VERSION)

    # --- JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain dict (the JSON document, with its ``format`` tag)."""
        d = asdict(self)
        d["vocal"]["eq_bands"] = [dict(b) for b in d["vocal"]["eq_bands"]]
        d["provenance"]["notes"] = list(d["provenance"]["notes"])
        return {"format": FORMAT, **d}

    def to_json(self) -> str:
        """The JSON document (indented, keys in field order, floats round-trip exactly)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MixParams:
        """Build from a dict; unknown keys and wrong types raise :class:`ParamsError`."""
        if not isinstance(d, dict):
            raise ParamsError("a params document must be a JSON object")
        d = dict(d)
        fmt = d.pop("format", FORMAT)
        if fmt != FORMAT:
            raise ParamsError(f"not a vocalmix params document (format {fmt!r})")
        return _build(cls, d, "")

    @classmethod
    def from_json(cls, text: str) -> MixParams:
        """Parse a JSON document written by :meth:`to_json` (or edited by a person)."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ParamsError(f"params file is not valid JSON: {e}") from None
        return cls.from_dict(d)

    # --- edits -----------------------------------------------------------------------
    def with_targets(self, **changes: float | None) -> MixParams:
        """A copy with some targets changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, targets=replace(self.targets, **changes))


_NESTED: dict[tuple[type, str], type] = {}


def _field_types(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _build(cls: type, d: Any, path: str) -> Any:
    if not isinstance(d, dict):
        raise ParamsError(f"{path or 'params'} must be a JSON object")
    hints = _field_types(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ParamsError(
            f"unknown key(s) in {path or 'params'}: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(names))})"
        )
    kwargs: dict[str, Any] = {}
    for name, value in d.items():
        hint = hints[name]
        where = f"{path}.{name}" if path else name
        kwargs[name] = _convert(hint, value, where)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ParamsError(f"{path or 'params'}: {e}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    import typing

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where} must be a list")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is float or (args and float in args):
        if value is None and type(None) in args:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where} must be a string, got {value!r}")
        return value
    return value


__all__ = [
    "Achieved",
    "BackingChain",
    "Compressor",
    "DECAY_BANDS_HZ",
    "EqBand",
    "HighPass",
    "Master",
    "MixParams",
    "Provenance",
    "Reverb",
    "Targets",
    "VocalChain",
]
