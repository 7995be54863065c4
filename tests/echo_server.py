"""A TEST DOUBLE of a misbehaving tracking server: a loopback HTTP server that answers every request
with an error status whose body echoes the request back, credentials included.

Real servers and proxies do this (a debug error page, a WAF's "request rejected" page, a server that
says which user and password it refused); the tool must not pass what they echo on to a log, a report
or a JUnit file. No real `mlflow server` can be made to misbehave this way, hence the double.

The body holds, each on a line of its own, the Authorization header, the credentials decoded from it
(`Basic` user and password, or the `Bearer` token), the header form-encoded (as a server that puts
the request into a query string writes it), the request line and every request header.
`echoed` records every credential header value the double sent back, so a test can prove that the
secret really came back to the client before it asserts that the tool kept it to itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackServer

ERROR_CODES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST"}


@dataclass
class EchoServer(LoopbackServer):
    """Answers `status` to everything; `json_body` wraps the echo in MLflow's error JSON (the client
    then quotes its `message`), else the echo is the plain-text body (the client quotes the body)."""

    status: int = 500
    json_body: bool = True
    echoed: list[str] = field(default_factory=list)  # Authorization values sent back
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> EchoServer:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                lines = []
                authorization = self.headers.get("Authorization")
                if authorization:
                    # The credential first: clients quote only the start of a long error body.
                    lines.append(f"Authorization: {authorization}")
                    lines.extend(_decoded(authorization))
                    lines.append(urllib.parse.urlencode({"authorization": authorization}))
                lines.append(self.requestline)
                lines.extend(f"{key}: {value}" for key, value in self.headers.items())
                echo = "\n".join(lines)
                if double.json_body:
                    code = ERROR_CODES.get(double.status, "INTERNAL_ERROR")
                    body = json.dumps({"error_code": code, "message": echo}).encode()
                    content_type = "application/json"
                else:
                    body = echo.encode()
                    content_type = "text/plain"
                with double._lock:
                    double.requests.append(self.requestline)
                    if authorization:
                        double.echoed.append(authorization)
                self.send_response(double.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self._serve(Handler)
        return self


def _decoded(authorization: str) -> list[str]:
    """What a chatty server says about the credentials it refused."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return [f"refused token: {value}"]
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode("latin-1").partition(":")
        except (binascii.Error, ValueError):
            return []
        return [f"refused user {user!r} with password {password!r}"]
    return []
