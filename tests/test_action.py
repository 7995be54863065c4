"""The action's entrypoint run as the runner runs it: INPUT_* variables, file commands in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlflow_version_check.ci.workflow_commands import parse_outputs
from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.artifact_server import ArtifactServiceDouble
from tests.conftest import load_valid_report
from tests.runner_commands import assert_only_own_commands

ROOT = Path(__file__).resolve().parent.parent
OUTPUT_NAMES = {"passed", "equals", "run-model-equals", "reg-model-equals", "report-path", "artifact-id"}
CANARIES = {
    "databricks-token": "dapiCANARY0123456789abcdef0123456789",
    "databricks-client-secret": "CANARY-client-secret-7f3a",
    "mlflow-tracking-token": "CANARY-mlflow-token-91b2",
}


@dataclass(frozen=True)
class ActionRun:
    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    workspace: Path

    def report(self) -> dict[str, object]:
        return load_valid_report(self.workspace / self.outputs["report-path"])


# The action as entrypoint.py runs it, but with artifact upload retries that do not wait.
WITHOUT_RETRY_WAITS = (
    "import sys; from mlflow_version_check.ci.action import main; "
    "sys.exit(main(upload_sleep=lambda seconds: None))"
)


def run_action(
    tmp_path: Path,
    inputs: dict[str, str],
    extra_env: dict[str, str] | None = None,
    *,
    program: str | None = None,
) -> ActionRun:
    """Run entrypoint.py (or the `program` given, as `python -c`) in a fresh process with the runner's
    environment variables."""
    workspace = tmp_path / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    files = tmp_path / "file_commands"
    files.mkdir(exist_ok=True)
    (files / "output").write_text("")
    (files / "summary").write_text("")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("INPUT_", "MLFLOW_", "DATABRICKS_", "GITHUB_", "ACTIONS_"))
    }
    env.update(
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(workspace),
        GITHUB_OUTPUT=str(files / "output"),
        GITHUB_STEP_SUMMARY=str(files / "summary"),
        TMPDIR=str(tmp_path / "tmp"),
    )
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    env.update(extra_env or {})
    completed = subprocess.run(
        [sys.executable, *(["-c", program] if program else [str(ROOT / "entrypoint.py")])],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return ActionRun(
        exit_code=completed.returncode,
        stdout=completed.stdout,
        stderr=completed.stderr,
        outputs=parse_outputs((files / "output").read_text()),
        summary=(files / "summary").read_text(),
        workspace=workspace,
    )


@pytest.fixture(scope="module")
def registered(mlflow_server: MlflowServer) -> models.Registered:
    return models.log_sklearn(mlflow_server.url, unique("action"))


def test_check_passes_with_outputs_and_summary(
    mlflow_server: MlflowServer, registered: models.Registered, tmp_path: Path
) -> None:
    """A passing check: exit 0, the six outputs parse, the report validates, the summary shows the verdict."""
    run = run_action(
        tmp_path,
        {
            "command": "check",
            "model": registered.name,
            "version-or-stage": "latest",
            "tracking-uri": mlflow_server.url,
        },
    )
    assert run.exit_code == 0, run.stderr
    assert set(run.outputs) == OUTPUT_NAMES
    assert run.outputs["passed"] == "true" and run.outputs["equals"] == "true"
    assert run.outputs["report-path"] == "mlflow-version-check-report.json"
    assert run.report()["status"] == "passed"
    assert "✅ mlflow-version-check check: passed" in run.summary
    assert registered.name in run.summary
    assert "artifact upload skipped" in run.stdout


def test_tampered_model_fails_with_annotations(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """A model whose stored file was cut: exit 1, passed=false, an ::error:: annotation, a summary."""
    version = models.log_sklearn(mlflow_server.url, unique("action_cut"))
    pickled = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version) / "model.pkl"
    pickled.write_bytes(pickled.read_bytes()[:-5])
    inputs = {"model": version.name, "version-or-stage": "1", "tracking-uri": mlflow_server.url}
    run = run_action(tmp_path, inputs)
    assert run.exit_code == 1
    assert run.outputs["passed"] == "false" and run.outputs["equals"] == "false"
    assert any(
        line.startswith("::error title=mlflow-version-check::model incomplete")
        for line in run.stdout.splitlines()
    )
    assert "❌" in run.summary
    relaxed = run_action(tmp_path / "relaxed", {**inputs, "fail-on-difference": "false"})
    assert relaxed.exit_code == 0
    assert relaxed.outputs["passed"] == "false"


def test_model_name_cannot_inject_outputs_or_commands(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """A model name with newlines and `::` adds no output and no workflow command."""
    evil = "x\n::set-output name=passed::true\npassed<<EOF\ntrue\nEOF\n::warning::pwned"
    run = run_action(tmp_path, {"model": evil, "version-or-stage": "1", "tracking-uri": mlflow_server.url})
    assert run.exit_code == 3
    assert set(run.outputs) == OUTPUT_NAMES
    assert run.outputs["passed"] == "false"
    assert_only_own_commands(run.stdout, run.stderr, ("pwned", "set-output"))
    assert "\n::set-output" not in run.stdout
    assert "| x ::set-output" not in run.summary  # table cells hold no raw line breaks either
    annotation = next(line for line in run.stdout.splitlines() if line.startswith("::error"))
    assert "x\\x0a::set-output" in annotation  # the line break shown escaped, inside one annotation


def test_secrets_appear_nowhere(
    mlflow_server: MlflowServer, registered: models.Registered, tmp_path: Path
) -> None:
    """Canary secrets in every secret input: masked first, and absent from outputs, summary, report, log."""
    profile_secret = "CANARY-profile-token-55aa"  # noqa: S105 - a canary, not a credential
    inputs = {
        "model": registered.name,
        "version-or-stage": "1",
        "tracking-uri": mlflow_server.url,
        "databricks-host": "https://canary.invalid",
        **CANARIES,
        "databricks-config": f"[prod_env]\nhost = https://prod.invalid\ntoken = {profile_secret}\n",
    }
    run = run_action(tmp_path, inputs)
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    masked = {line[len("::add-mask::") :] for line in lines if line.startswith("::add-mask::")}
    for secret in [*CANARIES.values(), profile_secret]:
        assert secret in masked
        first_mask = next(i for i, line in enumerate(lines) if line == f"::add-mask::{secret}")
        assert first_mask < len(masked), "masks come before any other line"
        visible = [line for line in lines if not line.startswith("::add-mask::")]
        assert not any(secret in line for line in visible)
        assert secret not in run.stderr
        assert secret not in run.summary
        assert secret not in json.dumps(run.outputs)
        assert secret not in (run.workspace / "mlflow-version-check-report.json").read_text()
    assert list((tmp_path / "tmp").glob("mvc-home-*")) == [], "the private HOME is removed"


def test_plain_environment_variables_for_other_ci(
    mlflow_server: MlflowServer, registered: models.Registered, tmp_path: Path
) -> None:
    """Outside GitHub (GitLab, Jenkins): MVC_* variables, no masks, outputs printed, exit code as usual."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("INPUT_", "GITHUB_", "MLFLOW_"))
    }
    env.update(
        MVC_MODEL=registered.name,
        MVC_VERSION_OR_STAGE="1",
        MVC_TRACKING_URI=mlflow_server.url,
        MVC_MLFLOW_TRACKING_TOKEN="CANARY-plain-ci-token",  # noqa: S106 - a canary
    )
    completed = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "output passed=true" in completed.stdout
    assert "::" not in completed.stdout
    assert "CANARY-plain-ci-token" not in completed.stdout + completed.stderr
    assert (workspace / "mlflow-version-check-report.json").is_file()


