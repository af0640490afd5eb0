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
from functools import lru_cache
from typing import Any, ClassVar, TypeGuard

from vocalmix.core.errors import ParamsError
from vocalmix.core.jsondoc import short_repr

FORMAT = "vocalmix.params"
SCHEMA_VERSION = 4
#: versions this vocalmix reads: each older one is a subset of the next (version 1 has no
#: ``band_decay_ratios``; version 2 no de-esser, delay, amount, locks, mix loudness or
#: reasons; version 3 no ``vocal.offset_ms``), read with the defaults for what it lacks,
#: which render as it did
READABLE_VERSIONS = (1, 2, 3, 4)

EQ_KINDS = ("peak", "low_shelf", "high_shelf")
REVERB_TYPES = ("freeverb", "synthetic")
#: octave bands (Hz) of ``Reverb.band_decay_ratios``; the 1 kHz entry is the reference
DECAY_BANDS_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)
#: the compressor's and the de-esser's thresholds, dBFS: above full scale too, up to the
#: hottest floating-point file accepted (a peak of +60 dBFS), and down to where a take
#: recorded 60 dB too quietly (the most the vocal's gain makes up) needs them: a take
#: exported hot from a DAW's 32-bit bus, or recorded far too low, is compressed and
#: de-essed as the same take at a healthy level would be. Held at 0 dBFS, a take 20 dB hot
#: was compressed 3.8 LU past its target; held at -80 dBFS, a real vocal's de-esser
#: threshold 50-60 dB down was set 1.4-11 dB too high
THRESHOLD_RANGE_DB = (-120.0, 60.0)
#: allowed reverb decay settings (``Reverb.decay_s``, and any band's decay), s
REVERB_DECAY_RANGE_S = (0.1, 30.0)
#: allowed reverb decay targets (``Targets.reverb_decay_s``), s
TARGET_DECAY_RANGE_S = (0.2, 12.0)
METHODS = ("baseline", "model", "manual", "reference")
#: how ``Targets.vocal_to_mix_lu`` is measured: ``integrated`` (BS.1770-4 integrated
#: loudness of the vocal minus that of the pre-master mix, over the whole song) or
#: ``singing`` (the same balance over only the 400 ms blocks in which the vocal sings,
#: i.e. those that pass the vocal's own BS.1770-4 gates, while the backing plays (above
#: -70 LUFS); :func:`vocalmix.core.measure.singing_ratio_from_segments`)
V2M_MEASURES = ("integrated", "singing")
#: the seed's rules, the baseline's targets (and the neutral point of ``amount``'s level
#: offset): the vocal 3 LU under the whole mix, and a vocal loudness range of 14 LU
RULE_VOCAL_TO_MIX_LU = -3.0
RULE_VOCAL_LRA_LU = 14.0
#: musical lengths a tempo-synced delay can take (``Delay.note``); "free" uses ``time_ms``
DELAY_NOTES = ("free", "1/4", "1/8", "1/8.", "1/8t", "1/16", "1/4.", "1/2")
#: who made an automatic choice (``Reason.source``)
REASON_SOURCES = ("rule", "model", "reference", "user", "preset", "resolver")
#: the most notes a document's provenance keeps (and the longest list read), and the
#: longest text value read, characters
MAX_NOTES = 64
MAX_TEXT_CHARS = 2000


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


