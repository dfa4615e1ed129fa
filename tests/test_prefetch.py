"""eopack.prefetch: a producer run ahead in a thread, bounded, errors and stops passed along."""

from __future__ import annotations

import threading
import time

import pytest

from eopack.prefetch import prefetch


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_items_in_order_and_at_most_depth_made_ahead():
    made: list[int] = []

    def produce():
        for i in range(100):
            made.append(i)
            yield i

    ahead = prefetch(produce(), 3, "t-order")
    assert next(ahead) == 0
    time.sleep(0.3)  # the thread fills the queue, then waits
    assert len(made) <= 1 + 3 + 1  # taken, queued, one waiting to be queued
    assert list(ahead) == list(range(1, 100))
    assert _threads("t-order") == []


def test_a_producer_error_is_raised_at_the_consumer_after_the_items_before_it():
    def produce():
        yield 1
        raise ValueError("bad chunk")

    got = []
    with pytest.raises(ValueError, match="bad chunk"):
        for item in prefetch(produce(), 2, "t-error"):
            got.append(item)
    assert got == [1]
    assert _threads("t-error") == []


def test_closing_early_stops_a_producer_blocked_on_a_full_queue():
    ahead = prefetch(iter(range(10**6)), 2, "t-close")
    assert next(ahead) == 0
    ahead.close()
    assert _threads("t-close") == []
