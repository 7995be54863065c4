"""Interrupted runs: SIGTERM and SIGINT stop the workers, remove every temporary file and private
credential copy, write an error report, print one line and exit with 128 + the signal's number."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mvc_testing import models
from mvc_testing.servers import MlflowServer
from tests.conftest import BIN, load_valid_report
from tests.silent_server import SilentServer


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


def clean_environment() -> dict[str, str]:
    """This process's environment without any server, credential or runner variable of the machine."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "DATABRICKS_", "GITHUB_", "INPUT_"))
    }


def _hang_profile(home: Path, silent_server: SilentServer) -> None:
    """A .databrickscfg in `home` whose profile `hang` is a workspace that never answers."""
    (home / ".databrickscfg").write_text(
        f"[hang]\nhost = {silent_server.url}\ntoken = dapi0123456789abcdef0123456789abcdef\n"
    )


def children_of(pid: int) -> set[int]:
    """Every descendant process of pid (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("signal_number", "databricks"),
    [
        pytest.param(signal.SIGTERM, False, id="sigterm-tracking-server"),
        pytest.param(signal.SIGINT, False, id="sigint-tracking-server"),
        pytest.param(signal.SIGTERM, True, id="sigterm-databricks-profile"),
    ],
)
def test_a_signal_ends_the_run_cleanly(
    signal_number: int, databricks: bool, silent_server: SilentServer, tmp_path: Path
) -> None:
    """A check hung on a server that never answers, then a signal: one line, the documented exit
    code, an error report and JUnit, workers gone, temporary downloads and credential copies removed."""
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    tracking_uri = silent_server.url
    if databricks:
        _hang_profile(home, silent_server)
        tracking_uri = "databricks://hang"
    env = clean_environment()
    env.update(HOME=str(home), TMPDIR=str(scratch))
    report_file, junit_file = tmp_path / "report.json", tmp_path / "junit.xml"
    process = subprocess.Popen(
        [str(BIN / "check-model-version"), "--model", "m", "--version-or-stage", "1",
         "--tracking-uri", tracking_uri, "--timeout", "300", "--retries", "0",
         "--report-file", str(report_file), "--junit-file", str(junit_file)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert silent_server.first_accepted.wait(60), "the worker never reached the server"
        time.sleep(0.5)  # the worker is now blocked in its request
        workers = children_of(process.pid)
        assert workers, "no worker process"
        assert any(scratch.iterdir()), "the run's temporary files exist while it runs"
        process.send_signal(signal_number)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signal_number, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: interrupted by "), stderr
    assert signal.Signals(signal_number).name in lines[0] and "Fix" in lines[0]
    assert "Traceback" not in stdout + stderr
    report = load_valid_report(report_file)
    assert report["status"] == "error" and report["equals"] is None
    assert report["error"]["type"] == "Interrupted"
    assert report["error"]["exit_code"] == 128 + signal_number
    assert "<error" in junit_file.read_text()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "a worker outlived the interrupted run"
    assert list(scratch.iterdir()) == [], "temporary downloads or credential copies were left behind"
    assert json.loads(report_file.read_text())["status"] == "error"


def _wait_until_cleaned_up(workers: set[int], scratch: Path) -> None:
    """Within 15 s of the parent's SIGKILL, its workers end and its TMPDIR is empty."""
    deadline = time.monotonic() + 15
    while (any(alive(pid) for pid in workers) or any(scratch.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "a worker outlived its killed parent"


def test_sigkill_leaves_no_credential_copy_or_download_behind(
    silent_server: SilentServer, tmp_path: Path
) -> None:
    """SIGKILL runs no cleanup in the parent: its worker, seeing the parent gone, removes the private
    Databricks config copy (a token in clear) and the temporary download area, then ends."""
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    scratch.mkdir()
    _hang_profile(home, silent_server)
    env = clean_environment()
    env.update(HOME=str(home), TMPDIR=str(scratch))
    process = subprocess.Popen(
        [str(BIN / "check-model-version"), "--model", "m", "--version-or-stage", "1",
         "--tracking-uri", "databricks://hang", "--timeout", "300", "--retries", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert silent_server.first_accepted.wait(60), "the worker never reached the workspace"
        time.sleep(0.5)
        workers = children_of(process.pid)
        left = {path.name.split("-")[0] + "-" + path.name.split("-")[1] for path in scratch.iterdir()}
        assert {"mvc-databricks", "mlflow-version"} <= left, left  # both exist while it runs
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _wait_until_cleaned_up(workers, scratch)
    assert list(scratch.iterdir()) == [], "the credential copy or the downloads were left behind"


def test_sigkill_mid_download_leaves_no_download_behind(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """SIGKILL while the worker's threads are writing files: the worker stops starting downloads,
    removes the temporary download area (again after the writes under way) and ends."""
    files = {f"shard{i // 100}/part{i:04d}.bin": os.urandom(2048) for i in range(1500)}
    version = models.log_directory_flavor(mlflow_server.url, f"sigkill_{os.getpid()}", files=files)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = clean_environment()
    env.update(TMPDIR=str(scratch))
    process = subprocess.Popen(
        [str(BIN / "check-model-version"), "--model", version.name, "--version-or-stage", version.version,
         "--tracking-uri", mlflow_server.url],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(1 for _ in scratch.rglob("*.bin")) < 100:
            time.sleep(0.05)
        assert sum(1 for _ in scratch.rglob("*.bin")) >= 100, "the download never got going"
        workers = children_of(process.pid)
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    _wait_until_cleaned_up(workers, scratch)
    assert list(scratch.iterdir()) == [], "the temporary downloads were left behind"
