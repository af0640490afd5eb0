"""Each parameter range is declared once, in vocalmix.core.params, and read from there."""

from __future__ import annotations

import re
import typing
from dataclasses import fields, is_dataclass, replace
from pathlib import Path

import pytest

from vocalmix.core import params as P
from vocalmix.core.errors import ParamsError

SRC = Path(__file__).resolve().parents[1] / "src" / "vocalmix"
CLASSES = (P.HighPass, P.EqBand, P.Compressor, P.Reverb, P.DeEsser, P.Delay, P.VocalChain,
           P.BackingChain, P.Master, P.Targets, P.Achieved, P.MixParams)


def test_every_numeric_field_declares_its_range_and_unit():
    for cls in CLASSES:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if hints[f.name] in (float, float | None):
                spec = f.metadata.get("spec")
                assert isinstance(spec, P.Spec), f"{cls.__name__}.{f.name} has no Spec"
                assert spec.lo < spec.hi and spec.label
                if spec.view is not None:
                    assert spec.lo <= spec.view[0] < spec.view[1] <= spec.hi


@pytest.mark.parametrize("cls", [c for c in CLASSES if c is not P.Achieved])
def test_validation_follows_the_declared_range(cls):
    base = cls()
    for f in fields(cls):
        spec = f.metadata.get("spec")
        if spec is None:
            continue
        for ok in (spec.lo, spec.hi):
            if cls is P.Reverb and f.name == "decay_s":
                ok = min(ok, P.REVERB_DECAY_RANGE_S[1])
            replace(base, **{f.name: ok})
        for bad in (spec.lo - abs(spec.lo) * 1e-6 - 1e-9, spec.hi + abs(spec.hi) * 1e-6 + 1e-9):
            with pytest.raises(ParamsError, match=f.name):
                replace(base, **{f.name: bad})


def test_clip_and_the_served_specs_come_from_the_declaration():
    spec = P.spec_of(P.Targets, "vocal_to_mix_lu")
    assert P.clip(P.Targets, "vocal_to_mix_lu", 5.0) == spec.hi
    assert P.clip(P.Targets, "vocal_to_mix_lu", -99.0) == spec.lo
    served = P.param_specs()
    assert served["targets.vocal_to_mix_lu"]["min"] == spec.lo
    assert served["vocal.eq_bands[].gain_db"]["max"] == P.spec_of(P.EqBand, "gain_db").hi
    assert served["vocal.reverb.band_decay_ratios[]"]["min"] == P.BAND_DECAY_RATIO.lo
    # every declared field of the document is served
    n = 0
    todo: list[type] = [P.MixParams]
    while todo:
        cls = todo.pop()
        for f in fields(cls):
            t = typing.get_type_hints(cls)[f.name]
            n += "spec" in f.metadata
            if is_dataclass(t):
                todo.append(t)
            elif typing.get_origin(t) is tuple and is_dataclass(typing.get_args(t)[0]):
                todo.append(typing.get_args(t)[0])
    assert len(served) == n + 1  # + the band decay ratios


# Literal ranges that were once typed outside params.py, and the Nyquist guard: none may
# come back (params.py declares them; dsp.py names the guard).
KNOWN_LITERALS = [
    r"-80(\.0)?,\s*6(\.0)?\b",          # reverb wet level
    r"\b0\.1,\s*4(\.0)?\)",             # band decay ratios
    r"\b0\.05,\s*10(\.0)?\b",           # the band ratios' old, disagreeing range
    r"-24(\.0)?,\s*24(\.0)?\)",         # EQ gain
    r"-24(\.0)?,\s*48(\.0)?\)",         # make-up gain
    r"\b20(\.0)?,\s*20000(\.0)?\)",     # EQ frequency
    r"-20(\.0)?,\s*-0\.5\)",            # vocal-to-mix target
    r"\b1(\.0)?,\s*30(\.0)?\)",         # vocal LRA target
    r"\b0\.1,\s*30(\.0)?\)",            # reverb decay
    r"0\.45\s*\*\s*(sample_rate|sr)\b",  # Nyquist guard
]


def test_no_range_literal_outside_the_declaration():
    offenders = []
    files = [p for p in SRC.rglob("*.py") if p.name != "params.py"]
    files += list((SRC / "frontends" / "server" / "static").glob("*.js"))
    for path in files:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0] if path.suffix == ".py" else line.split("//", 1)[0]
            for pat in KNOWN_LITERALS:
                if re.search(pat, code):
                    offenders.append(f"{path.relative_to(SRC)}:{i}: {line.strip()}")
    assert not offenders, "range literals outside core/params.py:\n" + "\n".join(offenders)


def test_the_page_takes_its_ranges_from_the_server():
    """A control of the page names a params path; its numbers come from the served specs,
    so no line of app.js that names a params path may carry a numeric literal."""
    js = (SRC / "frontends" / "server" / "static" / "app.js").read_text(encoding="utf-8")
    path = re.compile(r"[\"'`](targets|vocal|backing|master)\.[a-z_.\[\]0-9]+[\"'`]")
    number = re.compile(r"(?<![\w.])-?\d+(\.\d+)?(?![\w.])")
    strings = re.compile(r"\"[^\"]*\"|'[^']*'|`[^`]*`")
    display = re.compile(r"scale:\s*\d+")  # a unit conversion for display (0-1 as %)

    def numbers_in(line: str) -> bool:
        code = display.sub("", strings.sub("", line.split("//")[0]))
        return bool(number.search(code))

    offenders = [line.strip() for line in js.splitlines()
                 if path.search(line) and numbers_in(line)]
    assert not offenders, "app.js retypes ranges:\n" + "\n".join(offenders[:10])
