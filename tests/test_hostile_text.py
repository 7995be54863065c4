"""Hostile text from models, servers and configs never becomes a workflow command, a raw control
character, an @mention, a link or broken XML: the CLI's stdout and stderr, the action's log,
annotations and job summary, and the JUnit file, checked against a double of the runner's parser.

The JSON report is the exception by design: it keeps every name exactly (JSON escapes it).
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.conftest import load_valid_report, run_command
from tests.fault_proxy import FaultProxy
from tests.runner_commands import RunnerLog, action_commands, assert_only_own_commands
from tests.test_action import run_action

pytestmark = pytest.mark.server
_names = itertools.count()

RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# MLflow refuses ':' and '/' in model names; everything else here it stores as given.
HOSTILE_NAME = "hostile{n}\n##[add-mask]mvcname\x1b[2J\u202e @octocat <b>x<b> |cell| www.evil.example"
HOSTILE_FILES = {
    "::add-mask::mvcfile.txt": b"a",
    "nl\n::stop-commands::mvcstop.bin": b"b",
    "esc\x1b]8;;evil\x07link.txt": b"c",
    "sep\u2028::error::mvcsep.txt": b"d",
    "legacy ##[set-output name=passed;]true.txt": b"e",
    "@octocat <b>x<b> |y| www.evil.example.txt": b"f",
    "\t::notice::mvctab.txt": b"g",  # MLflow's local store cannot read a name with \r (exit 3)
}
HOSTILE_MLMODEL_KEY = "\n::add-mask::mvckey ##[error]forged-key"
HOSTILE_ERROR = "boom\n::add-mask::mvcerr ##[error]forged-error \x1b[31m @octocat <script>"
FORGED_WORDS = ("mvcname", "mvcfile", "mvcstop", "mvcsep", "mvctab", "mvckey", "mvcerr", "forged")


def _assert_inert_stream(text: str, where: str) -> None:
    """No workflow command, no raw control character (line breaks are the program's own)."""
    commands = RunnerLog().feed(text).processed
    assert commands == [], f"{where} would run {commands}"
    assert RAW_CONTROL.search(text) is None, f"{where} holds a raw control character: {text!r}"


def _assert_junit_inert(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    ElementTree.fromstring(text.split("\n", 1)[1])  # noqa: S314 - the tool's own output, well-formed?
    assert RAW_CONTROL.search(text.replace("\n", " ")) is None
    assert RunnerLog().feed(text).processed == []


def _assert_summary_inert(summary: str) -> None:
    """No mention, autolink, HTML or raw control; every table row has its header's column count."""
    assert "@octocat" not in summary and "www.evil" not in summary
    assert "<b>" not in summary and "<script" not in summary and "<img" not in summary
    assert RAW_CONTROL.search(summary.replace("\n", " ")) is None
    columns = 0
    for line in summary.splitlines():
        pipes = len(re.findall(r"(?<!\\)\|", line))
        if not line.startswith("|"):
            columns = 0
        elif columns == 0:
            columns = pipes  # a table's header row
        else:
            assert pipes == columns, f"a table row with {pipes} pipes, not {columns}: {line}"


def _local_store(root: Path, name: str, model_dir: Path) -> tuple[str, models.Registered]:
    """A SQLite tracking store with a file: artifact root: the one kind of store that can hold any
    file name (MLflow's HTTP artifact routes refuse line breaks in paths)."""
    root.mkdir(parents=True)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    experiment = models._client(tracking_uri).create_experiment(
        "hostile", artifact_location=(root / "artifacts").as_uri()
    )
    version = models.register_run_artifacts(
        tracking_uri, name, source_form="runs", model_dir=model_dir, experiment_id=experiment
    )
    return tracking_uri, version


@pytest.fixture(scope="module")
def hostile_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[str, models.Registered], ...]:
    """A model with a hostile name and hostile file names in one store, and in another store the same
    model with every hostile file changed and a hostile key added to its MLmodel."""
    name = HOSTILE_NAME.format(n=next(_names))
    root = tmp_path_factory.mktemp("hostile")
    model_dir = models.save_sklearn_locally(root / "original")
    for file_name, data in HOSTILE_FILES.items():
        (model_dir / file_name).write_bytes(data)
    first = _local_store(root / "store1", name, model_dir)
    tampered = root / "tampered" / "model"
    shutil.copytree(model_dir, tampered)
    for file_name, data in HOSTILE_FILES.items():
        (tampered / file_name).write_bytes(data + b" changed")
    mlmodel = yaml.safe_load((tampered / "MLmodel").read_text())
    mlmodel[HOSTILE_MLMODEL_KEY] = "x\r::error::forged-note"
    (tampered / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    second = _local_store(root / "store2", name, tampered)
    return first, second


def _config(
    tmp_path: Path, first: tuple[str, models.Registered], second: tuple[str, models.Registered]
) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                f"tracking_server_{index}": {
                    "host": host,
                    "model": version.name,
                    "version_or_stage": version.version,
                }
                for index, (host, version) in enumerate((first, second), start=1)
            }
        )
    )
    return config


