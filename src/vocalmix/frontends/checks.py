"""What the command line's commands (``mix``, ``render``, ``estimate``, ``live``) share:
the checks of their options, made before any work, and how they say the notes of their
inputs and estimates."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from vocalmix.core.progress import WARNING_PREFIX


def check_sample_rate(rate: int | None) -> None:
    """Refuse a ``--sample-rate`` (Hz) outside the supported range before any work, with
    the message the mixing itself gives (:func:`vocalmix.core.audio.checked_rate`;
    ``None``: the inputs' rate; 0 is refused like 1, not taken for that)."""
    from vocalmix.core.audio import checked_rate

    if rate is not None:
        checked_rate(rate, "output sample rate")


def check_json_outputs(*outputs: tuple[str, str | os.PathLike[str] | None]) -> None:
    """Refuse, before any work, a JSON output (``(option, path)``; ``None``: not given)
    whose name does not end in ``.json``: a params document written to ``mix.wav``
    would take the place of the audio a user expects there (with ``--force``, replace
    it). Called once the outputs are planned, whose checks (an input, a device, a
    folder, two outputs on one path) say more about such a path."""
    from vocalmix.core.audio import AUDIO_FORMATS
    from vocalmix.core.errors import OutputError

    for option, path in outputs:
        if path is None:
            continue
        suffix = Path(path).suffix.lower()
        if suffix == ".json":
            continue
        if suffix in AUDIO_FORMATS:
            raise OutputError(f"{path}: {option} writes a JSON document, not audio; give it "
                              "a file name ending in .json")
        raise OutputError(f"{path}: {option} writes a JSON document; give it a file name "
                          f"ending in .json (not {suffix or 'no extension'!r})")


def show_notes(notes: Iterable[str], progress: Callable[[str], None]) -> None:
    """Say ``notes``: one that starts with ``warning:`` (an input that makes the mix
    worse than asked, see :func:`vocalmix.core.audio.padding_notes`) on stderr even when
    the command is quiet, the others as progress lines."""
    for n in notes:
        if n.startswith(WARNING_PREFIX):
            print(f"vocalmix: {n}", file=sys.stderr, flush=True)
        else:
            progress(n)
