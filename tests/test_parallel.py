"""The two-thread helpers (vocalmix.core.parallel): the same items, in order, as one
thread gives them, bounded memory, and errors where they belong."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vocalmix.core.parallel import Early, Filling, beside, ordered_map, zip_on_two_threads


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


def test_filling_lets_the_caller_read_the_rows_already_final():
    out = np.zeros(10)
    step = threading.Event()

    def rows():
        for i in range(0, 10, 2):
            out[i : i + 2] = i + 1
            yield i + 2
            if i == 2:
                step.wait(5)  # the filler stops after row 4 until the caller has read it

    f = Filling(out, rows)
    f.wait(4)
    assert list(out[:4]) == [1, 1, 3, 3]
    step.set()
    assert list(f.result()) == [1, 1, 3, 3, 5, 5, 7, 7, 9, 9]


def test_filling_raises_the_fillers_error_in_the_caller():
    def rows():
        yield 3
        raise ValueError("render failed")

    f = Filling(np.zeros(6), rows)
    f.wait(3)
    with pytest.raises(ValueError, match="render failed"):
        f.wait(6)
    with pytest.raises(ValueError, match="render failed"):
        f.result()


def test_filling_cancel_stops_the_filler_after_its_step():
    made: list[int] = []
    closed = threading.Event()

    def rows():
        try:
            for i in range(1, 1000):
                made.append(i)
                yield i
                time.sleep(0.001)
        finally:
            closed.set()

    f = Filling(np.zeros(1000), rows)
    f.wait(2)
    f.cancel()
    assert closed.is_set() and len(made) < 1000
    with pytest.raises(RuntimeError, match="stopped at row"):
        f.wait(1000)


def test_beside_returns_both_results_in_order_and_raises_after_both_end():
    where = {}

    def there():
        where["there"] = threading.current_thread().name
        return 1

    def here():
        where["here"] = threading.current_thread().name
        return 2

    assert beside(there, here) == (1, 2)
    assert where["there"] != where["here"] == threading.current_thread().name

    ended = []

    def slow():
        time.sleep(0.05)
        ended.append("there")
        return 1

    def fails():
        raise RuntimeError("here")

    with pytest.raises(RuntimeError, match="here"):
        beside(slow, fails)
    assert ended == ["there"]  # the helper's work ended before the error came out


def test_early_runs_at_once_on_another_thread_and_raises_where_its_result_is_asked():
    started = threading.Event()
    names: list[str] = []

    def work() -> int:
        names.append(threading.current_thread().name)
        started.set()
        return 7

    e = Early(work)
    assert started.wait(5)  # running before anyone asks for the result
    assert e.result() == 7 and e.result() == 7
    assert names[0] != threading.current_thread().name

    def fail() -> None:
        raise KeyError("lost")

    failing = Early(fail)
    with pytest.raises(KeyError, match="lost"):
        failing.result()


def test_a_render_of_params_measures_its_stems_while_the_master_limits():
    # the stems' figures, measured on a helper thread before the master has finished,
    # are those measured after it (the same achieved figures to the bit)
    from vocalmix import pipeline
    from vocalmix.core.params import MixParams
    from vocalmix.synth import synthesize_song

    v, b = synthesize_song(sample_rate=44100, duration_s=6.0, seed=2)
    est = pipeline.estimate_params(v, b, 44100, method="baseline")
    pending = pipeline.render_params_pending(v, b, 44100, est.params)
    params, rendered = pending.result()
    after = pipeline.measure_achieved(rendered,
                                      measure=est.params.targets.vocal_to_mix_measure)
    assert params.achieved == after
    assert isinstance(params, MixParams) and params.achieved.vocal_to_mix_lu is not None
