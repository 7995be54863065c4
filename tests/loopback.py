"""What the loopback test doubles share: an HTTP server on a loopback address (127.0.0.1 unless a
double says otherwise), on a free port, in a thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class LoopbackServer:
    """Base of the test doubles. Their __enter__ builds a handler class and calls _serve with it;
    leaving the context stops the server."""

    _server: ThreadingHTTPServer | None = None
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        assert self._server is not None, "the double is not started (use it in a with block)"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer((self.host, 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
