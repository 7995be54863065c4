"""`verify --expect-digest` end to end against a real `mlflow server`: a sealed version verifies, a
same-size change, a removed or an added file drifts (exit 1), a malformed digest is refused (exit 2)
before anything is downloaded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlflow_version_check import seal_model_version, verify_model_version
from mlflow_version_check.errors import ManifestError
from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.conftest import Run, load_valid_report, run_command

pytestmark = pytest.mark.server


def _verify(server: MlflowServer, version: models.Registered, digest: str, tmp_path: Path) -> Run:
    return run_command(
        "mlflow-version-check", "verify", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", server.url, "--expect-digest", digest,
        "--report-file", str(tmp_path / "report.json"), "--junit-file", str(tmp_path / "junit.xml"),
    )  # fmt: skip


def _sealed_digest(server: MlflowServer, version: models.Registered, tmp_path: Path) -> str:
    run = run_command(
        "mlflow-version-check", "seal", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", server.url, "--manifest-file", str(tmp_path / "seal.json"),
    )  # fmt: skip
    assert run.exit_code == 0, run.stdout + run.stderr
    found = re.search(r"root digest: (sha256:[0-9a-f]{64})", run.stdout)
    assert found, run.stdout
    return found[1]


def test_a_sealed_version_verifies(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    version = models.log_directory_flavor(mlflow_server.url, unique("verify_same"))
    digest = _sealed_digest(mlflow_server, version, tmp_path)
    run = _verify(mlflow_server, version, digest, tmp_path)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert "verify PASSED" in run.stdout and f"root digest: {digest}" in run.stdout
    report = load_valid_report(tmp_path / "report.json")
    assert report["status"] == "passed"
    assert (
        report["Verification"]["root_digest"] == report["Verification"]["reference"]["root_digest"] == digest
    )
    assert 'failures="0"' in (tmp_path / "junit.xml").read_text()


@pytest.mark.parametrize("change", ["same-size-bit", "file-removed", "file-added"])
def test_any_change_after_the_seal_is_drift(mlflow_server: MlflowServer, tmp_path: Path, change: str) -> None:
    version = models.log_sklearn(mlflow_server.url, unique("verify_drift"))
    digest = _sealed_digest(mlflow_server, version, tmp_path)
    store = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version)
    if change == "same-size-bit":
        data = bytearray((store / "model.pkl").read_bytes())
        data[-3] ^= 1
        (store / "model.pkl").write_bytes(bytes(data))
    elif change == "file-removed":
        (store / "requirements.txt").unlink()
    else:
        (store / "extra.txt").write_text("added after the seal\n")
    run = _verify(mlflow_server, version, digest, tmp_path)
    assert run.exit_code == 1, run.stdout + run.stderr
    assert "verify FAILED" in run.stdout and f"expected:    {digest}" in run.stdout
    report = load_valid_report(tmp_path / "report.json")
    assert report["status"] == "failed" and report["Verification"]["root_digest"] != digest
    junit = (tmp_path / "junit.xml").read_text()
    assert 'failures="1"' in junit and digest in junit


@pytest.mark.parametrize(
    "digest",
    ["sha256:" + "0" * 63, "sha256:" + "0" * 65, "sha512:" + "0" * 64, "0" * 64, "sha256:" + "A" * 64],
)
def test_a_malformed_digest_is_refused_before_any_download(tmp_path: Path, digest: str) -> None:
    # The server does not exist: a refusal that came after a download attempt would be exit 3.
    run = run_command(
        "mlflow-version-check", "verify", "--model", "m", "--version-or-stage", "1",
        "--tracking-uri", "http://127.0.0.1:9", "--expect-digest", digest,
        "--report-file", str(tmp_path / "report.json"),
    )  # fmt: skip
    assert run.exit_code == 2, run.stdout + run.stderr
    assert len(run.error_lines) == 1 and "sha256:" in run.error_lines[0]
    report = load_valid_report(tmp_path / "report.json")
    assert report["error"]["type"] == "ManifestError"
    with pytest.raises(ManifestError):
        verify_model_version("m", "1", expect_digest=digest, tracking_uri="http://127.0.0.1:9")


def test_the_api_verifies_what_the_api_sealed(mlflow_server: MlflowServer) -> None:
    version = models.log_sklearn(mlflow_server.url, unique("verify_api"))
    sealed = seal_model_version(version.name, version.version, tracking_uri=mlflow_server.url)
    result = verify_model_version(
        version.name,
        version.version,
        expect_digest=f"sha256:{sealed.root_digest}",
        tracking_uri=mlflow_server.url,
    )
    assert result.equals and result.status == "passed"
    other = verify_model_version(
        version.name, version.version, expect_digest="sha256:" + "0" * 64, tracking_uri=mlflow_server.url
    )
    assert not other.equals and other.status == "failed"
