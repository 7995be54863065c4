"""Start one worker process per server and talk to it (the parent never imports MLflow).

A worker first resolves its versions and reports where their models are stored (`located`); the
parent then plans the downloads across all workers, so that one storage location is downloaded once,
and sends each worker its part of the plan. Workers run concurrently.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from .errors import ERRORS_BY_NAME, Interrupted, VersionCheckError, WorkerCrashed
from .redact import redact

# Variables that choose a server or its credentials; a worker gets only those of its own server.
_SERVER_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

# Directories only this process's runs use, beyond each run's own (the action's private HOME with
# its credentials): named to every worker, which removes them if this process is killed.
PRIVATE_PATHS: list[str] = []

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

    def worker_env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = {key: value for key, value in base.items() if key not in _SERVER_VARIABLES}
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        if self.registry_uri:
            env["MLFLOW_REGISTRY_URI"] = self.registry_uri
        # MLflow's defaults (120 s timeout, 7 retries with backoff factor 2) turn a dead server into
        # minutes of waiting; a CI gate wants a clear failure quickly. Backoff must be an integer.
        seconds = str(max(1, round(self.timeout_seconds)))
        env["MLFLOW_HTTP_REQUEST_TIMEOUT"] = seconds
        env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.retries)
        env["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
        env["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0"
        env["MLFLOW_DATABRICKS_ENDPOINT_HTTP_RETRY_TIMEOUT"] = seconds
        env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env


_CLOSED = {"event": "_closed"}


class Worker:
    """One worker process serving one server, driven through the two phases of worker.py."""

    def __init__(
        self,
        server: ServerSpec,
        versions: Sequence[Mapping[str, str]],
        roles: Sequence[str],
        *,
        label: str = "",
        on_progress: ProgressCallback | None = None,
        on_log: LogCallback | None = None,
        run_env: Mapping[str, str] | None = None,
        private_paths: Sequence[str] = (),
    ) -> None:
        self.server = server
        self.label = label
        self.run_env = dict(run_env or {})
        self.request = {
            "tracking_uri": server.tracking_uri,
            "registry_uri": server.registry_uri,
            "roles": list(roles),
            "versions": [dict(version) for version in versions],
            # Removed by the worker should this process be killed (worker.remove_private_paths).
            "private_paths": list(private_paths),
        }
        self.on_progress = on_progress
        self.on_log = on_log
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.log_tail: deque[str] = deque(maxlen=40)
        self.resolved: dict[str, dict[str, Any]] = {}
        self.located: dict[str, Any] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stdin: IO[bytes] | None = None
        self._threads: list[threading.Thread] = []

    # -- process -------------------------------------------------------------------------------

    def start(self) -> Worker:
        read_fd, write_fd = os.pipe()
        try:
            self._process = subprocess.Popen(
                # The parent's pid lets the worker's watchdog end it when this process dies.
                [sys.executable, "-m", "mlflow_version_check.worker", str(write_fd), str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                # Its own process group: a Ctrl-C at the terminal reaches the parent alone, which
                # stops its workers itself (cli.interruptible) and reports the interruption.
                process_group=0,
                env={**self.server.worker_env(os.environ), **self.run_env},
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        if self._process.stdin is None or self._process.stdout is None:  # cannot happen with PIPE
            raise WorkerCrashed("internal error: the worker's pipes were not created")
        self._stdin = self._process.stdin
        log = self._process.stdout
        self._threads = [
            threading.Thread(target=self._drain_log, args=(log,), daemon=True),
            threading.Thread(target=self._read_events, args=(read_fd,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._send(self.request)
        return self

    def _drain_log(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in stream:
                line = redact(raw.decode("utf-8", "replace").rstrip())
                self.log_tail.append(line)
                if self.on_log is not None:
                    self.on_log(f"[{self.label or 'worker'}] {line}")

    def _read_events(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8") as channel:
            for line in channel:
                event = json.loads(line)
                if event.get("event") == "progress":
                    if self.on_progress is not None:
                        self.on_progress({**event, "label": self.label})
                    continue
                self.events.put(event)
        self.events.put(_CLOSED)

    def _send(self, message: Mapping[str, Any]) -> None:
        if self._stdin is None:
            raise WorkerCrashed("internal error: the worker was not started")
        if self._stdin.closed:
            return  # finished already (the worker ended); nothing more to tell it
        try:
            self._stdin.write((json.dumps(dict(message)) + "\n").encode())
            self._stdin.flush()
        except BrokenPipeError:
            pass  # the worker already ended; its events (an error) say why

    # -- phases --------------------------------------------------------------------------------

    def _next(self, wanted: str) -> dict[str, Any]:
        while True:
            event = self.events.get()
            kind = event.get("event")
            if kind == "resolved":
                self.resolved[event["key"]] = event["version"]
                continue
            if kind == wanted:
                return event
            if kind == "error":
                error_class = ERRORS_BY_NAME.get(event.get("type", ""), WorkerCrashed)
                prefix = f"{self.label}: " if self.label else ""
                raise error_class(prefix + event["message"], partial=self.partial())
            if kind == "_closed":
                self.finish()
                last = next((line for line in reversed(self.log_tail) if line.strip()), "no output")
                prefix = f"{self.label}: " if self.label else ""
                raise WorkerCrashed(
                    f"{prefix}internal error: the worker ended with exit code "
                    f"{self._process.returncode if self._process else '?'} and no answer (last line: "
                    f"{last[:200]}). Fix: rerun with --verbose and report the output.",
                    partial=self.partial(),
                )

    def wait_located(self) -> dict[str, Any]:
        """Block until the worker has resolved and located everything; raise its error otherwise."""
        self.located = self._next("located")
        return self.located

    def download(self, plan: Sequence[Mapping[str, str]]) -> None:
        """Send the download plan (an empty plan still lets the worker end cleanly)."""
        self._send({"download": [dict(item) for item in plan]})

    def wait_result(self) -> dict[str, Any]:
        result = self._next("result")
        self.finish()
        return result

    def abort(self) -> None:
        """Tell the worker to stop before downloading; one still busy resolving (a server that does
        not answer) is killed after a moment: nothing of it is needed any more."""
        self._send({"abort": True})
        self.finish(patience=2.0)

    def finish(self, patience: float = 30.0) -> None:
        process = self._process
        if process is None:
            return
        if self._stdin is not None and not self._stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._stdin.close()
        try:
            process.wait(timeout=patience)
        except subprocess.TimeoutExpired:
            self._kill_group()
            process.wait()
        for thread in self._threads:
            thread.join(timeout=5)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._kill_group()
        self.finish()

    def _kill_group(self) -> None:
        """SIGKILL the worker and whatever it started (it leads its own process group), e.g. the
        `databricks auth token` process an SDK credential provider runs."""
        process = self._process
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()

    def partial(self) -> dict[str, Any]:
        """What this worker learnt so far: resolved versions, and their locations once located."""
        partial: dict[str, Any] = {"versions": dict(self.resolved)}
        if self.located is not None:
            partial["located"] = self.located["versions"]
        return partial


def run_workers(
    workers: Sequence[Worker], plan_for: Callable[[dict[str, Any]], dict[int, list[dict[str, str]]]]
) -> list[dict[str, Any]]:
    """Start all workers, wait until all have located, plan, download; return each one's result.

    `plan_for` receives every worker's located versions by key and returns the plan items per worker
    index. When a worker fails, the others are stopped and the first error is raised, carrying in
    `partial` what every worker had resolved.
    """
    started: list[Worker] = []
    try:
        for worker in workers:
            started.append(worker.start())
        errors: list[VersionCheckError] = []
        located: dict[str, Any] = {}
        for worker in started:
            try:
                located.update(worker.wait_located()["versions"])
            except Interrupted as error:  # not a worker's failure: stop them all now (finally)
                raise _with_partial(error, started) from None
            except VersionCheckError as error:
                errors.append(error)
        if errors:
            for worker in started:
                worker.abort()
            raise _with_partial(errors[0], started)
        plan = plan_for(located)
        for index, worker in enumerate(started):
            worker.download(plan.get(index, []))
        results = []
        for worker in started:
            try:
                results.append(worker.wait_result())
            except VersionCheckError as error:
                for other in started:
                    other.kill()
                raise _with_partial(error, started) from None
        return results
    finally:
        for worker in started:
            worker.kill()


def _with_partial(error: VersionCheckError, workers: Sequence[Worker]) -> VersionCheckError:
    """Merge what every worker had learnt into the error (a failing side knows only its own)."""
    for worker in workers:
        partial = worker.partial()
        error.partial.setdefault("versions", {}).update(partial["versions"])
        if "located" in partial:
            error.partial.setdefault("located", {}).update(partial["located"])
    return error
