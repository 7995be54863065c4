"""Upload a GitHub workflow artifact (the report files; not an MLflow model artifact) from a container.

It speaks the v4 artifact protocol. No maintained pure-Python client exists (the toolkit's needs
Node.js), so this one is kept small: Twirp JSON `CreateArtifact` -> the zip as Azure *Put Block*
calls plus one *Put Block List* to the signed URL -> `FinalizeArtifact` with the zip's size and
SHA-256. act's artifact server and GitHub speak the same protocol; act drops a single Put Blob,
hence blocks.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICE = "/twirp/github.actions.results.api.v1.ArtifactService"
BLOCK_BYTES = 4 * 1024 * 1024
ATTEMPTS = 5
TIMEOUT_SECONDS = 30


class ArtifactUploadError(Exception):
    """The artifact could not be uploaded; the message says why and what to do."""


@dataclass(frozen=True)
class UploadedArtifact:
    artifact_id: str
    name: str
    size: int
    sha256: str


def backend_ids(runtime_token: str) -> tuple[str, str]:
    """The run and job backend ids from the token's `scp` claim (`Actions.Results:<run>:<job>`)."""
    try:
        payload = runtime_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise ArtifactUploadError(
            "ACTIONS_RUNTIME_TOKEN is not a JWT; the runner gave no usable token"
        ) from exc
    for scope in str(claims.get("scp", "")).split():
        parts = scope.split(":")
        if len(parts) == 3 and parts[0] == "Actions.Results":
            return parts[1], parts[2]
    raise ArtifactUploadError("ACTIONS_RUNTIME_TOKEN has no Actions.Results scope; artifacts are not enabled")


def zip_files(files: Mapping[str, Path]) -> bytes:
    """A zip of the given files under their archive names (deterministic order)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            archive.write(files[name], arcname=name)
    return buffer.getvalue()


def _field(answer: Mapping[str, Any], snake: str) -> Any:
    """Twirp JSON answers may be snake_case or camelCase (protojson)."""
    head, *rest = snake.split("_")
    camel = head + "".join(part.title() for part in rest)
    return answer.get(snake, answer.get(camel))


Sleep = Callable[[float], None]


class ArtifactUploadClient:
    """Talks to ACTIONS_RESULTS_URL with ACTIONS_RUNTIME_TOKEN; retries 429 and 5xx with backoff."""

    def __init__(self, results_url: str, runtime_token: str, *, sleep: Sleep = time.sleep) -> None:
        parsed = urllib.parse.urlparse(results_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ArtifactUploadError(f"ACTIONS_RESULTS_URL {results_url!r} is not an http(s) URL")
        self.origin = f"{parsed.scheme}://{parsed.netloc}"
        self.token = runtime_token
        self.run_id, self.job_id = backend_ids(runtime_token)
        self.sleep = sleep

    def _request(self, method: str, url: str, body: bytes, headers: Mapping[str, str], what: str) -> bytes:
        delay = 1.0
        for attempt in range(1, ATTEMPTS + 1):
            request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
                    data: bytes = answer.read()
                    return data
            except urllib.error.HTTPError as exc:
                status = exc.code
                if status == 409:
                    raise ArtifactUploadError(
                        f"{what}: an artifact with this name already exists in this workflow run (409). "
                        "Fix: give each step a unique artifact-name input."
                    ) from exc
                if status in (401, 403):
                    raise ArtifactUploadError(
                        f"{what}: the artifact service refused the token ({status})"
                    ) from exc
                if status != 429 and status < 500:
                    raise ArtifactUploadError(f"{what}: the artifact service answered {status}") from exc
                failure = f"HTTP {status}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                failure = str(getattr(exc, "reason", exc))
            if attempt == ATTEMPTS:
                raise ArtifactUploadError(f"{what}: gave up after {ATTEMPTS} attempts (last: {failure})")
            self.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _twirp(self, method: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        answer = self._request(
            "POST",
            f"{self.origin}{SERVICE}/{method}",
            json.dumps(payload).encode(),
            {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method,
        )
        try:
            decoded: dict[str, Any] = json.loads(answer or b"{}")
        except ValueError as exc:
            raise ArtifactUploadError(
                f"{method}: the artifact service answered something that is not JSON"
            ) from exc
        if decoded.get("ok") is False:
            raise ArtifactUploadError(f"{method}: the artifact service answered ok=false")
        return decoded

    def upload(self, name: str, content: bytes) -> UploadedArtifact:
        """Create the artifact, upload the zip in blocks, finalize it; return its id."""
        ids = {"workflow_run_backend_id": self.run_id, "workflow_job_run_backend_id": self.job_id}
        created = self._twirp("CreateArtifact", {**ids, "name": name, "version": 4})
        signed_url = _field(created, "signed_upload_url")
        if not signed_url:
            raise ArtifactUploadError("CreateArtifact: no signed upload URL in the answer")
        block_ids = []
        for index, start in enumerate(range(0, max(len(content), 1), BLOCK_BYTES)):
            block_id = base64.b64encode(f"block-{index:06d}".encode()).decode()
            block_ids.append(block_id)
            url = f"{signed_url}&comp=block&blockid={urllib.parse.quote(block_id, safe='')}"
            self._request("PUT", url, content[start : start + BLOCK_BYTES],
                          {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"},
                          f"Put Block {index}")  # fmt: skip
        block_list = "".join(f"<Latest>{block_id}</Latest>" for block_id in block_ids)
        self._request(
            "PUT",
            f"{signed_url}&comp=blocklist",
            f'<?xml version="1.0" encoding="utf-8"?><BlockList>{block_list}</BlockList>'.encode(),
            {"Content-Type": "application/xml", "x-ms-blob-content-type": "application/zip"},
            "Put Block List",
        )
        digest = hashlib.sha256(content).hexdigest()
        finalized = self._twirp(
            "FinalizeArtifact", {**ids, "name": name, "size": str(len(content)), "hash": f"sha256:{digest}"}
        )
        artifact_id = _field(finalized, "artifact_id")
        if artifact_id in (None, ""):
            raise ArtifactUploadError("FinalizeArtifact: no artifact id in the answer")
        return UploadedArtifact(artifact_id=str(artifact_id), name=name, size=len(content), sha256=digest)