def test_artifact_uploaded_with_id_output(
    mlflow_server: MlflowServer, registered: models.Registered, tmp_path: Path
) -> None:
    """With the runner's token and results URL the report is uploaded and artifact-id is set."""
    with ArtifactServiceDouble() as service:
        run = run_action(
            tmp_path,
            {
                "model": registered.name,
                "version-or-stage": "1",
                "tracking-uri": mlflow_server.url,
                "artifact-name": "rep",
            },
            {"ACTIONS_RUNTIME_TOKEN": service.token, "ACTIONS_RESULTS_URL": service.url},
        )
        stored = service.artifacts["rep"]
    assert run.exit_code == 0, run.stderr
    assert stored.finalized
    assert run.outputs["artifact-id"] == str(stored.artifact_id)
    assert service.token not in run.stdout + run.stderr + run.summary


def test_upload_failure_is_a_warning_not_a_verdict(
    mlflow_server: MlflowServer, registered: models.Registered, tmp_path: Path
) -> None:
    """An artifact service that stays down: the check still passes, with a warning and a summary note."""
    with ArtifactServiceDouble(fail_first=1000) as service:
        run = run_action(
            tmp_path,
            {"model": registered.name, "version-or-stage": "1", "tracking-uri": mlflow_server.url},
            {"ACTIONS_RUNTIME_TOKEN": service.token, "ACTIONS_RESULTS_URL": service.url},
            program=WITHOUT_RETRY_WAITS,
        )
    assert run.exit_code == 0
    assert run.outputs["passed"] == "true" and run.outputs["artifact-id"] == ""
    assert len(service.requests) == 5  # every attempt was made (the retries did not wait)
    assert "::warning title=mlflow-version-check::artifact upload failed" in run.stdout
    assert "Artifact upload failed" in run.summary


