"""MLflow 2.x tracking servers and models, from the separate virtualenv `.venv-mlflow2`.

Many teams still run MLflow 2.x servers. The project's client is MLflow 3, whose `log_model` needs
logged-model APIs that a 2.x server lacks, so models there are registered by an MLflow 2 client: the
script mlflow2_seed.py, run with the 2.x virtualenv's interpreter (one process per plan). That
virtualenv also holds databricks-mlflow-export-import; `scripts/ci/mlflow2-venv.sh` creates it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .servers import ArtifactMode, MlflowServer

# The interpreter of the MLflow 2.x virtualenv; default: .venv-mlflow2 at the repository's root.
PYTHON_VARIABLE = "MVC_MLFLOW2_PYTHON"
CREATE_COMMAND = "scripts/ci/mlflow2-venv.sh"
REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
SEED_SCRIPT = Path(__file__).with_name("mlflow2_seed.py")
SEED_TIMEOUT_SECONDS = 600
# MLflow reads these from the environment; a machine's own server must not leak into a test's.
AMBIENT_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_TOKEN")


def python_path() -> Path:
    """The MLflow 2.x interpreter: $MVC_MLFLOW2_PYTHON, else .venv-mlflow2/bin/python in the repository."""
    configured = os.environ.get(PYTHON_VARIABLE)
    return Path(configured) if configured else REPOSITORY_ROOT / ".venv-mlflow2" / "bin" / "python"


def python_for_tests() -> Path:
    """The MLflow 2.x interpreter, or skip the calling test (pytest) when there is none.

    Under CI (CI set) a missing virtualenv fails instead: CI creates it, so its absence there is a
    broken set-up, not a reason to skip.
    """
    import pytest

    python = python_path()
    if not os.access(python, os.X_OK):
        message = (
            f"no MLflow 2.x interpreter at {python}: create it with `{CREATE_COMMAND}` "
            f"or set {PYTHON_VARIABLE} to one"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    found = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if found.returncode != 0 or not found.stdout.startswith("2."):
        pytest.fail(
            f"{python} has no MLflow 2.x ({(found.stdout or found.stderr).strip()[-200:]}): "
            f"recreate it with `{CREATE_COMMAND}` or point {PYTHON_VARIABLE} at one"
        )
    return python


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without MLflow's server variables, plus `extra`."""
    env = {name: value for name, value in os.environ.items() if name not in AMBIENT_VARIABLES}
    return {**env, **extra}


@contextmanager
def running_servers(
    python: Path, roots: Mapping[str, tuple[Path, ArtifactMode]]
) -> Iterator[dict[str, MlflowServer]]:
    """Start one MLflow server per entry of `roots` (label -> root folder, artifact mode) with `python`,
    all at once (each takes seconds to come up), and stop every one of them at the end."""
    servers = {
        label: MlflowServer(root, python=python, artifact_mode=mode) for label, (root, mode) in roots.items()
    }
    with ExitStack() as stack:
        for server in servers.values():
            stack.callback(server.stop)
        with ThreadPoolExecutor(max_workers=len(servers) or 1) as pool:
            # list() takes every result, so that a server that did not come up raises here.
            list(pool.map(MlflowServer.start, servers.values()))
        yield servers


@dataclass(frozen=True)
class Registered2:
    """A model version that the MLflow 2 client registered, as that client saw it."""

    name: str
    version: str
    source: str
    run_id: str
    download_uri: str
    tracking_uri: str

    def directory(self, server: MlflowServer) -> Path:
        """Where the version's files lie on this machine, in `server`'s artifact store."""
        uri = self.download_uri
        if server.artifact_mode == "proxied":
            prefix = "mlflow-artifacts:/"
            if not uri.startswith(prefix):
                raise ValueError(f"not on the server's proxied artifact store: {uri}")
            return server.artifacts / uri[len(prefix) :].lstrip("/")
        path = Path(uri.removeprefix("file://"))
        if not path.is_relative_to(server.artifacts):
            raise ValueError(f"not in the server's artifact root {server.artifacts}: {uri}")
        return path


class Plan:
    """Steps for mlflow2_seed.py, run together in one MLflow 2 process (MLflow costs seconds to import)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def log_sklearn(
        self,
        server: MlflowServer,
        name: str,
        *,
        seed: int = 0,
        alias: str | None = None,
        stage: str | None = None,
    ) -> int:
        """A scikit-learn model registered as `name` (a new version); returns the step's index."""
        step = {"action": "log_sklearn", "tracking_uri": server.url, "name": name, "seed": seed}
        self.steps.append({**step, "alias": alias, "stage": stage})
        return len(self.steps) - 1

    def copy(self, from_step: int, server: MlflowServer, name: str) -> int:
        """The files of an earlier step's version copied to a new run on `server`, registered as `name`."""
        self.steps.append(
            {"action": "copy", "from_step": from_step, "tracking_uri": server.url, "name": name}
        )
        return len(self.steps) - 1

    def run(self, python: Path) -> list[Registered2]:
        """Run every step in one MLflow 2 process; one result per step, in order."""
        completed = subprocess.run(
            [str(python), str(SEED_SCRIPT)],
            input=json.dumps(self.steps),
            capture_output=True,
            text=True,
            timeout=SEED_TIMEOUT_SECONDS,
            env=environment(),
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"seeding with {python} failed:\n{completed.stderr[-4000:]}")
        return [Registered2(**result) for result in json.loads(completed.stdout)]
