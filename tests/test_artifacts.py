"""The artifact client against a strict loopback double of the v4 artifact service."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from mlflow_version_check.ci import artifact_upload
from mlflow_version_check.ci.artifact_upload import (
    ArtifactUploadClient,
    ArtifactUploadError,
    backend_ids,
    zip_files,
)
from tests.artifact_server import ArtifactServiceDouble, make_token


def no_sleep(seconds: float) -> None:
    """Retries wait for nothing in tests; the backoff itself is the client's own code."""


def test_backend_ids_come_from_the_scope_claim() -> None:
    """The run and job backend ids are read from Actions.Results:<run>:<job>."""
    assert backend_ids(make_token("123", "456")) == ("123", "456")
    with pytest.raises(ArtifactUploadError, match="not a JWT"):
        backend_ids("not-a-token")


@pytest.mark.parametrize("camel_case", [True, False], ids=["camelCase", "snake_case"])
def test_upload_in_blocks_and_finalize(tmp_path: Path, camel_case: bool) -> None:
    """A multi-block zip is committed in block-list order and finalized with its size and sha256."""
    report = tmp_path / "report.json"
    report.write_bytes(b'{"a": 1}' + bytes(range(256)) * 40000)  # ~10 MiB: three blocks
    content = zip_files({"report.json": report})
    with ArtifactServiceDouble(camel_case=camel_case) as service:
        uploaded = ArtifactUploadClient(service.url, service.token, sleep=no_sleep).upload(
            "my-report", content
        )
        stored = service.artifacts["my-report"]
    assert stored.finalized and stored.content == content
    assert uploaded.artifact_id == str(stored.artifact_id)
    assert len(stored.blocks) == len(range(0, len(content), artifact_upload.BLOCK_BYTES)) >= 1
    with zipfile.ZipFile(io.BytesIO(stored.content)) as archive:
        assert archive.read("report.json") == report.read_bytes()


def test_wrong_token_is_refused(tmp_path: Path) -> None:
    """A token the service does not accept is a clear upload error, not a retry loop."""
    with ArtifactServiceDouble() as service:
        client = ArtifactUploadClient(service.url, make_token(), sleep=no_sleep)
        client.token = make_token("11", "22") + "x"
        with pytest.raises(ArtifactUploadError, match="refused the token"):
            client.upload("r", b"zip")


def test_duplicate_name_gives_409_advice() -> None:
    """A second artifact of the same name in one run: the message says to set artifact-name."""
    with ArtifactServiceDouble() as service:
        client = ArtifactUploadClient(service.url, service.token, sleep=no_sleep)
        client.upload("same", b"first")
        with pytest.raises(ArtifactUploadError, match="artifact-name"):
            client.upload("same", b"second")


def test_503_then_success_is_retried() -> None:
    """Two 503 answers, then service: the upload succeeds after retries."""
    slept: list[float] = []
    with ArtifactServiceDouble(fail_first=2) as service:
        uploaded = ArtifactUploadClient(service.url, service.token, sleep=slept.append).upload(
            "r", b"content"
        )
        assert service.artifacts["r"].finalized
    assert uploaded.size == len(b"content")
    assert slept == [1.0, 2.0]


def test_service_that_stays_down_gives_up() -> None:
    """A service that keeps answering 503 ends in a clear error after a bounded number of tries."""
    with ArtifactServiceDouble(fail_first=100) as service:
        with pytest.raises(ArtifactUploadError, match="gave up after 5 attempts"):
            ArtifactUploadClient(service.url, service.token, sleep=no_sleep).upload("r", b"content")
        assert len(service.requests) == 5
