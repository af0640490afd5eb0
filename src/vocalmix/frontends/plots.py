"""Pictures of what ``vocalmix analyze`` measured, for a person who would rather look
than read: each file's short-term loudness over time and its long-term 1/3-octave
spectrum, drawn on shared axes so that files can be compared (a take against its
backing, a mix against a reference). matplotlib is the ``plot`` extra."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vocalmix.core.errors import DependencyError


@dataclass(frozen=True)
class AnalysisCurves:
    """One file's curves for :func:`analysis_png`.

    Attributes:
        label: the file's name in the legend.
        short_term_lufs: short-term loudness (3 s windows) every ``hop_s``, LUFS
            (``-inf`` where silent).
        hop_s: time between two short-term values, s.
        centres_hz: 1/3-octave band centres, Hz.
        spectrum_db: long-term level per band, dB re a full-scale sine (``nan`` for a
            band the file's rate cannot hold).
        integrated_lufs: integrated loudness, LUFS, drawn as a dashed line.
    """

    label: str
    short_term_lufs: np.ndarray
    hop_s: float
    centres_hz: tuple[float, ...]
    spectrum_db: np.ndarray
    integrated_lufs: float


def require_matplotlib() -> None:
    """Raise :class:`DependencyError` (before any work) when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise DependencyError("--plot needs matplotlib: pip install 'vocalmix[plot]'"
                              ) from None


def analysis_png(curves: Sequence[AnalysisCurves]) -> bytes:
    """A PNG of the files' short-term loudness (top) and 1/3-octave spectra (bottom)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vocalmix.training.figures import png_bytes

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7))
    for i, c in enumerate(curves):
        colour = f"C{i % 10}"
        st = np.asarray(c.short_term_lufs, dtype=float)
        t = (np.arange(st.size) + 1) * c.hop_s + 2.9  # a window's end, s
        top.plot(t, np.where(np.isfinite(st), st, np.nan), color=colour, lw=1.0,
                 label=f"{c.label} ({c.integrated_lufs:.1f} LUFS)"
                 if np.isfinite(c.integrated_lufs) else c.label)
        if np.isfinite(c.integrated_lufs):
            top.axhline(c.integrated_lufs, color=colour, ls="--", lw=0.8)
        s = np.asarray(c.spectrum_db, dtype=float)
        bottom.semilogx(c.centres_hz, np.where(np.isfinite(s), s, np.nan), "o-",
                        color=colour, ms=3, lw=1.0, label=c.label)
    top.set(xlabel="time, s (end of the 3 s window)", ylabel="short-term loudness, LUFS",
            title="Loudness over time (ITU-R BS.1770-4, EBU Tech 3341); dashed: integrated")
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="best")
    bottom.set(xlabel="frequency, Hz (1/3-octave bands)",
               ylabel="level, dB re a full-scale sine",
               title="Long-term spectrum")
    bottom.grid(alpha=0.3, which="both")
    bottom.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return png_bytes(fig, 90)


__all__ = ["AnalysisCurves", "analysis_png", "require_matplotlib"]
