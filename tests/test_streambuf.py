"""The block-by-block buffers: any blocks give the values of one long block."""

from __future__ import annotations

import numpy as np
import pytest

from vocalmix.core.streambuf import FILTER_MIN_WIDTHS, TrailingMin


def _trailing_min(v: np.ndarray, width: int, fill: float) -> np.ndarray:
    padded = np.concatenate([np.full(width - 1, fill), v])
    return np.array([padded[i : i + width].min() for i in range(v.size)])


@pytest.mark.parametrize("width", [1, 2, 7, 300])
@pytest.mark.parametrize("max_block", [64, 1000])
def test_trailing_min_of_any_blocks_is_the_window_minimum(width: int, max_block: int) -> None:
    """The segments (short blocks) and the running-minimum filter (blocks of
    FILTER_MIN_WIDTHS widths or more) give each value's trailing minimum exactly, for
    blocks of every length up to the largest, constant runs pushed without output in
    between, and the limiter's kind of values (mostly 1, dips under it)."""
    rng = np.random.default_rng(width * 1000 + max_block)
    filtered = max_block >= FILTER_MIN_WIDTHS * width
    tm = TrailingMin(width, 1.0, max_block=max_block)
    assert (tm._kept is not None) == filtered
    pushed: list[np.ndarray] = []
    got: list[np.ndarray] = []
    out = np.zeros(max_block)
    for step in range(60):
        n = int(rng.integers(1, max_block + 1))
        if step % 7 == 3:  # a constant run, taken without output
            k = int(rng.integers(1, 3 * max_block))
            tm.push_constant(1.0, k)
            pushed.append(np.ones(k))
            got.append(np.full(k, np.nan))
            continue
        v = np.where(rng.random(n) < 0.05, rng.uniform(0.3, 1.0, n), 1.0)
        if step % 5 == 0:
            v = rng.uniform(0.0, 1.0, n)  # dense
        got.append(tm.push(v, out).copy())
        pushed.append(v)
    want = _trailing_min(np.concatenate(pushed), width, 1.0)
    have = np.concatenate(got)
    shown = ~np.isnan(have)
    assert np.array_equal(have[shown], want[shown])


def test_trailing_min_without_a_largest_block_keeps_the_segments() -> None:
    assert TrailingMin(10, 1.0)._kept is None
    assert TrailingMin(10, 1.0, max_block=FILTER_MIN_WIDTHS * 10 - 1)._kept is None
