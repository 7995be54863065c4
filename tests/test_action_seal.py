"""The action's seal and verify commands: inputs, outputs, uploaded files, and a real run under act.

The input checks and the upload run the entrypoint as the runner would (tests.test_action.run_action);
one act run seals a registered version, verifies it twice, changes one byte of it in the server's
artifact store, and verifies again, as a workflow would.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlflow_version_check.report.document import load_schema
from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer, free_port
from tests.artifact_server import ArtifactServiceDouble
from tests.test_action import ActionRun, run_action
from tests.test_container import BASE_IMAGE, image, run_container
from tests.test_oms import run_model_signing, write_key_pair

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROOT_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"  # v4.2.2, as self-test.yml
# The image fixture of tests.test_container (the action's image from the local base), shared here.
__all__ = ["image"]


@pytest.fixture(scope="module")
def sealed_model(mlflow_server: MlflowServer) -> models.Registered:
    return models.log_sklearn(mlflow_server.url, unique("action_seal"))


def version_inputs(server: MlflowServer, version: models.Registered, **more: str) -> dict[str, str]:
    return {"model": version.name, "version-or-stage": version.version, "tracking-uri": server.url, **more}


def error_line(run: ActionRun) -> str:
    """The one error line of a run (the action prints it on stderr, the CLI inside the fence on stdout)."""
    lines = [line for line in (run.stderr + run.stdout).splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, run.stdout + run.stderr
    return lines[0]


def archive(content: bytes | None) -> dict[str, bytes]:
    assert content is not None
    with zipfile.ZipFile(io.BytesIO(content)) as opened:
        return {name: opened.read(name) for name in opened.namelist()}


# ---------------------------------------------------------------------------------------------
# Inputs: refused before anything runs (exit 2, one line: what, cause, fix), with an error report.

WRONG_INPUTS = [
    pytest.param(
        {"command": "verify"},
        ["needs a reference to verify against", "Likely cause", "Fix: give exactly one of"],
        id="verify-without-a-reference",
    ),
    pytest.param(
        {"command": "verify", "manifest-file": "m.json", "expect-digest": "sha256:" + "0" * 64},
        ["got 2 references (manifest-file, expect-digest)", "Likely cause", "Fix: give exactly one of"],
        id="verify-with-two-references",
    ),
    pytest.param(
        {"command": "verify", "recorded-tag": "true", "signature-file": "m.sig", "public-key": "k.pem"},
        ["got 2 references (signature-file, recorded-tag)"],
        id="verify-with-a-signature-and-the-recorded-tag",
    ),
    pytest.param(
        {"command": "verify", "signature-file": "m.sig"},
        ["has signature-file but no public-key", "Fix: set public-key"],
        id="verify-signature-without-key",
    ),
    pytest.param(
        {"command": "verify", "expect-digest": "sha256:" + "0" * 64, "public-key": "k.pem"},
        ["has public-key but no signature-file"],
        id="verify-key-without-signature",
    ),
    pytest.param(
        {"command": "verify", "recorded-tag": "perhaps"},
        ["input recorded-tag is 'perhaps', not true or false"],
        id="verify-recorded-tag-not-a-boolean",
    ),
    pytest.param(
        {"command": "seal", "expect-digest": "sha256:" + "0" * 64},
        ["input expect-digest does not apply to command seal", "read only by verify", "Fix: remove"],
        id="seal-with-expect-digest",
    ),
    pytest.param(
        {"command": "seal", "recorded-tag": "true"},
        ["input recorded-tag does not apply to command seal"],
        id="seal-with-recorded-tag",
    ),
    pytest.param(
        {"command": "verify", "manifest-file": "m.json", "checksums-file": "SHA256SUMS"},
        ["input checksums-file does not apply to command verify", "read only by seal"],
        id="verify-with-checksums-file",
    ),
    pytest.param(
        {"command": "seal", "native-model": "model.pkl"},
        ["input native-model does not apply to command seal"],
        id="seal-with-native-model",
    ),
    pytest.param(
        {"command": "check", "manifest-file": "m.json"},
        ["input manifest-file does not apply to command check", "read only by seal and verify"],
        id="check-with-manifest-file",
    ),
    pytest.param(
        {"command": "seal", "model": ""},
        ["command seal needs the model and version-or-stage inputs"],
        id="seal-without-model",
    ),
    pytest.param(
        {"command": "sign"},
        ["input command is 'sign'", "use check, compare, seal or verify"],
        id="unknown-command",
    ),
]


@pytest.mark.parametrize(("inputs", "words"), WRONG_INPUTS)
def test_wrong_seal_and_verify_inputs_are_one_line_and_exit_2(
    inputs: dict[str, str], words: list[str], tmp_path: Path
) -> None:
    """A missing, doubled or misplaced reference input: exit 2, one error line naming the inputs and the
    fix, an error report for the command, passed=false and empty seal outputs."""
    given = {"model": "m", "version-or-stage": "1", "tracking-uri": "http://127.0.0.1:9", **inputs}
    run = run_action(tmp_path, given)
    assert run.exit_code == 2, run.stdout + run.stderr
    line = error_line(run)
    for word in words:
        assert word in line, line
    assert "Traceback" not in run.stdout + run.stderr
    assert run.outputs["passed"] == "false"
    report = run.report()
    assert report["status"] == "error"
    command = inputs["command"] if inputs["command"] in ("check", "seal", "verify") else "check"
    assert report["System"]["command"] == command  # type: ignore[index]
    if command in ("seal", "verify"):
        assert run.outputs["root-digest"] == "" and run.outputs["manifest-path"] == ""
    else:
        assert "root-digest" not in run.outputs


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        pytest.param("manifest-file", {"command": "seal"}, id="seal-manifest-file"),
        pytest.param("checksums-file", {"command": "seal"}, id="seal-checksums-file"),
        pytest.param("manifest-file", {"command": "verify"}, id="verify-manifest-file"),
        pytest.param("signature-file", {"command": "verify", "public-key": "k.pem"}, id="signature-file"),
        pytest.param("public-key", {"command": "verify", "signature-file": "m.sig"}, id="public-key"),
    ],
)
def test_seal_and_verify_paths_cannot_leave_the_workspace(
    name: str, extra: dict[str, str], tmp_path: Path
) -> None:
    """A path input through a symlinked folder of the repository to a place outside the workspace is
    refused (exit 2), whether the step writes it (seal) or reads it (verify)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file").write_text("not the workspace's")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "linked").symlink_to(outside)
    inputs = {"model": "m", "version-or-stage": "1", "tracking-uri": "http://127.0.0.1:9", **extra}
    inputs[name] = "linked/file"
    run = run_action(tmp_path, inputs)
    assert run.exit_code == 2, run.stdout + run.stderr
    assert f"input {name} 'linked/file' leads outside the workspace" in error_line(run)
    assert (outside / "file").read_text() == "not the workspace's"