def test_cli_compare_with_hostile_names_prints_no_command(
    hostile_pair: tuple[tuple[str, models.Registered], ...], tmp_path: Path
) -> None:
    """Hostile model and file names and MLmodel keys: stdout, stderr and JUnit inert; report exact."""
    config = _config(tmp_path, *hostile_pair)
    original = hostile_pair[0][1]
    report_file, junit_file = tmp_path / "report.json", tmp_path / "junit.xml"
    run = run_command(
        "compare-model-versions", "--config-file", str(config), "--report-file", str(report_file),
        "--junit-file", str(junit_file), "--verbose",
    )  # fmt: skip
    assert run.exit_code == 1, run.stderr
    _assert_inert_stream(run.stdout, "stdout")
    _assert_inert_stream(run.stderr, "stderr")
    _assert_junit_inert(junit_file)
    report = load_valid_report(report_file)
    assert report["Model_Versions"]["tracking_server_1"]["name"] == original.name
    paths = {d["path"] for d in report["Run_Model_Comparison"]["differences"]}
    assert set(HOSTILE_FILES) <= paths, paths  # the report keeps every name exactly
    note = next(d["note"] for d in report["Run_Model_Comparison"]["differences"] if d["path"] == "MLmodel")
    assert HOSTILE_MLMODEL_KEY in note
    # The escaped names are still shown to the reader.
    assert "nl\\x0a::stop-commands::mvcstop.bin" in run.stdout


def test_action_compare_with_hostile_names_runs_only_its_own_commands(
    hostile_pair: tuple[tuple[str, models.Registered], ...], tmp_path: Path
) -> None:
    """Through the action: only its fence and its own annotations run; the summary is inert."""
    config = _config(tmp_path, *hostile_pair)
    action = run_action(
        tmp_path,
        {
            "COMMAND": "compare",
            "CONFIG-FILE": str(config),
            "JUNIT-FILE": "junit.xml",
            "UPLOAD-ARTIFACT": "false",
        },
    )
    assert action.exit_code == 1, action.stdout + action.stderr
    assert_only_own_commands(action.stdout, action.stderr, FORGED_WORDS)
    assert any(c.name == "error" for c in action_commands(action.stdout, action.stderr))
    _assert_summary_inert(action.summary)
    _assert_junit_inert(action.workspace / "junit.xml")
    assert action.outputs["equals"] == "false" and action.outputs["passed"] == "false"


@pytest.fixture(scope="module")
def plain_model(mlflow_server: MlflowServer) -> models.Registered:
    return models.log_sklearn(mlflow_server.url, unique("hostile_plain"))


def test_hostile_server_error_body(
    plain_model: models.Registered, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """A server whose error body holds commands, controls and markup: one inert error line, inert
    JUnit, and in the action only the action's own commands."""
    with FaultProxy(mlflow_server.url) as proxy:
        # 400: not retried, and MLflow puts the body's message into its exception.
        proxy.add(r"model-versions/get\?", "status", status=400, message=HOSTILE_ERROR)
        junit_file = tmp_path / "junit.xml"
        run = run_command(
            "check-model-version", "--model", plain_model.name, "--version-or-stage", plain_model.version,
            "--tracking-uri", proxy.url, "--retries", "0", "--report-file", str(tmp_path / "r.json"),
            "--junit-file", str(junit_file),
        )  # fmt: skip
        assert run.exit_code == 3, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "mvcerr" in run.stderr  # the server's words are shown, escaped
        _assert_inert_stream(run.stdout, "stdout")
        _assert_inert_stream(run.stderr, "stderr")
        _assert_junit_inert(junit_file)
        action = run_action(
            tmp_path / "action",
            {"MODEL": plain_model.name, "VERSION-OR-STAGE": plain_model.version, "TRACKING-URI": proxy.url,
             "UPLOAD-ARTIFACT": "false"},
        )  # fmt: skip
    assert action.exit_code == 3, action.stdout + action.stderr
    assert_only_own_commands(action.stdout, action.stderr, FORGED_WORDS)
    _assert_summary_inert(action.summary)


def test_hostile_config_value(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """A config value with a line break and a command: one inert error line naming it escaped."""
    config = tmp_path / "config.yaml"
    side = {"host": mlflow_server.url, "model": "nope\n##[add-mask]mvccfg\x1b[1m", "version_or_stage": "1"}
    config.write_text(yaml.safe_dump({"tracking_server_1": side, "tracking_server_2": side}))
    run = run_command(
        "compare-model-versions", "--config-file", str(config), "--report-file", str(tmp_path / "r.json")
    )
    assert run.exit_code == 3, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "mvccfg" in run.stderr
    _assert_inert_stream(run.stderr, "stderr")
    report = json.loads((tmp_path / "r.json").read_text())
    assert "nope\n##[add-mask]mvccfg" in report["error"]["message"]  # the report keeps it exactly
