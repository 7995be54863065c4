"""Fixtures: a real MLflow tracking server for the session, and ways to run the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from mlflow_version_check.report.document import load_schema
from mvc_testing.servers import MlflowServer

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real `mlflow server` on a free loopback port for the whole session."""
    with MlflowServer(tmp_path_factory.mktemp("server1")) as server:
        yield server


@pytest.fixture(scope="session")
def mlflow_server_2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A second real server: "another workspace" for compare tests."""
    with MlflowServer(tmp_path_factory.mktemp("server2")) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_ambient_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests name their server explicitly; an MLFLOW_* variable of the machine must not leak in.
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(variable, raising=False)


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def load_script(path: Path) -> ModuleType:
    """A script of the repository (scripts/..., not a package), imported by its path for its tests."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while a class is made
    spec.loader.exec_module(module)
    return module


def run_command(program: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Run:
    """Run an installed console script as a user would, in a separate process."""
    completed = subprocess.run(
        [str(BIN / program), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr)


SCHEMA = load_schema()


def load_valid_report(path: Path) -> dict[str, Any]:
    """Read a report and fail the test unless it validates against the shipped schema."""
    report: dict[str, Any] = json.loads(path.read_text())
    jsonschema.validate(report, SCHEMA, cls=jsonschema.Draft202012Validator)
    return report