def test_seal_mlmodel_copy_cannot_leave_the_workspace(tmp_path: Path) -> None:
    """seal writes `<manifest-file>.MLmodel` too: a symlink there out of the workspace is refused."""
    outside = tmp_path / "outside.MLmodel"
    outside.write_text("kept")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "seal.json.MLmodel").symlink_to(outside)
    run = run_action(
        tmp_path, {"command": "seal", "model": "m", "version-or-stage": "1", "manifest-file": "seal.json"}
    )
    assert run.exit_code == 2, run.stdout + run.stderr
    assert "input manifest-file 'seal.json.MLmodel' leads outside the workspace" in error_line(run)
    assert outside.read_text() == "kept"


# ---------------------------------------------------------------------------------------------
# Real runs of the entrypoint against the session's server.


def test_seal_outputs_and_artifact_hold_this_runs_seal(
    mlflow_server: MlflowServer, sealed_model: models.Registered, tmp_path: Path
) -> None:
    """seal with default manifest path and a checksums file: exit 0, root-digest is the manifest's
    subject digest, manifest-path the default, and the artifact holds report, manifest, its MLmodel
    copy and checksums under their names; the job summary shows the seal."""
    with ArtifactServiceDouble() as service:
        run = run_action(
            tmp_path,
            version_inputs(
                mlflow_server, sealed_model, command="seal", **{"checksums-file": "seal/SHA256SUMS"}
            ),
            {"ACTIONS_RUNTIME_TOKEN": service.token, "ACTIONS_RESULTS_URL": service.url},
        )
        stored = service.artifacts["mlflow-version-check-report"]
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.outputs["passed"] == "true" and run.outputs["equals"] == "true"
    assert run.outputs["manifest-path"] == "mlflow-version-check-manifest.json"
    manifest = json.loads((run.workspace / run.outputs["manifest-path"]).read_text())
    digest = run.outputs["root-digest"]
    assert ROOT_DIGEST.fullmatch(digest)
    assert digest == "sha256:" + manifest["subject"][0]["digest"]["sha256"]
    report = run.report()
    assert report["Seal"]["root_digest"] == digest  # type: ignore[index]
    files = archive(stored.content)
    assert set(files) == {
        "mlflow-version-check-report.json",
        "mlflow-version-check-manifest.json",
        "mlflow-version-check-manifest.json.MLmodel",
        "SHA256SUMS",
    }
    assert (
        files["mlflow-version-check-manifest.json"]
        == (run.workspace / run.outputs["manifest-path"]).read_bytes()
    )
    assert b"model.pkl" in files["SHA256SUMS"]
    assert b"flavors" in files["mlflow-version-check-manifest.json.MLmodel"]
    assert run.outputs["artifact-id"] == str(stored.artifact_id)
    assert "✅ mlflow-version-check seal: passed" in run.summary
    assert digest in run.summary


