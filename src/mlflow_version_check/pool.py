"""The parent's side of the workers: one process per server, driven in two explicit phases.

`WorkerPool.locate_all()` starts a worker per server and waits until each has resolved its versions
and reported where their models are stored; `plan_downloads()` (pure) then chooses one download per
storage location across all workers; `WorkerPool.download_all(plan)` sends each worker its part and
collects the manifests. The parent never imports MLflow. Every message is a type of protocol.py.

When a worker fails, the others are stopped and the first error is raised with every version any
worker had resolved (`error.resolved`), so that an error report keeps what was learnt.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

from . import protocol
from .errors import Interrupted, VersionCheckError, WorkerCrashed
from .protocol import (
    AuditRequest,
    DownloadPlan,
    DownloadProgress,
    LocatedVersion,
    ModelManifest,
    PlannedDownload,
    RegistryVersion,
    Request,
    TagPlan,
    VersionTag,
    WantedVersion,
)
from .redact import redact

# Variables that choose a server or its credentials; a worker gets only those of its own server.
_SERVER_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

# Directories only this process's runs use, beyond each run's own (the action's private HOME with
# its credentials): named to every worker, which removes them if this process is killed.
PRIVATE_PATHS: list[str] = []

ProgressCallback = Callable[[Mapping[str, Any]], None]
LogCallback = Callable[[str], None]
WORKER_MODULE = "mlflow_version_check.worker"


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
        # MLflow's usage telemetry would write under $HOME and send events to a host the user never
        # named: the run writes only its downloads and outputs, and talks only to the given servers.
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env


@dataclass(frozen=True)
class Wanted:
    """One model version to inspect, on one server."""

    key: str
    server: ServerSpec
    model: str
    version_or_stage: str


# ---------------------------------------------------------------------------------------------
# The plan: pure, testable without a process.


def label_of(key: str, role: str) -> str:
    """How progress and sharing name a download: "run_model", "reg_model of tracking_server_2"."""
    return role if key == "version" else f"{role} of {key}"


@dataclass(frozen=True)
class Plan:
    """Who downloads what: one download per storage location, and who shares whose."""

    downloads: tuple[PlannedDownload, ...]
    # (key, role) -> the (key, role) whose download it shares (same storage location).
    shared: Mapping[tuple[str, str], tuple[str, str]]

    def owner(self, key: str, role: str) -> tuple[str, str]:
        return self.shared.get((key, role), (key, role))


def plan_downloads(
    located: Mapping[str, LocatedVersion],
    keys: Sequence[str],
    roles: Sequence[str],
    destination: Callable[[str, str], str],
) -> Plan:
    """Choose one download per storage location: the first (role, key) to name it downloads it."""
    owner_of_location: dict[str, tuple[str, str]] = {}
    shared: dict[tuple[str, str], tuple[str, str]] = {}
    downloads: list[PlannedDownload] = []
    for role in roles:
        for key in keys:
            location = located[key].models[role].location_key
            if location in owner_of_location:
                shared[(key, role)] = owner_of_location[location]
            else:
                owner_of_location[location] = (key, role)
                downloads.append(PlannedDownload(key, role, destination(key, role), label_of(key, role)))
    return Plan(tuple(downloads), shared)


# ---------------------------------------------------------------------------------------------
# One worker process.


class Worker:
    """One worker process serving one server, driven through the two phases of the protocol."""

    def __init__(
        self,
        server: ServerSpec,
        request: Request | AuditRequest,
        *,
        label: str = "",
        on_progress: ProgressCallback | None = None,
        on_log: LogCallback | None = None,
        run_env: Mapping[str, str] | None = None,
        module: str = WORKER_MODULE,
    ) -> None:
        self.server = server
        self.request = request
        self.module = module
        self.label = label
        self.run_env = dict(run_env or {})
        self.on_progress = on_progress
        self.on_log = on_log
        self.events: queue.Queue[protocol.Event | None] = queue.Queue()  # None: the channel closed
        self.log_tail: deque[str] = deque(maxlen=40)
        self.resolved: dict[str, RegistryVersion] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._stdin: IO[bytes] | None = None
        self._threads: list[threading.Thread] = []

    # -- process -------------------------------------------------------------------------------

    def start(self) -> Worker:
        read_fd, write_fd = os.pipe()
        try:
            self._process = subprocess.Popen(
                # The parent's pid lets the worker's watchdog end it when this process dies.
                [sys.executable, "-m", self.module, str(write_fd), str(os.getpid())],
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
        self._send(protocol.encode(self.request))
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
            try:
                for line in channel:
                    event = protocol.decode_event(line)
                    if isinstance(event, DownloadProgress):
                        if self.on_progress is not None:
                            self.on_progress({**event.to_json(), "label": self.label})
                        continue
                    self.events.put(event)
            except Exception as exc:  # noqa: BLE001 - any bad line ends the channel, never this thread alone
                # A line that does not decode (or decodes to the wrong types) is a worker this parent
                # cannot understand: the channel counts as closed, so the run ends as a crash rather
                # than waiting forever for an answer.
                self.log_tail.append(f"protocol error: {type(exc).__name__}: {exc}")
        self.events.put(None)

    def _send(self, line: str) -> None:
        if self._stdin is None:
            raise WorkerCrashed("internal error: the worker was not started")
        if self._stdin.closed:
            return  # finished already (the worker ended); nothing more to tell it
        try:
            self._stdin.write((line + "\n").encode())
            self._stdin.flush()
        except BrokenPipeError:
            pass  # the worker already ended; its events (an error) say why

    # -- phases --------------------------------------------------------------------------------

    def _next(self, wanted: type[Any] | tuple[type[Any], ...]) -> Any:
        prefix = f"{self.label}: " if self.label else ""
        while True:
            event = self.events.get()
            if isinstance(event, protocol.Resolved):
                self.resolved[event.key] = event.version
                continue
            if isinstance(event, wanted):
                return event
            if isinstance(event, protocol.Failure):
                raise event.error(self.label)
            if event is None:
                self.finish()
                last = next((line for line in reversed(self.log_tail) if line.strip()), "no output")
                raise WorkerCrashed(
                    f"{prefix}internal error: the worker ended with exit code "
                    f"{self._process.returncode if self._process else '?'} and no answer (last line: "
                    f"{last[:200]})",
                    fix="rerun with {option:verbose} and report the output.",
                )
            # Any other event out of its phase: the parent and the worker disagree.
            raise WorkerCrashed(f"{prefix}internal error: the worker sent {event.kind!r} out of turn")

    def send(self, message: protocol.AuditPlan) -> None:
        """A message of an audit's conversation (audit.py drives it)."""
        self._send(protocol.encode(message))

    def wait_for(self, wanted: type[Any] | tuple[type[Any], ...]) -> Any:
        """The next event of the `wanted` kind(s); a failure raises its error, a crash WorkerCrashed."""
        return self._next(wanted)

    def wait_located(self) -> protocol.Located:
        """Block until the worker has resolved and located everything; raise its error otherwise."""
        located: protocol.Located = self._next(protocol.Located)
        return located

    def download(self, plan: DownloadPlan) -> None:
        """Send the download plan (an empty plan still lets the worker end cleanly)."""
        self._send(protocol.encode(plan))

    def wait_downloaded(self) -> protocol.Downloaded:
        """Block until the planned downloads are done; the worker then waits for phase 3."""
        result: protocol.Downloaded = self._next(protocol.Downloaded)
        return result

    def record(self, tags: Sequence[VersionTag]) -> None:
        """Phase 3: set `tags` (none: just let the worker end), then end the worker."""
        if tags:
            self._send(protocol.encode(TagPlan(tuple(tags))))
            recorded: protocol.TagsRecorded = self._next(protocol.TagsRecorded)
            if set(recorded.tags) != set(tags):
                raise WorkerCrashed("internal error: the worker recorded other tags than it was asked to")
        self.finish()

    def abort(self) -> None:
        """Tell the worker to stop before downloading; one still busy resolving (a server that does
        not answer) is killed after a moment: nothing of it is needed any more."""
        self._send(protocol.encode(DownloadPlan(abort=True)))
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


