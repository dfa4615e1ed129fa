"""A background service with start/stop that can be used as a context manager."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Self

from werkzeug.serving import make_server


class Service:
    """Subclasses implement ``start`` (returning self) and ``stop``; ``with`` does the rest."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class WsgiService(Service):
    """A WSGI app served by werkzeug on a loopback port from a daemon thread."""

    host = "127.0.0.1"
    _server: Any = None
    _thread: threading.Thread | None = None

    def _serve(self, app: Any, port: int, handler: Any = None) -> None:
        """Bind (port 0 = the kernel picks a free one) and serve in the background."""
        self._server = make_server(self.host, port, app, threaded=True, request_handler=handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server, self._thread = None, None
