"""Attacks on seal and verify, from a red-team read (issue 12); each failed on the code it attacked:
a seal that failed left its tag (a later verify --recorded-tag passed a version never sealed),
verify wrote its report over its own reference, the MLmodel rule passed a registry MLmodel that
MLflow cannot read, the action's input-error report kept a private key given as public-key, and
references that are not regular files or list nothing but MLflow's download file."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from mlflow import MlflowClient

from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.conftest import Run, run_command
from tests.test_action import run_action

pytestmark = pytest.mark.server

SEAL_TAG = "mlflow_version_check.seal.root_digest"


def seal(server: MlflowServer, version: models.Registered, *extra: str) -> Run:
    return run_command(
        "mlflow-version-check", "seal", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", server.url, *extra,
    )  # fmt: skip


def verify(server: MlflowServer, version: models.Registered, *extra: str) -> Run:
    return run_command(
        "mlflow-version-check", "verify", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", server.url, *extra,
    )  # fmt: skip


def test_a_seal_that_fails_records_no_tag(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """The seal fails (exit 2: its manifest cannot be written, here because --download-dir made a
    folder at the manifest's path, which check_output_paths does not compare), yet the root digest
    was already written to the version's tag in phase 3: verify --recorded-tag then passes a
    version whose seal failed and wrote nothing."""
    version = models.log_sklearn(mlflow_server.url, unique("rt_failed_seal"))
    both = str(tmp_path / "seal-out")
    run = seal(mlflow_server, version, "--manifest-file", both, "--download-dir", both, "--record-tag")
    assert run.exit_code != 0, run.stdout + run.stderr
    assert not Path(both).is_file()  # no seal was written
    tags = MlflowClient(mlflow_server.url).get_model_version(version.name, version.version).tags
    recorded = verify(mlflow_server, version, "--recorded-tag")
    assert recorded.exit_code != 0, (
        f"a failed seal left {SEAL_TAG}={tags.get(SEAL_TAG)}, and verify --recorded-tag passes"
    )
    assert SEAL_TAG not in tags, f"a failed seal left {SEAL_TAG}={tags.get(SEAL_TAG)}"


def test_verify_does_not_write_its_report_over_its_reference(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """verify --report-file naming the --manifest-file it verifies against: check_output_paths in
    run_verify compares only the report and JUnit paths, so the approved manifest is replaced by
    the report (the same for --junit-file over <manifest>.MLmodel, --signature or --public-key)."""
    version = models.log_sklearn(mlflow_server.url, unique("rt_overwrite_ref"))
    manifest = tmp_path / "seal.json"
    assert seal(mlflow_server, version, "--manifest-file", str(manifest)).exit_code == 0
    approved = manifest.read_bytes()
    run = verify(mlflow_server, version, "--manifest-file", str(manifest), "--report-file", str(manifest))
    assert manifest.read_bytes() == approved, "the reference manifest was overwritten by the report"
    assert run.exit_code == 2, run.stdout + run.stderr


def test_mlmodel_rule_does_not_pass_an_mlmodel_mlflow_cannot_read(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """After the seal, the registry MLmodel gets one byte that is not UTF-8 inside an identity
    field. The worker reads MLmodel with errors="replace" (worker/downloads.py read_mlmodel), so
    the MLmodel rule sees only an identity field changed and verify passes (exit 0); MLflow opens
    MLmodel strictly and cannot load the version at all."""
    version = models.log_sklearn(mlflow_server.url, unique("rt_bad_utf8"))
    manifest = tmp_path / "seal.json"
    assert seal(mlflow_server, version, "--manifest-file", str(manifest)).exit_code == 0
    store = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version)
    text = (store / "MLmodel").read_bytes()
    assert b"\nrun_id: " in text
    (store / "MLmodel").write_bytes(text.replace(b"\nrun_id: ", b"\nrun_id: \xff", 1))

    mlflow.set_tracking_uri(mlflow_server.url)
    with pytest.raises(UnicodeDecodeError):
        mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")

    run = verify(mlflow_server, version, "--manifest-file", str(manifest))
    assert run.exit_code == 1, "verify passed a registry model MLflow cannot load:\n" + run.stdout


def test_action_input_error_report_keeps_no_private_key(tmp_path: Path) -> None:
    """A private key given as public-key (a wrong secret) with an input error: the error report
    lists every non-secret input as given (action._write_input_error_report), the key included."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    run = run_action(
        tmp_path,
        {"command": "verify", "model": "m", "version-or-stage": "1", "signature-file": "m.sig",
         "public-key": pem, "recorded-tag": "true", "upload-artifact": "false"},
    )  # fmt: skip
    assert run.exit_code == 2, run.stdout + run.stderr
    report = (run.workspace / "mlflow-version-check-report.json").read_text()
    key_body = pem.splitlines()[1]
    assert key_body not in report, "the private key's PEM text is in the error report"


