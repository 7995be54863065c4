"""The action's audit and audit-merge commands: inputs, the reports glob, outputs, annotations and
summary, and a two-shard job matrix with a merge job run by act.

Every real run audits one registry of its own (a server this module starts): four real versions, of
which one sealed with a recorded tag and then changed by one byte (it fails) and one sealed and
intact (it passes against its tag), and a model whose 104 versions point at files that do not exist
(each could not be checked), enough to pass every cap of the annotations and the job summary.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mlflow import MlflowClient

from mlflow_version_check import seal_model_version
from mlflow_version_check.audit import shard_of
from mlflow_version_check.report.document import load_schema
from mlflow_version_check.report.markdown import AUDIT_ROWS_SHOWN
from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer, free_port
from tests.runner_commands import assert_only_own_commands
from tests.test_action import ActionRun, run_action
from tests.test_action_seal import CHECKOUT, copy_of_the_tree, error_line
from tests.test_container import BASE_IMAGE, image

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The image fixture of tests.test_container (the action's image from the local base), shared here.
__all__ = ["image"]

# Names chosen so that each of two shards holds real versions: audit_churn 1 and audit_fraud 1 are
# in shard 2, audit_churn 2 and audit_sales 1 in shard 1 (the fixture checks it).
CHURN, FRAUD, SALES, BROKEN = "audit_churn", "audit_fraud", "audit_sales", "audit_broken"
BROKEN_VERSIONS = 104
REAL_VERSIONS = 4
TOTAL = REAL_VERSIONS + BROKEN_VERSIONS
UNHEALTHY = 1 + BROKEN_VERSIONS
EXPECTED_SUMMARY = {"passed": 3, "failed": 1, "error": BROKEN_VERSIONS, "total": TOTAL}
AUDIT_OUTPUTS = {"passed", "equals", "run-model-equals", "reg-model-equals", "report-path", "artifact-id",
                 "failed-count", "error-count"}  # fmt: skip


def statuses(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Each audited version's status, by (model, version)."""
    return {(item["model"], item["version"]): item["status"] for item in report["Audit"]["versions"]}


def annotations(run: ActionRun) -> list[str]:
    return [line for line in run.stdout.splitlines() if line.startswith("::error ")]


# ---------------------------------------------------------------------------------------------
# Inputs: refused before anything runs (exit 2, one line: what, cause, fix), with an error report.

AUDIT_BASE = {"command": "audit", "tracking-uri": "http://127.0.0.1:9"}
MERGE_BASE = {"command": "audit-merge", "reports": "shards/*.json"}