def test_refused_seal_uploads_no_earlier_seal(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """An earlier run's manifest, MLmodel copy and checksums at the seal's paths, and this run refuses
    an incomplete model (exit 1): root-digest and manifest-path are empty, an annotation names the
    problem, and the artifact holds this run's report only."""
    version = models.log_sklearn(mlflow_server.url, unique("action_seal_cut"))
    pickled = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version) / "model.pkl"
    pickled.write_bytes(pickled.read_bytes()[:-5])
    workspace = tmp_path / "workspace"
    (workspace / "seal").mkdir(parents=True)
    for stale in ("seal/m.json", "seal/m.json.MLmodel", "seal/SHA256SUMS"):
        (workspace / stale).write_text("an earlier run's seal")
    with ArtifactServiceDouble() as service:
        run = run_action(
            tmp_path,
            version_inputs(
                mlflow_server,
                version,
                command="seal",
                **{"manifest-file": "seal/m.json", "checksums-file": "seal/SHA256SUMS"},
            ),
            {"ACTIONS_RUNTIME_TOKEN": service.token, "ACTIONS_RESULTS_URL": service.url},
        )
        stored = service.artifacts["mlflow-version-check-report"]
    assert run.exit_code == 1, run.stdout + run.stderr
    assert run.outputs["passed"] == "false"
    assert run.outputs["root-digest"] == "" and run.outputs["manifest-path"] == ""
    assert run.report()["status"] == "failed"
    assert set(archive(stored.content)) == {"mlflow-version-check-report.json"}
    assert any(
        line.startswith("::error title=mlflow-version-check::model incomplete") and "(not sealed)" in line
        for line in run.stdout.splitlines()
    ), run.stdout
    assert "❌ mlflow-version-check seal: failed" in run.summary


