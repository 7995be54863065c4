"""A copy made by the real databricks-mlflow-export-import between two MLflow 2.22 servers compares
equal, and not equal once one byte of it changes.

Both servers keep plain artifact roots (`--no-serve-artifacts --default-artifact-root`): the tool's
import fails on `mlflow-artifacts:` proxies. Its `export-model` and `import-model` run from
.venv-mlflow2 (scripts/ci/mlflow2-venv.sh), as a team copying models between servers runs them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mvc_testing import mlflow2
from mvc_testing.mlflow2 import Registered2
from mvc_testing.servers import MlflowServer
from tests.conftest import Run, load_valid_report, run_command

pytestmark = pytest.mark.server

COMMAND_TIMEOUT_SECONDS = 300
# export-import 1.2.1 cuts the model's path out of a version's source at the first "artifacts" and
# takes any source containing "models" for an MLflow 3 logged model: the store paths must have neither.
WORDS_THE_TOOL_MISREADS = ("artifacts", "models")


@dataclass(frozen=True)
class Copied:
    """A version on the source server and the version import-model made of it on the destination."""

    source_server: MlflowServer
    destination_server: MlflowServer
    exported: Registered2
    imported_name: str


def run_export_import(python: Path, command: str, server: MlflowServer, *arguments: str) -> None:
    """Run one of the tool's commands from the 2.22 virtualenv against `server` (it reads the
    server from MLFLOW_TRACKING_URI); fail the test with its output when it fails."""
    completed = subprocess.run(
        [str(python.parent / command), *arguments],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        env=mlflow2.environment(MLFLOW_TRACKING_URI=server.url),
        check=False,
    )
    assert completed.returncode == 0, (
        f"{command} failed:\n{completed.stdout[-3000:]}{completed.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def copied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Copied]:
    python = mlflow2.python_for_tests()
    roots = {label: (tmp_path_factory.mktemp(label), "plain") for label in ("export-from", "import-to")}
    for root, _ in roots.values():
        misread = [word for word in WORDS_THE_TOOL_MISREADS if word in str(root)]
        assert not misread, f"run pytest with a --basetemp whose path has no {misread}: {root}"
    with mlflow2.running_servers(python, roots) as servers:
        source, destination = servers["export-from"], servers["import-to"]
        plan = mlflow2.Plan()
        plan.log_sklearn(source, "exported", seed=7)
        (exported,) = plan.run(python)
        exported_dir = tmp_path_factory.mktemp("exported")
        run_export_import(
            python, "export-model", source, "--model", exported.name, "--output-dir", str(exported_dir)
        )
        run_export_import(python, "import-model", destination, "--model", "imported",
                          "--experiment-name", "imported", "--input-dir", str(exported_dir))  # fmt: skip
        yield Copied(source, destination, exported, "imported")


def compare(copied: Copied, folder: Path) -> tuple[Run, dict[str, Any]]:
    config = folder / "config.yaml"
    sides = {
        "tracking_server_1": {"host": copied.source_server.url, "model": copied.exported.name},
        "tracking_server_2": {"host": copied.destination_server.url, "model": copied.imported_name},
    }
    for side in sides.values():
        side["version_or_stage"] = "1"
    config.write_text(yaml.safe_dump(sides))
    report = folder / "compare.json"
    run = run_command(
        "mlflow-version-check", "compare", "--config-file", str(config), "--report-file", str(report)
    )
    return run, load_valid_report(report)


def test_an_imported_copy_compares_equal_with_its_run_id_ignored(copied: Copied, tmp_path: Path) -> None:
    """The version import-model created on the second server is the exported one: equal, run and
    registry models; the MLmodel run_id (the import's new run) is the one ignored field, both values shown."""
    run, report = compare(copied, tmp_path)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert report["status"] == "passed" and report["equals"] is True
    imported = report["Model_Versions"]["tracking_server_2"]
    assert imported["run_id"] != copied.exported.run_id
    assert Path(imported["download_uri"]).is_relative_to(copied.destination_server.artifacts)
    for section in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        comparison = report[section]
        assert comparison["equals"] is True and comparison["same_location"] is False
        assert comparison["differences"] == []
        assert comparison["tracking_server_1"]["files"] == comparison["tracking_server_2"]["files"] == 5
        ignored = [
            (item["path"], item["rule"], item["field"], item["left"], item["right"])
            for item in comparison["ignored"]
        ]
        assert ignored == [
            ("MLmodel", "mlmodel-identity-field", "run_id", copied.exported.run_id, imported["run_id"])
        ]
    assert "ignored: MLmodel:run_id" in run.stdout


def test_one_changed_byte_in_the_imported_copy_is_named(copied: Copied, tmp_path: Path) -> None:
    """One byte of the imported copy's model.pkl changed on the destination's disk: compare exits 1
    and names model.pkl in both sections (the byte is restored afterwards)."""
    from mlflow import MlflowClient

    destination = copied.destination_server.url
    registry = MlflowClient(tracking_uri=destination, registry_uri=destination)
    pickled = Path(registry.get_model_version_download_uri(copied.imported_name, "1")) / "model.pkl"
    assert pickled.is_relative_to(copied.destination_server.artifacts)
    original = pickled.read_bytes()
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0x01
    pickled.write_bytes(bytes(changed))
    try:
        run, report = compare(copied, tmp_path)
    finally:
        pickled.write_bytes(original)
    assert run.exit_code == 1, run.stdout + run.stderr
    assert report["status"] == "failed" and report["equals"] is False
    for section in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        (difference,) = report[section]["differences"]
        assert (difference["path"], difference["kind"]) == ("model.pkl", "changed")
        assert difference["left"]["sha256"] != difference["right"]["sha256"]
    assert "model.pkl" in run.stdout
