"""Start one worker process per server and collect its events (the parent never imports MLflow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ERRORS_BY_NAME, WorkerCrashed
from .redact import redact

# Variables that choose a server or its credentials; a worker gets only those of its own server.
_SERVER_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

ProgressCallback = Callable[[Mapping[str, Any]], None]
LogCallback = Callable[[str], None]


@dataclass(frozen=True)
class ServerSpec:
    """One tracking server (and its registry) and how patiently to talk to it."""

    tracking_uri: str
    registry_uri: str | None = None
    timeout_seconds: float = 30.0
    retries: int = 2
    extra_env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    def worker_env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = {key: value for key, value in base.items() if key not in _SERVER_VARIABLES}
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        if self.registry_uri:
            env["MLFLOW_REGISTRY_URI"] = self.registry_uri
        # MLflow's defaults (120 s timeout, 7 retries with backoff factor 2) turn a dead server into
        # minutes of waiting; a CI gate wants a clear failure quickly. Backoff must be an integer.
        env["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, round(self.timeout_seconds)))
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.retries)
        env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
        env["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0"
        env["MLFLOW_DATABRICKS_ENDPOINT_HTTP_RETRY_TIMEOUT"] = str(max(1, round(self.timeout_seconds)))
        env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env


@dataclass
class WorkerOutcome:
    """What a worker reported: its last event of each kind, and its log tail."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    log_tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))


def run_worker(
    server: ServerSpec,
    request: Mapping[str, Any],
    *,
    label: str,
    on_progress: ProgressCallback | None = None,
    on_log: LogCallback | None = None,
) -> dict[str, Any]:
    """Run one worker to the end; return its result event or raise the named error it reported.

    A raised error carries in `partial` what the worker had resolved before it failed.
    """
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow_version_check.worker", str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            env=server.worker_env(os.environ),
        )
    finally:
        os.close(write_fd)
    outcome = WorkerOutcome()

    stdin, stdout = process.stdin, process.stdout
    if stdin is None or stdout is None:  # cannot happen with PIPE; keeps the types honest
        raise WorkerCrashed("internal error: the worker's pipes were not created")

    def drain_log() -> None:
        for raw in stdout:
            line = redact(raw.decode("utf-8", "replace").rstrip(), server.secrets)
            outcome.log_tail.append(line)
            if on_log is not None:
                on_log(f"[{label or 'worker'}] {line}")

    log_thread = threading.Thread(target=drain_log, name=f"log-{label}", daemon=True)
    log_thread.start()
    try:
        stdin.write(json.dumps(dict(request)).encode())
        stdin.close()
        with os.fdopen(read_fd, "r", encoding="utf-8") as channel:
            for line in channel:
                event = json.loads(line)
                kind = event.get("event")
                outcome.events[kind] = event
                if kind == "progress" and on_progress is not None:
                    on_progress({**event, "label": label})
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log_thread.join(timeout=5)
        stdout.close()

    partial = {
        key: outcome.events[kind][key]
        for kind, key in (("resolved", "version"), ("located", "locations"), ("located", "same_location"))
        if kind in outcome.events
    }
    prefix = f"{label}: " if label else ""
    if "error" in outcome.events:
        error = outcome.events["error"]
        error_class = ERRORS_BY_NAME.get(error.get("type", ""), WorkerCrashed)
        raise error_class(prefix + error["message"], partial=partial)
    if "result" not in outcome.events:
        last = next((line for line in reversed(outcome.log_tail) if line.strip()), "no output")
        raise WorkerCrashed(
            f"{prefix}internal error: the worker ended with exit code {process.returncode} and "
            f"no answer (last line: {last[:200]}). Fix: rerun with --verbose and report the output.",
            partial=partial,
        )
    return outcome.events["result"]
