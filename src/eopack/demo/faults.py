"""Seeded S3 faults for the local S3 server: what a busy or flaky S3 does to a share of requests.

A :class:`Faults` is a request hook (:meth:`eopack.demo.s3server.LocalS3Server.add_hook`) that
picks, with a seeded generator, ``rate`` of the requests and answers each with one fault:

* ``slowdown``: 503 ``SlowDown`` (S3's answer to too many requests), the request not served;
* ``internal``: 500 ``InternalError``, the request not served;
* ``reset``: a GET's connection closed after part of its body (the headers said more);
* ``stall``: the answer held back ``stall_s`` seconds, then served.

It counts requests and injected faults by kind, so that a test can say how many it survived.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

from eopack.demo.s3server import Intercept

__all__ = ["KINDS", "Faults"]

KINDS = ("slowdown", "internal", "reset", "stall")

_XML = (("Content-Type", "application/xml"),)


def _error(status: str, code: str, message: str) -> Intercept:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>EOPACKFAULT</RequestId></Error>"
    ).encode()
    return Intercept(answer=(status, _XML, body))


class Faults:
    """A seeded fault for ``rate`` of the requests (see the module docstring)."""

    def __init__(self, rate: float, seed: int, stall_s: float = 1.5) -> None:
        self.rate = rate
        self.stall_s = stall_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.requests = 0
        self.injected: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any]) -> Intercept | None:
        with self._lock:
            self.requests += 1
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(KINDS)
            fraction = self._rng.random()
            if kind == "reset" and environ.get("REQUEST_METHOD") != "GET":
                kind = "slowdown"  # only a GET has a body worth cutting
            self.injected[kind] += 1
        if kind == "slowdown":
            return _error("503 Slow Down", "SlowDown", "Please reduce your request rate.")
        if kind == "internal":
            return _error(
                "500 Internal Server Error", "InternalError", "We encountered an internal error."
            )
        if kind == "reset":
            return Intercept(cut_after=int(fraction * 1024))
        time.sleep(self.stall_s)  # the server's thread for this request only
        return None

    @property
    def total(self) -> int:
        return sum(self.injected.values())
