"""Run a producer a few items ahead of its consumer, in a background thread.

Used where the producer's work releases the GIL (zstd decompression, reading small files), so
on two cores it overlaps the consumer's. Memory is bounded by ``depth`` items. An exception in
the producer is raised at the consumer's next step; closing the iterator early (or an error in
the consumer) stops the thread and waits for it, so nothing runs on after the caller moved on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


def prefetch(items: Iterable[T], depth: int, name: str) -> Iterator[T]:
    """The items of ``items``, produced by a thread named ``name`` up to ``depth`` ahead."""
    ready: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
            return
        put(_END)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