def num(default: float | None, lo: float, hi: float, unit: str, label: str, doc: str = "",
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


def is_number(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a real number (an int or a float, numpy's too), never a bool
    (``True`` is an int to Python, not a setting's value; numpy's bool is no number)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check(name: str, value: float, lo: float, hi: float) -> None:
    if not is_number(value):
        raise ParamsError(f"{name} must be a number, got {short_repr(value)}")
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
    """Vocal high-pass filter (pedalboard ``HighpassFilter``: first order, 6 dB/octave)."""

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
            raise ParamsError(f"EQ band kind {short_repr(self.kind)} is not one of "
                              f"{', '.join(EQ_KINDS)}")
        _validate(self)


@dataclass(frozen=True)
class Compressor:
    """Vocal compressor (pedalboard ``Compressor``) plus make-up gain after it."""

    PATH: ClassVar[str] = "vocal.compressor"
    enabled: bool = True
    threshold_db: float = num(0.0, *THRESHOLD_RANGE_DB, "dB", "Threshold", step=0.5,
                              view=(-60.0, 0.0))
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
      rendered impulse responses, see :mod:`vocalmix.core.reverb`).
    * ``synthetic``: convolution with a synthesised impulse response, exponentially
      decaying noise whose T30 is ``decay_s`` at 1 kHz and ``decay_s x
      band_decay_ratios[i]`` in the octave band ``DECAY_BANDS_HZ[i]`` (125 Hz to 8 kHz;
      the 1 kHz entry is the reference, 1.0), interpolated in between; ``width``
      decorrelates the channels (0 mono, 1 uncorrelated).
      Every value is rendered as written (see :func:`vocalmix.core.reverb.render_synthetic_ir`).

    In both types ``wet_level_db`` is the send's reverberant-to-direct energy ratio for a
    vocal, dB (:func:`vocalmix.core.reverb.wet_gain_db`: the synthetic impulse response is
    normalised, Freeverb's wet output is calibrated), up to +12 dB (a room heard from far
    off); ``pre_delay_ms`` delays the wet signal.
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
    wet_level_db: float = num(-14.0, -80.0, 12.0, "dB", "Wet level", step=0.5,
                              view=(-60.0, 12.0))
    pre_delay_ms: float = num(20.0, 0.0, 500.0, "ms", "Pre-delay", "delay of the wet signal",
                              step=1.0, view=(0.0, 200.0))
    band_decay_ratios: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if self.type not in REVERB_TYPES:
            raise ParamsError(f"reverb type {short_repr(self.type)} is not one of {REVERB_TYPES}")
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


@dataclass(frozen=True)
class DeEsser:
    """Split-band de-esser after the EQ, before the compressor (:mod:`vocalmix.core.deesser`):
    while the band above ``freq_hz`` is louder than ``threshold_db`` (short-term power,
    dBFS), that band is turned down by up to ``depth_db``."""

    PATH: ClassVar[str] = "vocal.deesser"
    enabled: bool = False
    threshold_db: float = num(-30.0, *THRESHOLD_RANGE_DB, "dB", "Threshold",
                              "band level above which it acts", step=0.5, view=(-60.0, 0.0))
    freq_hz: float = num(5000.0, 2000.0, 12000.0, "Hz", "Frequency",
                         "only content above this is turned down", step=10.0, log=True)
    depth_db: float = num(6.0, 0.0, 24.0, "dB", "Depth", "the most it turns the band down",
                          view=(0.0, 12.0))
    release_ms: float = num(40.0, 5.0, 500.0, "ms", "Release", step=1.0, log=True)

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class Delay:
    """A delay send (echo) fed by the vocal after its gain, like the reverb's.

    ``note`` ties the delay time to the song's tempo (``1/4`` a beat, ``1/8.`` a dotted
    eighth, ``1/8t`` an eighth triplet...); the resolver then sets ``time_ms`` from
    ``tempo_bpm``. With ``note = "free"`` ``time_ms`` is used as written. Each repeat is
    ``feedback`` times the previous one and passes a low-pass at ``highcut_hz``;
    ``wet_level_db`` is the level of the first repeat against the dry vocal.
    """

    PATH: ClassVar[str] = "vocal.delay"
    enabled: bool = False
    note: str = "1/4"
    tempo_bpm: float = num(120.0, 30.0, 300.0, "BPM", "Tempo", step=0.1)
    time_ms: float = num(500.0, 1.0, 2000.0, "ms", "Time", step=1.0, log=True,
                         view=(20.0, 1500.0))
    feedback: float = num(0.3, 0.0, 0.95, "", "Feedback",
                          "each repeat's level over the previous one's", step=0.01)
    wet_level_db: float = num(-18.0, -80.0, 6.0, "dB", "Level", step=0.5, view=(-60.0, 0.0))
    highcut_hz: float = num(6000.0, 500.0, 20000.0, "Hz", "High cut", step=10.0, log=True)

    def __post_init__(self) -> None:
        if self.note not in DELAY_NOTES:
            raise ParamsError(f"vocal.delay.note {self.note!r} is not one of "
                              f"{', '.join(DELAY_NOTES)}")
        _validate(self)

    def note_ms(self) -> float | None:
        """The length of ``note`` at ``tempo_bpm``, ms (``None`` for ``free``)."""
        if self.note == "free":
            return None
        num_, _, den = self.note.rstrip(".t").partition("/")
        beats = 4.0 * float(num_) / float(den)  # in quarter notes
        if self.note.endswith("."):
            beats *= 1.5
        elif self.note.endswith("t"):
            beats *= 2.0 / 3.0
        return 60000.0 / self.tempo_bpm * beats


#: the most EQ bands a vocal chain may have
MAX_EQ_BANDS = 12


@dataclass(frozen=True)
class VocalChain:
    """The vocal chain, in render order: the take moved in time (``offset_ms``), then
    high-pass, EQ, de-esser, compressor, gain, then the reverb and delay sends (fed in
    parallel by the vocal after its gain).

    ``offset_ms`` moves the take against the backing before anything else (estimation
    included): positive later, negative earlier, rounded to whole samples. The mix keeps
    its length: what moves past either end of it is cut (a recording's latency: a take
    that came back 40 ms late is set right by -40)."""

    PATH: ClassVar[str] = "vocal"
    offset_ms: float = num(0.0, -2000.0, 2000.0, "ms", "Timing",
                           "moves the take against the backing: positive later, negative "
                           "earlier (a recording's latency)", step=1.0, view=(-500.0, 500.0))
    highpass: HighPass = field(default_factory=HighPass)
    eq_bands: tuple[EqBand, ...] = ()
    compressor: Compressor = field(default_factory=Compressor)
    gain_db: float = num(0.0, -60.0, 60.0, "dB", "Vocal gain", view=(-40.0, 40.0))
    reverb: Reverb = field(default_factory=Reverb)
    deesser: DeEsser = field(default_factory=DeEsser)
    delay: Delay = field(default_factory=Delay)

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
    gain_db: float = num(0.0, -40.0, 40.0, "dB", "Master gain",
                         "gain on the sum before the limiter", view=(-20.0, 20.0))
    ceiling_dbtp: float = num(-1.0, -20.0, 0.0, "dBTP", "Limiter ceiling", view=(-12.0, 0.0))
    lookahead_ms: float = num(5.0, 0.5, 50.0, "ms", "Look-ahead", step=0.5)
    release_ms: float = num(80.0, 1.0, 2000.0, "ms", "Limiter release", step=1.0, log=True,
                            view=(5.0, 1000.0))

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class Targets:
    """What the estimator aimed for; the resolvers turn these into settings.

    ``vocal_to_mix_lu``: loudness of the processed vocal (reverb included) against the
    pre-master mix, LU, measured as ``vocal_to_mix_measure`` says (:data:`V2M_MEASURES`):
    ``integrated`` (the default, and the only measure of documents before it existed)
    compares the two integrated loudnesses over the whole song; ``singing`` compares them
    over only the blocks in which the vocal sings over the backing, the balance a
    listener hears while it sings, whatever the backing does in instrumental passages
    (the level model's measure). ``vocal_lra_lu``: loudness range of the vocal
    after the compressor, before reverb, LU. ``vocal_momentary_range_lu``: the same
    spread on 400 ms momentary loudness (:func:`vocalmix.core.measure.momentary_loudness_range`,
    above the recording's steady floor: a take's room tone is not its singing), LU; when
    set, the compressor is resolved to it and ``vocal_lra_lu`` is not used (``None``, the
    default and what older documents read as, resolves to the LRA): a few seconds of
    singing carry a momentary range but hardly an LRA. A vocal already at
    or under its target is left uncompressed. ``reverb_decay_s``: reverb T30, s (the
    broadband T30 for ``freeverb``, the T30 at 1 kHz for ``synthetic``, whose other bands
    follow through ``band_decay_ratios``). ``mix_lufs``: integrated loudness of the
    master, LUFS, reached by ``master.gain_db`` under the limiter's ceiling; ``None``
    leaves the master at unity gain, or turns it down as far as keeps the limiter from
    taking more than 0.5 LU off the mix's loudness
    (:func:`vocalmix.core.resolve.resolve_master_headroom`: a loud backing).
    """

    PATH: ClassVar[str] = "targets"
    vocal_to_mix_lu: float = num(RULE_VOCAL_TO_MIX_LU, -20.0, -0.5, "LU", "Vocal vs mix",
                                 "vocal loudness against the whole mix")
    vocal_lra_lu: float = num(RULE_VOCAL_LRA_LU, 1.0, 30.0, "LU", "Loudness range",
                              "the vocal's loudness range after compression", step=0.5)
    reverb_decay_s: float = num(1.5, TARGET_DECAY_RANGE_S[0], TARGET_DECAY_RANGE_S[1], "s",
                                "Reverb time", "T30 the resolver finds a reverb setting for",
                                step=0.05)
    mix_lufs: float | None = num(None, -40.0, -5.0, "LUFS", "Mix loudness",
                                 "integrated loudness of the master (none: leave it, "
                                 "turned down only where the limiter would squash it)")
    vocal_to_mix_measure: str = "integrated"
    vocal_momentary_range_lu: float | None = num(
        None, 1.0, 40.0, "LU", "Momentary loudness range",
        "the vocal's spread of 400 ms loudness while it sings after compression (none: "
        "use the loudness range)", step=0.5, view=(2.0, 20.0))

    def __post_init__(self) -> None:
        if self.vocal_to_mix_measure not in V2M_MEASURES:
            raise ParamsError("targets.vocal_to_mix_measure "
                              f"{short_repr(self.vocal_to_mix_measure)} is not one of "
                              f"{', '.join(V2M_MEASURES)}")
        _validate(self)


@dataclass(frozen=True)
class Achieved:
    """Measurements of the rendered mix (all pre-master except the ``mix_*`` figures).

    ``vocal_to_mix_lu`` is measured as the document's ``targets.vocal_to_mix_measure``
    says, so it compares with its target; ``vocal_to_backing_lu`` is always the
    difference of the two integrated loudnesses."""

    PATH: ClassVar[str] = "achieved"
    vocal_to_mix_lu: float | None = num(None, -200.0, 200.0, "LU", "Vocal vs mix")
    vocal_to_backing_lu: float | None = num(None, -200.0, 200.0, "LU", "Vocal vs backing")
    vocal_lra_lu: float | None = num(None, 0.0, 200.0, "LU", "Vocal loudness range")
    vocal_momentary_range_lu: float | None = num(None, 0.0, 200.0, "LU",
                                                 "Vocal momentary loudness range")
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
            raise ParamsError(f"method {short_repr(self.method)} is not one of "
                              f"{', '.join(METHODS)}")
        if len(self.notes) > MAX_NOTES:
            raise ParamsError(f"provenance.notes has {len(self.notes)} notes; at most "
                              f"{MAX_NOTES} are kept")


@dataclass(frozen=True)
class Reason:
    """Why an automatic choice was made.

    Attributes:
        path: the setting or target it explains (``targets.vocal_to_mix_lu``...).
        source: ``rule``, ``model``, ``reference``, ``user``, ``preset`` or ``resolver``.
        text: one sentence for a person.
        inputs: what it was computed from (names and values, e.g. ``tempo_bpm``).
        confidence: 0-1 where the source has one (a model's), else ``None``.
    """

    path: str
    source: str = "rule"
    text: str = ""
    inputs: tuple[tuple[str, float], ...] = ()
    confidence: float | None = num(None, 0.0, 1.0, "", "Confidence")

    def __post_init__(self) -> None:
        if self.source not in REASON_SOURCES:
            raise ParamsError(f"reason source {self.source!r} is not one of "
                              f"{', '.join(REASON_SOURCES)}")
        # an input that is not a finite number (a tempo that could not be read) is not
        # recorded: JSON holds none, and a document must save as it loads (a document
        # read with one is refused: MixParams.from_dict)
        inputs = tuple((str(k), float(v)) for k, v in self.inputs)
        object.__setattr__(self, "inputs", tuple((k, v) for k, v in inputs if math.isfinite(v)))
        _validate(self)


def _refuse_non_finite_reason_inputs(reasons: Any) -> None:
    """Refuse a document's reason input that is a number but not a finite one (NaN,
    Infinity, 1e400): it would not be saved again; other shapes are left to the
    document's type checks."""
    if not isinstance(reasons, list):
        return
    for i, r in enumerate(reasons):
        inputs = r.get("inputs") if isinstance(r, dict) else None
        for j, pair in enumerate(inputs if isinstance(inputs, list) else ()):
            v = pair[1] if isinstance(pair, list) and len(pair) == 2 else None
            if isinstance(v, float) and not math.isfinite(v):
                path = r.get("path")
                raise ParamsError(f"reasons[{i}].inputs[{j}] of reason {path!r}: {pair[0]!r} "
                                  f"= {v} is not a finite number")


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
    amount: float = num(1.0, 0.0, 2.0, "", "Amount", "how much of the chosen processing "
                        "to apply: 0 none, 1 as chosen, 2 twice as much", step=0.01)
    locks: tuple[str, ...] = ()
    reasons: tuple[Reason, ...] = ()

    def __post_init__(self) -> None:
        if self.version not in READABLE_VERSIONS:
            raise ParamsError(
                f"params version {self.version} is not supported: this vocalmix reads "
                f"versions {', '.join(map(str, READABLE_VERSIONS))}"
            )
        # an older document is a subset of this schema: it is read as the current version
        object.__setattr__(self, "version", SCHEMA_VERSION)
        _validate(self)
        object.__setattr__(self, "locks", tuple(str(p) for p in self.locks))
        known = lockable_paths()
        for p in self.locks:
            if p not in known:
                raise ParamsError(
                    f"locks: {p!r} is not a setting or target of the document (e.g. "
                    "'vocal.gain_db', 'vocal.compressor', 'vocal.eq_bands', "
                    "'targets.vocal_lra_lu')")

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
            raise ParamsError(f"not a vocalmix params document (format {short_repr(fmt)})")
        _refuse_non_finite_reason_inputs(d.get("reasons"))
        return _build(cls, d, "")

    @classmethod
    def from_json(cls, text: str | bytes) -> MixParams:
        """Parse a JSON document written by :meth:`to_json` (or edited by a person).

        Read by :func:`vocalmix.core.jsondoc.loads`: absurd numbers and nesting are a
        :class:`ParamsError` like any other invalid value.
        """
        from vocalmix.core.jsondoc import loads

        return cls.from_dict(loads(text, what="the params document"))

    # --- edits -----------------------------------------------------------------------
    def with_reasons(self, *reasons: Reason) -> MixParams:
        """A copy with these reasons, each replacing any earlier one for the same path."""
        paths = {r.path for r in reasons}
        kept = tuple(r for r in self.reasons if r.path not in paths)
        return replace(self, reasons=kept + tuple(reasons))

    def reason_for(self, path: str) -> Reason | None:
        """The reason recorded for ``path`` or for the group holding it, if any."""
        best: Reason | None = None
        for r in self.reasons:
            if path == r.path or path.startswith(r.path + "."):
                if best is None or len(r.path) > len(best.path):
                    best = r
        return best

    def with_targets(self, **changes: float | None) -> MixParams:
        """A copy with some targets changed (``None`` values are ignored)."""
        given: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
        return replace(self, targets=replace(self.targets, **given))


@lru_cache(maxsize=1)
def lockable_paths() -> frozenset[str]:
    """Every path a lock may name: each setting and target (leaf or group) of the
    document's ``vocal``, ``backing``, ``master`` and ``targets``."""
    import typing

    out: set[str] = set()

    def walk(cls: type, path: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            where = f"{path}.{f.name}"
            out.add(where)
            if is_dataclass(hints[f.name]):
                walk(hints[f.name], where)

    for f in fields(MixParams):
        if f.name in ("vocal", "backing", "master", "targets"):
            out.add(f.name)
            walk(typing.get_type_hints(MixParams)[f.name], f.name)
    return frozenset(out)


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
            f"unknown key(s) in {path or 'params'}: "
            f"{', '.join(short_repr(k, 40).strip(chr(39)) for k in sorted(unknown)[:5])}"
            f"{f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''} "
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
    except ParamsError as e:
        # (a range check names the field by its class's PATH, ``vocal.eq_bands[]``: the
        # document's own place names the band, ``vocal.eq_bands[1]``)
        own = getattr(cls, "PATH", "")
        if own and path and own != path and str(e).startswith(own + "."):
            raise ParamsError(path + str(e)[len(own):]) from None
        raise


def _convert(hint: Any, value: Any, where: str) -> Any:
    import typing

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where} must be a list")
        if len(value) > MAX_NOTES:  # no list of a document is longer (checked before reading)
            raise ParamsError(f"{where} has {len(value)} items; at most {MAX_NOTES} are read")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ParamsError(f"{where} must have {len(args)} items, got {len(value)}")
        return tuple(_convert(t, v, f"{where}[{i}]") for i, (t, v) in
                     enumerate(zip(args, value, strict=True)))
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where} must be true or false, got {short_repr(value)}")
        return value
    if hint is float or (args and float in args):
        if value is None and type(None) in args:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where} must be a number, got {short_repr(value)}")
        try:
            return float(value)
        except OverflowError:
            raise ParamsError(f"{where} = {short_repr(value)} is out of range") from None
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where} must be an integer, got {short_repr(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where} must be a string, got {short_repr(value)}")
        if len(value) > MAX_TEXT_CHARS:
            raise ParamsError(f"{where} is {len(value)} characters long; at most "
                              f"{MAX_TEXT_CHARS} are allowed")
        return value
    return value


__all__ = [
    "Achieved",
    "DeEsser",
    "Delay",
    "Reason",
    "lockable_paths",
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
    "THRESHOLD_RANGE_DB",
    "Targets",
    "V2M_MEASURES",
    "VocalChain",
]