WRONG_INPUTS = [
    pytest.param(
        {**AUDIT_BASE, "model": "m"},
        [
            "input model does not apply to command audit",
            "read only by check, seal and verify",
            "Likely cause: audit takes its model names in the models input",
            "Fix: remove model",
        ],
        id="audit-with-model",
    ),
    pytest.param(
        {**AUDIT_BASE, "version-or-stage": "production"},
        ["input version-or-stage does not apply to command audit", "the versions input"],
        id="audit-with-version-or-stage",
    ),
    pytest.param(
        {**AUDIT_BASE, "strict": "true"},
        ["input strict does not apply to command audit", "read only by check, compare, seal and verify"],
        id="audit-strict",
    ),
    pytest.param(
        {**AUDIT_BASE, "download-dir": "models"},
        ["input download-dir does not apply to command audit"],
        id="audit-with-download-dir",
    ),
    pytest.param(
        {**AUDIT_BASE, "native-model": "auto"},
        ["input native-model does not apply to command audit"],
        id="audit-with-native-model",
    ),
    pytest.param(
        {**AUDIT_BASE, "expect-digest": "sha256:" + "0" * 64},
        ["input expect-digest does not apply to command audit", "read only by verify"],
        id="audit-with-expect-digest",
    ),
    pytest.param(
        {**AUDIT_BASE, "reports": "shards/*.json"},
        ["input reports does not apply to command audit", "read only by audit-merge"],
        id="audit-with-reports",
    ),
    pytest.param(
        {**AUDIT_BASE, "models": " , \n ,"},
        ["input models is", "which names no model", "or leave models out"],
        id="audit-models-naming-nothing",
    ),
    pytest.param(
        {**AUDIT_BASE, "jobs": "0"},
        ["input jobs is '0', not a whole number from 1 to 64"],
        id="audit-jobs-zero",
    ),
    pytest.param(
        {**AUDIT_BASE, "jobs": "four"},
        ["input jobs is 'four', not a whole number from 1 to 64"],
        id="audit-jobs-not-a-number",
    ),
    pytest.param(
        {**AUDIT_BASE, "shard": "3/2"},
        ["the shard input '3/2' is not I/N with 1 <= I <= N", "Fix: give e.g. 2/4"],
        id="audit-shard-out-of-range",
    ),
    pytest.param(
        {**AUDIT_BASE, "shard": "auto"},
        ["input shard is auto, which reads GitLab's CI_NODE_INDEX and CI_NODE_TOTAL", "Fix: give I/N"],
        id="audit-shard-auto-on-github",
    ),
    pytest.param(
        {**AUDIT_BASE, "versions": "newest"},
        ["the versions input 'newest' is not one of all, aliased, latest"],
        id="audit-unknown-versions",
    ),
    pytest.param(
        {**MERGE_BASE, "shard": "1/2"},
        ["input shard does not apply to command audit-merge", "read only by audit"],
        id="merge-with-shard",
    ),
    pytest.param(
        {**MERGE_BASE, "models": "fraud"},
        ["input models does not apply to command audit-merge"],
        id="merge-with-models",
    ),
    pytest.param(
        {**MERGE_BASE, "versions": "latest"},
        ["input versions does not apply to command audit-merge"],
        id="merge-with-versions",
    ),
    pytest.param(
        {**MERGE_BASE, "tracking-uri": "http://127.0.0.1:9"},
        ["input tracking-uri does not apply to command audit-merge", "check, seal, verify and audit"],
        id="merge-with-tracking-uri",
    ),
    pytest.param(
        {**MERGE_BASE, "mlflow-tracking-token": "CANARY-merge-token-1f2e"},
        ["input mlflow-tracking-token does not apply to command audit-merge"],
        id="merge-with-a-credential",
    ),
    pytest.param(
        {"command": "audit-merge"},
        ["command audit-merge needs the reports input", "e.g. reports: shards/*.json"],
        id="merge-without-reports",
    ),
    pytest.param(
        {"command": "check", "model": "m", "version-or-stage": "1", "shard": "1/2"},
        ["input shard does not apply to command check", "read only by audit", "set command to audit"],
        id="check-with-shard",
    ),
    pytest.param(
        {"command": "audits"},
        ["input command is 'audits'", "audit (many versions of a registry) or audit-merge"],
        id="unknown-command",
    ),
]


@pytest.mark.parametrize(("inputs", "words"), WRONG_INPUTS)
def test_wrong_audit_inputs_are_one_line_and_exit_2(
    inputs: dict[str, str], words: list[str], tmp_path: Path
) -> None:
    """An input of another command, a value that cannot work, or a missing input: exit 2, one error
    line naming the input and the fix, no traceback, passed=false, an error report of the command."""
    run = run_action(tmp_path, inputs)
    assert run.exit_code == 2, run.stdout + run.stderr
    line = error_line(run)
    for word in words:
        assert word in line, line
    assert "Traceback" not in run.stdout + run.stderr
    assert "CANARY" not in run.stdout.replace("::add-mask::CANARY", "") + run.stderr + run.summary
    assert run.outputs["passed"] == "false"
    report = run.report()
    assert report["status"] == "error"
    command = {"audit-merge": "audit"}.get(inputs["command"], inputs["command"])
    assert report["System"]["command"] == (command if command in ("audit", "check") else "check")  # type: ignore[index]
    if inputs["command"] in ("audit", "audit-merge"):
        assert set(run.outputs) == AUDIT_OUTPUTS
        assert run.outputs["failed-count"] == run.outputs["error-count"] == ""
    else:
        assert "failed-count" not in run.outputs


