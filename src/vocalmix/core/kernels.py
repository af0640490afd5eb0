"""SciPy's compiled signal loops, reached without importing SciPy's subpackages.

``import scipy.signal`` takes about 0.9 s (SciPy 1.17 parses every public function's
docstring as it imports, and ``scipy.signal`` pulls in ``scipy.stats``); ``scipy.optimize``,
``scipy.ndimage`` and ``scipy.fft`` add 0.3 s each. A mix runs only a handful of SciPy's
compiled loops, which import in milliseconds on their own. This module loads those
extension modules from SciPy's installed files (:func:`compiled`) and calls them the way
SciPy's public wrappers do, argument for argument, so every function below returns the
same values to the bit as the public function it names (``tests/test_kernels.py`` checks
each against it). The extension modules are private to SciPy: where one cannot be loaded
(a SciPy that moved or renamed it), or that does not give the known answer of a small case
(one that changed its arguments or meaning), each function falls back to the public one,
which is slower to import and otherwise the same.

Only the loops that the mixing path runs are here; analysis and training code that runs
rarely imports SciPy as usual.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import sys
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

#: ``scipy.ndimage``'s codes of the boundary modes used here
_NDIMAGE_MODE = {"nearest": 0, "wrap": 1, "reflect": 2, "mirror": 3, "constant": 4}


#: one loader at a time: two threads asking for one module at once load it once
_LOADING = threading.Lock()


@cache
def compiled(qualname: str) -> ModuleType | None:
    """The SciPy extension module ``qualname`` (e.g. ``"scipy.signal._sosfilt"``), loaded
    from its file without running its package's ``__init__``; ``None`` when it cannot be
    (then the callers use SciPy's public function). A module SciPy already imported is
    reused, and one loaded here is registered under its own name, so SciPy reuses it."""
    with _LOADING:
        return _load(qualname)


def _load(qualname: str) -> ModuleType | None:
    parts = qualname.split(".")
    if parts[0] != "scipy" or len(parts) < 3:
        return None
    mod = sys.modules.get(qualname)
    if mod is not None:
        return mod
    try:
        import scipy

        folder = Path(scipy.__file__).parent.joinpath(*parts[1:-1])
        path = next((folder / (parts[-1] + s) for s in importlib.machinery.EXTENSION_SUFFIXES
                     if (folder / (parts[-1] + s)).is_file()), None)
        if path is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(qualname, str(path))
        spec = importlib.util.spec_from_file_location(qualname, path, loader=loader)
        if spec is None:
            return None
        mod = importlib.util.module_from_spec(spec)
        loader.exec_module(mod)
    except Exception:  # noqa: BLE001 - any failure means: use the public function
        return None
    sys.modules[qualname] = mod
    return mod


@cache
def _attr(qualname: str, name: str) -> Any:
    """``qualname.name`` from :func:`compiled`, once it has given the known answer of a
    small case (:data:`_CHECKS`: a SciPy whose private loop changed its arguments or its
    meaning is caught here, not in a mix); ``None`` otherwise."""
    mod = compiled(qualname)
    fn = getattr(mod, name, None) if mod is not None else None
    if fn is None:
        return None
    try:
        ok = bool(_CHECKS[f"{qualname}.{name}"](fn))
    except Exception:  # noqa: BLE001 - any failure means: use the public function
        ok = False
    return fn if ok else None


def _biquad(c: list[float], xs: list[float]) -> list[float]:
    """One second-order section ``(b0, b1, b2, 1, a1, a2)`` over ``xs``, transposed
    direct form II, in plain Python: the known answer of the filter checks."""
    b0, b1, b2, _, a1, a2 = c
    z1 = z2 = 0.0
    out = []
    for v in xs:
        y = b0 * v + z1
        z1, z2 = b1 * v - a1 * y + z2, b2 * v - a2 * y
        out.append(y)
    return out


_IMPULSE = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def _check_sosfilt(fn: Any) -> bool:
    c = [0.5, 0.25, 0.125, 1.0, -0.5, 0.25]
    x = np.array([_IMPULSE])
    fn(np.array([c]), x, np.zeros((1, 1, 2)))  # in place
    return bool(np.allclose(x[0], _biquad(c, _IMPULSE), rtol=1e-12, atol=1e-15))


def _check_lfilter(fn: Any) -> bool:
    y = fn(np.array([0.5]), np.array([1.0, -0.5]), np.array(_IMPULSE), 0)
    return bool(np.allclose(y, _biquad([0.5, 0.0, 0.0, 1.0, -0.5, 0.0], _IMPULSE),
                            rtol=1e-12, atol=1e-15))


def _check_r2c(fn: Any) -> bool:
    s = fn(np.array([1.0, 2.0, 3.0, 4.0]), (0,), True, 0, None, 1)
    return bool(np.allclose(s, [10.0, -2.0 + 2.0j, -2.0]))


def _check_c2r(fn: Any) -> bool:
    y = fn(np.array([10.0, -2.0 + 2.0j, -2.0]), (0,), 4, False, 2, None, 1)
    return bool(np.allclose(y, [1.0, 2.0, 3.0, 4.0]))


def _check_correlate1d(fn: Any) -> bool:
    out = np.zeros(5)
    fn(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), np.array([1.0, 2.0, 3.0]), 0, out,
       _NDIMAGE_MODE["constant"], 0.0, 0)
    return bool(np.array_equal(out, [0.0, 3.0, 2.0, 1.0, 0.0]))


def _check_max_filter(fn: Any) -> bool:
    out = np.zeros(4)
    fn(np.array([1.0, 3.0, 2.0, 0.0]), 2, 0, out, _NDIMAGE_MODE["nearest"], 0.0, 0, 0)
    return bool(np.array_equal(out, [1.0, 3.0, 3.0, 2.0]))


_PEAKS_X = np.array([0.0, 1.0, 0.0, 2.0, 0.0])


def _check_maxima(fn: Any) -> bool:
    return bool(np.array_equal(fn(_PEAKS_X)[0], [1, 3]))


def _check_distance(fn: Any) -> bool:
    keep = fn(np.array([1, 3], dtype=np.intp), np.array([1.0, 2.0]), 3.0)
    return bool(np.array_equal(np.asarray(keep, dtype=bool), [False, True]))


def _check_prominences(fn: Any) -> bool:
    prom = fn(_PEAKS_X, np.array([1, 3], dtype=np.intp), np.intp(-1))[0]
    return bool(np.array_equal(prom, [1.0, 2.0]))


def _check_brentq(fn: Any) -> bool:
    r = fn(lambda v: v - 0.25, 0.0, 1.0, 1e-12, _BRENTQ_RTOL, 100, (), False, True)
    return abs(float(r) - 0.25) < 1e-9


def _check_lmdif(fn: Any) -> bool:
    x = fn(lambda v: np.array([v[0] - 0.25, 2.0 * (v[1] + 0.5), v[0] + v[1] + 0.25]),
           np.zeros(2), (), 0, _LEASTSQ_TOL, _LEASTSQ_TOL, 0.0, 600, _EPS, 100.0, None)[0]
    return bool(np.allclose(x, [0.25, -0.5], rtol=0.0, atol=1e-9))


#: the known answer each private loop must give before it is used
_CHECKS: dict[str, Callable[[Any], bool]] = {
    "scipy.signal._sosfilt._sosfilt": _check_sosfilt,
    "scipy.signal._sigtools._linear_filter": _check_lfilter,
    "scipy.fft._duccfft.pyduccfft.r2c": _check_r2c,
    "scipy.fft._duccfft.pyduccfft.c2r": _check_c2r,
    "scipy.fft._pocketfft.pypocketfft.r2c": _check_r2c,
    "scipy.fft._pocketfft.pypocketfft.c2r": _check_c2r,
    "scipy.ndimage._nd_image.correlate1d": _check_correlate1d,
    "scipy.ndimage._nd_image.min_or_max_filter1d": _check_max_filter,
    "scipy.signal._peak_finding_utils._local_maxima_1d": _check_maxima,
    "scipy.signal._peak_finding_utils._select_by_peak_distance": _check_distance,
    "scipy.signal._peak_finding_utils._peak_prominences": _check_prominences,
    "scipy.optimize._zeros._brentq": _check_brentq,
    "scipy.optimize._minpack._lmdif": _check_lmdif,
}


# --- IIR filters (scipy.signal) ------------------------------------------------------------


def sosfilt_kernel() -> Any:
    """SciPy's checked second-order-section loop itself, ``kernel(sos, x, zi)`` filtering
    a C-contiguous ``(signals, n)`` ``x`` in place with the state ``zi`` ``(signals,
    sections, 2)`` (for the live chain, whose blocks cannot pay :func:`sosfilt`'s
    argument handling); ``None`` when it cannot be used."""
    return _attr("scipy.signal._sosfilt", "_sosfilt")


def sosfilt(sos: np.ndarray, x: np.ndarray, axis: int = -1, zi: np.ndarray | None = None
            ) -> Any:
    """``scipy.signal.sosfilt(sos, x, axis=axis, zi=zi)``: ``y``, or ``(y, zf)`` when
    ``zi`` is given. Computed in ``np.result_type(sos, x, zi)`` as SciPy does."""
    kernel = sosfilt_kernel()
    if kernel is None:
        from scipy.signal import sosfilt as public

        return public(sos, x, axis=axis, zi=zi)
    x = np.asarray(x)
    sos = np.atleast_2d(np.asarray(sos))
    n_sections = sos.shape[0]
    inputs = [sos, x] if zi is None else [sos, x, np.asarray(zi)]
    dtype = np.result_type(*inputs)
    zshape = list(x.shape)
    zshape[axis] = 2
    zshape = [n_sections, *zshape]
    if zi is None:
        z = np.zeros(zshape, dtype)
    else:
        z = np.array(zi, dtype=dtype)  # a copy: the kernel works in place
        if list(z.shape) != zshape:
            raise ValueError(f"zi has shape {z.shape}, expected {tuple(zshape)}")
    axis = axis % x.ndim
    xm = np.moveaxis(x, axis, -1)
    zm = np.moveaxis(z, (0, axis + 1), (-2, -1))
    x_shape, z_shape = xm.shape, zm.shape
    y = np.array(xm.reshape(-1, xm.shape[-1]), dtype, order="C")
    zc = np.ascontiguousarray(zm.reshape(-1, n_sections, 2))
    kernel(sos.astype(dtype, copy=False), y, zc)
    out = np.moveaxis(y.reshape(x_shape), -1, axis)
    if zi is None:
        return out
    return out, np.moveaxis(zc.reshape(z_shape), (-2, -1), (0, axis + 1))


@cache
def _pairs_in_complex() -> bool:
    """Whether SciPy's loop filters a complex signal as two real ones: the known answer of
    a small case (the real and imaginary parts of an impulse pair through one section),
    checked once before :func:`sosfilt_pair` relies on it."""
    kernel = sosfilt_kernel()
    if kernel is None:
        return False
    c = [0.5, 0.25, 0.125, 1.0, -0.5, 0.25]
    x = np.array([[complex(v, -2.0 * v) for v in _IMPULSE]])
    try:
        kernel(np.array([c], np.complex128), x, np.zeros((1, 1, 2), np.complex128))
    except Exception:  # noqa: BLE001 - any failure means: filter the channels as real ones
        return False
    want = np.array(_biquad(c, _IMPULSE))
    return bool(np.allclose(x[0].real, want, rtol=1e-12, atol=1e-15)
                and np.allclose(x[0].imag, -2.0 * want, rtol=1e-12, atol=1e-15))


#: the most sections :func:`sosfilt_pair` is faster for (measured on 3 minutes of stereo
#: at 44.1 kHz: 1 section 7.0 against 11.3 ms per 2**20 samples, 2 sections 8.6 against
#: 11.3, 3 sections 12.7 against 11.5)
PAIR_MAX_SECTIONS = 2


def sosfilt_pair(sos: np.ndarray, x: np.ndarray, zi: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``sosfilt(sos, x, axis=0, zi=zi)`` of a two-channel ``x`` ``(n, 2)`` in float64,
    the two channels filtered as the real and imaginary parts of one complex signal:
    ``(y, zf)``, ``y`` ``(n, 2)`` C-contiguous, ``zf`` shaped as ``zi`` ``(sections, 2,
    2)``.

    The values are those of the real filter to the bit (a real coefficient times a
    complex sample is two real products, and a zero imaginary part adds nothing), for
    finite samples. The real loop runs one channel after the other, each sample waiting on
    the last through the filter's state: for one or two sections that latency, not the
    arithmetic, bounds it, and the complex loop carries both channels' recursions in the
    same time (:data:`PAIR_MAX_SECTIONS`). A NaN or infinite sample in one channel turns
    the other channel's samples from there on to NaN."""
    kernel = sosfilt_kernel()
    if kernel is None or not _pairs_in_complex():
        return sosfilt(sos, x, axis=0, zi=zi)  # (the same values, channel by channel)
    n = x.shape[0]
    y = np.empty(n, np.complex128)
    y.view(np.float64).reshape(n, 2)[...] = x  # float32 samples cast exactly, as SciPy does
    z = np.empty((1, *zi.shape[:2]), np.complex128)
    z[0].real = zi[..., 0]
    z[0].imag = zi[..., 1]
    kernel(np.asarray(sos, dtype=np.complex128), y.reshape(1, n), z)
    return y.view(np.float64).reshape(n, 2), np.stack([z[0].real, z[0].imag], axis=-1)


def lfilter(b: Any, a: Any, x: np.ndarray, axis: int = -1, zi: np.ndarray | None = None
            ) -> Any:
    """``scipy.signal.lfilter(b, a, x, axis=axis, zi=zi)`` for a recursive filter
    (``len(a) > 1``): ``y``, or ``(y, zf)`` when ``zi`` is given."""
    b, a = np.atleast_1d(b), np.atleast_1d(a)
    kernel = _attr("scipy.signal._sigtools", "_linear_filter")
    if kernel is None or len(a) < 2:
        from scipy.signal import lfilter as public

        return public(b, a, x, axis=axis, zi=zi)
    x = np.asarray(x)
    if zi is None:
        return kernel(b, a, x, axis)
    return kernel(b, a, x, axis, np.asarray(zi))


# --- FFTs (scipy.fft) ----------------------------------------------------------------------


def _fix_length(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    """``x`` cut or zero-padded to ``n`` along ``axis`` (``scipy.fft``'s ``_fix_shape``)."""
    if x.shape[axis] >= n:
        index = [slice(None)] * x.ndim
        index[axis] = slice(0, n)
        return x[tuple(index)]
    shape = list(x.shape)
    shape[axis] = n
    z = np.zeros(shape, x.dtype)
    index = [slice(None)] * x.ndim
    index[axis] = slice(0, x.shape[axis])
    z[tuple(index)] = x
    return z


def _float(x: np.ndarray) -> np.ndarray:
    """``x`` as SciPy's FFTs take it: float32/64 (complex) kept, anything else float64."""
    x = np.asarray(x)
    if x.dtype in (np.float32, np.float64, np.complex64, np.complex128):
        return x
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


#: where SciPy keeps its compiled FFT loops, newest first: ``scipy.fft``'s DUCC FFT since
#: SciPy 1.18, its pocketfft before (the same arguments)
FFT_MODULES = ("scipy.fft._duccfft.pyduccfft", "scipy.fft._pocketfft.pypocketfft")


def _fft_loop(name: str) -> Any:
    """SciPy's checked FFT loop ``name`` (``"r2c"`` or ``"c2r"``) from the first of
    :data:`FFT_MODULES` that has it; ``None`` when none does."""
    for qualname in FFT_MODULES:
        fn = _attr(qualname, name)
        if fn is not None:
            return fn
    return None


def rfft(x: np.ndarray, n: int | None = None, axis: int = -1) -> np.ndarray:
    """``scipy.fft.rfft(x, n, axis)``: float32 in, complex64 out (NumPy's rounds
    differently in single precision)."""
    r2c = _fft_loop("r2c")
    if r2c is None:
        import scipy.fft

        return np.asarray(scipy.fft.rfft(x, n, axis=axis))
    x = _float(x)
    if n is not None:
        x = _fix_length(x, n, axis)
    return np.asarray(r2c(x, (axis % x.ndim,), True, 0, None, 1))


def irfft(x: np.ndarray, n: int | None = None, axis: int = -1) -> np.ndarray:
    """``scipy.fft.irfft(x, n, axis)``."""
    c2r = _fft_loop("c2r")
    if c2r is None:
        import scipy.fft

        return np.asarray(scipy.fft.irfft(x, n, axis=axis))
    x = _float(x)
    if not np.iscomplexobj(x):
        x = x + 0.0j
    axis = axis % x.ndim
    if n is None:
        n = (x.shape[axis] - 1) * 2
    else:
        x = _fix_length(x, n // 2 + 1, axis)
    return np.asarray(c2r(x, (axis,), n, False, 2, None, 1))


def welch_density(x: np.ndarray, sample_rate: float, nperseg: int,
                  block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.welch(x, fs=sample_rate, nperseg=nperseg, noverlap=nperseg // 2,
    window="hann", scaling="density")`` of a 1-D float64 ``x`` at least ``nperseg``
    samples long: ``(frequencies Hz, one-sided power density per Hz)``, within about
    1e-13 of SciPy's (the window's cosines are computed once here, in another order).
    :class:`WelchDensity` given the whole signal at once; ``import scipy.signal`` alone
    would take 0.5 s more."""
    w = WelchDensity(sample_rate, nperseg, block)
    w.add(x)
    return w.result()


class WelchDensity:
    """Welch's density (:func:`welch_density`) of a 1-D signal given a block at a time,
    for a signal too long to hold whole.

    Welch's estimate: the segments of ``nperseg`` samples every ``nperseg - nperseg //
    2``, each less its mean (``detrend="constant"``) and times the periodic Hann window
    ``w``, transformed; ``|X|^2 / (fs * sum(w^2))``, doubled but at 0 Hz (and at the
    Nyquist frequency for an even ``nperseg``), averaged over the segments. Here
    ``block`` segments at a time, so a long signal takes a few MB instead of SciPy's
    copies of every segment (130 MB for 3 minutes at 44.1 kHz, in eight times the time).
    The samples of a segment that a block leaves unfinished are kept for the next; the
    sums may group the segments differently than one call over the whole signal (the
    same density to float rounding)."""

    def __init__(self, sample_rate: float, nperseg: int, block: int = 64) -> None:
        n = int(nperseg)
        if n < 1:
            raise ValueError("welch_density: a segment of at least one sample is needed")
        self.sample_rate = float(sample_rate)
        self.nperseg = n
        self._step = n - n // 2
        self._block = int(block)
        if n == 1:  # (SciPy's one-point window)
            self._win = np.ones(1)
        else:
            self._win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
        self._scale = 1.0 / (self.sample_rate * float((self._win * self._win).sum()))
        self._total = np.zeros(n // 2 + 1)
        self._count = 0
        self._rest = np.zeros(0)  # the samples from the next segment's start on

    def add(self, x: np.ndarray) -> None:
        """Take the next samples ``x`` (1-D)."""
        from numpy.lib.stride_tricks import sliding_window_view

        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError("welch_density: a 1-D signal is needed")
        buf = np.concatenate([self._rest, x]) if self._rest.size else x
        n, step = self.nperseg, self._step
        count = (len(buf) - n) // step + 1 if len(buf) >= n else 0
        segments = sliding_window_view(buf, n)[::step][:count] if count else None
        for i in range(0, count, self._block):
            assert segments is not None
            seg = segments[i : i + self._block]
            seg = self._win * (seg - seg.mean(axis=-1, keepdims=True))
            s = rfft(seg, axis=-1)
            p = s.real**2 + s.imag**2
            p *= self._scale
            p[:, 1 : None if n % 2 else -1] *= 2.0
            self._total += p.sum(axis=0)
        self._count += count
        self._rest = np.array(buf[count * step :])

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(frequencies Hz, one-sided power density per Hz)`` of the samples so far."""
        if self._count == 0:
            raise ValueError(f"welch_density: a 1-D signal of at least {self.nperseg} "
                             "samples is needed")
        n = self.nperseg
        return np.arange(n // 2 + 1) * (self.sample_rate / n), self._total / self._count


# --- 1-D filters (scipy.ndimage) -----------------------------------------------------------


def correlate1d(x: np.ndarray, weights: np.ndarray, axis: int = -1,
                output: np.ndarray | None = None, mode: str = "reflect",
                cval: float = 0.0, origin: int = 0) -> np.ndarray:
    """``scipy.ndimage.correlate1d`` for real ``x`` (``output``: an array to write into,
    or ``None``)."""
    fn = _attr("scipy.ndimage._nd_image", "correlate1d")
    if fn is None:
        from scipy.ndimage import correlate1d as public

        return np.asarray(public(x, weights, axis=axis, output=output, mode=mode,
                                 cval=cval, origin=origin))
    x = np.asarray(x)
    out = np.zeros(x.shape, x.dtype) if output is None else output
    w = np.ascontiguousarray(weights, dtype=np.float64)
    fn(x, w, axis % x.ndim, out, _NDIMAGE_MODE[mode], cval, origin)
    return out


def maximum_filter1d(x: np.ndarray, size: int, axis: int = -1, mode: str = "reflect",
                     cval: float = 0.0, origin: int = 0) -> np.ndarray:
    """``scipy.ndimage.maximum_filter1d`` for real ``x``."""
    return _min_or_max_filter1d(x, size, axis, mode, cval, origin, minimum=False)


def minimum_filter1d(x: np.ndarray, size: int, axis: int = -1, mode: str = "reflect",
                     cval: float = 0.0, origin: int = 0, output: np.ndarray | None = None
                     ) -> np.ndarray:
    """``scipy.ndimage.minimum_filter1d`` for real ``x`` (``output``: an array of the
    shape and type of ``x`` to write into, or ``None``)."""
    return _min_or_max_filter1d(x, size, axis, mode, cval, origin, minimum=True,
                                output=output)


def _min_or_max_filter1d(x: np.ndarray, size: int, axis: int, mode: str, cval: float,
                         origin: int, *, minimum: bool, output: np.ndarray | None = None
                         ) -> np.ndarray:
    fn = _attr("scipy.ndimage._nd_image", "min_or_max_filter1d")
    if fn is None:
        from scipy.ndimage import maximum_filter1d as public_max
        from scipy.ndimage import minimum_filter1d as public_min

        public = public_min if minimum else public_max
        got = np.asarray(public(x, size, axis=axis, mode=mode, cval=cval, origin=origin))
        if output is None:
            return got
        output[...] = got
        return output
    if size < 1 or not 0 <= size // 2 + origin < size:
        raise ValueError(f"invalid size {size} or origin {origin}")
    x = np.asarray(x)
    out = np.zeros(x.shape, x.dtype) if output is None else output
    fn(x, size, axis % x.ndim, out, _NDIMAGE_MODE[mode], cval, origin, int(minimum))
    return out


def _median_of_9(padded: np.ndarray, axis: int, n: int) -> np.ndarray:
    """The median of every 9 consecutive values along ``axis`` of ``padded`` (``n + 8``
    long there): ``n`` values, each one of its window's.

    Each window of 9 is three consecutive triples, and its median is the median of the
    triples' largest minimum, middle median and smallest maximum (exact for every order
    of 9 values, and so for ties). A triple starting at ``j`` serves the windows starting
    at ``j``, ``j - 3`` and ``j - 6``, so the triples are sorted once, in 6 minimum or
    maximum passes, and the windows take 12 more: 18 passes over the array where a
    network over each window's 9 values takes 38."""
    def along(a: np.ndarray, start: int, length: int) -> np.ndarray:
        at: list[Any] = [slice(None)] * a.ndim
        at[axis] = slice(start, start + length)
        return a[tuple(at)]

    m = n + 6  # the triples
    a, b, c = (along(padded, k, m) for k in range(3))
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    t = np.maximum(lo, c)
    np.minimum(lo, c, out=lo)
    mid = np.minimum(hi, t)
    np.maximum(hi, t, out=hi)
    # each window's three triples start 0, 3 and 6 after it
    top = np.maximum(along(lo, 0, n), along(lo, 3, n))
    np.maximum(top, along(lo, 6, n), out=top)  # the largest minimum
    bottom = np.minimum(along(hi, 0, n), along(hi, 3, n))
    np.minimum(bottom, along(hi, 6, n), out=bottom)  # the smallest maximum
    return _median_of_3(_median_of_3(along(mid, 0, n), along(mid, 3, n), along(mid, 6, n)),
                        top, bottom)


def _median_of_3(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The median of ``x``, ``y`` and ``z`` element by element (4 passes):
    ``max(min(x, y), min(max(x, y), z))``."""
    low = np.minimum(x, y)
    high = np.maximum(x, y)
    np.minimum(high, z, out=high)
    return np.maximum(low, high, out=low)


def median_filter1d(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``scipy.ndimage.median_filter`` of ``x`` (without NaNs) with a window of odd
    ``size`` along ``axis`` only and ``mode="nearest"``: the median of the same ``size``
    values, which is one of them, so equal to SciPy's to the bit.

    A window of 9 goes through :func:`_median_of_9` (18 minimum or maximum passes over
    the whole array, 6-10 times faster than sorting every window); other sizes sort each
    window. Either way the result is laid out as the middle column of the sorted windows
    (a view with their strides), so that a sum over it adds in the same order and rounds
    the same."""
    if size % 2 != 1:
        raise ValueError("the window must be odd")
    x = np.asarray(x)
    h = size // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (h, h)
    padded = np.pad(x, pad, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(padded, size, axis=axis)
    if size == 9:
        out = np.empty_like(win)[..., h]  # (np.sort copies its input as empty_like does)
        out[...] = _median_of_9(padded, axis, x.shape[axis])
        return out
    return np.sort(win, axis=-1)[..., h]  # the middle of each sorted window


# --- peaks (scipy.signal.find_peaks) -------------------------------------------------------


def find_peaks(x: np.ndarray, prominence: float, distance: float) -> np.ndarray:
    """The indices ``scipy.signal.find_peaks(x, prominence=prominence,
    distance=distance)[0]`` returns (local maxima at least ``distance`` samples apart,
    the higher kept first, then those at least ``prominence`` above their bases)."""
    maxima = _attr("scipy.signal._peak_finding_utils", "_local_maxima_1d")
    by_distance = _attr("scipy.signal._peak_finding_utils", "_select_by_peak_distance")
    prominences = _attr("scipy.signal._peak_finding_utils", "_peak_prominences")
    if maxima is None or by_distance is None or prominences is None:
        from scipy.signal import find_peaks as public

        return np.asarray(public(x, prominence=prominence, distance=distance)[0])
    if distance < 1:
        raise ValueError("distance must be at least 1")
    x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    peaks = np.asarray(maxima(x)[0])
    peaks = peaks[np.asarray(by_distance(peaks, x[peaks], float(distance)), dtype=bool)]
    prom = np.asarray(prominences(x, peaks, np.intp(-1))[0])
    return peaks[prominence <= prom]


# --- root finding (scipy.optimize.brentq) --------------------------------------------------

#: ``scipy.optimize.brentq``'s default relative tolerance
_BRENTQ_RTOL = 4 * np.finfo(float).eps


def brentq(f: Callable[[float], float], a: float, b: float, xtol: float = 2e-12,
           maxiter: int = 100) -> float:
    """``scipy.optimize.brentq(f, a, b, xtol=xtol, maxiter=maxiter)``: a root of ``f`` in
    ``[a, b]`` where ``f(a)`` and ``f(b)`` differ in sign (``ValueError`` otherwise,
    ``RuntimeError`` when it does not converge)."""
    fn = _attr("scipy.optimize._zeros", "_brentq")
    if fn is None:
        from scipy.optimize import brentq as public

        return float(public(f, a, b, xtol=xtol, maxiter=maxiter))
    if xtol <= 0:
        raise ValueError(f"xtol too small ({xtol:g} <= 0)")

    def checked(v: float) -> float:
        y = f(v)
        if math.isnan(y):
            raise ValueError("the function value is NaN")
        return y

    return float(fn(checked, a, b, xtol, _BRENTQ_RTOL, int(maxiter), (), False, True))


# --- least squares (scipy.optimize.leastsq) ---------------------------------------------

#: ``scipy.optimize.leastsq``'s default ``ftol`` and ``xtol``
_LEASTSQ_TOL = 1.49012e-8
#: its default ``epsfcn`` for float64 (the forward-difference step is ``sqrt(epsfcn)``
#: relative to each parameter)
_EPS = float(np.finfo(np.float64).eps)


def leastsq(func: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, maxfev: int
            ) -> np.ndarray:
    """``scipy.optimize.leastsq(func, x0, maxfev=maxfev)[0]``: the parameters that
    MINPACK's Levenberg-Marquardt (``lmdif``, forward-difference Jacobian, at most
    ``maxfev`` calls of ``func``, Jacobian's included) reaches from ``x0`` in minimising
    ``sum(func(x)**2)``. ``x0`` is not modified."""
    x = np.array(x0, dtype=np.float64).reshape(-1)  # a copy: MINPACK writes into it
    fn = _attr("scipy.optimize._minpack", "_lmdif")
    if fn is None:
        from scipy.optimize import leastsq as public

        return np.asarray(public(func, x, maxfev=int(maxfev))[0], dtype=np.float64)
    return np.asarray(fn(func, x, (), 0, _LEASTSQ_TOL, _LEASTSQ_TOL, 0.0, int(maxfev),
                         _EPS, 100.0, None)[0], dtype=np.float64)


__all__ = [
    "PAIR_MAX_SECTIONS",
    "brentq",
    "compiled",
    "correlate1d",
    "find_peaks",
    "irfft",
    "leastsq",
    "lfilter",
    "maximum_filter1d",
    "median_filter1d",
    "minimum_filter1d",
    "rfft",
    "sosfilt",
    "sosfilt_kernel",
    "sosfilt_pair",
]
