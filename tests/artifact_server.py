"""A TEST DOUBLE of GitHub's workflow-artifact service (v4), on 127.0.0.1, stricter than act's.

It enforces what act does not: the Bearer token on Twirp calls, blocks committed in Put Block List
order (not arrival order), the zip's size and sha256 checked at FinalizeArtifact, 409 for a duplicate
name in one run; and it can answer 503 a given number of times first, to exercise retries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackServer

SERVICE = "/twirp/github.actions.results.api.v1.ArtifactService/"


def make_token(run_id: str = "11", job_id: str = "22") -> str:
    """An unsigned JWT with the scope claim the runner puts in ACTIONS_RUNTIME_TOKEN."""

    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"scp": f"Actions.GenericRead:1 Actions.Results:{run_id}:{job_id}", "sub": "double"}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.signature"


@dataclass
class StoredArtifact:
    name: str
    blocks: dict[str, bytes] = field(default_factory=dict)
    content: bytes | None = None
    finalized: bool = False
    artifact_id: int = 0


@dataclass
class ArtifactServiceDouble(LoopbackServer):
    token: str = field(default_factory=make_token)
    fail_first: int = 0  # answer 503 to this many requests before serving
    camel_case: bool = True
    artifacts: dict[str, StoredArtifact] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        # As the runner's ACTIONS_RESULTS_URL: with a trailing slash.
        return f"{super().url}/"

    def __enter__(self) -> ArtifactServiceDouble:
        double = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, object] | None = None) -> None:
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _key(self, snake: str) -> str:
                if not double.camel_case:
                    return snake
                head, *rest = snake.split("_")
                return head + "".join(part.title() for part in rest)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def do_POST(self) -> None:
                with lock:
                    double.requests.append(f"POST {self.path}")
                    if double.fail_first > 0:
                        double.fail_first -= 1
                        self._body()
                        self._answer(503)
                        return
                if self.headers.get("Authorization") != f"Bearer {double.token}":
                    self._body()
                    self._answer(401, {"msg": "bad token"})
                    return
                request = json.loads(self._body())
                if (request.get("workflow_run_backend_id"), request.get("workflow_job_run_backend_id")) != (
                    "11",
                    "22",
                ):
                    self._answer(400, {"msg": "wrong backend ids"})
                    return
                method = self.path[len(SERVICE) :]
                name = request["name"]
                with lock:
                    if method == "CreateArtifact":
                        if name in double.artifacts:
                            self._answer(409, {"msg": "artifact exists"})
                            return
                        double.artifacts[name] = StoredArtifact(name=name)
                        signature = secrets.token_urlsafe(8) + "=="
                        upload = f"{double.url}upload/{urllib.parse.quote(name)}?sig={signature}&se=x"
                        self._answer(200, {"ok": True, self._key("signed_upload_url"): upload})
                    elif method == "FinalizeArtifact":
                        stored = double.artifacts.get(name)
                        if stored is None or stored.content is None:
                            self._answer(400, {"msg": "no content committed"})
                            return
                        expected = f"sha256:{hashlib.sha256(stored.content).hexdigest()}"
                        if request.get("hash") != expected or request.get("size") != str(len(stored.content)):
                            self._answer(400, {"msg": "size or hash mismatch"})
                            return
                        stored.finalized = True
                        stored.artifact_id = len(double.artifacts) + 1000
                        self._answer(200, {"ok": True, self._key("artifact_id"): str(stored.artifact_id)})
                    else:
                        self._answer(404)

            def do_PUT(self) -> None:
                parsed = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(parsed.query)
                name = urllib.parse.unquote(parsed.path.rsplit("/", 1)[-1])
                body = self._body()
                with lock:
                    double.requests.append(f"PUT {query.get('comp', ['?'])[0]}")
                    if double.fail_first > 0:
                        double.fail_first -= 1
                        self._answer(503)
                        return
                    stored = double.artifacts.get(name)
                    if stored is None or "sig" not in query:
                        self._answer(403)
                        return
                    comp = query.get("comp", [""])[0]
                    if comp == "block":
                        stored.blocks[query["blockid"][0]] = body
                        self._answer(201)
                    elif comp == "blocklist":
                        ids = re.findall(r"<Latest>([^<]+)</Latest>", body.decode())
                        if not ids or any(block not in stored.blocks for block in ids):
                            self._answer(400, {"msg": "unknown block"})
                            return
                        stored.content = b"".join(stored.blocks[block] for block in ids)
                        self._answer(201)
                    else:
                        # A single Put Blob: act silently drops it; this double refuses it.
                        self._answer(400, {"msg": "use blocks"})

        self._serve(Handler)
        return self