def test_seal_records_a_tag_that_verify_reads(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """record-tag: true on seal, then recorded-tag: true on verify: it passes with the sealed root;
    strict applies to verify (bytes only, still the same files)."""
    version = models.log_sklearn(mlflow_server.url, unique("action_seal_tag"))
    sealed = run_action(
        tmp_path / "seal",
        version_inputs(mlflow_server, version, command="seal", **{"record-tag": "true"}),
    )
    assert sealed.exit_code == 0, sealed.stdout + sealed.stderr
    assert sealed.report()["Seal"]["recorded_tag"]  # type: ignore[index]
    verified = run_action(
        tmp_path / "verify",
        version_inputs(
            mlflow_server, version, command="verify", **{"recorded-tag": "true", "strict": "true"}
        ),
    )
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert verified.outputs["passed"] == "true"
    assert verified.outputs["root-digest"] == sealed.outputs["root-digest"] != ""
    verification = verified.report()["Verification"]
    assert verification["reference"]["kind"] == "recorded-tag" and verification["strict"] is True  # type: ignore[index]


def test_verify_signature_with_pem_text_public_key(
    mlflow_server: MlflowServer, sealed_model: models.Registered, tmp_path: Path
) -> None:
    """public-key given as PEM text (from a secret or variable): written to a private file for the run
    and removed after; the right key verifies a `model_signing sign key` bundle (exit 0), another key
    does not (exit 1, an annotation), a path to the key works as well."""
    store = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, sealed_model)
    private, public = write_key_pair(tmp_path / "keys")
    _, other_public = write_key_pair(tmp_path / "other")
    bundle = tmp_path / "model.sig"
    signed = run_model_signing(
        "sign", "key", store, "--private_key", private, "--signature", bundle, cwd=tmp_path
    )
    assert signed.returncode == 0, signed.stderr
    runs = {}
    for case, key in (("text", public.read_text()), ("other", other_public.read_text()), ("path", "key.pub")):
        workspace = tmp_path / case / "workspace"
        workspace.mkdir(parents=True)
        shutil.copy(bundle, workspace / "model.sig")
        shutil.copy(public, workspace / "key.pub")
        runs[case] = run_action(
            tmp_path / case,
            version_inputs(
                mlflow_server,
                sealed_model,
                command="verify",
                **{"signature-file": "model.sig", "public-key": key},
            ),
        )
        assert list((tmp_path / case / "tmp").glob("mvc-key-*")) == [], "the key's private file is removed"
    for case in ("text", "path"):
        run = runs[case]
        assert run.exit_code == 0, run.stdout + run.stderr
        assert run.outputs["passed"] == "true"
        verification = run.report()["Verification"]
        assert verification["reference"]["kind"] == "signature"  # type: ignore[index]
        assert verification["reference"]["signature_verified"] is True  # type: ignore[index]
        assert run.outputs["root-digest"] == verification["root_digest"]  # type: ignore[index]
        assert run.outputs["manifest-path"] == ""
    refused = runs["other"]
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert refused.outputs["passed"] == "false"
    assert any(
        line.startswith("::error title=mlflow-version-check::") for line in refused.stdout.splitlines()
    )


# ---------------------------------------------------------------------------------------------
# The container and act.

SEAL_VERIFY_WORKFLOW = f"""\
# Written by tests/test_action_seal.py: seal a version, verify it twice, change one byte, verify again.
name: seal-verify
on: push
permissions:
  contents: read
jobs:
  seal-verify:
    runs-on: ubuntu-latest
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false

      - name: Seal the version
        id: seal
        uses: ./
        with:
          command: seal
          model: ${{{{ vars.MVC_MODEL }}}}
          version-or-stage: "1"
          tracking-uri: ${{{{ vars.MVC_URL }}}}
          manifest-file: seal/model.oms.json
          checksums-file: seal/SHA256SUMS
          report-file: reports/seal.json
          artifact-name: seal-report

      - name: Verify against the manifest
        id: by-manifest
        uses: ./
        with:
          command: verify
          model: ${{{{ vars.MVC_MODEL }}}}
          version-or-stage: "1"
          tracking-uri: ${{{{ vars.MVC_URL }}}}
          manifest-file: ${{{{ steps.seal.outputs.manifest-path }}}}
          report-file: reports/by-manifest.json
          artifact-name: verify-manifest-report

      - name: Verify against the root digest
        id: by-digest
        uses: ./
        with:
          command: verify
          model: ${{{{ vars.MVC_MODEL }}}}
          version-or-stage: "1"
          tracking-uri: ${{{{ vars.MVC_URL }}}}
          expect-digest: ${{{{ steps.seal.outputs.root-digest }}}}
          report-file: reports/by-digest.json
          artifact-name: verify-digest-report

      - name: Show the outputs
        env:
          SEAL: ${{{{ toJSON(steps.seal.outputs) }}}}
          BY_MANIFEST: ${{{{ toJSON(steps.by-manifest.outputs) }}}}
          BY_DIGEST: ${{{{ toJSON(steps.by-digest.outputs) }}}}
        run: |
          for name in SEAL BY_MANIFEST BY_DIGEST; do
            echo "STEP-OUTPUTS $name $(printf '%s' "${{!name}}" | tr -d '\\n')"
          done

      - name: Change one byte of the model in the artifact store
        env:
          URL: ${{{{ vars.MVC_URL }}}}
          TAMPER_PATH: ${{{{ vars.MVC_TAMPER_PATH }}}}
        run: |
          python3 - <<'PYTHON'
          import os, urllib.request
          url = os.environ["URL"] + "/api/2.0/mlflow-artifacts/artifacts/" + os.environ["TAMPER_PATH"]
          data = bytearray(urllib.request.urlopen(url).read())
          data[len(data) // 2] ^= 0x01
          urllib.request.urlopen(urllib.request.Request(url, data=bytes(data), method="PUT")).read()
          print("TAMPERED", len(data), "bytes, one changed")
          PYTHON

      - name: Verify the changed version (must fail)
        id: tampered
        continue-on-error: true
        uses: ./
        with:
          command: verify
          model: ${{{{ vars.MVC_MODEL }}}}
          version-or-stage: "1"
          tracking-uri: ${{{{ vars.MVC_URL }}}}
          manifest-file: ${{{{ steps.seal.outputs.manifest-path }}}}
          report-file: reports/tampered.json
          artifact-name: verify-tampered-report

      - name: Assert the failure path
        env:
          OUTCOME: ${{{{ steps.tampered.outcome }}}}
          OUTPUTS: ${{{{ toJSON(steps.tampered.outputs) }}}}
        run: |
          echo "STEP-OUTCOME tampered $OUTCOME"
          echo "STEP-OUTPUTS TAMPERED $(printf '%s' "$OUTPUTS" | tr -d '\\n')"
          test "$OUTCOME" = failure
          grep -q '"status": "failed"' reports/tampered.json
"""


