"""Reading JSON written by a person or sent by a stranger: bounded numbers and nesting.

Python's :func:`json.loads` accepts documents that later blow up far from where they
were read: a 5001-digit integer raises a bare ``ValueError`` (CPython's limit on
int-from-string conversion), a 400-digit one an ``OverflowError`` when it meets a float,
and ten thousand nested brackets raise ``RecursionError``. :func:`loads` refuses these up
front with a :class:`~vocalmix.core.errors.ParamsError` that says what is wrong, so every
reader of a params document (the library, the command line, the HTTP API) gets the same
checks from one place. Every number it returns is a float or an int that converts to one;
non-finite values (``1e400``, ``NaN``, ``Infinity``) come back as float ``inf``/``nan``
for the field's own range check to refuse by name. :func:`parse_number` applies the
same rules to one value given as text (a form field, an option) and refuses non-finite
values itself.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from vocalmix.core.errors import ParamsError

#: deepest nesting of arrays and objects accepted (a params document needs 4)
MAX_DEPTH = 32
#: longest number literal accepted, characters (a float's repr needs at most 24)
MAX_NUMBER_CHARS = 64
#: largest JSON text accepted, characters (a params document is a few kB)
MAX_TEXT_CHARS = 4 * 2**20

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages (never recursive
    beyond what :data:`MAX_DEPTH` lets a document hold)."""
    if isinstance(value, (list, tuple)):
        text = f"a list of {len(value)} item(s)"
    elif isinstance(value, dict):
        text = f"an object with {len(value)} key(s)"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number_error(literal: str, why: str) -> ParamsError:
    shown = literal if len(literal) <= 24 else f"{literal[:12]}...({len(literal)} characters)"
    return ParamsError(f"the number {shown} {why}")


def _parse_int(literal: str) -> int | float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _number_error(literal, f"is too long (at most {MAX_NUMBER_CHARS} characters)")
    value = int(literal)
    try:
        float(value)
    except OverflowError:
        raise _number_error(literal, "is too large") from None
    return value


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _number_error(literal, f"is too long (at most {MAX_NUMBER_CHARS} characters)")
    return float(literal)  # 1e400: inf, refused by the range check of its field


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0  # cannot be deeper than the brackets it holds
    depth = deepest = 0
    for m in _BRACKETS.finditer(_STRING.sub('""', text)):
        depth += 1 if m.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def loads(text: str | bytes, *, what: str = "the document") -> Any:
    """Parse JSON with bounded numbers and nesting.

    Refuses (with :class:`ParamsError`): text over :data:`MAX_TEXT_CHARS`, invalid JSON,
    nesting deeper than :data:`MAX_DEPTH`, number literals longer than
    :data:`MAX_NUMBER_CHARS`, integers beyond double precision. A leading UTF-8
    byte-order mark is ignored. ``what`` names the document in messages.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParamsError(f"{what} is not UTF-8 text ({e.reason} at byte {e.start})") \
                from None
    text = text.removeprefix("\ufeff")
    if len(text) > MAX_TEXT_CHARS:
        raise ParamsError(f"{what} is {len(text)} characters long; at most {MAX_TEXT_CHARS} "
                          "are accepted")
    if _depth(text) > MAX_DEPTH:
        raise ParamsError(f"{what} nests arrays or objects deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float)
    except json.JSONDecodeError as e:
        raise ParamsError(f"{what} is not valid JSON: {e}") from None
    except ParamsError as e:
        raise ParamsError(f"{what}: {e}") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ParamsError(f"{what} nests arrays or objects too deeply") from None


def parse_number(text: str, *, name: str = "the value") -> float:
    """A finite number given as text, by the rules of :func:`loads` (a form field, an
    option). Raises :class:`ParamsError` naming ``name``."""
    s = str(text).strip()
    if len(s) > MAX_NUMBER_CHARS:
        raise ParamsError(f"{name} must be a number, got {len(s)} characters")
    try:
        value = float(s)
    except ValueError:
        raise ParamsError(f"{name} must be a number, got {short_repr(s)}") from None
    if not math.isfinite(value):
        raise ParamsError(f"{name} must be a finite number, got {short_repr(s)}")
    return value


__all__ = ["MAX_DEPTH", "MAX_NUMBER_CHARS", "MAX_TEXT_CHARS", "loads", "parse_number",
           "short_repr"]