def shard_report(workspace: Path, relative: str, shard: str | None) -> Path:
    """A minimal file that the reports glob can match (the glob's rules are checked before any is read)."""
    path = workspace / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"System": {"command": "audit"}, "Audit": {"shard": shard}}))
    return path


def test_reports_glob_that_matches_nothing_is_refused(tmp_path: Path) -> None:
    """A glob with no file behind it (an artifact not downloaded), or only folders: exit 2, one line
    that names the glob and says to download the shard reports there."""
    (tmp_path / "workspace" / "shards" / "only-a-folder.json").mkdir(parents=True)
    run = run_action(tmp_path, MERGE_BASE)
    assert run.exit_code == 2, run.stdout + run.stderr
    line = error_line(run)
    assert "input reports 'shards/*.json' matches no file in the workspace" in line
    assert "actions/download-artifact" in line and "Fix: download the shard reports" in line


OUTSIDE_GLOBS = [
    pytest.param("../outside/*.json", ["does not name files below the workspace", "no '..'"], id="dotdot"),
    pytest.param(
        "shards/../../outside/*.json", ["does not name files below the workspace"], id="inner-dotdot"
    ),
    pytest.param(
        "{outside}/*.json",
        ["is outside the workspace", "Fix: download the shard reports into the workspace"],
        id="absolute-elsewhere",
    ),
    pytest.param(
        "linked/*.json",
        ["matches linked/s1.json, which leads outside the workspace", "through a symlink"],
        id="symlinked-folder",
    ),
    # `**` does not descend into a symlinked folder: nothing outside is found.
    pytest.param("**/*.json", ["matches no file in the workspace"], id="recursive-glob"),
]


@pytest.mark.parametrize(("reports", "words"), OUTSIDE_GLOBS)
def test_reports_glob_cannot_leave_the_workspace(reports: str, words: list[str], tmp_path: Path) -> None:
    """`..`, an absolute path elsewhere, or a symlinked folder of the repository that leads out: the
    glob is refused (exit 2, one line), and no report outside the workspace is read."""
    outside = tmp_path / "outside"
    shard_report(outside, "s1.json", "1/1")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "linked").symlink_to(outside)
    run = run_action(tmp_path, {**MERGE_BASE, "reports": reports.format(outside=outside)})
    assert run.exit_code == 2, run.stdout + run.stderr
    line = error_line(run)
    for word in words:
        assert word in line, line
    assert run.report()["Options"]["inputs"]["reports"] == reports.format(outside=outside)  # type: ignore[index]


def test_reports_glob_never_takes_the_steps_own_report(tmp_path: Path) -> None:
    """A glob that would also match this step's report-file (left by an earlier run) and junit-file:
    those are left out, and a glob that matches nothing else is refused with a line that says so."""
    workspace = tmp_path / "workspace"
    shard_report(workspace, "shards/merged.json", None)
    shard_report(workspace, "shards/junit.json", None)
    run = run_action(
        tmp_path, {**MERGE_BASE, "report-file": "shards/merged.json", "junit-file": "shards/junit.json"}
    )
    assert run.exit_code == 2, run.stdout + run.stderr
    assert (
        "matches no file in the workspace but this step's own report-file or junit-file, which is never "
        "merged" in error_line(run)
    )


