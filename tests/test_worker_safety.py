"""What a server or a model's files must not be able to do to the machine that runs the check, and
how the worker process ends: local files named by a remote server, a worker orphaned by its parent,
file names that are not text."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.conftest import BIN, Run, load_valid_report
from tests.prefix_proxy import PrefixProxy

pytestmark = pytest.mark.server


def run_cli(*args: str, timeout: float = 300) -> Run:
    """The installed program in a clean environment (no MLFLOW_* or DATABRICKS_* of the machine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLFLOW_"))}
    completed = subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


# ---------------------------------------------------------------------------------------------
# A remote server names a file of this machine.


@pytest.fixture(scope="module")
def file_backed(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two versions on the session server whose files are on this machine's disk (an experiment
    with a file: artifact root): one registered from its file: location, one from runs:/."""
    root = tmp_path_factory.mktemp("secret-model")
    client = models._client(mlflow_server.url)
    experiment = client.create_experiment(unique("file_backed"), artifact_location=root.as_uri())
    name = unique("file_backed")
    by_location = models.register_run_artifacts(
        mlflow_server.url, name, source_form="location", experiment_id=experiment
    )
    by_run = models.register_run_artifacts(
        mlflow_server.url, name, source_form="runs", experiment_id=experiment
    )
    assert by_location.source.startswith("file://")
    return {"name": name, "location": by_location.version, "runs": by_run.version, "root": root.as_uri()}


@pytest.mark.parametrize(
    ("source", "through"),
    [
        pytest.param("location", "tracking", id="file-source-from-remote-server"),
        pytest.param("runs", "tracking", id="run-artifacts-on-remote-server"),
        pytest.param("location", "registry", id="file-source-from-remote-registry"),
    ],
)
def test_remote_server_cannot_point_at_local_files(
    mlflow_server: MlflowServer, file_backed: dict[str, str], tmp_path: Path, source: str, through: str
) -> None:
    """A server reached at 127.0.0.2 (not this machine's own name) whose version names a file: path:
    refused (exit 3, UnsafeArtifactPath) naming the location and the server; at 127.0.0.1 it passes."""
    version = file_backed[source]
    local = run_cli("check-model-version", "--model", file_backed["name"], "--version-or-stage", version,
                    "--tracking-uri", mlflow_server.url,
                    "--report-file", str(tmp_path / "local.json"))  # fmt: skip
    assert local.exit_code == 0, local.stderr
    with PrefixProxy({"": mlflow_server.url}, host="127.0.0.2") as remote:
        uris = (
            ["--tracking-uri", remote.url]
            if through == "tracking"
            else ["--tracking-uri", mlflow_server.url, "--registry-uri", remote.url]
        )
        run = run_cli("check-model-version", "--model", file_backed["name"], "--version-or-stage", version,
                      *uris, "--download-dir", str(tmp_path / "dl"),
                      "--report-file", str(tmp_path / "r.json"))  # fmt: skip
    assert run.exit_code == 3, run.stderr
    assert len(run.error_lines) == 1, run.stderr
    line = run.error_lines[0]
    assert file_backed["root"] in line and remote.url in line and "Fix:" in line
    assert load_valid_report(tmp_path / "r.json")["error"]["type"] == "UnsafeArtifactPath"
    assert not list((tmp_path / "dl").rglob("MLmodel")), "nothing was copied from the local path"


# ---------------------------------------------------------------------------------------------
# The worker never outlives its parent.


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[1] == str(parent):
            found.append(int(entry.name))
    return found


def _running(pid: int, started: str) -> bool:
    fields = _stat(pid)
    # A zombie has ended (its new parent has not reaped it yet); another start time is another process.
    return fields is not None and fields[0] != "Z" and fields[19] == started


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker through /proc")
def test_worker_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    """The CLI is SIGKILLed while its worker waits on a server that never answers (--timeout 600):
    the worker is gone within 15 s, not minutes later."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLFLOW_"))}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes connections; nobody ever reads or answers
        cli = subprocess.Popen(
            [str(BIN / "mlflow-version-check"), "check", "--tracking-uri",
             f"http://127.0.0.1:{silent.getsockname()[1]}", "--model", "m", "--version-or-stage", "1",
             "--timeout", "600", "--retries", "0", "--report-file", str(tmp_path / "r.json")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        worker = started = None
        try:
            deadline = time.monotonic() + 60
            while worker is None and time.monotonic() < deadline and cli.poll() is None:
                for child in _children(cli.pid):
                    if b"mlflow_version_check.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                        worker, started = child, (_stat(child) or [""] * 20)[19]
                time.sleep(0.1)
            assert worker is not None and started, "the CLI started no worker"
            time.sleep(2)  # the worker is inside MLflow now, blocked on the silent server
            os.kill(cli.pid, signal.SIGKILL)
            cli.wait()
            deadline = time.monotonic() + 15
            while _running(worker, started) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _running(worker, started), "the worker outlived its parent"
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
            if worker is not None and started and _running(worker, started):
                os.kill(worker, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# File names that are not text, or that MLflow's own path handling rewrites.

UNDECODABLE = b"weights\xff.bin"
SHOWN = "weights\\xff.bin"  # how the report names it: the undecodable byte as the four characters \xff


def local_store(root: Path, name: str, model_dir: Path) -> tuple[str, Path, str]:
    """A SQLite tracking store with a file: artifact root, holding model_dir as version 1 of name;
    returns (tracking URI, the stored model folder, version)."""
    root.mkdir(parents=True)
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    client = models._client(tracking_uri)
    experiment = client.create_experiment(name, artifact_location=(root / "artifacts").as_uri())
    version = models.register_run_artifacts(
        tracking_uri, name, source_form="location", experiment_id=experiment, model_dir=model_dir
    )
    return tracking_uri, Path(version.source.removeprefix("file://")), version.version


def saved_model(tmp_path: Path, extra: dict[bytes, bytes]) -> Path:
    """An sklearn model with extra files (named by bytes), counted in MLmodel's model_size_bytes as
    if the flavor had written them."""
    model = models.save_sklearn_locally(tmp_path / "saved")
    for name, data in extra.items():
        with open(os.path.join(os.fsencode(model), name), "wb") as stream:
            stream.write(data)
    mlmodel = yaml.safe_load((model / "MLmodel").read_text())
    mlmodel["model_size_bytes"] += sum(len(data) for data in extra.values())
    (model / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return model


def two_stores(
    tmp_path: Path, extra: dict[bytes, bytes], tamper: Callable[[Path], None]
) -> tuple[Path, str, Path]:
    """The same model in two local stores, the second changed by tamper; returns (config, name, model)."""
    model = saved_model(tmp_path, extra)
    name = unique("names")
    first, _, v1 = local_store(tmp_path / "store1", name, model)
    second, stored, v2 = local_store(tmp_path / "store2", name, model)
    tamper(stored)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "tracking_server_1": {"host": first, "model": name, "version_or_stage": v1},
        "tracking_server_2": {"host": second, "model": name, "version_or_stage": v2},
    }))  # fmt: skip
    return config, name, stored


def test_undecodable_and_control_character_names_in_check(tmp_path: Path) -> None:
    """A model with b"weights\\xff.bin", "tab\\there.txt" and "tag#1.txt": check passes without a
    traceback, and the report names the file as weights\\xff.bin, a name that --native-model takes back."""
    model = saved_model(tmp_path, {UNDECODABLE: b"not text", b"tab\there.txt": b"tab", b"tag#1.txt": b"#"})
    name = unique("bytes_names")
    tracking_uri, _, version = local_store(tmp_path / "store", name, model)
    whole = run_cli("check-model-version", "--model", name, "--version-or-stage", version,
                    "--tracking-uri", tracking_uri,
                    "--report-file", str(tmp_path / "whole.json"))  # fmt: skip
    assert whole.exit_code == 0, whole.stderr
    assert "Traceback" not in whole.stdout + whole.stderr
    files = load_valid_report(tmp_path / "whole.json")["Comparison"]["run_model"]["files"]
    assert files == len(list(model.iterdir()))
    narrowed = run_cli("check-model-version", "--model", name, "--version-or-stage", version,
                       "--tracking-uri", tracking_uri, "--native-model", SHOWN,
                       "--report-file", str(tmp_path / "native.json"))  # fmt: skip
    assert narrowed.exit_code == 0, narrowed.stderr
    assert "Traceback" not in narrowed.stdout + narrowed.stderr
    comparison = load_valid_report(tmp_path / "native.json")["Comparison"]
    assert comparison["native_model"]["run_model"] == [SHOWN]
    assert comparison["run_model"]["local_path"]["hash"] == hashlib.sha256(b"not text").hexdigest()


def test_undecodable_name_that_differs_is_named_in_compare(tmp_path: Path) -> None:
    """Two local stores whose b"weights\\xff.bin" differs (the tab-named file does not): exit 1, and
    the one difference is weights\\xff.bin."""

    def tamper(stored: Path) -> None:
        with open(os.path.join(os.fsencode(stored), UNDECODABLE), "wb") as stream:
            stream.write(b"changed!")

    config, _, _ = two_stores(tmp_path, {UNDECODABLE: b"not text", b"tab\there.txt": b"tab"}, tamper)
    run = run_cli(
        "compare-model-versions", "--config-file", str(config), "--report-file", str(tmp_path / "r.json")
    )
    assert run.exit_code == 1, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    section = load_valid_report(tmp_path / "r.json")["Run_Model_Comparison"]
    assert [(d["path"], d["kind"]) for d in section["differences"]] == [(SHOWN, "changed")]


def test_names_that_look_percent_encoded_are_read_as_named(tmp_path: Path) -> None:
    """A file named a%41.txt beside aA.txt of the same size: a change to a%41.txt is found, not hidden
    by reading aA.txt in its place (MLflow's local store decodes %41 before it opens a file)."""

    def tamper(stored: Path) -> None:
        (stored / "a%41.txt").write_bytes(b"two")

    extra = {b"a%41.txt": b"one", b"aA.txt": b"abc"}
    config, _, _ = two_stores(tmp_path, extra, tamper)
    run = run_cli(
        "compare-model-versions", "--config-file", str(config), "--report-file", str(tmp_path / "r.json")
    )
    assert run.exit_code == 1, run.stderr
    section = load_valid_report(tmp_path / "r.json")["Run_Model_Comparison"]
    assert [(d["path"], d["kind"]) for d in section["differences"]] == [("a%41.txt", "changed")]


def test_a_source_that_now_names_a_prompt_is_never_read_from_the_working_directory(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """Red team: a version registered from `models:/<name>/1`, after which <name> was deleted and
    re-created as a prompt, whose versions have the placeholder source 'dummy-source': a relative
    path MLflow would read from the working directory. A folder of that name holding a complete model
    must not make check or audit pass: exit 3, an error report."""
    import mlflow

    original, copied = unique("becomes_prompt"), unique("copied_from_it")
    models.log_sklearn(mlflow_server.url, original)
    client = models._client(mlflow_server.url)
    client.create_registered_model(copied)
    client.create_model_version(copied, f"models:/{original}/1")
    client.delete_registered_model(original)
    mlflow.set_tracking_uri(mlflow_server.url)
    try:
        mlflow.genai.register_prompt(name=original, template="Hello {{ who }}")
    finally:
        mlflow.set_tracking_uri(None)
    workdir = tmp_path / "work"
    models.save_sklearn_locally(workdir / "dummy-source")
    for command in (["check", "--model", copied, "--version-or-stage", "1"], ["audit", "--model", copied]):
        completed = subprocess.run(
            [str(BIN / "mlflow-version-check"), *command, "--tracking-uri", mlflow_server.url,
             "--report-file", str(tmp_path / "report.json")],
            cwd=workdir, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert completed.returncode == 3, completed.stdout + completed.stderr
        assert load_valid_report(tmp_path / "report.json")["status"] == "error"
