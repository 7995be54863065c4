"""--junit-file (and the action's junit-file input): the result as JUnit XML for CI test views, one
test case per comparison, a <failure> naming the files that differ, an <error> when nothing could be
compared. Against real servers; the XML is parsed, never matched as text."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer, free_port
from tests.artifact_server import ArtifactServiceDouble
from tests.conftest import load_valid_report, run_command
from tests.test_action import run_action

pytestmark = pytest.mark.server


def parse(path: Path) -> ElementTree.Element:
    root = ElementTree.parse(path).getroot()  # noqa: S314 - the tool's own output
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    # The counts in the attributes agree with the cases, as CI views rely on them.
    assert int(suite.get("tests", "-1")) == len(cases) == int(root.get("tests", "-1"))
    assert int(suite.get("failures", "-1")) == sum(len(case.findall("failure")) for case in cases)
    assert int(suite.get("errors", "-1")) == sum(len(case.findall("error")) for case in cases)
    return suite


def check(server: MlflowServer, version: models.Registered, tmp_path: Path) -> tuple[int, Path, Path]:
    junit, report = tmp_path / "out" / "junit.xml", tmp_path / "out" / "report.json"
    run = run_command(
        "check-model-version", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", server.url, "--report-file", str(report), "--junit-file", str(junit),
    )  # fmt: skip
    assert f"junit: {junit}" in run.stdout or run.exit_code >= 2, run.stdout
    return run.exit_code, junit, report


def test_passing_check_is_one_passing_case(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    version = models.log_sklearn(mlflow_server.url, unique("junit_ok"))
    code, junit, report = check(mlflow_server, version, tmp_path)
    assert code == 0
    suite = parse(junit)
    (case,) = suite.findall("testcase")
    assert case.findall("failure") == [] and case.findall("error") == []
    assert f"{version.name} version {version.version}" in case.get("name", "")
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["mlflow_version"] == load_valid_report(report)["System"]["mlflow_version"]


def test_failed_check_names_the_problem(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """A truncated file in the one stored copy: a <failure> whose text says what is wrong."""
    version = models.log_sklearn(mlflow_server.url, unique("junit_tampered"))
    pickled = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version) / "model.pkl"
    pickled.write_bytes(pickled.read_bytes()[:-10])
    code, junit, _ = check(mlflow_server, version, tmp_path)
    assert code == 1
    (failure,) = parse(junit).iter("failure")
    assert "model_size_bytes" in (failure.text or "") + failure.get("message", "")


def test_error_is_one_error_case(tmp_path: Path) -> None:
    """A server that refuses connections: the JUnit file still appears, with one <error> of that type."""
    dead = MlflowServer(tmp_path, port=free_port())  # never started
    code, junit, report = check(dead, models.Registered("m", "1", "", None), tmp_path)
    assert code == 3
    (error,) = parse(junit).iter("error")
    assert error.get("type") == "ServerUnreachable"
    assert error.get("message") == load_valid_report(report)["error"]["message"]


def test_compare_has_a_case_per_role_and_lists_changed_files(
    mlflow_server: MlflowServer, mlflow_server_2: MlflowServer, tmp_path: Path
) -> None:
    original = models.log_directory_flavor(mlflow_server.url, unique("junit_original"))

    def tamper(model: Path) -> None:
        target = next((model / "artifacts").rglob("layer1.bin"))
        target.write_bytes(target.read_bytes() + b"\0")

    copy = models.copy_version(
        mlflow_server.url, original, mlflow_server_2.url, unique("junit_copy"), tamper=tamper
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "tracking_server_1": {
                    "host": mlflow_server.url,
                    "model": original.name,
                    "version_or_stage": original.version,
                },
                "tracking_server_2": {
                    "host": mlflow_server_2.url,
                    "model": copy.name,
                    "version_or_stage": copy.version,
                },
            }
        )
    )
    junit = tmp_path / "junit.xml"
    run = run_command("compare-model-versions", "--config-file", str(config), "--junit-file", str(junit))
    assert run.exit_code == 1, run.stderr
    cases = parse(junit).findall("testcase")
    assert [case.get("name", "").split(":")[0] for case in cases] == ["run models", "registry models"]
    for case in cases:
        (failure,) = case.findall("failure")
        assert failure.get("message") == "1 file(s) differ"
        assert "changed: artifacts/net/weights/layer1.bin" in (failure.text or "")


def test_junit_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    run = run_command("check-model-version", "--model", "m", "--version-or-stage", "1",
                      "--tracking-uri", "http://127.0.0.1:9", "--junit-file", str(tmp_path))  # fmt: skip
    assert run.exit_code == 2
    assert "--junit-file" in run.stderr and "is a directory" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_action_writes_and_uploads_the_junit_file(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """The action's junit-file input: written in the workspace and uploaded next to the report."""
    version = models.log_sklearn(mlflow_server.url, unique("junit_action"))
    with ArtifactServiceDouble() as service:
        run = run_action(
            tmp_path,
            {"model": version.name, "version-or-stage": version.version, "tracking-uri": mlflow_server.url,
             "junit-file": "reports/junit.xml", "artifact-name": "with-junit"},
            {"ACTIONS_RUNTIME_TOKEN": service.token, "ACTIONS_RESULTS_URL": service.url},
        )  # fmt: skip
        stored = service.artifacts["with-junit"]
    assert run.exit_code == 0, run.stderr
    assert parse(run.workspace / "reports" / "junit.xml").findall("testcase")
    with zipfile.ZipFile(io.BytesIO(stored.content or b"")) as archive:
        assert sorted(archive.namelist()) == ["junit.xml", "mlflow-version-check-report.json"]