def copy_of_the_tree(destination: Path) -> Path:
    """A clone of the repository with the working tree's files as they are now (tests run before a
    commit too), as tests.test_container's act run makes one."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(destination)], check=True)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for relative in listed:
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.fixture(scope="module")
def act_seal_run(
    image: str, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One act run of SEAL_VERIFY_WORKFLOW against a version registered on the session's server."""
    version = models.log_sklearn(mlflow_server.url, unique("act_seal"))
    store = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version)
    pickled = store / "model.pkl"
    original = pickled.read_bytes()
    work = tmp_path_factory.mktemp("act-seal")
    tree = copy_of_the_tree(work / "repo")
    workflow = tree / ".github" / "workflows" / "seal-verify.yml"
    workflow.write_text(SEAL_VERIFY_WORKFLOW)
    artifacts = work / "artifacts"
    variables = {
        "MVC_URL": mlflow_server.url,
        "MVC_MODEL": version.name,
        "MVC_TAMPER_PATH": pickled.relative_to(mlflow_server.artifacts).as_posix(),
    }
    completed = subprocess.run(
        [str(BIN / "act"), "push", "-W", str(workflow.relative_to(tree)),
         "-P", f"ubuntu-latest={BASE_IMAGE}", "--pull=false", "--network", "host",
         "--artifact-server-path", str(artifacts), "--artifact-server-addr", "127.0.0.1",
         "--artifact-server-port", str(free_port()), "--cache-server-addr", "127.0.0.1",
         *[f"--var={name}={value}" for name, value in variables.items()]],
        cwd=tree, capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    log = completed.stdout + completed.stderr
    outputs = {name: json.loads(text) for name, text in re.findall(r"STEP-OUTPUTS (\w+) (\{.*\})", log)}
    changed = pickled.read_bytes()
    return {
        "code": completed.returncode,
        "log": log,
        "outputs": outputs,
        "artifacts": artifacts,
        "one_byte_changed": len(changed) == len(original)
        and sum(a != b for a, b in zip(changed, original, strict=True)) == 1,
    }


def artifact_files(artifacts: Path) -> dict[str, dict[str, bytes]]:
    """Each artifact act stored, by name, as its zip's members."""
    found = {}
    for path in artifacts.rglob("*.zip"):
        with zipfile.ZipFile(path) as opened:
            found[path.parent.name] = {name: opened.read(name) for name in opened.namelist()}
    return found


@pytest.mark.docker
@pytest.mark.act
def test_act_seal_then_verify_by_manifest_and_by_digest(act_seal_run: dict[str, Any]) -> None:
    """Under act: seal passes with root-digest and manifest-path; verify against the manifest and
    against the seal's root-digest output both pass and report the same root digest."""
    log = act_seal_run["log"]
    assert act_seal_run["code"] == 0, log[-6000:]
    assert "🏁  Job succeeded" in log
    outputs = act_seal_run["outputs"]
    seal = outputs["SEAL"]
    assert seal["passed"] == "true", log[-6000:]
    assert ROOT_DIGEST.fullmatch(seal["root-digest"])
    assert seal["manifest-path"] == "seal/model.oms.json"
    assert seal["report-path"] == "reports/seal.json"
    for step in ("BY_MANIFEST", "BY_DIGEST"):
        assert outputs[step]["passed"] == "true", (step, outputs[step])
        assert outputs[step]["root-digest"] == seal["root-digest"]
        assert outputs[step]["manifest-path"] == ""


@pytest.mark.docker
@pytest.mark.act
def test_act_artifacts_hold_reports_and_the_seal(act_seal_run: dict[str, Any]) -> None:
    """The seal step's artifact holds its report, the manifest (whose subject digest is the
    root-digest output), the MLmodel copy and the checksums; every report validates."""
    stored = artifact_files(act_seal_run["artifacts"])
    assert set(stored) == {"seal-report", "verify-manifest-report", "verify-digest-report",
                           "verify-tampered-report"}, act_seal_run["log"][-3000:]  # fmt: skip
    assert set(stored["seal-report"]) == {
        "seal.json",
        "model.oms.json",
        "model.oms.json.MLmodel",
        "SHA256SUMS",
    }
    manifest = json.loads(stored["seal-report"]["model.oms.json"])
    root = "sha256:" + manifest["subject"][0]["digest"]["sha256"]
    assert root == act_seal_run["outputs"]["SEAL"]["root-digest"]
    statuses = {}
    for name, files in stored.items():
        report_name = next(
            member for member in files if member.endswith(".json") and member != "model.oms.json"
        )
        report = json.loads(files[report_name])
        jsonschema.validate(report, load_schema(), cls=jsonschema.Draft202012Validator)
        statuses[name] = report["status"]
    assert statuses == {
        "seal-report": "passed",
        "verify-manifest-report": "passed",
        "verify-digest-report": "passed",
        "verify-tampered-report": "failed",
    }


@pytest.mark.docker
@pytest.mark.act
def test_act_verify_fails_after_one_byte_changed(act_seal_run: dict[str, Any]) -> None:
    """One byte of model.pkl changed in the artifact store (same size): verify fails the step
    (outcome failure, passed=false), names the file in an annotation, and reports the new root."""
    log = act_seal_run["log"]
    assert act_seal_run["one_byte_changed"], "the workflow changed exactly one byte in the store"
    assert "STEP-OUTCOME tampered failure" in log, log[-6000:]
    tampered = act_seal_run["outputs"]["TAMPERED"]
    assert tampered["passed"] == "false" and tampered["equals"] == "false"
    assert ROOT_DIGEST.fullmatch(tampered["root-digest"])
    assert tampered["root-digest"] != act_seal_run["outputs"]["SEAL"]["root-digest"]
    assert "drift from the reference: model.pkl (changed)" in log
    report = json.loads(artifact_files(act_seal_run["artifacts"])["verify-tampered-report"]["tampered.json"])
    assert [(d["path"], d["kind"]) for d in report["Verification"]["differences"]] == [
        ("model.pkl", "changed")
    ]


@pytest.mark.docker
def test_container_verifies_a_signature_with_a_pem_text_key(
    image: str, mlflow_server: MlflowServer, sealed_model: models.Registered, tmp_path: Path
) -> None:
    """The image has the signing extra: verify with signature-file and the public key as PEM text
    passes in the container."""
    store = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, sealed_model)
    private, public = write_key_pair(tmp_path / "keys")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    signed = run_model_signing(
        "sign", "key", store, "--private_key", private, "--signature", workspace / "model.sig", cwd=tmp_path
    )
    assert signed.returncode == 0, signed.stderr
    code, log, outputs = run_container(
        image,
        workspace,
        version_inputs(
            mlflow_server,
            sealed_model,
            command="verify",
            **{"signature-file": "model.sig", "public-key": public.read_text()},
        ),
    )
    assert code == 0, log
    assert outputs["passed"] == "true"
    report = json.loads((workspace / outputs["report-path"]).read_text())
    assert report["Verification"]["reference"]["signature_verified"] is True