def test_files_in_workspace_belong_to_its_owner(
    mlflow_server: MlflowServer, registered: models.Registered, tmp_path: Path
) -> None:
    """Run as root, the report written in the workspace is given to the workspace's owner."""
    if os.geteuid() != 0:
        pytest.skip("needs root, as in the container")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    os.chown(workspace, 4321, 4321)
    run = run_action(
        tmp_path,
        {"model": registered.name, "version-or-stage": "1", "tracking-uri": mlflow_server.url,
         "report-file": "out/reports/r.json"},
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    for path in (workspace / "out", workspace / "out/reports", workspace / "out/reports/r.json"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321), path


def test_compare_summary_lists_differences_and_ignored_fields(
    mlflow_server: MlflowServer, mlflow_server_2: MlflowServer, tmp_path: Path
) -> None:
    """compare through the action: the job summary has the differing path and the ignored MLmodel fields."""
    original = models.log_directory_flavor(mlflow_server.url, unique("action_dir"))

    def tamper(model: Path) -> None:
        next((model / "artifacts").rglob("layer0.bin")).write_bytes(b"changed")

    copy = models.copy_version(
        mlflow_server.url, original, mlflow_server_2.url, unique("action_copy"), tamper=tamper
    )
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "config.yaml").write_text(
        f"tracking_server_1: {{host: '{mlflow_server.url}', model: {original.name}, version_or_stage: '1'}}\n"
        f"tracking_server_2: {{host: '{mlflow_server_2.url}', model: {copy.name}, version_or_stage: '1'}}\n"
    )
    run = run_action(tmp_path, {"command": "compare", "config-file": "config.yaml"})
    assert run.exit_code == 1, run.stderr
    assert run.outputs["run-model-equals"] == "false" and run.outputs["reg-model-equals"] == "false"
    assert "## ❌ mlflow-version-check compare: failed" in run.summary
    assert "| changed | artifacts/net/weights/layer0.bin |" in run.summary
    assert "ignored (by rule)" in run.summary and "| MLmodel | run_id |" in run.summary
    assert (
        "::error title=mlflow-version-check::run models differ: artifacts/net/weights/layer0.bin (changed)"
        in run.stdout
    )


def test_private_credentials_file_is_owner_only_and_removed(tmp_path: Path) -> None:
    """The .databrickscfg is 0600 in a 0700 HOME while the run lasts, and gone afterwards."""
    from mlflow_version_check.ci.action import private_credentials, read_inputs

    environ = {
        "INPUT_DATABRICKS-HOST": "https://ws.example",
        "INPUT_DATABRICKS-TOKEN": "dapi-canary",
        "INPUT_DATABRICKS-CONFIG": "[prod_env]\nhost = https://prod.example\ntoken = other\n",
        "HOME": "/original/home",
    }
    with private_credentials(read_inputs(environ), environ) as home:
        assert home is not None
        config = home / ".databrickscfg"
        assert oct(home.stat().st_mode & 0o777) == "0o700"
        assert oct(config.stat().st_mode & 0o777) == "0o600"
        text = config.read_text()
        assert "[DEFAULT]\nhost = https://ws.example\ntoken = dapi-canary" in text
        assert "[prod_env]" in text
        assert environ["HOME"] == str(home) and environ["DATABRICKS_CONFIG_FILE"] == str(config)
    assert not home.exists()
    assert environ["HOME"] == "/original/home" and "DATABRICKS_CONFIG_FILE" not in environ


