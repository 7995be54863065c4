"""A TEST DOUBLE of a reverse proxy (a gateway, an ingress) in front of real `mlflow server`s.

Each route maps a path prefix to an upstream: with {"/a": server_a, "/b": server_b}, a request for
`/a/api/2.0/mlflow/...` reaches server A as `/api/2.0/mlflow/...`, which is how one host serves
several tracking servers under different paths. The prefix "" forwards everything to one upstream.
It can listen on any loopback address (127.0.0.2 reaches this machine on Linux too), so a test can
reach a loopback server under an address that the tool does not count as this machine's own.
"""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackServer

HOP_BY_HOP = ("connection", "keep-alive", "transfer-encoding", "content-length", "host")


class PrefixProxy(LoopbackServer):
    """Forward each request to the upstream of the longest matching path prefix (404 otherwise)."""

    def __init__(self, routes: Mapping[str, str], host: str = "127.0.0.1") -> None:
        self.routes = {prefix.rstrip("/"): upstream for prefix, upstream in routes.items()}
        self.host = host

    def _route(self, path: str) -> tuple[urllib.parse.SplitResult, str] | None:
        for prefix in sorted(self.routes, key=len, reverse=True):
            if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?"):
                return urllib.parse.urlsplit(self.routes[prefix]), path[len(prefix) :] or "/"
        return None

    def __enter__(self) -> PrefixProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                route = proxy._route(self.path)
                if route is None:
                    self._reply(404, b"no route", [("Content-Type", "text/plain")])
                    return
                upstream, path = route
                connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                connection.request(self.command, path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
                connection.close()
                self._reply(answer.status, data, kept)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self._serve(Handler)
        return self
