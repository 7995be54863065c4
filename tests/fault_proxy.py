"""A TEST DOUBLE between the tool and a real `mlflow server`: a loopback HTTP proxy that forwards
every request to the server and injects the faults a test asks for, on requests whose path matches.

Faults: answer a status a number of times (then forward: a retried 500), answer a status always
(401, 403), hang without answering (for a bounded time), cut a response body in the middle, and
rewrite a JSON answer (an artifact listing with `..` or absolute paths).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackServer

HANG_SECONDS = 20


@dataclass
class Fault:
    pattern: re.Pattern[str]
    kind: str  # "status", "text-status", "hang", "cut", "rewrite"
    status: int = 500
    times: int = -1  # how many matching requests get the fault; -1: all
    rewrite: Callable[[Any], Any] | None = None
    message: str | None = None  # the error message of a "status" answer (default: "injected <status>")


@dataclass
class FaultProxy(LoopbackServer):
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, pattern: str, kind: str, **options: Any) -> FaultProxy:
        self.faults.append(Fault(re.compile(pattern), kind, **options))
        return self

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            self.seen.append(path)
            for fault in self.faults:
                if fault.pattern.search(path) and fault.times != 0:
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def __enter__(self) -> FaultProxy:
        proxy = self
        upstream = urllib.parse.urlparse(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {"Content-Type": "application/json"}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._fault_for(self.path)
                if fault is not None and fault.kind == "status":
                    # The error codes MLflow and Databricks servers put in such answers.
                    code = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
                            503: "TEMPORARILY_UNAVAILABLE"}.get(fault.status, "INTERNAL_ERROR")  # fmt: skip
                    payload = {"error_code": code, "message": fault.message or f"injected {fault.status}"}
                    self._reply(fault.status, json.dumps(payload).encode())
                    return
                if fault is not None and fault.kind == "text-status":
                    # As mlflow's basic-auth app answers: plain text, no JSON error code.
                    self._reply(fault.status, b"You are not authenticated.", {"Content-Type": "text/plain"})
                    return
                if fault is not None and fault.kind == "hang":
                    time.sleep(HANG_SECONDS)
                    self.close_connection = True
                    return
                connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                kept = {
                    k: v for k, v in answer.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }  # fmt: skip
                connection.close()
                if fault is not None and fault.kind == "rewrite" and fault.rewrite is not None:
                    data = json.dumps(fault.rewrite(json.loads(data))).encode()
                if fault is not None and fault.kind == "cut":
                    # Promise the whole body, send half, close: a connection dropped mid-download.
                    self.send_response(answer.status)
                    for key, value in kept.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._reply(answer.status, data, kept)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._serve(Handler)
        return self
