"""The action's image on a real Docker engine, and the action run by act as GitHub would run it."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from mlflow_version_check.ci.workflow_commands import parse_outputs
from mlflow_version_check.report.document import load_schema
from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer, free_port

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BASE_IMAGE = os.environ.get("BASE_IMAGE_TAG", "mvc-base:bookworm")
IMAGE = "mlflow-version-check:test"


def _docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.fixture(scope="session")
def image() -> str:
    """The action's image, built from the local Debian base (scripts/ci/base-image.sh)."""
    if not _docker_ready():
        message = f"no Docker engine or no base image {BASE_IMAGE} (run scripts/ci/base-image.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs both: a missing engine there is a broken set-up, not a skip
        pytest.skip(message)
    subprocess.run(
        ["docker", "build", "--quiet", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", IMAGE, str(ROOT)],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    return IMAGE


def run_container(
    image: str, workspace: Path, inputs: dict[str, str], extra_env: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    """docker run with --network host and the runner's INPUT_* and file-command variables."""
    commands = workspace.parent / f"{workspace.name}-commands"
    commands.mkdir(exist_ok=True)
    (commands / "output").write_text("")
    (commands / "summary").write_text("")
    arguments = [
        "docker", "run", "--rm", "--network", "host",
        "-v", f"{workspace}:/github/workspace", "-v", f"{commands}:/github/file_commands",
        "-w", "/github/workspace",
        "-e", "GITHUB_ACTIONS=true", "-e", "GITHUB_WORKSPACE=/github/workspace",
        "-e", "GITHUB_OUTPUT=/github/file_commands/output",
        "-e", "GITHUB_STEP_SUMMARY=/github/file_commands/summary",
    ]  # fmt: skip
    for name, value in inputs.items():
        arguments += ["-e", f"INPUT_{name.upper()}={value}"]
    for name, value in (extra_env or {}).items():
        arguments += ["-e", f"{name}={value}"]
    completed = subprocess.run([*arguments, image], capture_output=True, text=True, timeout=600, check=False)
    return (
        completed.returncode,
        completed.stdout + completed.stderr,
        parse_outputs((commands / "output").read_text()),
    )


def test_container_check_equal_and_tampered(image: str, mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """The image against a loopback server: exit 0 and outputs for an intact model, 1 for a tampered one."""
    good = models.log_sklearn(mlflow_server.url, unique("container"))
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    os.chown(workspace, 2345, 2345)
    code, log, outputs = run_container(
        image, workspace, {"model": good.name, "version-or-stage": "1", "tracking-uri": mlflow_server.url}
    )
    assert code == 0, log
    assert outputs["passed"] == "true" and outputs["equals"] == "true"
    report_file = workspace / outputs["report-path"]
    report = json.loads(report_file.read_text())
    jsonschema.validate(report, load_schema(), cls=jsonschema.Draft202012Validator)
    assert report["System"]["mlflow_version"] and report["Comparison"]["equals"] is True
    assert report_file.stat().st_uid == 2345, "files written in the workspace belong to its owner"

    bad = models.log_sklearn(mlflow_server.url, unique("container_bad"))
    pickled = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, bad) / "model.pkl"
    pickled.write_bytes(pickled.read_bytes() + b"appended")
    code, log, outputs = run_container(
        image, workspace, {"model": bad.name, "version-or-stage": "1", "tracking-uri": mlflow_server.url,
                           "report-file": "bad.json"}
    )  # fmt: skip
    assert code == 1, log
    assert outputs["passed"] == "false" and outputs["equals"] == "false"
    assert "::error title=mlflow-version-check::model incomplete" in log


def test_container_runs_only_mlflow_skinny(image: str) -> None:
    """The image ships the client (mlflow-skinny), not the full server package."""
    completed = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "/opt/venv/bin/python", image, "-c",
         "import importlib.metadata as m; print(m.version('mlflow-skinny'))"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert completed.stdout.strip().startswith("3.")
    # The image has no pip (tests/test_image_build.py): list the venv's distributions from their metadata.
    freeze = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "/opt/venv/bin/python", image, "-c",
         "import importlib.metadata as m, json; "
         "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    names = {name.lower() for name in json.loads(freeze.stdout)}
    assert "mlflow-skinny" in names and "mlflow" not in names
    assert "mlflow-version-check" in names


# Canary values for every secret input of the self-test's canary step (set as workflow variables, so
# act does not know them as secrets and cannot mask them: only the action's own masks can).
ACT_CANARIES = {
    "MVC_CANARY_TOKEN": "dapiCANARYact0123456789abcdef0123456",
    "MVC_CANARY_CLIENT_SECRET": "CANARY-act-client-secret-3c9d",
    "MVC_CANARY_MLFLOW_TOKEN": "CANARY-act-mlflow-token-77e1",
    "MVC_CANARY_DATABRICKS_CONFIG": (
        "[prod_env]\nhost = https://prod.invalid\ntoken = CANARY-act-profile-5e0f\n"
    ),
}
SECRETS_IN_CANARIES = [
    ACT_CANARIES["MVC_CANARY_TOKEN"],
    ACT_CANARIES["MVC_CANARY_CLIENT_SECRET"],
    ACT_CANARIES["MVC_CANARY_MLFLOW_TOKEN"],
    "CANARY-act-profile-5e0f",
]


@pytest.fixture(scope="session")
def act_run(image: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """Run .github/workflows/self-test.yml with act on a clean copy of the tree."""
    work = tmp_path_factory.mktemp("act")
    tree = work / "repo"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(tree)], check=True)
    # The working tree as it is now (tests run before commit too): copy tracked and new files over.
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for relative in listed:
        source = ROOT / relative
        if source.is_file():
            target = tree / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    artifacts = work / "artifacts"
    completed = subprocess.run(
        [str(BIN / "act"), "push", "-W", ".github/workflows/self-test.yml",
         "-P", f"ubuntu-latest={BASE_IMAGE}", "--pull=false", "--network", "host",
         "--artifact-server-path", str(artifacts), "--artifact-server-addr", "127.0.0.1",
         "--artifact-server-port", str(free_port()), "--cache-server-addr", "127.0.0.1",
         *[f"--var={name}={value}" for name, value in ACT_CANARIES.items()]],
        cwd=tree, capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    return completed.returncode, completed.stdout + completed.stderr, artifacts


@pytest.mark.act
def test_act_self_test_job_succeeds(act_run: tuple[int, str, Path]) -> None:
    """act runs the self-test workflow: every step's assertions hold and the job succeeds."""
    code, log, _ = act_run
    assert code == 0, log[-5000:]
    assert "🏁  Job succeeded" in log
    assert "Failure - Main Check a tampered version (must fail)" in log  # the failure path ran and failed
    assert "Success - Main Assert the failure path" in log
    # The README's promotion steps: seal, the predicate for actions/attest, verify both ways.
    assert "Success - Main Assert the seal's outputs and the predicate for actions/attest" in log
    assert "Success - Main Assert both verifications passed with the sealed root" in log


@pytest.mark.act
def test_act_artifacts_hold_valid_reports(act_run: tuple[int, str, Path]) -> None:
    """The uploaded artifacts are in act's artifact directory; each zip holds a report that validates."""
    _, log, artifacts = act_run
    zips = {path.parent.name: path for path in artifacts.rglob("*.zip")}
    expected = {"selftest-check-report", "selftest-compare-report", "selftest-tampered-report",
                "selftest-canary-report"}  # fmt: skip
    assert set(zips) == expected, log[-3000:]
    statuses = {}
    for name, path in zips.items():
        with zipfile.ZipFile(path) as archive:
            (member,) = archive.namelist()
            report = json.loads(archive.read(member))
        jsonschema.validate(report, load_schema(), cls=jsonschema.Draft202012Validator)
        statuses[name] = report["status"]
    assert statuses == {
        "selftest-check-report": "passed",
        "selftest-compare-report": "passed",
        "selftest-tampered-report": "failed",
        "selftest-canary-report": "passed",
    }


@pytest.mark.act
def test_act_canary_secrets_appear_nowhere(act_run: tuple[int, str, Path]) -> None:
    """The canary step of the self-test, run by act: no canary in act's log, the step's outputs, its
    report or any uploaded artifact (zip bytes and members)."""
    _, log, artifacts = act_run
    assert "Success - Main Check with canary values in every secret input" in log, log[-3000:]
    scanned = {"act log": log}
    for kind, encoded in re.findall(r"CANARY-SCAN (\w+) ([A-Za-z0-9+/=]+)", log):
        scanned[kind] = base64.b64decode(encoded).decode()
    assert json.loads(scanned["outputs"])["passed"] == "true", "the scan saw the real outputs"
    assert json.loads(scanned["report"])["status"] == "passed", "the scan saw the real report"
    for path in artifacts.rglob("*"):
        if path.is_file():
            scanned[str(path)] = path.read_bytes().decode("latin-1")
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    for member in archive.namelist():
                        scanned[f"{path}:{member}"] = archive.read(member).decode("latin-1")
    assert any("canary" in where for where in scanned), "the canary step's artifact was scanned"
    for secret in SECRETS_IN_CANARIES:
        for where, text in scanned.items():
            assert secret not in text, f"canary found in {where}"


def test_container_databricks_inputs_without_leaks(image: str, tmp_path: Path) -> None:
    """databricks-host/-token and databricks-config drive check and compare in the container against
    two workspace doubles; no token shows up in the log, outputs, summary, report or artifact."""
    from tests.artifact_server import ArtifactServiceDouble
    from tests.databricks_double import WorkspaceDouble
    from tests.test_databricks import CLIENT_SECRET, seed

    with (
        WorkspaceDouble() as ws1,
        WorkspaceDouble(oauth_clients={"mvc-client": CLIENT_SECRET}) as ws2,
        ArtifactServiceDouble() as artifacts,
    ):
        seed(ws1, "Wine", stage="Staging")
        seed(ws2, "Wine_Imported", stage="Staging")
        workspace = tmp_path / "workspace"
        workspace.mkdir()
        (workspace / "config.yaml").write_text(
            "tracking_server_1: {host: 'databricks://test_env', model: Wine, version_or_stage: staging}\n"
            "tracking_server_2: {host: 'databricks://prod_env', model: Wine_Imported, "
            "version_or_stage: staging}\n"
        )
        profiles = (
            f"[test_env]\nhost = {ws1.url}\ntoken = {ws1.token}\n\n"
            f"[prod_env]\nhost = {ws2.url}\nclient_id = mvc-client\nclient_secret = {CLIENT_SECRET}\n"
        )
        runtime = {"ACTIONS_RUNTIME_TOKEN": artifacts.token, "ACTIONS_RESULTS_URL": artifacts.url}
        check_code, check_log, check_outputs = run_container(
            image, workspace,
            {"model": "Wine", "version-or-stage": "staging", "tracking-uri": "databricks",
             "databricks-host": ws1.url, "databricks-token": ws1.token, "report-file": "check.json",
             "artifact-name": "check"},
            runtime,
        )  # fmt: skip
        compare_code, compare_log, compare_outputs = run_container(
            image, workspace,
            {"command": "compare", "config-file": "config.yaml", "databricks-config": profiles,
             "report-file": "compare.json", "artifact-name": "compare"},
            runtime,
        )  # fmt: skip
        uploaded = b"".join(stored.content or b"" for stored in artifacts.artifacts.values())
    assert check_code == 0, check_log
    assert check_outputs["passed"] == "true"
    assert compare_code == 0, compare_log
    assert compare_outputs["run-model-equals"] == compare_outputs["reg-model-equals"] == "true"
    assert set(artifacts.artifacts) == {"check", "compare"}
    summary = (workspace.parent / f"{workspace.name}-commands" / "summary").read_text()
    scanned = {
        "log": check_log + compare_log,
        "outputs": json.dumps([check_outputs, compare_outputs]),
        "summary": summary,
        "reports": (workspace / "check.json").read_text() + (workspace / "compare.json").read_text(),
        "artifacts": uploaded.decode("latin-1"),
    }
    for secret in (ws1.token, CLIENT_SECRET):
        for where, text in scanned.items():
            visible = "\n".join(line for line in text.splitlines() if not line.startswith("::add-mask::"))
            assert secret not in visible, f"secret found in {where}"
    assert "::add-mask::" + ws1.token in check_log, "the token was masked before use"


def test_docker_stop_ends_a_hung_run_cleanly(image: str, tmp_path: Path) -> None:
    """The entrypoint is PID 1: `docker stop` (SIGTERM) ends a run hung on a silent server within
    docker's default grace period of 10 s, with exit 143 (not 137, a SIGKILL after the grace
    period), an error report and passed=false."""
    from tests.silent_server import SilentServer

    workspace = tmp_path / "workspace"
    commands = tmp_path / "commands"
    workspace.mkdir()
    commands.mkdir()
    (commands / "output").write_text("")
    (commands / "summary").write_text("")
    name = unique(f"mvc-stop-{os.getpid()}")
    with SilentServer() as silent:
        subprocess.run(
            ["docker", "run", "--detach", "--name", name, "--network", "host",
             "-v", f"{workspace}:/github/workspace", "-v", f"{commands}:/github/file_commands",
             "-w", "/github/workspace", "-e", "GITHUB_ACTIONS=true",
             "-e", "GITHUB_WORKSPACE=/github/workspace",
             "-e", "GITHUB_OUTPUT=/github/file_commands/output",
             "-e", "GITHUB_STEP_SUMMARY=/github/file_commands/summary",
             "-e", "INPUT_MODEL=m", "-e", "INPUT_VERSION-OR-STAGE=1",
             "-e", f"INPUT_TRACKING-URI={silent.url}",
             image],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        try:
            assert silent.first_accepted.wait(120), "the run never reached the server"
            subprocess.run(
                ["docker", "stop", "--time", "10", name], check=True, capture_output=True, timeout=90
            )
            state = subprocess.run(
                ["docker", "inspect", "--format", "{{.State.ExitCode}}", name],
                check=True,
                capture_output=True,
                text=True,
                timeout=30,
            )
            log = subprocess.run(
                ["docker", "logs", name], capture_output=True, text=True, timeout=30, check=False
            )
        finally:
            subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False, timeout=60)
    assert state.stdout.strip() == "143", log.stdout + log.stderr
    assert "interrupted by SIGTERM" in log.stdout + log.stderr
    outputs = parse_outputs((commands / "output").read_text())
    assert outputs["passed"] == "false"
    report = json.loads((workspace / "mlflow-version-check-report.json").read_text())
    jsonschema.validate(report, load_schema(), cls=jsonschema.Draft202012Validator)
    assert report["status"] == "error" and report["error"]["type"] == "Interrupted"