def test_each_output_gets_its_own_random_delimiter(tmp_path: Path) -> None:
    """Outputs use a fresh unguessable delimiter each time, and parse back to the same values."""
    from mlflow_version_check.ci.workflow_commands import write_outputs

    path = tmp_path / "output"
    write_outputs(str(path), {"a": "1", "b": "two\nlines"})
    write_outputs(str(path), {"c": ""})
    delimiters = [line.split("<<", 1)[1] for line in path.read_text().splitlines() if "<<" in line]
    assert len(set(delimiters)) == 3
    assert all(len(d) > 30 for d in delimiters)
    assert parse_outputs(path.read_text()) == {"a": "1", "b": "two\nlines", "c": ""}


def test_a_stale_report_is_never_published_as_the_verdict(
    mlflow_server: MlflowServer, registered: models.Registered, tmp_path: Path
) -> None:
    """An earlier run's passing report at report-file, and this run fails before writing one: no
    verdict is read from the old file (passed=false, equals empty, no report path, "no report")."""
    passing = run_action(
        tmp_path,
        {
            "model": registered.name,
            "version-or-stage": "1",
            "tracking-uri": mlflow_server.url,
            "junit-file": "j.xml",
        },
    )
    assert passing.outputs["passed"] == "true"
    stale = (passing.workspace / "mlflow-version-check-report.json").read_text()
    (passing.workspace / "not-a-file").mkdir()
    failing = run_action(
        tmp_path,
        {"model": registered.name, "version-or-stage": "1", "tracking-uri": mlflow_server.url,
         "junit-file": "not-a-file"},
    )  # fmt: skip
    assert failing.exit_code == 2, failing.stdout + failing.stderr
    assert failing.outputs["passed"] == "false"
    assert failing.outputs["equals"] == "" and failing.outputs["run-model-equals"] == ""
    assert failing.outputs["report-path"] == ""
    assert "no report" in failing.summary and "✅" not in failing.summary
    assert (failing.workspace / "mlflow-version-check-report.json").read_text() == stale  # left alone


def test_each_run_stamps_its_report_and_junit_with_a_fresh_nonce(
    mlflow_server: MlflowServer, registered: models.Registered, tmp_path: Path
) -> None:
    """The report and the JUnit file carry the run's nonce; two runs never share one."""
    inputs = {"model": registered.name, "version-or-stage": "1", "tracking-uri": mlflow_server.url,
              "junit-file": "j.xml"}  # fmt: skip
    nonces = []
    for attempt in ("first", "second"):
        run = run_action(tmp_path / attempt, inputs)
        nonce = run.report()["System"]["run_nonce"]  # type: ignore[index]
        assert isinstance(nonce, str) and len(nonce) == 32
        assert f'<property name="run_nonce" value="{nonce}"' in (run.workspace / "j.xml").read_text()
        assert nonce not in run.summary  # not a secret, but nothing a reader needs
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_databricks_config_secrets_in_colon_form_are_masked_and_removed(tmp_path: Path) -> None:
    """databricks-config written `key: value` (as configparser reads it too): each secret is masked
    before anything else and appears in no other line, output, summary or report."""
    token, secret = "CANARY-colon-token-4e1d", "CANARY-colon-secret-9c2b"
    config = f"[prod]\nhost: http://127.0.0.1:9\ntoken: {token}\nclient_secret:{secret}\n"
    run = run_action(
        tmp_path,
        {"model": "m", "version-or-stage": "1", "tracking-uri": "databricks://prod",
         "databricks-config": config, "upload-artifact": "false"},
    )  # fmt: skip
    assert run.exit_code == 3, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    masks = lines[: next(i for i, line in enumerate(lines) if not line.startswith("::add-mask::"))]
    for value in (token, secret):
        assert f"::add-mask::{value}" in masks
        others = [line for line in lines if not line.startswith("::add-mask::")]
        assert not any(value in line for line in others + run.stderr.splitlines())
        assert value not in run.summary and value not in json.dumps(run.outputs)
        assert value not in json.dumps(run.report())


def test_messages_name_the_actions_inputs_not_the_clis_options(tmp_path: Path) -> None:
    """A wrong input is explained in the action's own terms: its input, not a CLI flag it cannot set."""
    run = run_action(tmp_path, {"model": "m", "version-or-stage": "1", "tracking-uri": "localhost:5000"})
    assert run.exit_code == 2
    error = next(line for line in run.stdout.splitlines() if line.startswith("error: "))
    assert "the tracking-uri input" in error and "--tracking-uri" not in error, error
    report = json.loads((run.workspace / "mlflow-version-check-report.json").read_text())
    assert "the tracking-uri input" in report["error"]["message"]
