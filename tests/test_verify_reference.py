"""`verify` against a reference that names files (an OMS manifest, a `model_signing` signature) or a
recorded tag, end to end against real `mlflow server`s: every changed, missing and extra file named;
a signature made by the reference tool over MLflow's download accepted, one from another key refused;
a copy on another server with a new identity verified by content, and drifting under --strict; the
reference refused (exit 2) before anything is downloaded when it is malformed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from mlflow_version_check import verify_model_version
from mlflow_version_check.errors import InvalidOption, ManifestError
from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.conftest import Run, load_valid_report, run_command
from tests.test_oms import run_model_signing, write_key_pair

pytestmark = pytest.mark.server

SEAL_TAG = "mlflow_version_check.seal.root_digest"


def seal(server: MlflowServer, version: models.Registered, folder: Path, *extra: str) -> tuple[Path, str]:
    """Seal `version`; return its manifest and the root digest printed."""
    manifest = folder / "seal" / "manifest.json"
    run = run_command(
        "mlflow-version-check", "seal", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", server.url, "--manifest-file", str(manifest), *extra,
    )  # fmt: skip
    assert run.exit_code == 0, run.stdout + run.stderr
    found = re.search(r"root digest: (sha256:[0-9a-f]{64})", run.stdout)
    assert found, run.stdout
    return manifest, found[1]


def verify(server: MlflowServer, version: models.Registered, folder: Path, *reference: str) -> Run:
    return run_command(
        "mlflow-version-check", "verify", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", server.url, *reference,
        "--report-file", str(folder / "report.json"), "--junit-file", str(folder / "junit.xml"),
    )  # fmt: skip


def differences(folder: Path) -> set[tuple[str, str]]:
    report = load_valid_report(folder / "report.json")
    return {(item["path"], item["kind"]) for item in report["Verification"]["differences"]}


def tamper_three_ways(store: Path) -> None:
    """One byte of model.pkl flipped (same size), requirements.txt removed, extra.txt added."""
    data = bytearray((store / "model.pkl").read_bytes())
    data[-3] ^= 1
    (store / "model.pkl").write_bytes(bytes(data))
    (store / "requirements.txt").unlink()
    (store / "extra.txt").write_text("added after the seal\n")


TAMPERED = {("model.pkl", "changed"), ("requirements.txt", "missing"), ("extra.txt", "extra")}


def test_manifest_and_signature_verify_then_name_every_changed_missing_and_extra_file(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """Sealed by us and signed by model_signing over MLflow's download: both verify (and so does
    `model_signing verify key`); after same-size tampering, a removed and an added file, both name
    each file, and the root digest drifts too."""
    version = models.log_sklearn(mlflow_server.url, unique("verify_ref"))
    manifest, digest = seal(mlflow_server, version, tmp_path)
    downloaded = models.download_version_files(mlflow_server.url, version, tmp_path / "download")
    private, public = write_key_pair(tmp_path / "keys")
    bundle = tmp_path / "model.sig"
    signed = run_model_signing(
        "sign", "key", downloaded, "--private_key", private, "--signature", bundle, cwd=tmp_path
    )
    assert signed.returncode == 0, signed.stderr
    checked = run_model_signing(
        "verify", "key", downloaded, "--public_key", public, "--signature", bundle, cwd=tmp_path
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    for name, reference in (
        ("manifest", ["--manifest-file", str(manifest)]),
        ("signature", ["--signature", str(bundle), "--public-key", str(public)]),
    ):
        folder = tmp_path / f"{name}-before"
        folder.mkdir()
        run = verify(mlflow_server, version, folder, *reference)
        assert run.exit_code == 0, run.stdout + run.stderr
        report = load_valid_report(folder / "report.json")
        section = report["Verification"]
        assert report["status"] == "passed" and section["root_digest"] == digest
        assert section["reference"]["kind"] == name
        assert section["reference"]["signature_verified"] is (True if name == "signature" else None)
        assert section["compared_files"] == section["reference"]["files"] == section["files"]
        assert section["differences"] == []

    tamper_three_ways(models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version))
    for name, reference in (
        ("manifest", ["--manifest-file", str(manifest)]),
        ("signature", ["--signature", str(bundle), "--public-key", str(public)]),
        ("digest", ["--expect-digest", digest]),
    ):
        folder = tmp_path / f"{name}-after"
        folder.mkdir()
        run = verify(mlflow_server, version, folder, *reference)
        assert run.exit_code == 1, run.stdout + run.stderr
        assert "verify FAILED" in run.stdout
        report = load_valid_report(folder / "report.json")
        assert report["status"] == "failed" and report["Verification"]["root_digest"] != digest
        junit = (folder / "junit.xml").read_text()
        assert 'failures="1"' in junit
        if name == "digest":
            assert differences(folder) == set()  # a root names no file
            continue
        assert differences(folder) == TAMPERED
        for path in ("model.pkl", "requirements.txt", "extra.txt"):
            assert path in run.stdout and path in junit


def test_a_signature_from_another_key_fails_and_a_changed_bundle_is_refused(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    version = models.log_sklearn(mlflow_server.url, unique("verify_key"))
    downloaded = models.download_version_files(mlflow_server.url, version, tmp_path / "download")
    private, _public = write_key_pair(tmp_path / "keys")
    _other_private, other_public = write_key_pair(tmp_path / "other")
    bundle = tmp_path / "model.sig"
    signed = run_model_signing(
        "sign", "key", downloaded, "--private_key", private, "--signature", bundle, cwd=tmp_path
    )
    assert signed.returncode == 0, signed.stderr

    run = verify(
        mlflow_server, version, tmp_path, "--signature", str(bundle), "--public-key", str(other_public)
    )
    assert run.exit_code == 1, run.stdout + run.stderr
    assert "does not verify" in run.stdout
    report = load_valid_report(tmp_path / "report.json")
    section = report["Verification"]
    assert report["status"] == "failed" and report["equals"] is False
    assert section["reference"]["signature_verified"] is False and section["reference"]["root_digest"] is None
    assert "does not verify" in section["problem"]
    assert 'failures="1"' in (tmp_path / "junit.xml").read_text()

    bundle.write_text(bundle.read_text()[:-40])  # cut short: not a bundle any more
    run = verify(
        mlflow_server, version, tmp_path, "--signature", str(bundle), "--public-key", str(other_public)
    )
    assert run.exit_code == 2, run.stdout + run.stderr
    assert "not an OMS signature" in run.stderr and "Traceback" not in run.stderr


@pytest.fixture(scope="module")
def sealed_manifest(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    version = models.log_directory_flavor(mlflow_server.url, unique("verify_bad"))
    return seal(mlflow_server, version, tmp_path_factory.mktemp("sealed"))[0]


def edited_statement(manifest: Path, edit: Any) -> str:
    document = json.loads(manifest.read_text())
    edit(document)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not-json", "is not JSON"),
        ("resource-removed", "the resources hash to"),
        ("empty", "lists no file"),
        ("missing", "cannot read the manifest file"),
        ("binary", "is not UTF-8 text"),
    ],
)
def test_a_malformed_or_unreadable_manifest_is_refused_before_any_download(
    mlflow_server: MlflowServer, sealed_manifest: Path, tmp_path: Path, case: str, expected: str
) -> None:
    """Exit 2 with the fault named; the model named does not even exist, so reaching the server
    would have failed otherwise (exit 3)."""
    manifest = sealed_manifest
    broken = tmp_path / "broken.json"
    if case == "not-json":
        broken.write_text(manifest.read_text()[:-10])
    elif case == "resource-removed":
        broken.write_text(edited_statement(manifest, lambda d: d["predicate"]["resources"].pop()))
    elif case == "empty":

        def empty(document: dict[str, Any]) -> None:
            document["predicate"]["resources"] = []
            document["subject"][0]["digest"]["sha256"] = (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256 of nothing
            )

        broken.write_text(edited_statement(manifest, empty))
    elif case == "binary":
        broken.write_bytes(b"\xff\xfe" + manifest.read_bytes())
    missing = models.Registered(name=unique("no_such_model"), version="1", source="", run_id=None)
    run = verify(mlflow_server, missing, tmp_path, "--manifest-file", str(broken))
    assert run.exit_code == 2, run.stdout + run.stderr
    assert expected in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    report = load_valid_report(tmp_path / "report.json")
    assert report["status"] == "error" and report["error"]["type"] == "ManifestError"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], "exactly one reference, got none"),
        (
            ["--expect-digest", "sha256:" + "0" * 64, "--recorded-tag"],
            "got --expect-digest and --recorded-tag",
        ),
        (["--signature", "x.sig"], "--public-key is missing"),
        (["--public-key", "x.pub", "--recorded-tag"], "--signature is missing"),
    ],
)
def test_exactly_one_reference_or_a_usage_error(tmp_path: Path, arguments: list[str], expected: str) -> None:
    run = run_command(
        "mlflow-version-check", "verify", "--model", "m", "--version-or-stage", "1",
        "--tracking-uri", "http://127.0.0.1:9", *arguments,
    )  # fmt: skip
    assert run.exit_code == 2, run.stdout + run.stderr
    assert expected in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_a_copy_with_a_new_identity_verifies_by_content_and_drifts_under_strict(
    mlflow_server: MlflowServer, mlflow_server_2: MlflowServer, tmp_path: Path
) -> None:
    """Sealed on one server, copied to another as export/import does (new run id, model id, time):
    the copy verifies against the source's manifest by the MLmodel rule, the identity fields
    reported; --strict names MLmodel; without the sealed MLmodel copy, or with an edited one, the
    rule cannot apply and MLmodel is a difference; a real MLmodel change is named by key."""
    original = models.log_directory_flavor(mlflow_server.url, unique("verify_src"))
    manifest, _ = seal(mlflow_server, original, tmp_path)
    sealed_mlmodel = manifest.parent / "manifest.json.MLmodel"
    assert sealed_mlmodel.is_file()
    copy = models.copy_version(mlflow_server.url, original, mlflow_server_2.url, unique("verify_copy"))

    run = verify(mlflow_server_2, copy, tmp_path, "--manifest-file", str(manifest))
    assert run.exit_code == 0, run.stdout + run.stderr
    section = load_valid_report(tmp_path / "report.json")["Verification"]
    assert section["reference"]["sealed_mlmodel_file"] == str(sealed_mlmodel)
    ignored = {item["field"]: item for item in section["ignored"] if item["rule"] == "mlmodel-identity-field"}
    assert {"run_id", "model_uuid", "utc_time_created"} <= set(ignored)
    assert ignored["run_id"]["left"] == original.run_id and ignored["run_id"]["right"] == copy.run_id

    run = verify(mlflow_server_2, copy, tmp_path, "--manifest-file", str(manifest), "--strict")
    assert run.exit_code == 1, run.stdout + run.stderr
    assert differences(tmp_path) == {("MLmodel", "changed")}

    saved = sealed_mlmodel.read_bytes()
    sealed_mlmodel.write_bytes(saved.replace(b"run_id:", b"run_id: ", 1))  # edited: not the one sealed
    run = verify(mlflow_server_2, copy, tmp_path, "--manifest-file", str(manifest))
    assert run.exit_code == 1, run.stdout + run.stderr
    report = load_valid_report(tmp_path / "report.json")
    (difference,) = report["Verification"]["differences"]
    assert difference["path"] == "MLmodel" and "not the MLmodel the reference lists" in difference["note"]
    sealed_mlmodel.unlink()
    run = verify(mlflow_server_2, copy, tmp_path, "--manifest-file", str(manifest))
    assert run.exit_code == 1 and "no copy of the sealed MLmodel" in run.stdout
    sealed_mlmodel.write_bytes(saved)

    def new_signature(model: Path) -> None:
        mlmodel = yaml.safe_load((model / "MLmodel").read_text())
        mlmodel["signature"] = {"inputs": '[{"type": "double", "required": true}]'}
        (model / "MLmodel").write_text(yaml.safe_dump(mlmodel))

    changed = models.copy_version(
        mlflow_server.url, original, mlflow_server_2.url, unique("verify_copy_changed"), tamper=new_signature
    )
    run = verify(mlflow_server_2, changed, tmp_path, "--manifest-file", str(manifest))
    assert run.exit_code == 1, run.stdout + run.stderr
    (difference,) = load_valid_report(tmp_path / "report.json")["Verification"]["differences"]
    assert difference["path"] == "MLmodel" and "signature" in difference["note"]


def tag_of(server: MlflowServer, version: models.Registered) -> str | None:
    tags = MlflowClient(server.url).get_model_version(version.name, version.version).tags
    value: str | None = tags.get(SEAL_TAG)
    return value


def test_record_tag_then_recorded_tag(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """seal --record-tag stores the printed root on the version the alias named; verify
    --recorded-tag passes, then drifts after tampering; no tag, or a malformed one, is exit 2."""
    version = models.log_sklearn(mlflow_server.url, unique("verify_tag"))
    models.set_alias(mlflow_server.url, version.name, "candidate", version.version)
    untagged = verify(mlflow_server, version, tmp_path, "--recorded-tag")
    assert untagged.exit_code == 2 and f"has no tag {SEAL_TAG}" in untagged.stderr
    error_report = load_valid_report(tmp_path / "report.json")
    assert error_report["Model_Version"]["version"] == version.version  # resolved before the refusal

    manifest = tmp_path / "manifest.json"
    run = run_command(
        "mlflow-version-check", "seal", "--model", version.name, "--version-or-stage", "@candidate",
        "--tracking-uri", mlflow_server.url, "--manifest-file", str(manifest), "--record-tag",
        "--report-file", str(tmp_path / "seal.json"),
    )  # fmt: skip
    assert run.exit_code == 0, run.stdout + run.stderr
    digest = re.search(r"root digest: (sha256:[0-9a-f]{64})", run.stdout)
    assert digest
    assert tag_of(mlflow_server, version) == digest[1]
    assert load_valid_report(tmp_path / "seal.json")["Seal"]["recorded_tag"] == SEAL_TAG

    run = verify(mlflow_server, version, tmp_path, "--recorded-tag")
    assert run.exit_code == 0, run.stdout + run.stderr
    section = load_valid_report(tmp_path / "report.json")["Verification"]
    assert section["reference"] == {
        "kind": "recorded-tag",
        "source": SEAL_TAG,
        "signature_verified": None,
        "root_digest": digest[1],
        "files": None,
        "subject": None,
        "ignore_paths": [],
        "sealed_mlmodel_file": None,
    }

    store = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version)
    (store / "extra.txt").write_text("added after the seal\n")
    run = verify(mlflow_server, version, tmp_path, "--recorded-tag")
    assert run.exit_code == 1, run.stdout + run.stderr

    MlflowClient(mlflow_server.url).set_model_version_tag(
        version.name, version.version, SEAL_TAG, "sha256:abc"
    )
    run = verify(mlflow_server, version, tmp_path, "--recorded-tag")
    assert run.exit_code == 2 and f"the tag {SEAL_TAG}" in run.stderr


def test_a_refused_seal_records_no_tag(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    version = models.log_sklearn(mlflow_server.url, unique("verify_tag_refused"))
    (models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version) / "model.pkl").unlink()
    run = run_command(
        "mlflow-version-check", "seal", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", mlflow_server.url, "--manifest-file", str(tmp_path / "m.json"), "--record-tag",
    )  # fmt: skip
    assert run.exit_code == 1, run.stdout + run.stderr
    assert tag_of(mlflow_server, version) is None


def test_the_api_refuses_two_references_and_reports_the_reference(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    version = models.log_directory_flavor(mlflow_server.url, unique("verify_api"))
    manifest, digest = seal(mlflow_server, version, tmp_path)
    with pytest.raises(InvalidOption) as refused:
        verify_model_version(
            version.name,
            version.version,
            manifest_file=manifest,
            expect_digest=digest,
            tracking_uri=mlflow_server.url,
        )
    assert "manifest_file and expect_digest" in refused.value.message
    with pytest.raises(ManifestError):
        verify_model_version(
            version.name, version.version, expect_digest="sha256:1", tracking_uri=mlflow_server.url
        )
    result = verify_model_version(
        version.name, version.version, manifest_file=manifest, tracking_uri=mlflow_server.url
    )
    assert result.equals and result.kind == "manifest" and result.comparison is not None
    assert result.reference is not None and "sha256:" + result.reference.root == digest


def test_the_readmes_seal_and_verify_python_example_runs(
    mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's API example, run as written against a real server (its model name made unique)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (example,) = [
        block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "seal_model_version(" in block
    ]
    name = unique("Sklearn_Wine")
    version = models.log_sklearn(mlflow_server.url, name)
    models.set_alias(mlflow_server.url, name, "candidate", version.version)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(example.replace("http://localhost:5000", mlflow_server.url).replace("Sklearn_Wine", name), namespace)  # noqa: S102
    assert namespace["sealed"].equals and namespace["checked"].equals
    assert (tmp_path / "model.oms.json").is_file()
