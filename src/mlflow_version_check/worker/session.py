"""The worker's session and protocol loop, and the process's life from `main` to `exit_now`.

`Session.open` sets this process's MLflow to the one server of the request; `serve` runs the two
phases of the protocol (the package docstring); `main` connects it to the event channel and the
parent watchdog.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .. import protocol
from ..errors import (
    InvalidOption,
    ModelVersionNotFound,
    ModelVersionNotReady,
    ServerUnreachable,
    VersionCheckError,
)
from ..protocol import (
    AuditRequest,
    DownloadPlan,
    LocatedModel,
    LocatedVersion,
    ModelManifest,
    PlannedDownload,
    ProtocolError,
    Request,
    TagPlan,
    VersionTag,
    WantedVersion,
)
from ..redact import redact
from .downloads import Emit, download_tree, read_mlmodel
from .failures import registry_call, short
from .locations import locate, location_key, registry_download_uri
from .parent import PRIVATE_PATHS, orphaned, watch_parent
from .server import Server, normal_http
from .versions import resolve_version, version_info

if TYPE_CHECKING:
    from mlflow import MlflowClient


def _preflight(tracking_uri: str, host: str | None) -> None:
    """Fail at once when a Databricks workspace does not accept connections.

    databricks-sdk retries a dead host for its whole retry budget in each of the several clients
    MLflow builds; one TCP connection attempt tells the same in milliseconds.
    """
    import socket

    if not host:
        return  # not Databricks, or no host configured: MLflow's own message follows
    parsed = urllib.parse.urlparse(host if "://" in host else f"https://{host}")
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=10):
            pass
    except OSError as exc:
        reason = (
            "connection refused" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or str(exc))
        )
        raise ServerUnreachable(
            f"no answer from the Databricks workspace {redact(host)} of {tracking_uri} ({reason})",
            cause="a wrong host in the profile, the workspace is down, or a network rule blocks it",
            fix="check the profile's host and that the workspace answers.",
            server=redact(host),
        ) from exc


@dataclass
class Session:
    """The one server of this worker and its MLflow client (process-wide settings are ours)."""

    server: Server
    client: MlflowClient

    @classmethod
    def open(cls, tracking_uri: str, registry_uri: str | None) -> Session:
        from .. import databricks

        host = (
            databricks.host_of(tracking_uri, os.environ) if databricks.uses_databricks(tracking_uri) else None
        )
        _preflight(tracking_uri, host)
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        mlflow.set_tracking_uri(tracking_uri)
        if registry_uri:
            mlflow.set_registry_uri(registry_uri)
        display = f"the workspace {host} ({tracking_uri})" if host else tracking_uri
        registry = registry_uri or mlflow.get_registry_uri()
        registry_host = (
            databricks.host_of(registry, os.environ) if databricks.uses_databricks(registry) else None
        )
        workspaces = {
            normal_http(found if "://" in found else f"https://{found}")
            for found in (host, registry_host)
            if found
        }
        server = Server(
            tracking_uri=tracking_uri,
            registry_uri=registry,
            display=display,
            workspace=" ".join(sorted(workspaces)),
        )
        try:
            client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
            # Both stores are built lazily; building them now turns an unknown scheme into a usage error.
            client._tracking_client.store  # noqa: B018
            client._get_registry_client()  # type: ignore[no-untyped-call]  # private, pinned
        except MlflowException as exc:
            if "unsupported uri" not in str(exc).lower():
                raise
            raise InvalidOption(
                f"MLflow cannot use the tracking or registry URI {redact(tracking_uri)!r}"
                f"{f' / {redact(registry_uri)!r}' if registry_uri else ''}: {short(exc)}",
                fix="use http(s)://host:port, databricks://<profile>, file:, sqlite: or a database URI.",
                server=redact(tracking_uri),
            ) from exc
        return cls(server=server, client=client)


def resolve_and_locate(session: Session, wanted: WantedVersion, roles: tuple[str, ...]) -> Located:
    """Resolve one version and find where each requested model's files are stored."""
    client, server = session.client, session.server
    name, version_or_stage = wanted.model, wanted.version_or_stage
    started = time.monotonic()
    found, resolved_by = resolve_version(client, server, name, version_or_stage)
    mv = found
    if resolved_by not in ("version", "alias"):
        # Searches and stage look-ups leave out aliases; one read of the version gives the full record.
        with registry_call(
            server,
            f"reading version {found.version} of '{name}'",
            lambda: ModelVersionNotFound(f"version {found.version} of '{name}' vanished while reading it"),
        ):
            mv = client.get_model_version(name, str(found.version))
    version = version_info(mv, resolved_by, version_or_stage)
    with registry_call(
        server,
        f"reading the download URI of '{name}' version {mv.version}",
        lambda: ModelVersionNotFound(f"version {mv.version} of '{name}' vanished while reading it"),
    ):
        version = replace(version, download_uri=registry_download_uri(client, name, str(mv.version)))
    if version.status not in (None, "READY"):
        raise ModelVersionNotReady(
            f"version {mv.version} of '{name}' has status {version.status}, not READY",
            cause="its registration is still running or failed",
            fix="wait, or pick another version.",
        )
    uris = {"run_model": version.source, "reg_model": version.download_uri}
    models: dict[str, LocatedModel] = {}
    storage: dict[str, str] = {}
    for role in roles:
        if role == "reg_model" and server.is_unity_catalog:
            # Unity Catalog's copy is reached through the registry (temporary credentials, presigned
            # URLs), not through its storage location, which needs cloud credentials.
            location = f"models:/{name}/{mv.version}"
        else:
            location = locate(client, server, uris[role])
        storage[role] = location
        models[role] = LocatedModel(
            uri=uris[role], location=redact(location), location_key=location_key(location, server)
        )
    return Located(LocatedVersion(wanted.key, version, models, time.monotonic() - started), storage)


