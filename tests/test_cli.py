"""The command line without a model: help, version, bad invocations, an unreachable server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlflow_version_check import __version__
from mlflow_version_check.cli import check_model_version_main, main
from tests.conftest import load_valid_report, run_command

CHECK_OPTIONS = [
    "--junit-file",
    "--model",
    "--version-or-stage",
    "--download-dir",
    "--report-file",
    "--tracking-uri",
    "--registry-uri",
    "--strict",
    "--native-model",
    "--timeout",
    "--retries",
    "--verbose",
]


COMPARE_OPTIONS = [
    "--config-file", "--download-dir", "--report-file", "--junit-file", "--compare-run-models",
    "--compare-reg-models",
    "--strict", "--native-model", "--timeout", "--retries", "--verbose",
]  # fmt: skip
CHECK_EXIT_CODES = "Exit codes: 0 equal, 1 different, 2 wrong invocation, 3 could not check"
COMPARE_EXIT_CODES = "Exit codes: 0 equal, 1 different"


@pytest.mark.parametrize(
    ("program", "args", "options", "exit_codes"),
    [
        pytest.param("check-model-version", ["--help"], CHECK_OPTIONS, CHECK_EXIT_CODES,
                     id="check-model-version"),
        pytest.param("mlflow-version-check", ["check", "--help"], CHECK_OPTIONS, CHECK_EXIT_CODES,
                     id="mlflow-version-check-check"),
        pytest.param("compare-model-versions", ["--help"], COMPARE_OPTIONS, COMPARE_EXIT_CODES,
                     id="compare-model-versions"),
        pytest.param("mlflow-version-check", ["compare", "--help"], COMPARE_OPTIONS, COMPARE_EXIT_CODES,
                     id="mlflow-version-check-compare"),
    ],
)  # fmt: skip
def test_help_lists_every_option(program: str, args: list[str], options: list[str], exit_codes: str) -> None:
    """--help of every command (seed scripts and sub-commands) lists every documented option and the
    exit codes."""
    run = run_command(program, *args)
    assert run.exit_code == 0, run.stderr
    for option in options:
        assert option in run.stdout, option
    assert exit_codes in " ".join(run.stdout.split())


def test_top_level_help_lists_commands() -> None:
    """The app's own help names its sub-commands and exit codes."""
    run = run_command("mlflow-version-check", "--help")
    assert run.exit_code == 0
    assert re.search(r"^\s+check\s", run.stdout, re.MULTILINE)
    assert re.search(r"^\s+compare\s", run.stdout, re.MULTILINE)


def test_no_arguments_shows_help_not_a_traceback() -> None:
    """Running the app bare shows usage, without a traceback."""
    run = run_command("mlflow-version-check")
    assert "Traceback" not in run.stderr
    assert "Usage:" in run.stdout + run.stderr


@pytest.mark.parametrize("program", ["check-model-version", "mlflow-version-check", "compare-model-versions"])
def test_version_flag(program: str) -> None:
    """--version prints the tool's version and exits 0."""
    run = run_command(program, "--version")
    assert run.exit_code == 0
    assert run.stdout.strip() == f"mlflow-version-check {__version__}"


def test_help_does_not_import_mlflow() -> None:
    """The CLI stays fast: MLflow is imported only in worker processes."""
    code = (
        "import sys; from mlflow_version_check.cli import main; main(['--help']); "
        "print('mlflow' in sys.modules)"
    )
    import subprocess
    import sys

    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip().splitlines()[-1] == "False"


def test_main_is_callable_as_a_function(capsys: pytest.CaptureFixture[str]) -> None:
    """main(argv) returns the exit code instead of exiting (tests and the entrypoint call it)."""
    assert main(["--version"]) == 0
    assert check_model_version_main(["--model", "m"]) == 2
    assert "Missing option" in capsys.readouterr().err


def test_error_report_validates_and_has_no_comparison(tmp_path: Path) -> None:
    """An error report is complete JSON with status error and the error's type and exit code."""
    report_file = tmp_path / "r.json"
    code = check_model_version_main(
        [
            "--model",
            "m",
            "--version-or-stage",
            "@",
            "--tracking-uri",
            "http://127.0.0.1:9",
            "--report-file",
            str(report_file),
        ]
    )
    assert code == 2
    report = json.loads(report_file.read_text())
    assert report["error"]["type"] == "InvalidOption"
    assert report["error"]["exit_code"] == 2
    load_valid_report(report_file)


def test_progress_appears_only_when_a_download_takes_long() -> None:
    """Progress lines start after two seconds of one download, then at most every five (not a TTY)."""
    import io

    from mlflow_version_check.cli import Progress

    now = [100.0]
    stream = io.StringIO()
    progress = Progress(stream=stream, clock=lambda: now[0])

    def event(done: int) -> dict[str, object]:
        return {
            "role": "run_model",
            "files_done": done,
            "files_total": 10,
            "bytes_done": done << 20,
            "bytes_total": 10 << 20,
        }

    progress(event(1))
    now[0] += 1.0
    progress(event(2))
    assert stream.getvalue() == ""  # a quick download shows nothing
    now[0] += 1.5
    progress(event(3))
    now[0] += 1.0
    progress(event(4))  # within five seconds of the last line: skipped
    now[0] += 5.0
    progress(event(9))
    progress(event(10))  # the end is always shown once lines were shown
    assert stream.getvalue().splitlines() == [
        "downloading run_model: 3/10 files, 3.0/10.0 MiB",
        "downloading run_model: 9/10 files, 9.0/10.0 MiB",
        "downloading run_model: 10/10 files, 10.0/10.0 MiB",
    ]
