"""`seal` end to end against a real `mlflow server`: the manifest of the registry model's files, its
root digest, the checksums file, the report; nothing written for an incomplete model."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mlflow_version_check import seal_model_version
from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.conftest import load_valid_report, run_command
from tests.test_oms import library_statement, run_model_signing, signed_payload, write_key_pair

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def sealed_model(mlflow_server: MlflowServer) -> models.Registered:
    """A pyfunc model with files in a sub-folder (artifacts/)."""
    return models.log_directory_flavor(mlflow_server.url, unique("seal"))


def _seal(
    server: MlflowServer, version: models.Registered, tmp_path: Path, *extra: str
) -> tuple[int, str, Path]:
    manifest = tmp_path / "seal" / "manifest.json"
    run = run_command(
        "mlflow-version-check", "seal", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", server.url, "--manifest-file", str(manifest),
        "--report-file", str(tmp_path / "report.json"), *extra,
    )  # fmt: skip
    return run.exit_code, run.stdout + run.stderr, manifest


def test_seal_equals_what_model_signing_computes_over_mlflows_download(
    mlflow_server: MlflowServer, sealed_model: models.Registered, tmp_path: Path
) -> None:
    """The reference tool, run on the same version as MLflow downloads it, lists the same resources in
    the same order and the same root digest; so does the checksums file for `sha256sum -c`."""
    code, output, manifest = _seal(
        mlflow_server, sealed_model, tmp_path, "--checksums-file", str(tmp_path / "seal" / "SHA256SUMS")
    )
    assert code == 0, output
    ours = json.loads(manifest.read_text())
    downloaded = models.download_version_files(mlflow_server.url, sealed_model, tmp_path / "download")
    assert {path.name for path in downloaded.iterdir()} >= {"MLmodel", "artifacts"}  # files in folders

    private, _public = write_key_pair(tmp_path / "keys")
    bundle = tmp_path / "model.sig"
    signed = run_model_signing(
        "sign", "key", downloaded, "--private_key", private, "--signature", bundle, cwd=tmp_path
    )
    assert signed.returncode == 0, signed.stderr
    theirs = signed_payload(bundle)
    assert ours["predicate"]["resources"] == theirs["predicate"]["resources"]
    assert ours["subject"][0]["digest"] == theirs["subject"][0]["digest"]
    assert library_statement(downloaded)["predicate"]["resources"] == ours["predicate"]["resources"]

    root = ours["subject"][0]["digest"]["sha256"]
    assert f"root digest: sha256:{root}" in output
    report = load_valid_report(tmp_path / "report.json")
    assert report["status"] == "passed" and report["Seal"]["root_digest"] == f"sha256:{root}"
    assert report["Seal"]["subject"] == f"models:/{sealed_model.name}/{sealed_model.version}"
    assert [item["name"] for item in report["Seal"]["resources"]] == sorted(
        item["name"] for item in ours["predicate"]["resources"]
    )
    # The checksums file checks the files MLflow downloads, with the standard tool.
    shutil.copy(tmp_path / "seal" / "SHA256SUMS", downloaded / "SHA256SUMS")
    checked = subprocess.run(
        ["sha256sum", "--check", "--strict", "SHA256SUMS"],
        cwd=downloaded,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(ours["predicate"]["resources"])


def test_the_api_gives_the_same_root(
    mlflow_server: MlflowServer, sealed_model: models.Registered, tmp_path: Path
) -> None:
    code, output, manifest = _seal(mlflow_server, sealed_model, tmp_path)
    assert code == 0, output
    result = seal_model_version(sealed_model.name, sealed_model.version, tracking_uri=mlflow_server.url)
    assert result.equals
    assert json.loads(manifest.read_text())["subject"][0]["digest"]["sha256"] == result.root_digest


def test_a_changed_byte_changes_the_root(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    version = models.log_sklearn(mlflow_server.url, unique("seal_tamper"))
    before = seal_model_version(version.name, version.version, tracking_uri=mlflow_server.url)
    pickled = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version) / "model.pkl"
    data = bytearray(pickled.read_bytes())
    data[-3] ^= 1  # same size, one bit
    pickled.write_bytes(bytes(data))
    after = seal_model_version(version.name, version.version, tracking_uri=mlflow_server.url)
    assert after.root_digest != before.root_digest
    assert after.files["model.pkl"].size == before.files["model.pkl"].size


def test_an_incomplete_model_is_not_sealed(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    version = models.log_sklearn(mlflow_server.url, unique("seal_incomplete"))
    (models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version) / "model.pkl").unlink()
    code, output, manifest = _seal(mlflow_server, version, tmp_path, "--junit-file", str(tmp_path / "j.xml"))
    assert code == 1, output
    assert not manifest.exists()
    assert "NOT SEALED" in output and "model.pkl" in output
    report = load_valid_report(tmp_path / "report.json")
    assert report["status"] == "failed" and report["Seal"]["manifest_file"] is None
    assert "<failure" in (tmp_path / "j.xml").read_text()


def test_an_unwritable_manifest_path_is_refused_before_any_download(
    mlflow_server: MlflowServer, sealed_model: models.Registered, tmp_path: Path
) -> None:
    (tmp_path / "taken").mkdir()
    run = run_command(
        "mlflow-version-check", "seal", "--model", sealed_model.name, "--version-or-stage", "1",
        "--tracking-uri", mlflow_server.url, "--manifest-file", str(tmp_path / "taken"),
    )  # fmt: skip
    assert run.exit_code == 2
    assert run.error_lines == [run.error_lines[0]] and "--manifest-file" in run.error_lines[0]