def test_summary_of_a_bad_signature_shows_no_none_digest(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """A signature that does not verify (signed with another key): the job summary reads
    "Root digest now `sha256:...`, expected `None`" (report/markdown.py _md_verify shows the
    reference's root whenever it lists no files, and an untrusted reference has no root)."""
    from tests.test_oms import run_model_signing, write_key_pair

    version = models.log_sklearn(mlflow_server.url, unique("rt_bad_sig"))
    downloaded = models.download_version_files(mlflow_server.url, version, tmp_path / "download")
    private, _ = write_key_pair(tmp_path / "signer")
    workspace = tmp_path / "action" / "workspace"
    write_key_pair(workspace)  # another key: key.pub in the workspace
    bundle = workspace / "model.sig"
    signed = run_model_signing(
        "sign", "key", downloaded, "--private_key", private, "--signature", bundle, cwd=tmp_path
    )
    assert signed.returncode == 0, signed.stderr
    run = run_action(
        tmp_path / "action",
        {"command": "verify", "model": version.name, "version-or-stage": version.version,
         "tracking-uri": mlflow_server.url, "signature-file": "model.sig", "public-key": "key.pub",
         "upload-artifact": "false"},
    )  # fmt: skip
    assert run.exit_code == 1, run.stdout + run.stderr
    assert "does not verify" in run.summary, run.summary
    assert "`None`" not in run.summary, run.summary


def test_a_reference_that_is_not_a_regular_file_is_refused_without_blocking(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """A FIFO with no writer would block the read forever: refused (exit 2) before it is opened."""
    import os

    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    version = models.Registered(name=unique("rt_fifo"), version="1", source="", run_id=None)
    run = verify(mlflow_server, version, "--manifest-file", str(fifo))
    assert run.exit_code == 2, run.stdout + run.stderr
    assert "is not a regular file" in run.stderr


def test_a_manifest_of_nothing_but_registered_model_meta_is_refused(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """registered_model_meta is left out on both sides: a statement listing only it lists nothing."""
    import hashlib
    import json

    from mlflow_version_check import oms
    from mlflow_version_check.manifest import FileEntry

    digest = hashlib.sha256(b"meta").hexdigest()
    statement = oms.statement_json({"registered_model_meta": FileEntry(4, digest)}, "models:/x/1")
    assert json.loads(statement)["predicate"]["resources"][0]["name"] == "registered_model_meta"
    manifest = tmp_path / "meta.json"
    manifest.write_text(statement)
    version = models.log_sklearn(mlflow_server.url, unique("rt_meta_only"))
    run = verify(mlflow_server, version, "--manifest-file", str(manifest))
    assert run.exit_code == 2, run.stdout + run.stderr
    assert "lists no file" in run.stderr


@pytest.mark.parametrize("command", ["check", "seal"])
def test_a_download_dir_at_an_outputs_path_is_refused_before_anything_runs(
    tmp_path: Path, command: str
) -> None:
    both = str(tmp_path / "out")
    extra = ["--manifest-file", str(tmp_path / "m.json")] if command == "seal" else []
    run = run_command(
        "mlflow-version-check", command, "--model", "m", "--version-or-stage", "1",
        "--tracking-uri", "http://127.0.0.1:9", "--report-file", both, "--download-dir", both, *extra,
    )  # fmt: skip
    assert run.exit_code == 2, run.stdout + run.stderr
    assert "--download-dir" in run.stderr and not Path(both).exists()