@dataclass(frozen=True)
class Located:
    """A located version, and each model's storage location as it is (with any credentials in it:
    it stays in this process; the parent gets the redacted `location`)."""

    version: LocatedVersion
    storage: dict[str, str]


def download_planned(
    session: Session, located: dict[str, Located], plan: DownloadPlan, emit: Emit
) -> tuple[ModelManifest, ...]:
    """Download the planned (key, role) models concurrently; return their manifests."""

    def one(item: PlannedDownload) -> ModelManifest:
        destination = Path(item.destination)
        started = time.monotonic()
        location = located[item.key].storage[item.role]
        files = download_tree(session.server, location, destination, item.label, emit)
        return ModelManifest(
            key=item.key,
            role=item.role,
            local_path=str(destination),
            files=files,
            mlmodel_text=read_mlmodel(destination, files),
            download_seconds=time.monotonic() - started,
        )

    with ThreadPoolExecutor(max_workers=max(1, len(plan.downloads)), thread_name_prefix="model") as pool:
        futures = [pool.submit(one, item) for item in plan.downloads]
        return tuple(future.result() for future in futures)


def record_tags(session: Session, plan: TagPlan) -> None:
    """Set the planned model version tags, each on the version number the worker resolved."""
    for item in plan.tags:

        def vanished(item: VersionTag = item) -> VersionCheckError:
            return ModelVersionNotFound(
                f"version {item.version} of '{item.name}' vanished before its tag was set"
            )

        with registry_call(
            session.server, f"setting the tag {item.tag} on version {item.version} of '{item.name}'", vanished
        ):
            session.client.set_model_version_tag(item.name, item.version, item.tag, item.value)


def serve(read_line: Callable[[], str], emit: Emit) -> None:
    """The protocol (protocol.py): Request -> Resolved..., Located -> DownloadPlan -> Downloaded
    [-> TagPlan -> TagsRecorded]."""
    first = json.loads(read_line())
    if isinstance(first, dict) and "audit" in first:
        from .audit import serve_audit

        audit = AuditRequest.from_json(first)
        PRIVATE_PATHS[:] = list(audit.private_paths)
        serve_audit(Session.open(audit.tracking_uri, audit.registry_uri), audit, read_line, emit)
        return
    request = Request.from_json(first)
    PRIVATE_PATHS[:] = list(request.private_paths)
    session = Session.open(request.tracking_uri, request.registry_uri)
    located: dict[str, Located] = {}
    for wanted in request.versions:
        located[wanted.key] = resolve_and_locate(session, wanted, request.roles)
        emit(protocol.Resolved(wanted.key, located[wanted.key].version.version))
    emit(protocol.Located(tuple(entry.version for entry in located.values())))
    plan = DownloadPlan.from_json(json.loads(read_line() or "null"))
    if plan.abort:
        return
    emit(protocol.Downloaded(download_planned(session, located, plan, emit)))
    line = read_line()
    if not line:
        return  # no tags: the parent closed stdin
    tags = TagPlan.from_json(json.loads(line))
    for item in tags.tags:
        found = located[item.key].version.version if item.key in located else None
        if found is None or (found.name, found.version) != (item.name, item.version):
            raise ProtocolError(f"a tag for a version this worker did not resolve: {item.to_json()}")
    record_tags(session, tags)
    emit(protocol.TagsRecorded(tags.tags))


def main(argv: list[str]) -> int:
    # The parent's pid from the command line: one that died before this line still counts as gone.
    parent_pid = int(argv[2]) if len(argv) > 2 else os.getppid()
    watch_parent(parent_pid)
    channel = os.fdopen(int(argv[1]), "w", encoding="utf-8", buffering=1)
    lock = threading.Lock()

    def emit(event: protocol.Event) -> None:
        line = protocol.encode(event)
        with lock:
            try:
                channel.write(line + "\n")
                channel.flush()
            except BrokenPipeError:
                orphaned()  # nobody reads any more: the parent died (SIGKILL)
            except OSError:
                if os.getppid() != parent_pid:
                    orphaned()
                raise

    try:
        serve(sys.stdin.readline, emit)
    except VersionCheckError as exc:
        # Secrets out before the message leaves: a Python API caller may print the error as it is.
        fields = {name: redact(value) if value else value for name, value in exc.fields().items()}
        emit(protocol.Failure(exc.type_name, fields))
    finally:
        channel.close()
    return 0


def exit_now(code: int) -> NoReturn:
    """End without the interpreter's teardown.

    Unloading MLflow's modules and thread pools takes about 0.4 s, and the parent waits for this
    process to end before it reports. Everything this worker wrote is closed by now (downloads, the
    event channel); only the log streams need a flush.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
