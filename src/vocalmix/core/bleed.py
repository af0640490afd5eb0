"""Whether a vocal take carries a copy of the backing track, and how loud that copy is.

A take sung along to the backing played through speakers picks the backing up in its
microphone, and a user may give the finished mix as the vocal (or as the backing) by
mistake. Mixed in, that
copy doubles the backing (a comb filter where it arrives late) and the vocal's level is
measured with the backing in it. A voice alone is not correlated with the backing at any
lag; a copy of the backing is, at one lag (its delay).

Method (:func:`backing_in_vocal`):

1. Up to :data:`WINDOWS` windows of :data:`WINDOW_S` s, evenly spaced over the pair
   (one shorter window for a pair under 10 s), each read as mono at
   :data:`ANALYSIS_RATE` Hz: the band up to 2 kHz, where a speaker's copy is strongest.
2. In each window the normalised cross-correlation of the take ``v`` with the backing
   ``b``, both first-differenced (a whitening filter: the energy of music lies in its
   low notes, whose slow waveforms would otherwise give chance peaks), at every lag
   ``k`` within +-:data:`MAX_LAG_S`:

       rho(k) = sum_n v[n] b[n + k] / (|v| |b_k|)

   with ``|b_k|`` the norm of the backing's samples the window meets at lag ``k``; its
   peak, and by how many standard deviations it stands out of the other lags'
   correlations (``z``, from their median absolute deviation).
3. A window's peak counts when it is :data:`UNIQUE_RATIO` times the largest correlation
   at the other lags (a held tone over the same tone correlates at every period) and
   ``|rho|`` is at least :data:`SURE_RHO`, or at least :data:`MIN_RHO` with ``z`` at
   least :data:`MIN_Z_AGREEING` (:data:`MIN_Z` for a lone window). The take carries the
   backing when at least :data:`AGREE` windows (all of them when fewer are read) count
   at one lag, within :data:`LAG_TOLERANCE_S`.
4. Its level: in each of those windows, the least-squares filter of :data:`COPY_TAPS`
   taps around the lag that best predicts the take from the backing (a speaker's and a
   room's colouring included); the share of the take's energy it explains, median over
   the windows, in dB (``10 log10 share``, below 0: the copy is part of the take).

On the shared data: none of 309 pairs recorded apart (MIR-1K's and iKala's takes over
their backing, MUSDB18's training clips) and none of 360 longer pairs made of clips of
different songs is flagged. Made-up copies (the backing 12-25 ms late through a one-pole
low-pass, over MUSDB18 vocals) are found at -6 dB in 30 of 30 pairs of 49 s (76 of 88
clips of 7 s), at -10 dB in 26 of 30 (46 of 88), at -12 dB in 13 of 30; a mix given as
the vocal in 88 of 88, and a mix given as the backing in 20 of 20. A copy much quieter
than the voice is not claimed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Hz: the rate the windows are read at (the band up to 2 kHz carries a speaker's bleed)
ANALYSIS_RATE = 4000
#: s: the length of a window
WINDOW_S = 8.0
#: windows read at most (evenly spaced over the pair)
WINDOWS = 4
#: s: the latest (and earliest) arrival of the copy searched for
MAX_LAG_S = 1.0
#: s: how far apart the windows' peaks may lie and still be one delay
LAG_TOLERANCE_S = 0.001
#: the smallest correlation read as a copy: -20 dB under the take
MIN_RHO = 0.1
#: how many standard deviations of the other lags' correlations a window's peak must
#: stand out by (a voice alone against its backing: at most 8.8 over the 309 clean pairs
#: of the shared data, MIR-1K, iKala and MUSDB18 training clips; 95 % under 5.6)
MIN_Z = 12.0
#: the same for each of the windows that agree on one lag (a chance peak at 7 or more
#: comes in about one clean window in a hundred, anywhere within +-1 s)
MIN_Z_AGREEING = 7.0
#: a correlation this high needs no standing out: a strong copy makes the correlations at
#: the other lags high too (the backing's own repetitions), and a voice alone reached at
#: most 0.12 over those clean pairs
SURE_RHO = 0.3
#: windows that must agree (all of them when fewer are read)
AGREE = 3
#: s: the shortest pair read (shorter: a window too short to tell a copy from chance)
MIN_PAIR_S = 2.0
#: s: how far from a window's peak the next one is looked for
PEAK_GUARD_S = 0.005
#: how many times the next peak a window's peak must be: a tone held by the voice over
#: the same tone in the backing, or a loop repeating within the lags searched, correlates
#: as well at many lags (a copy of the backing found stood 1.35 times its next peak or
#: more, 1.7 times in 95 % of the windows)
UNIQUE_RATIO = 1.25
#: ms: a copy this late or later tells of the recording's latency, not of a room (sound
#: travels 3 m in about 9 ms): the voice the singer timed to it is as late
LATENCY_MS = 20.0
#: taps of the copy's filter around its lag (samples at :data:`ANALYSIS_RATE`, first and
#: last): 2 ms before, 8 ms after (a speaker's and a small room's colouring)
COPY_TAPS = (-8, 32)


@dataclass(frozen=True)
class BackingBleed:
    """The copy of the backing found in a take.

    Attributes:
        level_db: the copy's share of the take's energy below 2 kHz (median over the
            agreeing windows), dB (``10 log10 share``: 0 or less).
        lag_ms: when the copy arrives against the backing (positive: late), ms.
        windows: the windows that agree.
        of: the windows read.
    """

    level_db: float
    lag_ms: float
    windows: int
    of: int


def _copy_share(v: np.ndarray, b: np.ndarray, k: int) -> float:
    """The share of the energy of the take's window ``v`` that a filter of the backing
    ``b`` (the window's stretch, as :func:`_window_peak` reads it, offset ``max_lag`` by
    the caller through ``k``: the stretch's sample ``n + k`` meets the take's ``n``)
    explains: the least-squares fit of :data:`COPY_TAPS` taps around the lag, which a
    speaker's and a room's colouring of the copy do not escape as a single gain does."""
    lo, hi = COPY_TAPS
    rows = np.arange(len(v))
    idx = rows[:, None] + k + np.arange(lo, hi + 1)[None, :]
    ok = (idx >= 0) & (idx < len(b))
    a = np.where(ok, b[np.clip(idx, 0, len(b) - 1)], 0.0)
    h, *_ = np.linalg.lstsq(a, v, rcond=None)
    fit = a @ h
    ev = float(v @ v)
    return float(fit @ fit) / ev if ev > 0.0 else 0.0


def _window_peak(v: np.ndarray, b: np.ndarray, max_lag: int
                 ) -> tuple[int, float, float, float] | None:
    """The lag ``k`` (samples, ``-max_lag .. max_lag``) of the largest ``|rho(k)|`` of the
    take's window ``v`` against the backing's stretch ``b`` (``max_lag`` samples more on
    either side, zeros where the backing has none), that ``rho``, how many standard
    deviations of the other lags' correlations it stands out by, and the largest
    ``|rho|`` more than :data:`PEAK_GUARD_S` away from it; ``None`` when the window or
    the backing is silent."""
    w = len(v)
    ev = float(v @ v)
    if ev <= 0.0:
        return None
    nfft = 1 << int(np.ceil(np.log2(len(b) + w)))
    # c[m] = sum_n v[n] b[n + m], m = 0 .. 2 max_lag (the lag k = m - max_lag)
    c = np.fft.irfft(np.fft.rfft(b, nfft) * np.conj(np.fft.rfft(v, nfft)), nfft)
    c = c[: 2 * max_lag + 1]
    cum = np.concatenate([[0.0], np.cumsum(b * b)])
    eb = cum[w : w + 2 * max_lag + 1] - cum[: 2 * max_lag + 1]  # |b_k|^2
    top = float(eb.max())
    if top <= 0.0:
        return None
    floor = 1e-12 * top
    rho = np.where(eb > floor, c / np.sqrt(ev * np.maximum(eb, floor)), 0.0)
    m = int(np.argmax(np.abs(rho)))
    # how far the peak stands out of the correlations at the other lags (their robust
    # spread: 1.4826 times the median absolute deviation is one standard deviation)
    spread = 1.4826 * float(np.median(np.abs(rho - np.median(rho))))
    z = abs(float(rho[m])) / spread if spread > 0.0 else float("inf")
    guard = int(round(PEAK_GUARD_S * ANALYSIS_RATE))
    others = np.abs(np.concatenate([rho[: max(0, m - guard)], rho[m + guard + 1 :]]))
    second = float(others.max()) if others.size else 0.0
    return m - max_lag, float(rho[m]), z, second


def backing_in_vocal(vocal: np.ndarray, backing: np.ndarray, sample_rate: int
                     ) -> BackingBleed | None:
    """The copy of ``backing`` that ``vocal`` carries (module doc), or ``None`` when it
    carries none (or the pair is shorter than :data:`MIN_PAIR_S`). Both ``(n, channels)``
    at ``sample_rate`` Hz."""
    from vocalmix.core.dsp import mono_at

    n = min(len(vocal), len(backing))
    if n < MIN_PAIR_S * sample_rate:
        return None
    lag = int(round(MAX_LAG_S * sample_rate))
    win = int(round(WINDOW_S * sample_rate))
    if n >= win + 2 * lag:
        starts = np.linspace(lag, n - win - lag, WINDOWS).round().astype(int)
        starts = np.unique(starts)
    else:  # a short pair: one window, the lags searched cut to a quarter of it
        lag = min(lag, n // 4)
        win = n - 2 * lag
        starts = np.array([lag])
    max_lag = int(round(lag * ANALYSIS_RATE / sample_rate))

    def at_rate(x: np.ndarray) -> np.ndarray:  # mono at ANALYSIS_RATE, float64
        return np.asarray(mono_at(x, sample_rate, ANALYSIS_RATE, "MQ", remember=False),
                          dtype=np.float64)

    peaks: list[tuple[int, float, float, float, np.ndarray, np.ndarray]] = []
    for s in starts:
        v = at_rate(vocal[s : s + win])
        b = at_rate(backing[s - lag : s + win + lag])
        # the backing's stretch: max_lag samples before and after the take's window
        b = np.concatenate([b, np.zeros(max(0, len(v) + 2 * max_lag - len(b)))])
        b = b[: len(v) + 2 * max_lag]
        # the peak is looked for on the first differences (a whitening filter)
        p = _window_peak(np.diff(v), np.diff(b), max_lag)
        if p is not None:
            peaks.append((*p, v, b))
    # a lone window must stand out alone; several must also agree on the lag below
    min_z = MIN_Z if len(starts) == 1 else MIN_Z_AGREEING
    strong = [(k, r, v, b) for k, r, z, second, v, b in peaks
              if abs(r) >= UNIQUE_RATIO * second
              and (abs(r) >= SURE_RHO or (abs(r) >= MIN_RHO and z >= min_z))]
    if not strong:
        return None
    tol = max(1, int(round(LAG_TOLERANCE_S * ANALYSIS_RATE)))
    best: list[tuple[int, float, np.ndarray, np.ndarray]] = []
    for k0, *_ in strong:  # the largest group of peaks at one lag
        group = [g for g in strong if abs(g[0] - k0) <= tol]
        if len(group) > len(best):
            best = group
    if len(best) < min(AGREE, len(starts)):
        return None
    # the peak at lag k pairs the take's sample n with the backing's n + k: a copy that
    # arrives d samples late peaks at k = -d
    k = int(round(float(np.median([g[0] for g in best]))))
    share = float(np.median([_copy_share(v, b, k + max_lag) for _k, _r, v, b in best]))
    return BackingBleed(level_db=10.0 * float(np.log10(max(share, 1e-12))),
                        lag_ms=-1000.0 * k / ANALYSIS_RATE, windows=len(best),
                        of=len(starts))


def bleed_warning(b: BackingBleed, offset_ms: float = 0.0) -> str:
    """The warning note for a take that carries the backing (``warning:`` first), read on
    the take as moved by ``offset_ms`` (ms, :attr:`vocalmix.core.params.VocalChain.
    offset_ms`): a late copy's advice names the offset that moves it into time."""
    when = (f"{b.lag_ms:.0f} ms after the backing" if b.lag_ms >= 0.5 else
            f"{-b.lag_ms:.0f} ms before the backing" if b.lag_ms <= -0.5 else
            "in time with the backing")
    share = 100.0 * 10.0 ** (b.level_db / 10.0)
    text = (f"warning: the vocal input carries a copy of the backing track, about "
            f"{share:.0f} % of its energy below 2 kHz ({b.level_db:+.1f} dB), {when}: a take "
            "sung along to speakers, or a mix given as the vocal (or as the backing). Mixed "
            "in, that part sounds twice; a take recorded with headphones over the "
            "instrumental alone mixes cleanly")
    if b.lag_ms >= LATENCY_MS:
        # the singer heard the backing as the microphone did: the voice was recorded as
        # late as the copy (the recording's round trip, beyond a room's few ms)
        text += (f". The voice is then likely {b.lag_ms:.0f} ms late as well (the "
                 "recording's latency): move the take that much earlier "
                 f"(vocal.offset_ms {offset_ms - b.lag_ms:.0f})")
    return text


__all__ = ["BackingBleed", "backing_in_vocal", "bleed_warning"]
