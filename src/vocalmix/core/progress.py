"""Progress of long work, as structured events.

A long call (:func:`vocalmix.pipeline.mix`, a batch, a training run) takes an optional
``progress`` callback and calls it with :class:`ProgressEvent` values: a machine-readable
``stage``, the ``fraction`` of the whole call done so far (0 to 1, or ``None`` when it
cannot be known) and a ``message`` for a person. Front ends decide how to show them: the
command line prints the message, the server forwards stage and fraction to the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long call.

    Attributes:
        stage: what is running, a dotted name (``estimate``, ``resolve.compressor``,
            ``resolve.gain``, ``render``, ``measure``...).
        fraction: share of the whole call done when this step starts, 0 to 1, or
            ``None`` when unknown.
        message: one line for a person.
    """

    stage: str
    fraction: float | None
    message: str


Progress = Callable[[ProgressEvent], None]


def no_progress(_event: ProgressEvent) -> None:
    """A progress callback that ignores every event."""


def scaled(progress: Progress, start: float, end: float) -> Progress:
    """A callback that maps a sub-call's fractions 0..1 onto ``start..end`` of ``progress``.

    Lets a call that reports its own progress run as one part of a bigger one.
    """

    def sub(e: ProgressEvent) -> None:
        f = None if e.fraction is None else start + (end - start) * e.fraction
        progress(ProgressEvent(e.stage, f, e.message))

    return sub


#: how a note that a person should check begins (an input that makes the mix worse than
#: asked: a take of steady noise, a vocal heard for a moment, a backing that ends early...)
WARNING_PREFIX = "warning:"


def warnings_of(notes: Iterable[str]) -> list[str]:
    """The notes that begin with :data:`WARNING_PREFIX`, without it, in order."""
    return [n[len(WARNING_PREFIX):].strip() for n in notes if n.startswith(WARNING_PREFIX)]


__all__ = ["WARNING_PREFIX", "Progress", "ProgressEvent", "no_progress", "scaled",
           "warnings_of"]