# ---------------------------------------------------------------------------------------------
# The pool: every server's worker, phase by phase.


class WorkerPool:
    """The workers of one run, one per server: `locate_all()`, `download_all(plan)`, then
    `finish_all(tags)` (leaving the context normally calls it without tags).

    Use it as a context manager: leaving it (normally, on an error or on an interruption) ends
    every worker and its process group. `worker_module` is the program each worker runs (`python -m`
    it): the real worker, or in tests a double that speaks the same protocol without a server.
    """

    def __init__(
        self,
        wanted: Sequence[Wanted],
        roles: Sequence[str],
        *,
        on_progress: ProgressCallback | None = None,
        on_log: LogCallback | None = None,
        run_env: Mapping[str, str] | None = None,
        private_paths: Sequence[str] = (),
        worker_module: str = WORKER_MODULE,
    ) -> None:
        self.wanted = list(wanted)
        self.roles = tuple(roles)
        servers: list[ServerSpec] = []
        for item in self.wanted:
            if item.server not in servers:
                servers.append(item.server)
        self.workers = [
            Worker(
                server,
                Request(
                    tracking_uri=server.tracking_uri,
                    registry_uri=server.registry_uri,
                    roles=self.roles,
                    versions=tuple(
                        WantedVersion(item.key, item.model, item.version_or_stage)
                        for item in self.wanted
                        if item.server == server
                    ),
                    private_paths=tuple(private_paths),
                ),
                label=_server_label(self.wanted, server),
                on_progress=on_progress,
                on_log=on_log,
                run_env=run_env,
                module=worker_module,
            )
            for server in servers
        ]
        self._worker_of = {item.key: servers.index(item.server) for item in self.wanted}
        self._started: list[Worker] = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.finish_all()  # workers wait for phase 3 after their downloads: let them end cleanly
        for worker in self._started:
            worker.kill()

    def locate_all(self) -> dict[str, LocatedVersion]:
        """Start every worker; return every version, located, by key (phase 1)."""
        for worker in self.workers:
            self._started.append(worker.start())
        errors: list[VersionCheckError] = []
        located: dict[str, LocatedVersion] = {}
        for worker in self._started:
            try:
                for version in worker.wait_located().versions:
                    located[version.key] = version
            except Interrupted as error:  # not a worker's failure: stop them all now (__exit__)
                raise self._with_resolved(error) from None
            except VersionCheckError as error:
                errors.append(error)
        if errors:
            for worker in self._started:
                worker.abort()
            raise self._with_resolved(errors[0])
        return located

    def download_all(self, plan: Plan) -> dict[tuple[str, str], ModelManifest]:
        """Send each worker its part of the plan; return every manifest by (key, role) (phase 2)."""
        parts: dict[int, list[PlannedDownload]] = {}
        for item in plan.downloads:
            parts.setdefault(self._worker_of[item.key], []).append(item)
        for index, worker in enumerate(self._started):
            worker.download(DownloadPlan(tuple(parts.get(index, ()))))
        manifests: dict[tuple[str, str], ModelManifest] = {}
        for worker in self._started:
            try:
                downloaded = worker.wait_downloaded()
            except VersionCheckError as error:
                for other in self._started:
                    other.kill()
                raise self._with_resolved(error) from None
            for manifest in downloaded.manifests:
                manifests[(manifest.key, manifest.role)] = manifest
        return manifests

    def finish_all(self, tags: Sequence[VersionTag] = ()) -> None:
        """Phase 3: each worker sets its versions' `tags` (most have none), then every worker ends."""
        try:
            for index, worker in enumerate(self._started):
                worker.record([tag for tag in tags if self._worker_of[tag.key] == index])
        except VersionCheckError as error:
            for other in self._started:
                other.kill()
            raise self._with_resolved(error) from None

    def _with_resolved(self, error: VersionCheckError) -> VersionCheckError:
        """Every version any worker had resolved, into the error (a failing side knows only its own)."""
        for worker in self._started:
            error.resolved.update(worker.resolved)
        return error


def _server_label(wanted: Sequence[Wanted], server: ServerSpec) -> str:
    keys = [item.key for item in wanted if item.server == server]
    return "" if keys == ["version"] else "+".join(keys)
