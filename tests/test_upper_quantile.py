"""upper_quantile: numpy's linear-method quantile, bit for bit, from the top values only."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix.core import measure as m
from vocalmix.estimators.dynamics import peak_to_loudness_db

QS = (0.99, 0.999, 0.9999)
DTYPES = (np.float32, np.float64)


def reference(x: np.ndarray, q: float, absolute: bool, dtype: type) -> np.floating:
    """What the dynamics features were trained on: numpy on the whole converted array."""
    v = np.asarray(x, dtype=dtype)
    return np.quantile(np.abs(v) if absolute else v, q)


def same(got: np.floating, ref: np.floating) -> bool:
    """Equal, of the same numpy type, and with the same bits."""
    return (type(got) is type(ref) and bool(got == ref)
            and np.asarray(got).tobytes() == np.asarray(ref).tobytes())


@pytest.fixture
def fast_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path for every size and quantile, and a failure if numpy is called."""
    monkeypatch.setattr(m, "_UQ_MIN_SIZE", 1)
    monkeypatch.setattr(m, "_UQ_MAX_SHARE", 1.0)

    def no_fallback(*args: object) -> np.floating:
        raise AssertionError("upper_quantile fell back to np.quantile")

    monkeypatch.setattr(m, "_exact_quantile", no_fallback)


def signals(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Test signals of ``n`` values in all: mono and stereo, various distributions."""
    h = max(1, n // 2)
    return {
        "normal": rng.standard_normal(n),
        "stereo normal": rng.standard_normal((h, 2)) * 0.3,
        "heavy tailed": rng.standard_t(1.5, size=n),
        "stereo laplace": rng.laplace(size=(h, 2)).astype(np.float32),
        "many ties": rng.integers(-4, 5, size=n).astype(np.float64) / 4.0,
        "clipped": np.clip(rng.standard_normal((h, 2)) * 0.5, -0.2, 0.2),
        "all zero": np.zeros((h, 2), np.float32),
        "constant": np.full(n, -0.25),
        "sparse": np.where(rng.random(n) < 0.002, rng.standard_normal(n), 0.0),
    }


@pytest.mark.parametrize("n", [*range(1, 11), 137, 4096, 20001])
def test_fast_path_equals_numpy(n: int, fast_only: None) -> None:
    rng = np.random.default_rng(n)
    for name, x in signals(rng, n).items():
        for dtype in DTYPES:
            for q in (*QS, 0.5, 0.0, 1.0):
                for absolute in (True, False):
                    got = m.upper_quantile(x, q, absolute=absolute, dtype=dtype)
                    ref = reference(x, q, absolute, dtype)
                    assert same(got, ref), (name, dtype, q, absolute, got, ref)


def test_default_dtype_is_the_arrays(fast_only: None) -> None:
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        x = rng.standard_normal((5000, 2)).astype(dtype)
        for q in QS:
            assert same(m.upper_quantile(x, q), np.quantile(x, q))
            assert same(m.upper_quantile(x, q, absolute=True), np.quantile(np.abs(x), q))


def test_non_contiguous_input(fast_only: None) -> None:
    rng = np.random.default_rng(2)
    x = np.asfortranarray(rng.standard_normal((30000, 2)).astype(np.float32))
    for y in (x, x[::3], x[:, 1], x[::-1]):
        for q in QS:
            got = m.upper_quantile(y, q, absolute=True, dtype=np.float32)
            assert same(got, reference(y, q, True, np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_stereo_takes_the_fast_path(dtype: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signals of the size the dynamics model reads, at the default settings."""
    monkeypatch.setattr(m, "_exact_quantile", lambda *a: pytest.fail("fell back"))
    rng = np.random.default_rng(3)
    n = 400_000
    t = np.arange(n) / 44100.0
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t) ** 2
    tone = np.sin(2 * np.pi * 220.0 * t)[:, None] * env[:, None]
    cases = {
        "normal": rng.standard_normal((n, 2)) * 0.1,
        "heavy tailed": rng.standard_t(2.0, size=(n, 2)) * 0.05,
        "tone": np.concatenate([tone, 0.8 * tone], axis=1),
        "noisy tone": np.concatenate([tone, tone], axis=1) + rng.standard_normal((n, 2)) * 1e-3,
    }
    for name, x in cases.items():
        x = x.astype(dtype)
        for q in QS:
            for conv in DTYPES:
                got = m.upper_quantile(x, q, absolute=True, dtype=conv)
                assert same(got, reference(x, q, True, conv)), (name, q, conv)


@pytest.mark.parametrize("q", QS)
def test_default_settings_equal_numpy(q: float) -> None:
    """With the fallbacks allowed: every input gives numpy's value."""
    rng = np.random.default_rng(4)
    for n in (*range(1, 11), 70_000, 150_001):
        for name, x in signals(rng, n).items():
            for dtype in DTYPES:
                got = m.upper_quantile(x, q, absolute=True, dtype=dtype)
                assert same(got, reference(x, q, True, dtype)), (name, n, dtype)


def test_nan_and_inf_as_numpy() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((100_000, 2))
    x[123, 1] = np.nan
    assert np.isnan(m.upper_quantile(x, 0.999, absolute=True))
    x[123, 1] = np.inf
    x[500:700, 0] = -np.inf
    for q in QS:
        with np.errstate(invalid="ignore"):  # inf - inf, in numpy's interpolation too
            got = m.upper_quantile(x, q, absolute=True, dtype=np.float32)
            ref = reference(x, q, True, np.float32)
        assert same(got, ref) or (np.isnan(got) and np.isnan(ref))


def test_peak_to_loudness_unchanged() -> None:
    """The dynamics feature equals its original formula, bit for bit."""
    import math

    rng = np.random.default_rng(6)
    sr = 44100
    t = np.arange(5 * sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 330.0 * t) * (1 + np.sin(2 * np.pi * 3 * t)))[:, None]
    x = np.concatenate([x, 0.7 * x], axis=1) + rng.standard_normal((t.size, 2)) * 0.01
    for y in (x, x.astype(np.float32)):
        i = m.integrated_loudness(y, sr)
        q = float(np.quantile(np.abs(np.asarray(y, dtype=np.float32)), 0.999))
        assert peak_to_loudness_db(y, sr) == 20.0 * math.log10(q) - float(i)
    assert math.isnan(peak_to_loudness_db(np.zeros((sr, 2), np.float32), sr))
