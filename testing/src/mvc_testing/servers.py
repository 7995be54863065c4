"""Real `mlflow server` processes on 127.0.0.1 for tests and the demo: started, polled, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Literal

STARTUP_TIMEOUT_SECONDS = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# How a server stores artifacts: "proxied" (`--serve-artifacts --artifacts-destination`, clients see
# mlflow-artifacts:/ URIs) or "plain" (`--no-serve-artifacts --default-artifact-root`, clients read
# and write the directory themselves and see its paths).
ArtifactMode = Literal["proxied", "plain"]


class MlflowServer:
    """A tracking server with a SQLite store and artifacts under `root`, proxied by default.

    `python` is the interpreter that runs `-m mlflow server` (default: this one), e.g. another
    virtualenv's for an older MLflow server.
    """

    def __init__(
        self,
        root: Path,
        port: int | None = None,
        *,
        python: str | Path | None = None,
        artifact_mode: ArtifactMode = "proxied",
    ) -> None:
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.python = str(python or sys.executable)
        self.artifact_mode: ArtifactMode = artifact_mode
        # A plain root is not called "artifacts": mlflow-export-import 1.2.1 cuts a version's model
        # path out of its source at the first "artifacts" in it, which must be the run's own folder.
        self.artifacts = root / ("artifacts" if artifact_mode == "proxied" else "store")
        self.log_path = root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            env.pop(variable, None)
        if self.artifact_mode == "proxied":
            artifact_options = ["--serve-artifacts", "--artifacts-destination", str(self.artifacts)]
        else:
            artifact_options = ["--no-serve-artifacts", "--default-artifact-root", str(self.artifacts)]
        command = [
            self.python,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            *artifact_options,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        with open(self.log_path, "wb") as log:
            # A new session, so that stopping it also stops the web server's own children.
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited early; log:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy after {STARTUP_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # Stop by our own PID (its process group), never by process name.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
