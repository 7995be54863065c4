"""Two sides are one storage location only when they are provably the same bytes in the same store.

`compare` downloads a location once and reports `same_location` when both sides' location keys are
equal, so a key that two stores can share is a false pass. These run the installed program against
real `mlflow server` processes (behind a path-prefix reverse proxy, tests/prefix_proxy.py) and
against two Databricks workspace doubles.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.conftest import BIN, Run, load_valid_report, run_command
from tests.databricks_double import WorkspaceDouble
from tests.prefix_proxy import PrefixProxy

pytestmark = pytest.mark.server

MLMODEL = {
    "artifact_path": "model",
    "flavors": {"python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"}},
    "model_uuid": "1" * 32,
    "utc_time_created": "2026-01-01 00:00:00.000000",
}
FILES = {"model.pkl": bytes(range(256)) * 4, "data/weights/layer0.bin": b"0123456789"}


def write_config(path: Path, side_1: dict[str, Any], side_2: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"tracking_server_1": side_1, "tracking_server_2": side_2}))
    return path


def compare(config: Path, report: Path, *extra: str, home: Path | None = None) -> Run:
    """compare-model-versions as a user runs it (a clean environment; HOME when given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLFLOW_"))}
    if home is not None:
        env["HOME"] = str(home)
    completed = subprocess.run(
        [str(BIN / "compare-model-versions"), "--config-file", str(config), "--report-file", str(report),
         *extra],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    return Run(completed.returncode, completed.stdout, completed.stderr)


# ---------------------------------------------------------------------------------------------
# Databricks: two workspaces holding the same names.


@pytest.fixture(scope="module")
def workspaces() -> Iterator[tuple[WorkspaceDouble, WorkspaceDouble]]:
    """A dev and a prod workspace."""
    with WorkspaceDouble() as dev, WorkspaceDouble() as prod:
        yield dev, prod


@pytest.fixture
def home(tmp_path: Path, workspaces: tuple[WorkspaceDouble, WorkspaceDouble]) -> Path:
    """A HOME whose .databrickscfg names the dev and the prod workspace."""
    dev, prod = workspaces
    directory = tmp_path / "home"
    directory.mkdir()
    (directory / ".databrickscfg").write_text(
        f"[dev]\nhost = {dev.url}\ntoken = {dev.token}\n\n[prod]\nhost = {prod.url}\ntoken = {prod.token}\n"
    )
    return directory


def model_files(run_id: str) -> dict[str, bytes]:
    return {**FILES, "MLmodel": yaml.safe_dump({**MLMODEL, "run_id": run_id}).encode()}


def databricks_side(profile: str, name: str, version: str) -> dict[str, Any]:
    return {"host": f"databricks://{profile}", "model": name, "version_or_stage": version}


def test_unity_catalog_copies_in_two_workspaces_are_two_locations(
    workspaces: tuple[WorkspaceDouble, WorkspaceDouble], home: Path, tmp_path: Path
) -> None:
    """main.ml.wine v1 in dev and in prod, prod's registry copy tampered: exit 1 naming the file."""
    dev, prod = workspaces
    versions = []
    for workspace in (dev, prod):
        run_id = workspace.create_run("43")
        workspace.put_files(workspace.run_path(run_id, "model"), model_files(run_id))
        versions.append(workspace.register_uc("main.ml.wine", run_id))
    assert versions[0] == versions[1]
    prod.files[f"{prod.uc_storage_path('main.ml.wine', versions[1])}/data/weights/layer0.bin"] = (
        b"0123456789X"
    )
    config = write_config(
        tmp_path / "c.yaml",
        databricks_side("dev", "main.ml.wine", versions[0]),
        databricks_side("prod", "main.ml.wine", versions[1]),
    )
    run = compare(config, tmp_path / "r.json", home=home)
    assert run.exit_code == 1, run.stderr
    report = load_valid_report(tmp_path / "r.json")
    section = report["Reg_Model_Comparison"]
    assert section["same_location"] is False
    assert section["tracking_server_1"]["downloaded"] is section["tracking_server_2"]["downloaded"] is True
    assert [(d["path"], d["kind"]) for d in section["differences"]] == [
        ("data/weights/layer0.bin", "changed")
    ]
    assert report["Comparison_Summary"]["run_model"] is True
    assert dev.token not in (tmp_path / "r.json").read_text()


def test_logged_models_in_two_workspaces_are_two_locations(
    workspaces: tuple[WorkspaceDouble, WorkspaceDouble], home: Path, tmp_path: Path
) -> None:
    """The same logged model id (a migrated workspace) in dev and prod, one file changed in prod:
    the run models are two locations and the file is named."""
    dev, prod = workspaces
    run_id = dev.create_run("44")
    model_id = dev.create_logged_model("44", model_files(run_id), run_id=run_id)
    prod.runs[run_id] = dict(dev.runs[run_id])
    prod.logged_models[model_id] = dict(dev.logged_models[model_id])
    base = dev.logged_models[model_id]["artifact_uri"][len("dbfs:") :]
    prod.put_files(base, {**model_files(run_id), "data/weights/layer0.bin": b"0123456789X"})
    name = unique("Logged_Wine")
    version = dev.register(name, run_id, logged_model=model_id)
    assert prod.register(name, run_id, logged_model=model_id) == version
    config = write_config(
        tmp_path / "c.yaml", databricks_side("dev", name, version), databricks_side("prod", name, version)
    )
    run = compare(config, tmp_path / "r.json", "--compare-run-models", home=home)
    assert run.exit_code == 1, run.stderr
    section = load_valid_report(tmp_path / "r.json")["Run_Model_Comparison"]
    assert section["same_location"] is False
    assert [(d["path"], d["kind"]) for d in section["differences"]] == [
        ("data/weights/layer0.bin", "changed")
    ]


# ---------------------------------------------------------------------------------------------
# Open-source servers behind one host.


def copy_server_state(source: MlflowServer, target_root: Path) -> None:
    """What a backup restore or a replica holds: the SQLite store (backup API) and the artifacts."""
    target_root.mkdir(parents=True)
    with (
        sqlite3.connect(source.root / "mlflow.db") as live,
        sqlite3.connect(target_root / "mlflow.db") as copy,
    ):
        live.backup(copy)
    shutil.copytree(source.artifacts, target_root / "artifacts")


def test_two_servers_behind_one_host_under_two_paths(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """Server B is a restored copy of server A with one artifact file changed; both are served by
    one reverse proxy under /a and /b: the same artifact paths are two stores, and the file is named."""
    original = models.log_directory_flavor(mlflow_server.url, unique("replicated"))
    copy_server_state(mlflow_server, tmp_path / "b")
    copied_model = models.artifact_directory(tmp_path / "b" / "artifacts", mlflow_server.url, original)
    tampered = next(copied_model.rglob("layer1.bin"))
    tampered.write_bytes(tampered.read_bytes() + b"\x00")
    with (
        MlflowServer(tmp_path / "b") as replica,
        PrefixProxy({"/a": mlflow_server.url, "/b": replica.url}) as gateway,
    ):
        config = write_config(
            tmp_path / "c.yaml",
            {"host": f"{gateway.url}/a", "model": original.name, "version_or_stage": original.version},
            {"host": f"{gateway.url}/b", "model": original.name, "version_or_stage": original.version},
        )
        run = compare(config, tmp_path / "r.json")
    assert run.exit_code == 1, run.stderr
    report = load_valid_report(tmp_path / "r.json")
    for section in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        assert report[section]["same_location"] is False
        assert [(d["path"], d["kind"]) for d in report[section]["differences"]] == [
            ("artifacts/net/weights/layer1.bin", "changed")
        ]
    assert "artifacts/net/weights/layer1.bin" in run.stdout


def test_one_server_under_two_spellings_is_downloaded_once(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """http://localhost:P and http://LOCALHOST:P/ are one server (host case, trailing slash): its
    model is downloaded once and reported as one location."""
    original = models.log_sklearn(mlflow_server.url, unique("spelled"))
    config = write_config(
        tmp_path / "c.yaml",
        {"host": f"http://localhost:{mlflow_server.port}", "model": original.name,
         "version_or_stage": original.version},
        {"host": f"http://LOCALHOST:{mlflow_server.port}/", "model": original.name,
         "version_or_stage": original.version},
    )  # fmt: skip
    report_file = tmp_path / "r.json"
    run = run_command("compare-model-versions", "--config-file", str(config),
                      "--report-file", str(report_file), "--download-dir", str(tmp_path / "dl"))  # fmt: skip
    assert run.exit_code == 0, run.stderr
    report = load_valid_report(report_file)
    for section in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        assert report[section]["same_location"] is True
        assert report[section]["tracking_server_2"]["downloaded"] is False
    assert len(list((tmp_path / "dl").rglob("MLmodel"))) == 1
