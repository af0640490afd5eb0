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
from typing import Any, ClassVar

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


# --- ranges, declared once ------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """The declared range and unit of one numeric parameter: the one place it is written.

    Validation (:func:`_validate`), the estimators' clipping (:func:`clip`), the HTTP API's
    schema and the page's controls (:func:`param_specs`) all read it from here.

    Attributes:
        lo, hi: the allowed closed range, in ``unit``.
        unit: ``dB``, ``LU``, ``Hz``, ``ms``, ``s``, ``dBTP``, ``ratio`` or ``""``.
        label: a short name for a person.
        doc: one sentence on what the value does.
        step: a sensible editing step, in ``unit``.
        log: whether the value is best edited on a logarithmic scale.
        view: the range a control shows by default (``None``: the whole range).
    """

    lo: float
    hi: float
    unit: str
    label: str
    doc: str = ""
    step: float = 0.1
    log: bool = False
    view: tuple[float, float] | None = None


def num(default: float, lo: float, hi: float, unit: str, label: str, doc: str = "",
        **kw: Any) -> Any:
    """A float dataclass field whose range and unit are declared in its metadata."""
    return field(default=default, metadata={"spec": Spec(lo, hi, unit, label, doc, **kw)})


def spec_of(cls: type, name: str) -> Spec:
    """The :class:`Spec` of field ``name`` of a params dataclass ``cls``."""
    for f in fields(cls):
        if f.name == name and "spec" in f.metadata:
            return f.metadata["spec"]
    raise KeyError(f"{cls.__name__}.{name} has no declared range")


def clip(cls: type, name: str, value: float) -> float:
    """``value`` clipped to the declared range of ``cls.name`` (for estimators)."""
    s = spec_of(cls, name)
    return float(min(max(float(value), s.lo), s.hi))


def _check(name: str, value: float, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParamsError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not (lo <= value <= hi):
        raise ParamsError(f"{name} = {value} is out of range: allowed {lo:g} to {hi:g}")


def _validate(obj: Any) -> None:
    """Store numbers given for float fields as Python floats and check declared ranges.

    Field paths in messages come from the class's ``PATH`` (e.g. ``vocal.compressor``).
    """
    prefix = getattr(obj, "PATH", "")
    for f in fields(obj):
        v = getattr(obj, f.name)
        if f.type in ("float", "float | None") and isinstance(v, numbers.Real):
            if not isinstance(v, bool):
                v = float(v)
                object.__setattr__(obj, f.name, v)
        spec = f.metadata.get("spec")
        if spec is None or (v is None and f.type == "float | None"):
            continue
        _check(f"{prefix}.{f.name}" if prefix else f.name, v, spec.lo, spec.hi)


@dataclass(frozen=True)
class HighPass:
    """Vocal high-pass filter (pedalboard's ``HighpassFilter``: first order, 6 dB/octave)."""

    PATH: ClassVar[str] = "vocal.highpass"
    enabled: bool = True
    cutoff_frequency_hz: float = num(80.0, 10.0, 1000.0, "Hz", "Cut-off", "high-pass corner",
                                     step=1.0, log=True, view=(20.0, 400.0))

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class EqBand:
    """One parametric EQ band: ``kind`` is ``peak``, ``low_shelf`` or ``high_shelf``."""

    PATH: ClassVar[str] = "vocal.eq_bands[]"
    kind: str = "peak"
    freq_hz: float = num(1000.0, 20.0, 20000.0, "Hz", "Frequency", step=1.0, log=True)
    gain_db: float = num(0.0, -24.0, 24.0, "dB", "Gain", view=(-12.0, 12.0))
    q: float = num(0.707, 0.1, 20.0, "", "Q", "bandwidth: higher is narrower", step=0.01,
                   log=True, view=(0.3, 8.0))
    source: str = "manual"  # who chose it: "masking", "correction" or "manual"

    def __post_init__(self) -> None:
        if self.kind not in EQ_KINDS:
            raise ParamsError(f"EQ band kind {self.kind!r} is not one of {', '.join(EQ_KINDS)}")
        _validate(self)


@dataclass(frozen=True)
class Compressor:
    """Vocal compressor (pedalboard ``Compressor``) plus make-up gain after it."""

    PATH: ClassVar[str] = "vocal.compressor"
    enabled: bool = True
    threshold_db: float = num(0.0, -80.0, 0.0, "dB", "Threshold", step=0.5, view=(-60.0, 0.0))
    ratio: float = num(1.0, 1.0, 50.0, "ratio", "Ratio", log=True, view=(1.0, 20.0))
    attack_ms: float = num(10.0, 0.1, 500.0, "ms", "Attack", log=True, view=(0.1, 200.0))
    release_ms: float = num(120.0, 1.0, 5000.0, "ms", "Release", step=1.0, log=True,
                            view=(5.0, 2000.0))
    makeup_db: float = num(0.0, -24.0, 48.0, "dB", "Make-up", view=(-12.0, 36.0))

    def __post_init__(self) -> None:
        _validate(self)


#: allowed ratio of an octave band's decay to the 1 kHz decay (``band_decay_ratios``)
BAND_DECAY_RATIO = Spec(0.1, 4.0, "ratio", "Band decay", "decay time in this octave band "
                        "over the one at 1 kHz", step=0.01, log=True)


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

    PATH: ClassVar[str] = "vocal.reverb"
    enabled: bool = True
    type: str = "freeverb"
    decay_s: float = num(1.5, REVERB_DECAY_RANGE_S[0], REVERB_DECAY_RANGE_S[1], "s",
                         "Decay time", "T30: how long the reverb takes to fade by 60 dB",
                         step=0.01, log=True, view=(0.1, 12.0))
    room_size: float = num(0.3, 0.0, 1.0, "", "Room size", step=0.01)
    damping: float = num(0.5, 0.0, 1.0, "", "Damping", step=0.01)
    width: float = num(1.0, 0.0, 1.0, "", "Width", "0 mono, 1 fully decorrelated channels",
                       step=0.01)
    wet_level_db: float = num(-14.0, -80.0, 6.0, "dB", "Wet level", step=0.5,
                              view=(-60.0, 6.0))
    pre_delay_ms: float = num(20.0, 0.0, 500.0, "ms", "Pre-delay", "delay of the wet signal",
                              step=1.0, view=(0.0, 200.0))
    band_decay_ratios: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if self.type not in REVERB_TYPES:
            raise ParamsError(f"reverb type {self.type!r} is not one of {REVERB_TYPES}")
        _validate(self)
        r = tuple(self.band_decay_ratios)
        if len(r) != len(DECAY_BANDS_HZ):
            raise ParamsError(
                f"vocal.reverb.band_decay_ratios must have {len(DECAY_BANDS_HZ)} values (one per "
                f"octave band {', '.join(f'{b:g}' for b in DECAY_BANDS_HZ)} Hz), got {len(r)}")
        for i, (b, v) in enumerate(zip(DECAY_BANDS_HZ, r, strict=True)):
            _check(f"vocal.reverb.band_decay_ratios[{i}] ({b:g} Hz)", v, BAND_DECAY_RATIO.lo,
                   BAND_DECAY_RATIO.hi)
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


#: the most EQ bands a vocal chain may have
MAX_EQ_BANDS = 12


@dataclass(frozen=True)
class VocalChain:
    """The vocal chain, in render order: high-pass, EQ, compressor, gain, reverb."""

    PATH: ClassVar[str] = "vocal"
    highpass: HighPass = field(default_factory=HighPass)
    eq_bands: tuple[EqBand, ...] = ()
    compressor: Compressor = field(default_factory=Compressor)
    gain_db: float = num(0.0, -60.0, 60.0, "dB", "Vocal gain", view=(-40.0, 40.0))
    reverb: Reverb = field(default_factory=Reverb)

    def __post_init__(self) -> None:
        if len(self.eq_bands) > MAX_EQ_BANDS:
            raise ParamsError(
                f"at most {MAX_EQ_BANDS} EQ bands are allowed, got {len(self.eq_bands)}")
        _validate(self)


@dataclass(frozen=True)
class BackingChain:
    """The backing track: a gain only."""

    PATH: ClassVar[str] = "backing"
    gain_db: float = num(0.0, -60.0, 24.0, "dB", "Backing gain", view=(-30.0, 12.0))

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class Master:
    """Master stage: a true-peak limiter that is transparent below ``ceiling_dbtp``."""

    PATH: ClassVar[str] = "master"
    ceiling_dbtp: float = num(-1.0, -20.0, 0.0, "dBTP", "Limiter ceiling", view=(-12.0, 0.0))
    lookahead_ms: float = num(5.0, 0.5, 50.0, "ms", "Look-ahead", step=0.5)
    release_ms: float = num(80.0, 1.0, 2000.0, "ms", "Limiter release", step=1.0, log=True,
                            view=(5.0, 1000.0))

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class Targets:
    """What the estimator aimed for; the resolvers turn these into settings.

    ``vocal_to_mix_lu``: integrated loudness of the processed vocal (reverb included)
    minus that of the pre-master mix, LU. ``vocal_lra_lu``: loudness range of the vocal
    after the compressor, before reverb, LU. ``reverb_decay_s``: reverb T30, s (the
    broadband T30 for ``freeverb``, the T30 at 1 kHz for ``synthetic``, whose other bands
    follow through ``band_decay_ratios``).
    """

    PATH: ClassVar[str] = "targets"
    vocal_to_mix_lu: float = num(-3.0, -20.0, -0.5, "LU", "Vocal vs mix",
                                 "vocal loudness against the whole mix")
    vocal_lra_lu: float = num(14.0, 1.0, 30.0, "LU", "Loudness range",
                              "the vocal's loudness range after compression", step=0.5)
    reverb_decay_s: float = num(1.5, TARGET_DECAY_RANGE_S[0], TARGET_DECAY_RANGE_S[1], "s",
                                "Reverb time", "T30 the resolver finds a reverb setting for",
                                step=0.05)

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class Achieved:
    """Measurements of the rendered mix (all pre-master except the ``mix_*`` figures)."""

    PATH: ClassVar[str] = "achieved"
    vocal_to_mix_lu: float | None = num(None, -200.0, 200.0, "LU", "Vocal vs mix")
    vocal_to_backing_lu: float | None = num(None, -200.0, 200.0, "LU", "Vocal vs backing")
    vocal_lra_lu: float | None = num(None, 0.0, 200.0, "LU", "Vocal loudness range")
    mix_integrated_lufs: float | None = num(None, -200.0, 30.0, "LUFS", "Mix loudness")
    mix_true_peak_dbtp: float | None = num(None, -400.0, 30.0, "dBTP", "Mix true peak")
    master_gain_reduction_db: float | None = num(None, 0.0, 200.0, "dB", "Limiter reduction")

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class Provenance:
    """Who made these parameters."""

    method: str = "manual"
    vocalmix_version: str = ""
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
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


def param_specs() -> dict[str, dict[str, Any]]:
    """Every declared numeric parameter, by its path in the JSON document.

    ``{"vocal.compressor.threshold_db": {"min": -80.0, "max": 0.0, "unit": "dB",
    "label": "Threshold", "doc": ..., "step": 0.5, "log": false, "view": [-60.0, 0.0],
    "default": 0.0}, ...}``; list items are written ``[]`` (``vocal.eq_bands[].gain_db``,
    ``vocal.reverb.band_decay_ratios[]``). The HTTP API serves this to the page, and its
    schema's ``minimum``/``maximum`` come from it.
    """
    import typing

    out: dict[str, dict[str, Any]] = {}

    def entry(spec: Spec, default: Any) -> dict[str, Any]:
        return {"min": spec.lo, "max": spec.hi, "unit": spec.unit, "label": spec.label,
                "doc": spec.doc, "step": spec.step, "log": spec.log,
                "view": list(spec.view or (spec.lo, spec.hi)), "default": default}

    def walk(cls: type, path: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            where = f"{path}.{f.name}" if path else f.name
            hint = hints[f.name]
            if "spec" in f.metadata:
                out[where] = entry(f.metadata["spec"], f.default)
            elif is_dataclass(hint):
                walk(hint, where)  # type: ignore[arg-type]
            elif typing.get_origin(hint) is tuple and is_dataclass(typing.get_args(hint)[0]):
                walk(typing.get_args(hint)[0], where + "[]")
    walk(MixParams, "")
    out["vocal.reverb.band_decay_ratios[]"] = entry(BAND_DECAY_RATIO, 1.0)
    return out


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
    "Spec",
    "clip",
    "param_specs",
    "spec_of",
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
