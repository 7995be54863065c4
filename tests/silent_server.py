"""A TEST DOUBLE of a workspace that hangs: a loopback TCP socket that accepts every connection and
never answers (no byte is read or written), as a stuck load balancer or a workspace behind a black-
holing proxy does. No real service can be made to hang on demand, hence the double.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class SilentServer:
    """Accepts connections on 127.0.0.1 and holds them open until the block ends."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._connections: list[socket.socket] = []
        self._stopped = threading.Event()
        self.accepted = 0
        self.first_accepted = threading.Event()  # set once a client is connected and waiting

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            self._connections.append(connection)
            self.accepted += 1
            self.first_accepted.set()

    def __enter__(self) -> SilentServer:
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for connection in self._connections:
            connection.close()
