"""The two-thread helpers (vocalmix.core.parallel): the same items, in order, as one
thread gives them, bounded memory, and errors where they belong."""

from __future__ import annotations

import threading
import time

import pytest

from vocalmix.core.parallel import ordered_map, zip_on_two_threads


def test_zip_on_two_threads_is_zip_strict():
    assert list(zip_on_two_threads(iter(range(5)), iter("abcde"))) == list(
        zip(range(5), "abcde", strict=True))
    assert list(zip_on_two_threads(iter(()), iter(()))) == []
    with pytest.raises(ValueError, match="differ in length"):
        list(zip_on_two_threads(iter(range(3)), iter(range(4))))

    def broken():
        yield 1
        raise RuntimeError("a filter failed")

    with pytest.raises(RuntimeError, match="a filter failed"):
        list(zip_on_two_threads(iter(range(3)), broken()))


def test_ordered_map_keeps_the_order_whatever_finishes_first():
    def slow_first(i: int) -> int:
        time.sleep(0.02 if i % 3 == 0 else 0.0)
        return i * i

    assert list(ordered_map(slow_first, range(20))) == [i * i for i in range(20)]
    assert list(ordered_map(slow_first, [])) == []


def test_ordered_map_runs_at_most_ahead_items_past_the_consumer():
    lock = threading.Lock()
    started: list[int] = []

    def record(i: int) -> int:
        with lock:
            started.append(i)
        return i

    it = ordered_map(record, range(100), ahead=3)
    assert next(it) == 0
    time.sleep(0.05)
    with lock:
        assert max(started) <= 3  # the one yielded and at most three more
    assert list(it) == list(range(1, 100))


def test_ordered_map_raises_where_the_failed_item_would_be():
    def fail_at_five(i: int) -> int:
        if i == 5:
            raise ValueError("item 5")
        return i

    got = []
    with pytest.raises(ValueError, match="item 5"):
        for v in ordered_map(fail_at_five, range(10)):
            got.append(v)
    assert got == [0, 1, 2, 3, 4]