# ---------------------------------------------------------------------------------------------
# Real runs of the entrypoint against a registry of this module's own.


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A server with the registry of the module docstring."""
    with MlflowServer(tmp_path_factory.mktemp("audit-server")) as server:
        models.log_sklearn(server.url, CHURN, seed=1)
        models.log_sklearn(server.url, CHURN, seed=2)
        sales = models.log_sklearn(server.url, SALES, seed=3)
        fraud = models.log_sklearn(server.url, FRAUD, seed=4)
        for sealed in (sales, fraud):
            assert seal_model_version(sealed.name, "1", tracking_uri=server.url, record_tag=True).equals
        pickled = models.artifact_directory(server.artifacts, server.url, fraud) / "model.pkl"
        changed = bytearray(pickled.read_bytes())
        changed[len(changed) // 2] ^= 0x01
        pickled.write_bytes(bytes(changed))
        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        run_id = client.create_run("0").info.run_id
        client.create_registered_model(BROKEN)
        for number in range(BROKEN_VERSIONS):
            client.create_model_version(BROKEN, source=f"runs:/{run_id}/missing_{number}", run_id=run_id)
        layout = {(name, version): shard_of(name, version, 2) for name, version in
                  ((CHURN, "1"), (CHURN, "2"), (SALES, "1"), (FRAUD, "1"))}  # fmt: skip
        assert layout == {(CHURN, "1"): 2, (CHURN, "2"): 1, (SALES, "1"): 1, (FRAUD, "1"): 2}
        yield server


@pytest.fixture(scope="module")
def unsharded(registry: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> ActionRun:
    """The whole registry audited in one step, with a JUnit file: the verdict the shards must merge to."""
    return run_action(
        tmp_path_factory.mktemp("unsharded"),
        {"command": "audit", "tracking-uri": registry.url, "jobs": "8", "junit-file": "audit.xml"},
    )


def test_audit_fails_on_the_changed_version_with_counts(unsharded: ActionRun) -> None:
    """The unsharded audit: exit 1; passed/equals false, failed-count 1, error-count 104; the report
    names the changed version as failed against its seal tag, the sealed intact one as passed."""
    run = unsharded
    assert run.exit_code == 1, run.stdout[-3000:] + run.stderr
    assert set(run.outputs) == AUDIT_OUTPUTS
    assert run.outputs["passed"] == "false" and run.outputs["equals"] == "false"
    assert run.outputs["failed-count"] == "1" and run.outputs["error-count"] == str(BROKEN_VERSIONS)
    assert run.outputs["run-model-equals"] == run.outputs["reg-model-equals"] == ""
    report = run.report()
    audit: Any = report["Audit"]
    assert audit["summary"] == EXPECTED_SUMMARY and audit["shard"] is None
    failed = [item for item in audit["versions"] if item["status"] == "failed"]
    assert [(item["model"], item["version"]) for item in failed] == [(FRAUD, "1")]
    assert failed[0]["seal_verified"] is False
    by_key = {(item["model"], item["version"]): item for item in audit["versions"]}
    assert by_key[(SALES, "1")]["status"] == "passed" and by_key[(SALES, "1")]["seal_verified"] is True
    assert "audit.xml" in [path.name for path in run.workspace.iterdir()]


def test_audit_annotations_are_capped(unsharded: ActionRun) -> None:
    """Ten ::error:: annotations for 105 versions that did not pass: the failed version first, eight
    that could not be checked, then one that says how many more the report lists."""
    found = annotations(unsharded)
    assert len(found) == 10, found
    assert found[0].startswith(f"::error title=mlflow-version-check::audit: {FRAUD} version 1 failed: ")
    assert "is not the one seal recorded" in found[0]
    assert all(
        f"::audit: {BROKEN} version " in line and "could not be checked" in line for line in found[1:9]
    )
    assert found[9] == (
        f"::error title=mlflow-version-check::audit: {UNHEALTHY - 9} more versions did not pass (0 failed, "
        f"{UNHEALTHY - 9} could not be checked): the report mlflow-version-check-report.json lists every one "
        "(Audit.versions)"
    )


def test_audit_job_summary_table_is_capped(unsharded: ActionRun) -> None:
    """The job summary: the verdict, the counts, a table of the first 100 versions that did not pass
    and a last row saying how many more the report holds."""
    summary = unsharded.summary
    assert "## ❌ mlflow-version-check audit: failed" in summary
    assert (
        f"{TOTAL} versions checked of a selection of {TOTAL}: 3 passed, 1 failed, {BROKEN_VERSIONS} "
        in summary
    )
    rows = [line for line in summary.splitlines() if line.startswith(("| failed |", "| error |"))]
    assert len(rows) == AUDIT_ROWS_SHOWN
    assert f"| failed | {FRAUD} | 1 |" in summary
    assert f"| … | {UNHEALTHY - AUDIT_ROWS_SHOWN} more in the report | | |" in summary


def test_shards_merge_into_the_unsharded_verdict(
    registry: MlflowServer, unsharded: ActionRun, tmp_path: Path
) -> None:
    """Two shards (models as lines and commas) and audit-merge with a reports glob: the merged report
    has the unsharded audit's versions, statuses, counts and fingerprint, exit 1 and its outputs; a
    second merge whose report-file the glob matches gives the same; fail-on-difference: false passes
    the step (passed still false); one shard alone is refused (exit 2)."""
    workspace = tmp_path / "merge" / "workspace"
    for index in (1, 2):
        shard = run_action(
            tmp_path / f"shard{index}",
            {"command": "audit", "tracking-uri": registry.url, "shard": f"{index}/2",
             "models": f"{CHURN}, {FRAUD}\n{SALES}\n\n{BROKEN},", "report-file": f"audit-{index}.json"},
        )  # fmt: skip
        assert shard.exit_code == (1 if index == 2 else 3), shard.stdout[-3000:] + shard.stderr
        assert shard.report()["Audit"]["shard"] == f"{index}/2"  # type: ignore[index]
        (workspace / "shards" / str(index)).mkdir(parents=True)
        (shard.workspace / f"audit-{index}.json").rename(
            workspace / "shards" / str(index) / f"audit-{index}.json"
        )
    merged_runs = [
        run_action(tmp_path / "merge", {"command": "audit-merge", "reports": "shards/**/*.json",
                                         "report-file": "shards/merged.json"})
        for _ in range(2)
    ]  # fmt: skip
    expected = unsharded.report()
    for merged in merged_runs:
        assert merged.exit_code == 1, merged.stdout[-3000:] + merged.stderr
        assert merged.outputs["passed"] == "false" and merged.outputs["equals"] == "false"
        assert merged.outputs["failed-count"] == "1" and merged.outputs["error-count"] == str(BROKEN_VERSIONS)
        assert merged.outputs["report-path"] == "shards/merged.json"
        report: Any = merged.report()
        assert report["status"] == expected["status"] == "failed"
        assert report["Audit"]["summary"] == EXPECTED_SUMMARY
        assert len(report["Audit"]["merged_from"]) == 2
        assert report["Audit"]["selection"]["fingerprint"] == expected["Audit"]["selection"]["fingerprint"]  # type: ignore[index]
        assert statuses(report) == statuses(expected)  # type: ignore[arg-type]
        assert "(merged from 2 shard reports)" in merged.summary
    relaxed = run_action(
        tmp_path / "merge", {**MERGE_BASE, "reports": "shards/*/*.json", "fail-on-difference": "false"}
    )
    assert relaxed.exit_code == 0 and relaxed.outputs["passed"] == "false"
    alone = run_action(tmp_path / "merge", {**MERGE_BASE, "reports": "shards/1/*.json"})
    assert alone.exit_code == 2
    line = error_line(alone)
    assert "missing" in line and "2/2" in line and "only 1/2 given" in line, line


def test_hostile_model_name_and_token_stay_inert(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """A registered model whose name holds a line break and the runner's old `##[warning]` syntax,
    audited with a canary token: the name runs no workflow command (its annotation shows the break
    escaped, after the action's fence), no table cell of the summary breaks, and the token is masked
    first and appears in no other line, output, summary or report."""
    token = "CANARY-audit-token-6d0c"  # noqa: S105 - a canary, not a credential
    prefix = unique("audit_hostile")
    name = f"{prefix}\n##[warning]pwned %0A"
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    run_id = client.create_run("0").info.run_id
    client.create_registered_model(name)
    client.create_model_version(name, source=f"runs:/{run_id}/missing", run_id=run_id)
    run = run_action(
        tmp_path,
        {"command": "audit", "tracking-uri": mlflow_server.url, "filter": f"name LIKE '{prefix}%'",
         "mlflow-tracking-token": token},
    )  # fmt: skip
    assert run.exit_code == 3, run.stdout[-3000:] + run.stderr
    assert run.outputs["error-count"] == "1" and run.outputs["passed"] == "false"
    assert_only_own_commands(run.stdout, run.stderr, ("pwned",))
    (annotation,) = annotations(run)
    assert f"audit: {prefix}\\x0a##[warning]pwned %250A version 1 could not be checked" in annotation
    row = next(line for line in run.summary.splitlines() if line.startswith("| error |"))
    assert "pwned" in row and row.endswith("|"), row
    lines = run.stdout.splitlines()
    masks = lines[: next(i for i, line in enumerate(lines) if not line.startswith("::add-mask::"))]
    assert f"::add-mask::{token}" in masks
    report_text = (run.workspace / run.outputs["report-path"]).read_text()
    for where, text in {"log": "\n".join(lines[len(masks) :]) + run.stderr, "summary": run.summary,
                        "outputs": json.dumps(run.outputs), "report": report_text}.items():  # fmt: skip
        assert token not in text, where


# ---------------------------------------------------------------------------------------------
# act: a two-shard matrix job and a merge job, as the README's nightly workflow.

# actions/download-artifact cannot run here (act fetches it from github.com, and the job image has
# no Node.js): the merge job reads the shards' artifacts, uploaded by the action itself to act's
# artifact server, from that server's storage folder mounted read-only into the job, and unzips the
# `audit-shard-*` ones into shards/, as download-artifact with `pattern` and `merge-multiple` does.
AUDIT_WORKFLOW = f"""\
# Written by tests/test_action_audit.py: a registry audited in two shards, merged by a last job.
name: audit-shards
on: push
permissions:
  contents: read
jobs:
  audit:
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix:
        shard: [1, 2]
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false

      - name: Audit one shard
        id: audit
        continue-on-error: true
        uses: ./
        with:
          command: audit
          shard: ${{{{ matrix.shard }}}}/2
          models: |
            {CHURN}
            {FRAUD}, {SALES}
            {BROKEN}
          tracking-uri: ${{{{ vars.MVC_URL }}}}
          report-file: audit-shard-${{{{ matrix.shard }}}}.json
          artifact-name: audit-shard-${{{{ matrix.shard }}}}

      - name: Show the shard's outcome and outputs
        env:
          SHARD: ${{{{ matrix.shard }}}}
          OUTCOME: ${{{{ steps.audit.outcome }}}}
          OUTPUTS: ${{{{ toJSON(steps.audit.outputs) }}}}
        run: echo "SHARD-RESULT $SHARD $OUTCOME $(printf '%s' "$OUTPUTS" | tr -d '\\n')"

  merge:
    needs: audit
    if: ${{{{ !cancelled() }}}}
    runs-on: ubuntu-latest
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false

      - name: Collect the shard reports (in place of actions/download-artifact)
        shell: python3 {{0}}
        run: |
          import pathlib, zipfile
          for stored in sorted(pathlib.Path("/shard-artifacts").rglob("*.zip")):
              if stored.parent.name.startswith("audit-shard-"):
                  zipfile.ZipFile(stored).extractall("shards")
          print("COLLECTED", sorted(path.name for path in pathlib.Path("shards").iterdir()))

      - name: Merge the shards
        id: merge
        continue-on-error: true
        uses: ./
        with:
          command: audit-merge
          reports: shards/*.json
          report-file: registry-audit.json
          artifact-name: registry-audit

      - name: Show the merge's outcome and outputs
        env:
          OUTCOME: ${{{{ steps.merge.outcome }}}}
          OUTPUTS: ${{{{ toJSON(steps.merge.outputs) }}}}
        run: echo "MERGE-RESULT $OUTCOME $(printf '%s' "$OUTPUTS" | tr -d '\\n')"
"""


def job_lines(log: str, job: str) -> list[str]:
    """The lines act logged for one job of the workflow (prefixed `[audit-shards/<job> ]`)."""
    return [line for line in log.splitlines() if re.match(rf"\[audit-shards/{job}\s*\]", line)]


def job_summary(log: str, job: str) -> list[str]:
    """The job summaries act printed for a job: each from its `Summary - ` line to the job's next line."""
    summaries, current = [], None
    for line in log.splitlines():
        if re.match(r"\[audit-shards/", line):
            if current is not None:
                summaries.append("\n".join(current))
                current = None
            if re.match(rf"\[audit-shards/{job}\s*\]", line) and "Summary - " in line:
                current = [line.split("Summary - ", 1)[1]]
        elif current is not None:
            current.append(line)
    if current is not None:
        summaries.append("\n".join(current))
    return summaries


@pytest.fixture(scope="module")
def act_audit_run(
    image: str, registry: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One act run of AUDIT_WORKFLOW against the module's registry."""
    work = tmp_path_factory.mktemp("act-audit")
    tree = copy_of_the_tree(work / "repo")
    workflow = tree / ".github" / "workflows" / "audit-shards.yml"
    workflow.write_text(AUDIT_WORKFLOW)
    artifacts = work / "artifacts"
    artifacts.mkdir()
    completed = subprocess.run(
        [str(BIN / "act"), "push", "-W", str(workflow.relative_to(tree)),
         "-P", f"ubuntu-latest={BASE_IMAGE}", "--pull=false", "--network", "host",
         "--artifact-server-path", str(artifacts), "--artifact-server-addr", "127.0.0.1",
         "--artifact-server-port", str(free_port()), "--cache-server-addr", "127.0.0.1",
         "--container-options", f"--volume {artifacts}:/shard-artifacts:ro",
         f"--var=MVC_URL={registry.url}"],
        cwd=tree, capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    log = completed.stdout + completed.stderr
    stored = {}
    for path in artifacts.rglob("*.zip"):
        with zipfile.ZipFile(path) as opened:
            stored[path.parent.name] = {name: opened.read(name) for name in opened.namelist()}
    return {
        "code": completed.returncode,
        "log": log,
        "shards": {
            int(n): (o, json.loads(j)) for n, o, j in re.findall(r"SHARD-RESULT (\d) (\w+) (\{.*\})", log)
        },
        "merge": re.findall(r"MERGE-RESULT (\w+) (\{.*\})", log),
        "summary": job_summary(log, "merge"),
        "artifacts": stored,
    }


@pytest.mark.docker
@pytest.mark.act
def test_act_shards_audit_and_upload_their_reports(act_audit_run: dict[str, Any]) -> None:
    """Under act, each matrix job audits its shard: both steps fail (shard 2 holds the changed
    version: exit 1; shard 1 versions that could not be checked: exit 3) and still upload their
    report as their own artifact; the merge job runs after them."""
    log = act_audit_run["log"]
    assert act_audit_run["code"] == 0, log[-6000:]
    shards = act_audit_run["shards"]
    assert set(shards) == {1, 2}, log[-6000:]
    for index, (outcome, outputs) in shards.items():
        assert outcome == "failure", (index, outputs)
        assert outputs["passed"] == "false"
        assert outputs["report-path"] == f"audit-shard-{index}.json"
        assert outputs["artifact-id"]
    assert shards[2][1]["failed-count"] == "1" and shards[1][1]["failed-count"] == "0"
    assert int(shards[1][1]["error-count"]) + int(shards[2][1]["error-count"]) == BROKEN_VERSIONS
    stored = act_audit_run["artifacts"]
    assert set(stored) == {"audit-shard-1", "audit-shard-2", "registry-audit"}, log[-3000:]
    for index in (1, 2):
        (name,) = stored[f"audit-shard-{index}"]
        assert name == f"audit-shard-{index}.json"
        assert json.loads(stored[f"audit-shard-{index}"][name])["Audit"]["shard"] == f"{index}/2"


@pytest.mark.docker
@pytest.mark.act
def test_act_merge_gives_the_unsharded_verdict(act_audit_run: dict[str, Any], unsharded: ActionRun) -> None:
    """The merge job's audit-merge step: outcome failure, passed/equals false, failed-count 1; its
    uploaded report validates and has the unsharded audit's versions, statuses and counts, the
    changed version named as the one failure."""
    log = act_audit_run["log"]
    assert len(act_audit_run["merge"]) == 1, log[-6000:]
    ((outcome, raw),) = act_audit_run["merge"]
    outputs = json.loads(raw)
    assert outcome == "failure", outputs
    assert outputs["passed"] == "false" and outputs["equals"] == "false"
    assert outputs["failed-count"] == "1" and outputs["error-count"] == str(BROKEN_VERSIONS)
    assert outputs["report-path"] == "registry-audit.json" and outputs["artifact-id"]
    report = json.loads(act_audit_run["artifacts"]["registry-audit"]["registry-audit.json"])
    jsonschema.validate(report, load_schema(), cls=jsonschema.Draft202012Validator)
    expected: Any = unsharded.report()
    assert report["status"] == "failed" and report["Audit"]["summary"] == EXPECTED_SUMMARY
    assert [item["model"] + " " + item["version"] for item in report["Audit"]["versions"]
            if item["status"] == "failed"] == [f"{FRAUD} 1"]  # fmt: skip
    assert report["Audit"]["selection"]["fingerprint"] == expected["Audit"]["selection"]["fingerprint"]
    assert statuses(report) == statuses(expected)
    assert [entry.split(": ", 1)[0] for entry in report["Audit"]["merged_from"]] == ["1/2", "2/2"]


@pytest.mark.docker
@pytest.mark.act
def test_act_merge_annotations_and_summary_are_capped(act_audit_run: dict[str, Any]) -> None:
    """The merge step's annotations reach act as ten ::error:: commands, the failed version first
    and the last counting the rest; its job summary has the counts and the capped table, the failed
    version in it."""
    merge_lines = job_lines(act_audit_run["log"], "merge")
    errors = [line for line in merge_lines if "::error title=mlflow-version-check::audit: " in line]
    assert len(errors) == 10, "\n".join(merge_lines[-80:])
    assert f"audit: {FRAUD} version 1 failed" in errors[0]
    assert f"audit: {UNHEALTHY - 9} more versions did not pass" in errors[9]
    (summary,) = act_audit_run["summary"]
    assert summary.startswith("## ❌ mlflow-version-check audit: failed"), summary[:2000]
    assert f"{TOTAL} versions checked (merged from 2 shard reports) of a selection of {TOTAL}" in summary
    rows = [line for line in summary.splitlines() if line.startswith(("| failed |", "| error |"))]
    assert len(rows) == AUDIT_ROWS_SHOWN
    assert f"| failed | {FRAUD} | 1 |" in summary
    assert f"| … | {UNHEALTHY - AUDIT_ROWS_SHOWN} more in the report | | |" in summary
