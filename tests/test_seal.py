"""`seal` end to end against a real `mlflow server`: the manifest of the registry model's files, its
root digest, the checksums file, the report; nothing written for an incomplete model."""

from __future__ import annotations

import json
import re
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
        mlflow_server,
        sealed_model,
        tmp_path,
        "--checksums-file",
        str(tmp_path / "seal" / "SHA256SUMS"),
        "--junit-file",
        str(tmp_path / "junit.xml"),
    )
    assert code == 0, output
    assert 'failures="0"' in (tmp_path / "junit.xml").read_text()
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
    junit = (tmp_path / "j.xml").read_text()
    assert 'failures="1"' in junit and "model.pkl" in junit


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


def test_top_level_git_files_are_sealed_which_model_signing_skips_by_default(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """The seal covers every file; model_signing's default leaves top-level git files out, and with
    --no-ignore-git-paths it lists exactly the seal's resources."""
    version = models.log_sklearn(mlflow_server.url, unique("seal_git"))
    store = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version)
    (store / ".gitignore").write_text("*.tmp\n")
    # A file added to the model must be in MLmodel's recorded size, or the model is incomplete.
    mlmodel = store / "MLmodel"
    recorded = int(re.search(r"model_size_bytes: (\d+)", mlmodel.read_text())[1])  # type: ignore[index]
    mlmodel.write_text(
        mlmodel.read_text().replace(f"model_size_bytes: {recorded}", f"model_size_bytes: {recorded + 6}")
    )
    code, output, manifest = _seal(mlflow_server, version, tmp_path)
    assert code == 0, output
    ours = json.loads(manifest.read_text())
    assert ".gitignore" in [item["name"] for item in ours["predicate"]["resources"]]
    assert "ignore_paths" not in ours["predicate"]["serialization"]
    downloaded = models.download_version_files(mlflow_server.url, version, tmp_path / "download")
    private, _public = write_key_pair(tmp_path / "keys")
    payloads = {}
    for flag in ("--ignore-git-paths", "--no-ignore-git-paths"):
        bundle = tmp_path / f"model{flag}.sig"
        signed = run_model_signing(
            "sign", "key", downloaded, flag, "--private_key", private, "--signature", bundle, cwd=tmp_path
        )
        assert signed.returncode == 0, signed.stderr
        payloads[flag] = signed_payload(bundle)
    assert ".gitignore" not in [
        item["name"] for item in payloads["--ignore-git-paths"]["predicate"]["resources"]
    ]
    assert payloads["--no-ignore-git-paths"]["predicate"]["resources"] == ours["predicate"]["resources"]
    assert payloads["--no-ignore-git-paths"]["subject"][0]["digest"] == ours["subject"][0]["digest"]


def test_a_refused_or_failed_seal_leaves_no_earlier_seal_behind(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """The files at the seal's paths are this run's seal or nothing: an earlier seal there would pass
    for this run's when this run refuses an incomplete model or cannot reach the server."""
    version = models.log_sklearn(mlflow_server.url, unique("seal_again"))
    code, output, manifest = _seal(mlflow_server, version, tmp_path)
    assert code == 0 and manifest.is_file(), output
    (models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version) / "model.pkl").unlink()
    code, output, manifest = _seal(mlflow_server, version, tmp_path)
    assert code == 1 and not manifest.exists(), output
    manifest.write_text("an earlier seal")
    run = run_command(
        "mlflow-version-check", "seal", "--model", version.name, "--version-or-stage", "1",
        "--tracking-uri", "http://127.0.0.1:9", "--retries", "0", "--manifest-file", str(manifest),
    )  # fmt: skip
    assert run.exit_code == 3 and not manifest.exists(), run.stderr


@pytest.mark.parametrize(
    ("option", "where"),
    [
        pytest.param("--checksums-file", "same", id="checksums-is-the-manifest"),
        pytest.param("--report-file", "same", id="report-is-the-manifest"),
        pytest.param("--junit-file", "inside", id="junit-inside-the-manifest"),
    ],
)
def test_outputs_that_share_a_path_are_refused_before_anything_runs(
    mlflow_server: MlflowServer, sealed_model: models.Registered, tmp_path: Path, option: str, where: str
) -> None:
    manifest = tmp_path / "seal.json"
    other = manifest if where == "same" else manifest / "junit.xml"
    run = run_command(
        "mlflow-version-check", "seal", "--model", sealed_model.name, "--version-or-stage", "1",
        "--tracking-uri", mlflow_server.url, "--manifest-file", str(manifest), option, str(other),
    )  # fmt: skip
    assert run.exit_code == 2, run.stdout + run.stderr
    assert (
        len(run.error_lines) == 1 and "--manifest-file" in run.error_lines[0] and option in run.error_lines[0]
    )
    assert not manifest.exists()


def test_check_and_compare_reports_carry_each_sides_root_digest(
    mlflow_server: MlflowServer, mlflow_server_2: MlflowServer, tmp_path: Path
) -> None:
    """The root digest a check or compare reports for a model is the one `seal` records for it."""
    version = models.log_sklearn(mlflow_server.url, unique("seal_roots"))
    sealed = seal_model_version(version.name, version.version, tracking_uri=mlflow_server.url)
    run = run_command(
        "mlflow-version-check", "check", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", mlflow_server.url, "--report-file", str(tmp_path / "check.json"),
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    comparison = load_valid_report(tmp_path / "check.json")["Comparison"]
    assert comparison["reg_model"]["root_digest"] == comparison["run_model"]["root_digest"]
    assert comparison["reg_model"]["root_digest"] == f"sha256:{sealed.root_digest}"

    copy = models.copy_version(mlflow_server.url, version, mlflow_server_2.url, unique("seal_roots_copy"))
    config = tmp_path / "config.yaml"
    sides = {
        "tracking_server_1": {"host": mlflow_server.url, "model": version.name, "version_or_stage": "1"},
        "tracking_server_2": {
            "host": mlflow_server_2.url,
            "model": copy.name,
            "version_or_stage": copy.version,
        },
    }
    config.write_text(json.dumps(sides))  # JSON is YAML
    run = run_command(
        "mlflow-version-check", "compare", "--config-file", str(config), "--compare-reg-models",
        "--report-file", str(tmp_path / "compare.json"),
    )  # fmt: skip
    assert run.exit_code == 0, run.stdout + run.stderr
    section = load_valid_report(tmp_path / "compare.json")["Reg_Model_Comparison"]
    assert section["tracking_server_1"]["root_digest"] == f"sha256:{sealed.root_digest}"
    # The copy's MLmodel names its new run: equal by the MLmodel rule, another root digest.
    assert section["tracking_server_2"]["root_digest"] != section["tracking_server_1"]["root_digest"]
