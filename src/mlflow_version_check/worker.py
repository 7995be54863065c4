"""The per-server worker process: resolve a model version, locate and download its models, hash them.

It runs as `python -m mlflow_version_check.worker <fd> <parent pid>` with an environment that names
exactly one server (DESIGN.md, "one worker process per server"), because several MLflow code paths
read the process-wide tracking URI or default credentials whatever URI they are given. Inside this
process the process-wide settings are therefore safe. The request comes as JSON on stdin; events go
as JSON lines on the file descriptor <fd>, so that anything MLflow prints on stdout cannot corrupt
the protocol.

The protocol has two phases, so that the parent can see where every model of every server is stored
before anything is downloaded, and download each storage location once:

1. stdin line: {"tracking_uri", "registry_uri", "roles", "versions": [{"key", "model", "version_or_stage"}]}
   -> events "resolved" (per version) and then "located" (versions, URIs, storage location keys).
2. stdin line: {"download": [{"key", "role", "destination", "label"}]} or {"abort": true}
   -> "progress" events, then "result" (a manifest per downloaded model).

An {"event": "error"} ends the conversation at any point.

Rules this process keeps:

- Storage location keys. The parent downloads a location once when two models report the same
  `location_key`, and then reports them as one location (`same_location`): a key is a promise of the
  same bytes in the same store. It is this server's identity (the normalized tracking URI with its
  path, the normalized registry URI, the Databricks workspace host) plus the normalized storage URI
  (`mlflow-artifacts:` resolved to the URL MLflow requests). Only spellings that are provably the
  same are normalized (scheme and host case, a default port, trailing and duplicate slashes and dot
  segments in an HTTP path, a local path's real path); never `localhost` vs `127.0.0.1`. Credentials
  in a URI enter a key only as a SHA-256 digest, and keys never reach a report.
- Local files. A `file:` (or bare path) location is read only when the URI that supplied it is this
  machine's own store (see `is_local_uri`): a remote tracking server or registry must not be able to
  make this tool read, hash and name files of the machine it runs on.
- File names. Manifest keys are the listed relative paths, as text. A byte of a local file name that
  is not UTF-8 (Python's surrogateescape, U+DC80..U+DCFF) is written as the four characters `\\xNN`,
  and any other lone surrogate as `\\uNNNN` (lower-case hex), so that every name survives JSON and
  UTF-8 and two different names never share a key: listing entries with a backslash are refused as
  unsafe, so a backslash in a key is always such an escape. Control characters are kept as they are
  (JSON escapes them; the front ends neutralize them on their text outputs).
- Parent. The parent passes its pid; within a second of the parent's death, even a SIGKILL, a
  watchdog thread (or a failed write to the parent) removes the run's private directories named in
  the request and ends this process with its process group, so that no worker blocked on a silent
  server lives on and no credential copy or download is left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeGuard

from .errors import (
    AliasNotFound,
    ArtifactDownloadError,
    ArtifactNotFound,
    AuthenticationFailed,
    InvalidOption,
    ModelNotFound,
    ModelVersionNotFound,
    ModelVersionNotReady,
    RegistryError,
    ServerUnreachable,
    StagesUnsupported,
    UnsafeArtifactPath,
    VersionCheckError,
)
from .manifest import HASH_CHUNK_BYTES, FileEntry, hash_file
from .redact import redact
from .untrusted import escape_surrogates

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.store.artifact.artifact_repo import ArtifactRepository
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}
DOWNLOAD_THREADS = 8
PROGRESS_INTERVAL_SECONDS = 0.5
MLMODEL_MAX_BYTES = 4 * 1024 * 1024

Emit = Callable[[dict[str, Any]], None]


# ---------------------------------------------------------------------------------------------
# Turning MLflow's and requests' exceptions into the named errors, at one place per kind of call.


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_connection_failure(exc: BaseException) -> bool:
    import requests

    # databricks-sdk raises the builtin TimeoutError when its retry budget runs out.
    kinds = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, TimeoutError, ConnectionError)
    return any(isinstance(link, kinds) for link in _exception_chain(exc))


def _connection_reason(exc: BaseException) -> str:
    """The root cause of a connection failure in a few words, not urllib3's paragraph."""
    text = " ".join(str(link) for link in _exception_chain(exc)).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("temporary failure in name resolution", "host name not found"),
        ("certificate verify failed", "TLS certificate not trusted"),
        ("ssl", "TLS handshake failed"),
        ("connection reset", "connection reset"),
        ("remote end closed", "connection closed by the server"),
    ):
        if needle in text:
            return reason
    return type(list(_exception_chain(exc))[-1]).__name__


def _http_status(exc: BaseException) -> int | None:
    import requests

    for link in _exception_chain(exc):
        if isinstance(link, requests.HTTPError) and link.response is not None:
            return int(link.response.status_code)
    return None


def _error_code(exc: BaseException) -> str | None:
    from mlflow.exceptions import MlflowException

    for link in _exception_chain(exc):
        if isinstance(link, MlflowException):
            return str(link.error_code)
    return None


def _short(exc: BaseException) -> str:
    # Redacted before its whitespace is collapsed (a secret with a tab or two spaces would no longer
    # match itself) and before it is cut (a cut through a secret would leave its start in clear).
    text = " ".join(redact(str(exc)).split())
    return text if len(text) <= 300 else text[:297] + "..."


# The names by which a tracking server on this very machine is reached. Exactly these, not all of
# 127.0.0.0/8: the other loopback addresses are where containers, tunnels and port-forwards
# (`ssh -L 127.0.0.2:...`, docker's userland proxy) put servers whose disks are not this machine's,
# and a refusal here costs one clear error with a fix while a wrong "local" lets a server name files
# of the machine running the check. The tests rely on it: a proxy on 127.0.0.2 plays a remote server.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Stores this tool reads directly (MLflow opens the database itself): the artifact locations they
# name are the user's own.
DATABASE_SCHEMES = frozenset({"sqlite", "postgresql", "mysql", "mssql"})


def is_local_uri(uri: str) -> bool:
    """Whether a tracking or registry URI is this machine's own store, whose local paths may be read.

    Local: a bare path, file:, sqlite: and the database URIs, and http(s) to 127.0.0.1, localhost or
    ::1 (a server started here, e.g. `mlflow server --no-serve-artifacts --default-artifact-root
    <dir>`). Anything else (other hosts, Databricks) is remote.
    """
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or scheme.split("+", 1)[0] in DATABASE_SCHEMES:
        return True
    if scheme in ("http", "https"):
        return (parsed.hostname or "") in LOCAL_HOSTS
    return False


def _is_local_location(location: str) -> bool:
    """Whether a storage location is a path on this machine (MLflow's LocalArtifactRepository)."""
    return urllib.parse.urlsplit(location).scheme.lower() in ("", "file")


@dataclass(frozen=True)
class Server:
    """The one server this worker talks to (URIs as given, for messages)."""

    tracking_uri: str
    registry_uri: str
    # For messages: the tracking URI, with the workspace URL of a Databricks profile.
    display: str = ""
    # The Databricks workspace URL(s) the tracking and registry URIs reach ("" when not Databricks).
    workspace: str = ""

    @property
    def shown(self) -> str:
        return redact(self.display or self.tracking_uri)

    @property
    def is_unity_catalog(self) -> bool:
        return urllib.parse.urlparse(self.registry_uri).scheme == "databricks-uc"

    @property
    def identity(self) -> list[str]:
        """What tells this server apart from every other: see `location_key`."""
        return [_normal_uri(self.tracking_uri), _normal_uri(self.registry_uri), self.workspace]


def _from_databricks_sdk(exc: BaseException) -> bool:
    """A ValueError raised inside databricks-sdk: how it reports refused or missing credentials
    (an OAuth token request answered 401, no usable auth method), not a bug of this tool."""
    if not isinstance(exc, ValueError):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any(f"{os.sep}databricks{os.sep}sdk{os.sep}" in frame.filename for frame in frames)


def _raise_common(exc: BaseException, server: Server, doing: str) -> None:
    """Raise the named error for failures that mean the same whatever the call."""
    if isinstance(exc, ValueError):
        if not _from_databricks_sdk(exc):
            raise exc  # a bug, not a server's answer: the worker ends and the parent says so
        raise AuthenticationFailed(
            f"{doing} failed: {server.shown} refused the credentials (authentication failed: "
            f"{_short(exc)}). Likely cause: a wrong or expired client secret or token. Fix: check the "
            "profile's token (or client_id and client_secret) in .databrickscfg, or the DATABRICKS_* "
            "variables."
        ) from exc
    code = _error_code(exc)
    status = _http_status(exc)
    if _is_connection_failure(exc):
        raise ServerUnreachable(
            f"{doing} failed: no answer from {server.shown} ({_connection_reason(exc)}). "
            "Likely cause: the server is down, the URI or port is wrong, or a proxy blocks it. "
            "Fix: check the tracking URI and that the server answers, or raise --timeout."
        ) from exc
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or status in (401, 403):
        kind = (
            "refused the permission"
            if code == "PERMISSION_DENIED" or status == 403
            else ("refused the credentials")
        )
        raise AuthenticationFailed(
            f"{doing} failed: {server.shown} {kind} (authentication failed). "
            "Likely cause: a missing, expired or wrong token, or no access to this model. Fix: "
            + (
                "check the profile's token (or client_id and client_secret) in .databrickscfg, or "
                "the DATABRICKS_* variables."
                if server.display.startswith("the workspace")
                else "check MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and PASSWORD."
            )
        ) from exc


def _means_not_found(exc: BaseException) -> bool:
    return _error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or _http_status(exc) == 404


@contextmanager
def registry_call(
    server: Server,
    doing: str,
    not_found: Callable[[], VersionCheckError],
    means_not_found: Callable[[BaseException], bool] = _means_not_found,
) -> Iterator[None]:
    """Translate failures of one registry/tracking call; `not_found` builds the 404 error."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, requests.RequestException, TimeoutError, ConnectionError, ValueError) as exc:
        _raise_common(exc, server, doing)
        if means_not_found(exc):
            raise not_found() from exc
        raise RegistryError(
            f"{doing} failed: the server answered {_short(exc)}. Likely cause: a server-side "
            "problem or an MLflow version the server does not support. Fix: rerun with --verbose "
            "and check the server's log."
        ) from exc


# ---------------------------------------------------------------------------------------------
# Version resolution, in the order of DESIGN.md.


def _version_info(mv: ModelVersion, resolved_by: str, version_or_stage: str) -> dict[str, Any]:
    return {
        "name": mv.name,
        "version": str(mv.version),
        "version_or_stage": version_or_stage,
        "resolved_by": resolved_by,
        "source": mv.source,
        "run_id": mv.run_id or None,
        "stage": getattr(mv, "current_stage", None) or None,
        "aliases": sorted(getattr(mv, "aliases", None) or []),
        "status": str(mv.status) if mv.status is not None else None,
        "creation_timestamp": mv.creation_timestamp,
    }


def _not_found_model(name: str, server: Server) -> Callable[[], VersionCheckError]:
    return lambda: ModelNotFound(
        f"registered model '{name}' not found on {redact(server.registry_uri)}. Likely cause: a "
        "typo in the name or the wrong server/workspace. Fix: check the name (it is case-"
        "sensitive) and the tracking/registry URI."
    )


def _filter_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resolve_version(
    client: MlflowClient, server: Server, name: str, version_or_stage: str
) -> tuple[ModelVersion, str]:
    """Find the model version that version_or_stage names; return it and how it was resolved."""
    spec = version_or_stage.strip()
    if not server.is_unity_catalog:
        # One cheap call that tells "no such model" apart from "no such version/alias".
        with registry_call(server, f"reading registered model '{name}'", _not_found_model(name, server)):
            client.get_registered_model(name)

    def by_alias(alias: str) -> tuple[ModelVersion, str]:
        def missing() -> VersionCheckError:
            return AliasNotFound(
                f"registered model '{name}' has no alias '{alias}'. Likely cause: a typo, or the "
                "alias was never set or was moved. Fix: set it (MlflowClient."
                "set_registered_model_alias) or give a version number, 'latest' or a stage."
            )

        def alias_missing(exc: BaseException) -> bool:
            # Open-source servers answer an unknown alias with INVALID_PARAMETER_VALUE.
            return _means_not_found(exc) or (
                _error_code(exc) == "INVALID_PARAMETER_VALUE" and "alias" in str(exc).lower()
            )

        with registry_call(server, f"resolving alias '{alias}' of '{name}'", missing, alias_missing):
            return client.get_model_version_by_alias(name, alias), "alias"

    if spec.startswith("@"):  # a bare "@" is refused before any worker starts (core.py)
        return by_alias(spec[1:])
    if spec.isdigit():

        def missing_version() -> VersionCheckError:
            return ModelVersionNotFound(
                f"version {spec} of registered model '{name}' not found. Likely cause: the "
                "version was deleted or never registered here. Fix: give an existing version, "
                "'latest', a stage or '@alias'."
            )

        with registry_call(server, f"reading version {spec} of '{name}'", missing_version):
            return client.get_model_version(name, spec), "version"
    if spec.lower() == "latest":
        versions: list[ModelVersion] = []
        with registry_call(server, f"listing versions of '{name}'", _not_found_model(name, server)):
            token: str | None = None
            while True:
                page = client.search_model_versions(
                    filter_string=f"name={_filter_literal(name)}", max_results=1000, page_token=token
                )
                versions.extend(page)
                token = page.token
                if not token:
                    break
        if not versions:
            raise ModelVersionNotFound(
                f"registered model '{name}' has no versions. Fix: register a version first."
            )
        return max(versions, key=lambda mv: int(mv.version)), "latest"
    if spec.lower() in STAGES:
        stage = STAGES[spec.lower()]
        if server.is_unity_catalog:
            raise StagesUnsupported(
                f"stage '{spec}' cannot be used with Unity Catalog ({redact(server.registry_uri)}): "
                "it has no stages. Fix: use an alias ('@champion') or a version number."
            )
        with registry_call(
            server, f"finding the {stage} version of '{name}'", _not_found_model(name, server)
        ):
            found = client.get_latest_versions(name, stages=[stage])
        if not found:
            raise ModelVersionNotFound(
                f"registered model '{name}' has no version in stage {stage}. Likely cause: no "
                "version was transitioned to it. Fix: give a version number, 'latest' or '@alias'."
            )
        return max(found, key=lambda mv: int(mv.version)), "stage"
    return by_alias(spec)


# ---------------------------------------------------------------------------------------------
# Locating: from the version's URIs to the concrete storage location that holds the files.


def _parse_models_uri(uri: str) -> tuple[str, str | None]:
    """`models:/m-<id>[/sub]` -> (id, sub) for logged models; raises for registry forms."""
    path = urllib.parse.urlparse(uri).path.lstrip("/")
    head, _, rest = path.partition("/")
    return head, rest or None


def _locate_runs_uri(client: MlflowClient, server: Server, uri: str) -> str:
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    run_id, sub_path = RunsArtifactRepository.parse_runs_uri(uri)  # type: ignore[no-untyped-call]
    with registry_call(
        server,
        f"reading run {run_id}",
        lambda: ArtifactNotFound(
            f"run {run_id} named by {uri} not found. Likely cause: the run was deleted. Fix: "
            "re-register the version from an existing run."
        ),
    ):
        run = client.get_run(run_id)
    run_location = run.info.artifact_uri.rstrip("/")
    location = f"{run_location}/{sub_path}" if sub_path else run_location
    _refuse_local_from_remote(server, location, uri, supplier="tracking")
    if not sub_path or _has_files(location):
        return location
    # MLflow 3 keeps a model logged with `name=` in a logged model, which runs:/ also reaches.
    model_name, _, rest = sub_path.partition("/")
    with registry_call(server, f"searching logged models of run {run_id}", lambda: ArtifactNotFound(uri)):
        logged = client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"name = {_filter_literal(model_name)}",
        )
    for model in logged:
        if model.source_run_id == run_id:
            base = model.artifact_location.rstrip("/")
            _refuse_local_from_remote(server, base, uri, supplier="tracking")
            return f"{base}/{rest}" if rest else base
    return location


def _locate_models_uri(client: MlflowClient, server: Server, uri: str, depth: int) -> str:
    head, rest = _parse_models_uri(uri)
    if head.startswith("m-") and "@" not in head:
        with registry_call(
            server,
            f"reading logged model {head}",
            lambda: ArtifactNotFound(
                f"logged model {head} named by {uri} not found. Likely cause: it was deleted. "
                "Fix: re-register the version."
            ),
        ):
            base = client.get_logged_model(head).artifact_location.rstrip("/")
        _refuse_local_from_remote(server, base, uri, supplier="tracking")
        return f"{base}/{rest}" if rest else base
    if "@" in head:
        name, alias = head.split("@", 1)
        with registry_call(server, f"resolving {uri}", lambda: AliasNotFound(f"{uri} not found")):
            version = str(client.get_model_version_by_alias(name, alias).version)
    else:
        name, version = head, (rest or "")
    with registry_call(server, f"resolving {uri}", lambda: ModelVersionNotFound(f"{uri} not found")):
        target = client.get_model_version_download_uri(name, version)
    return locate(client, server, target, depth + 1)


def _refuse_local_from_remote(server: Server, location: str, named_by: str, supplier: str) -> None:
    """Refuse a path on this machine that a remote tracking server or registry gave as storage.

    `supplier` says whose answer the location is: "tracking" (a run's or logged model's artifact
    location) or "registry" (a version's source or download URI). Its URI decides (is_local_uri).
    """
    if not _is_local_location(location):
        return
    supplier_uri = server.tracking_uri if supplier == "tracking" else server.registry_uri
    if is_local_uri(supplier_uri):
        return
    if supplier == "tracking" or supplier_uri == server.tracking_uri:
        who = f"the tracking server {server.shown}"
    else:
        who = f"the registry {redact(supplier_uri)}"
    named = f" (for {redact(named_by)})" if named_by != location else ""
    raise UnsafeArtifactPath(
        f"{who} names a path on this machine, {redact(location)}{named}, as the model's storage; it was "
        "not read. Likely cause: the version was registered from a local path on another machine, or a "
        "hostile server. Fix: register the model from the server's artifact store (runs:/ or "
        "mlflow-artifacts:/), or check it against a tracking URI on this machine (file:, sqlite:, "
        "http://127.0.0.1)."
    )


def locate(client: MlflowClient, server: Server, uri: str, depth: int = 0) -> str:
    """Return the storage URI behind a version's source or download URI."""
    if depth > 3:
        raise ArtifactNotFound(f"cannot resolve {uri}: it refers to itself. Fix: report this.")
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme == "runs":
        return _locate_runs_uri(client, server, uri)
    if scheme == "models":
        return _locate_models_uri(client, server, uri, depth)
    # Any other URI here is a storage location that the registry gave: a version's source or
    # download URI, or the download URI of the version a models:/ source names.
    _refuse_local_from_remote(server, uri, uri, supplier="registry")
    if scheme == "" and uri.startswith("/"):
        return "file://" + uri
    if scheme == "dbfs":
        from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

        return str(add_databricks_profile_info_to_artifact_uri(uri, server.tracking_uri))  # type: ignore[no-untyped-call]
    return uri


DEFAULT_PORTS = {"http": 80, "https": 443}


def _credentials_digest(userinfo: str) -> str:
    """Credentials of a URI, as part of a key: a different user may be a different view, so they
    count, but never in clear."""
    return "sha256:" + hashlib.sha256(userinfo.encode("utf-8", "surrogatepass")).hexdigest() + "@"


def _normal_http_path(path: str) -> str:
    """An HTTP path without duplicate slashes, dot segments (urllib3 removes them before sending) or a
    trailing slash."""
    collapsed = re.sub("/+", "/", path)
    normal = posixpath.normpath(collapsed) if collapsed else ""
    return "" if normal in (".", "/") else normal.rstrip("/")


def _normal_http(uri: str) -> str:
    """An http(s) URL in the one spelling of what it reaches: lower-case scheme and host, no default
    port, a normal path (see _normal_http_path); query kept exactly; the fragment (never sent) dropped."""
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    try:
        port = parsed.port
    except ValueError:
        return uri  # not a URL MLflow can use either: kept exactly, so it matches only itself
    userinfo = parsed.netloc.rpartition("@")[0] if "@" in parsed.netloc else ""
    host = parsed.hostname or ""
    netloc = (_credentials_digest(userinfo) if userinfo else "") + (f"[{host}]" if ":" in host else host)
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    return urllib.parse.urlunsplit((scheme, netloc, _normal_http_path(parsed.path), parsed.query, ""))


def _normal_uri(uri: str) -> str:
    """A tracking or registry URI in the one spelling of the server it reaches.

    http(s): see _normal_http. Others (databricks://profile, sqlite:, file:, database URIs): the
    scheme lower-cased, credentials as a digest, everything else exactly as given: `sqlite:///a`
    and `sqlite:////a` are different files, and profile names are case-sensitive.
    """
    if not uri:
        return ""
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        return _normal_http(uri)
    if not scheme:
        return uri
    rest = uri[len(parsed.scheme) :]
    if "@" in parsed.netloc:
        userinfo, _, host = parsed.netloc.rpartition("@")
        rest = rest.replace(parsed.netloc, _credentials_digest(userinfo) + host, 1)
    return scheme + rest


def _storage_key(location: str, server: Server) -> str:
    """A storage URI in the one spelling of the bytes it names, on this server.

    file: (and a bare path): the real path (symlinks in its parents resolved). mlflow-artifacts:
    the http(s) URL MLflow requests for it (its own resolution: the tracking URI's scheme, host and
    path, or the host the URI names), normalized as HTTP. http(s): normalized. Anything else (dbfs:,
    models:, s3:, gs:, ...): the scheme lower-cased and trailing slashes dropped (every artifact
    repository takes the location as a folder), the rest exactly: object stores keep `a//b` and `a/b`
    apart.
    """
    parsed = urllib.parse.urlsplit(location)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file"):
        path = location if not scheme else urllib.parse.unquote(parsed.path)
        real = os.path.realpath(path) if path else path
        return f"file://{parsed.netloc.lower() if scheme else ''}{real}"
    if scheme == "mlflow-artifacts":
        from mlflow.exceptions import MlflowException
        from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

        try:
            resolved = str(MlflowArtifactsRepository.resolve_uri(location, server.tracking_uri))  # type: ignore[no-untyped-call]
        except MlflowException:
            return location  # MLflow cannot download it either: it matches only itself
        return _normal_http(resolved)
    if scheme in ("http", "https"):
        return _normal_http(location)
    return scheme + location[len(parsed.scheme) :].rstrip("/")


def location_key(location: str, server: Server) -> str:
    """The key under which the parent downloads a storage location once (module docstring).

    Two models share a key only when they are the same storage URI on the same server identity;
    two servers never share one, however alike their paths (a replica, a restored backup, two Unity
    Catalog workspaces with the same model names): when in doubt, both are downloaded.
    """
    return json.dumps([*server.identity, _storage_key(location, server)])


# ---------------------------------------------------------------------------------------------
# Listing and downloading, hashing each file as soon as it is on disk.


def _repository(location: str) -> ArtifactRepository:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
    from mlflow.store.artifact.unity_catalog_models_artifact_repo import UnityCatalogModelsArtifactRepository

    repo = get_artifact_repository(location)
    inner = getattr(repo, "repo", None)
    if isinstance(repo, ModelsArtifactRepository) and isinstance(inner, UnityCatalogModelsArtifactRepository):
        # The Unity Catalog repository lists and downloads whole trees only; its storage repository
        # (presigned URLs, or cloud storage with temporary credentials) serves single files too.
        storage: ArtifactRepository = inner._get_artifact_repo()  # type: ignore[no-untyped-call]
        return storage
    return repo


def _has_files(location: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        return bool(_repository(location).list_artifacts())
    except (MlflowException, OSError):
        return False


def _safe_relative(path: str, parent: str | None) -> str:
    """Refuse listing entries that would land outside the download directory."""
    if not path or "\\" in path or "\0" in path or path.startswith("/"):
        raise UnsafeArtifactPath(
            f"the artifact listing names an unsafe path {path!r}. Likely cause: a broken or "
            "hostile artifact store. Nothing was written for it. Fix: inspect the model's storage."
        )
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts) or posixpath.normpath(path) != path:
        raise UnsafeArtifactPath(
            f"the artifact listing names an unsafe path {path!r}. Likely cause: a broken or "
            "hostile artifact store. Nothing was written for it. Fix: inspect the model's storage."
        )
    if parent and not path.startswith(parent + "/"):
        raise UnsafeArtifactPath(
            f"the artifact listing of {parent!r} names {path!r}, which is not inside it. Fix: "
            "inspect the model's storage."
        )
    return path


def _refuse_local_symlink(repo: ArtifactRepository, path: str) -> None:
    """A local store (file:, a path) must hold the model's files, not links to them.

    MLflow follows links when it lists and copies: a link lets bytes from outside the model (or a
    loop back into it) pass as the model's own, and a linked file changes without the model
    changing. Only local stores can hold links; remote stores list plain objects.
    """
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    if not isinstance(repo, LocalArtifactRepository):
        return
    stored = Path(repo.artifact_dir, path)
    if stored.is_symlink():
        raise UnsafeArtifactPath(
            f"{path!r} in the artifact store {redact(repo.artifact_uri)} is a symlink (to "
            f"{os.readlink(stored)!r}), not a stored file. Likely cause: the model's storage links "
            "to files kept elsewhere. Fix: replace the link with the file itself, then rerun."
        )


MAX_DEPTH = 32  # below Linux's 40 symlinks per path lookup, far above any real model


def list_files(
    repo: ArtifactRepository, parent: str | None = None, depth: int = 0
) -> Iterator[tuple[str, int | None]]:
    if depth > MAX_DEPTH:
        # A local store follows symlinked folders: a link to a parent would list forever.
        raise UnsafeArtifactPath(
            f"the artifact listing nests deeper than {MAX_DEPTH} folders at {parent!r}. Likely cause: a "
            "symlink loop in the artifact store. Fix: remove the link from the model's storage."
        )
    # At the root, each repository's own default (None for most, "" for presigned-URL ones).
    for info in repo.list_artifacts(parent) if parent is not None else repo.list_artifacts():
        path = _safe_relative(info.path, parent)
        _refuse_local_symlink(repo, path)
        if info.is_dir:
            yield from list_files(repo, path, depth + 1)
        else:
            yield path, info.file_size


class Progress:
    """Counts finished files and bytes; emits at most one event per interval."""

    def __init__(self, emit: Emit, role: str, files_total: int, bytes_total: int) -> None:
        self._emit, self._role = emit, role
        self._files_total, self._bytes_total = files_total, bytes_total
        self._files = self._bytes = 0
        self._lock = threading.Lock()
        self._last = 0.0

    def add(self, size: int, *, files: int = 1, force: bool = False) -> None:
        with self._lock:
            self._files += files
            self._bytes += size
            now = time.monotonic()
            if force or now - self._last >= PROGRESS_INTERVAL_SECONDS:
                self._last = now
                self._emit(
                    {
                        "event": "progress",
                        "role": self._role,
                        "files_done": self._files,
                        "files_total": self._files_total,
                        "bytes_done": self._bytes,
                        "bytes_total": self._bytes_total,
                    }
                )


def _download_error(exc: BaseException, server: Server, location: str, path: str) -> NoReturn:
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        raise ArtifactDownloadError(
            f"downloading {path} of {redact(location)} failed: no space left on the device of the "
            "download directory. Fix: free space or give --download-dir on a larger file system."
        ) from exc
    _raise_common(exc, server, f"downloading {path} of {redact(location)}")
    if "invalid path" in str(exc).lower():
        # MLflow's own check: the file resolves outside the store (a link or a changed tree).
        raise UnsafeArtifactPath(
            f"{path} of {redact(location)} resolves outside the artifact store ({_short(exc)}). "
            "Likely cause: a link or a hostile store. Nothing was written for it. Fix: inspect "
            "the model's storage."
        ) from exc
    if _http_status(exc) == 404:
        raise ArtifactNotFound(
            f"{path} of {redact(location)} is listed but cannot be read (404). Likely cause: the "
            "model is being deleted or the store is inconsistent. Fix: check the model's storage."
        ) from exc
    raise ArtifactDownloadError(
        f"downloading {path} of {redact(location)} failed: {_short(exc)}. Likely cause: the "
        "connection dropped or the store refused the read. Fix: rerun; if it persists, check the "
        "server's artifact store."
    ) from exc


def _streams_sequentially(repo: ArtifactRepository) -> TypeGuard[HttpArtifactRepository]:
    """Whether MLflow downloads this repository's files as one sequential HTTP stream each.

    True for plain http(s) stores, and for mlflow-artifacts: through a tracking server unless the
    server offers multipart downloads (presigned URLs to cloud storage, fetched in parallel ranges):
    the same choice MlflowArtifactsRepository._download_file makes.
    """
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

    if type(repo) is HttpArtifactRepository:
        return True
    if type(repo) is MlflowArtifactsRepository:
        return not repo._is_multipart_download_enabled()  # type: ignore[no-untyped-call]
    return False


def _copy_local_and_hash(repo: LocalArtifactRepository, path: str, local: Path) -> FileEntry:
    """Copy one file of a local store exactly as listed, hashing it on the way.

    Not MLflow's LocalArtifactRepository._download_file: it URL-decodes the path and drops control
    characters first (validate_path_is_safe), so `a%41.txt` would be read from `aA.txt` (a change to
    one hidden behind the other), a name with a tab from the name without it, and a `#` is refused. The
    listing already passed _safe_relative (no `..`, absolute path, backslash) and the link check;
    here the file must still resolve inside the store and must not be a link (O_NOFOLLOW).
    """
    store = os.path.realpath(repo.artifact_dir)
    stored = os.path.join(store, path)
    if os.path.commonpath([store, os.path.realpath(stored)]) != store:
        raise UnsafeArtifactPath(
            f"{manifest_name(path)!r} in the artifact store {redact(repo.artifact_uri)} resolves outside "
            "it. Likely cause: a link or a changed tree. Nothing was written for it. Fix: inspect the "
            "model's storage."
        )
    digest, size = hashlib.sha256(), 0
    descriptor = os.open(stored, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with open(descriptor, "rb") as source, open(local, "wb") as target:
        while chunk := source.read(HASH_CHUNK_BYTES):
            target.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return FileEntry(size=size, sha256=digest.hexdigest())


# Characters that a URL path reads as something else: `?` starts the query, `#` the fragment, and `%`
# an escape the server decodes (`a%41` would fetch `aA`). MLflow's HTTP repositories join the listed
# path into the URL as it is.
URL_SPECIAL = ("%", "?", "#")


def download_and_hash(repo: ArtifactRepository, path: str, local: Path) -> FileEntry:
    """Download one file of the model and return its size and SHA-256.

    Where MLflow writes a file as one sequential stream, hashing the same chunks as they are written
    overlaps the hash with the transfer and gives exactly the bytes on disk. Other repositories may
    write a file in parallel ranges or through a temporary file, so their files are hashed once
    complete.
    """
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    if isinstance(repo, LocalArtifactRepository):
        return _copy_local_and_hash(repo, path, local)
    if not _streams_sequentially(repo):
        from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

        if isinstance(repo, HttpArtifactRepository) and any(char in path for char in URL_SPECIAL):
            # MLflow would fetch another file under this name (a hidden change): refuse, not guess.
            raise UnsafeArtifactPath(
                f"{manifest_name(path)!r} of {redact(repo.artifact_uri)} cannot be fetched as named: MLflow "
                "puts it into a URL unquoted, where '%', '?' and '#' change which file is read. Likely "
                "cause: a file name with URL syntax in the store. Fix: rename the file, or check without "
                "multipart downloads (MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD unset)."
            )
        repo._download_file(path, str(local))  # type: ignore[no-untyped-call]
        return hash_file(local)
    from mlflow.utils.request_utils import augmented_raise_for_status
    from mlflow.utils.rest_utils import http_request

    # What HttpArtifactRepository._download_file does (MLflow pinned by constraints.txt), plus the hash,
    # with the path quoted: unquoted, `evil?x` would fetch `evil` and `evil%41` would fetch `evilA`.
    response = http_request(  # type: ignore[no-untyped-call]
        repo._host_creds, "/" + urllib.parse.quote(path, safe="/"), "GET", stream=True
    )
    with response:
        augmented_raise_for_status(response)  # type: ignore[no-untyped-call]
        digest, size = hashlib.sha256(), 0
        with open(local, "wb") as stream:
            for chunk in response.iter_content(chunk_size=HASH_CHUNK_BYTES):
                stream.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    return FileEntry(size=size, sha256=digest.hexdigest())


def manifest_name(path: str) -> str:
    """A listed path as a manifest key (module docstring): untrusted.escape_surrogates."""
    return escape_surrogates(path)


def _refuse_duplicates(files: list[tuple[str, int | None]], location: str) -> None:
    """A listing that names one path twice is not a tree: one entry would hide the other.

    MLflow's tracking server decodes `%XX` in the names it lists, so a stored `evil%41` is listed as
    `evilA` next to the real `evilA`; both would be fetched from `evilA`, and a change to `evil%41`
    would pass unseen.
    """
    seen: set[str] = set()
    for path, _ in files:
        if path in seen:
            raise UnsafeArtifactPath(
                f"the artifact listing of {redact(location)} names {manifest_name(path)!r} twice, so one "
                "entry would hide the other. Likely cause: a stored name with '%XX' that the server decodes "
                "into another file's name. Fix: rename the file in the model's storage."
            )
        seen.add(path)


def download_tree(
    server: Server, location: str, destination: Path, role: str, emit: Emit
) -> dict[str, list[Any]]:
    """Download every file at location into destination; return path -> [size, sha256]."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        repo = _repository(location)
        files = sorted(list_files(repo))
    except (MlflowException, requests.RequestException, OSError, ValueError) as exc:
        _raise_common(exc, server, f"listing {redact(location)}")
        if _means_not_found(exc):
            files = []
        elif "invalid path" in str(exc).lower():
            # MLflow's own path check (validate_path_is_safe) caught a `..` or absolute entry first.
            raise UnsafeArtifactPath(
                f"the artifact listing of {redact(location)} names an unsafe path ({_short(exc)}). "
                "Likely cause: a broken or hostile artifact store. Nothing was written for it. "
                "Fix: inspect the model's storage."
            ) from exc
        else:
            raise ArtifactDownloadError(
                f"listing {redact(location)} failed: {_short(exc)}. Fix: check the server's "
                "artifact store and rerun with --verbose."
            ) from exc
    if not files:
        raise ArtifactNotFound(
            f"no files at {redact(location)} ({role}). Likely cause: the model's artifacts were "
            "deleted or never uploaded, or the version points at the wrong path. Fix: check the "
            "version's source in the registry."
        )
    _refuse_duplicates(files, location)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    progress = Progress(emit, role, len(files), sum(size or 0 for _, size in files))
    manifest: dict[str, list[Any]] = {}
    lock = threading.Lock()

    def fetch(path: str, listed_size: int | None) -> None:
        if ORPHANED.is_set():
            return  # the parent is gone and the downloads are being removed: write nothing more
        name = manifest_name(path)
        local = (root / path).resolve()
        if root not in local.parents:
            raise UnsafeArtifactPath(f"{name!r} resolves outside the download directory")
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            entry = download_and_hash(repo, path, local)
        except (MlflowException, requests.RequestException, OSError, ValueError) as exc:
            _download_error(exc, server, location, name)
        if listed_size is not None and entry.size != listed_size:
            # A transfer cut short without an error would otherwise look like a changed file.
            raise ArtifactDownloadError(
                f"downloading {name} of {redact(location)} gave {entry.size} bytes but the listing "
                f"says {listed_size}. Likely cause: the transfer was cut short or the file changed "
                "during the check. Fix: rerun; if it persists, check the artifact store."
            )
        with lock:
            manifest[name] = [entry.size, entry.sha256]
        progress.add(entry.size)

    # _download_file is what MLflow's own download_artifacts calls per file; calling it directly
    # lets this tool check every listed path before writing and hash each file while others download.
    with ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS, thread_name_prefix=role) as pool:
        futures = [pool.submit(fetch, path, size) for path, size in files]
        _done, not_done = wait(futures, return_when=FIRST_EXCEPTION)
        for future in not_done:
            future.cancel()
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
    progress.add(0, files=0, force=True)
    return manifest


def _read_mlmodel(root: Path, manifest: dict[str, list[Any]]) -> str | None:
    entry = manifest.get("MLmodel")
    if entry is None or entry[0] > MLMODEL_MAX_BYTES:
        return None
    return (root / "MLmodel").read_text(encoding="utf-8", errors="replace")


# ---------------------------------------------------------------------------------------------
# The request.


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
            f"no answer from the Databricks workspace {redact(host)} of {tracking_uri} ({reason}). Likely "
            "cause: a wrong host in the profile, the workspace is down, or a network rule blocks it. "
            "Fix: check the profile's host and that the workspace answers."
        ) from exc


@dataclass
class Session:
    """The one server of this worker and its MLflow client (process-wide settings are ours)."""

    server: Server
    client: MlflowClient

    @classmethod
    def open(cls, tracking_uri: str, registry_uri: str | None) -> Session:
        from . import databricks

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
            _normal_http(found if "://" in found else f"https://{found}")
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
                f"{f' / {redact(registry_uri)!r}' if registry_uri else ''}: {_short(exc)}. Fix: use "
                "http(s)://host:port, databricks://<profile>, file:, sqlite: or a database URI."
            ) from exc
        return cls(server=server, client=client)


def resolve_and_locate(
    session: Session, name: str, version_or_stage: str, roles: list[str]
) -> dict[str, Any]:
    """Resolve one version and find where each requested model's files are stored."""
    client, server = session.client, session.server
    started = time.monotonic()
    found, resolved_by = resolve_version(client, server, name, version_or_stage)
    # Searches and stage look-ups leave out aliases; one read of the version gives the full record.
    with registry_call(
        server,
        f"reading version {found.version} of '{name}'",
        lambda: ModelVersionNotFound(f"version {found.version} of '{name}' vanished while reading it"),
    ):
        mv = client.get_model_version(name, str(found.version))
    version = _version_info(mv, resolved_by, version_or_stage)
    with registry_call(
        server,
        f"reading the download URI of '{name}' version {mv.version}",
        lambda: ModelVersionNotFound(f"version {mv.version} of '{name}' vanished while reading it"),
    ):
        version["download_uri"] = client.get_model_version_download_uri(name, str(mv.version))
    if version["status"] not in (None, "READY"):
        raise ModelVersionNotReady(
            f"version {mv.version} of '{name}' has status {version['status']}, not READY. Likely "
            "cause: its registration is still running or failed. Fix: wait, or pick another version."
        )
    uris = {"run_model": version["source"], "reg_model": version["download_uri"]}
    models: dict[str, dict[str, Any]] = {}
    for role in roles:
        if role == "reg_model" and server.is_unity_catalog:
            # Unity Catalog's copy is reached through the registry (temporary credentials, presigned
            # URLs), not through its storage location, which needs cloud credentials.
            location = f"models:/{name}/{mv.version}"
        else:
            location = locate(client, server, uris[role])
        models[role] = {
            "uri": uris[role],
            "location": redact(location),
            "location_key": location_key(location, server),
            "_location": location,
        }
    return {"version": version, "models": models, "resolve_seconds": time.monotonic() - started}


def download_planned(
    session: Session, located: dict[str, dict[str, Any]], plan: list[dict[str, str]], emit: Emit
) -> dict[str, dict[str, Any]]:
    """Download the planned (key, role) models concurrently; return their manifests by key and role."""
    results: dict[str, dict[str, Any]] = {}

    def one(item: dict[str, str]) -> None:
        model = located[item["key"]]["models"][item["role"]]
        destination = Path(item["destination"])
        started = time.monotonic()
        manifest = download_tree(session.server, model["_location"], destination, item["label"], emit)
        results.setdefault(item["key"], {})[item["role"]] = {
            "local_path": str(destination),
            "manifest": manifest,
            "mlmodel": _read_mlmodel(destination, manifest),
            "download_seconds": time.monotonic() - started,
        }

    with ThreadPoolExecutor(max_workers=max(1, len(plan)), thread_name_prefix="model") as pool:
        futures = [pool.submit(one, item) for item in plan]
        for future in futures:
            future.result()
    return results


def serve(read_line: Callable[[], str], emit: Emit) -> None:
    """The protocol: request line -> `located` -> plan line -> `result` (or `error` at any point)."""
    request = json.loads(read_line())
    _PRIVATE_PATHS[:] = [str(entry) for entry in request.get("private_paths") or []]
    session = Session.open(request["tracking_uri"], request.get("registry_uri") or None)
    roles = request.get("roles") or ["run_model", "reg_model"]
    located: dict[str, dict[str, Any]] = {}
    for wanted in request["versions"]:
        located[wanted["key"]] = resolve_and_locate(
            session, wanted["model"], wanted["version_or_stage"], roles
        )
        emit({"event": "resolved", "key": wanted["key"], "version": located[wanted["key"]]["version"]})
    emit(
        {
            "event": "located",
            "versions": {
                key: {
                    "version": entry["version"],
                    "resolve_seconds": entry["resolve_seconds"],
                    "models": {
                        role: {k: v for k, v in model.items() if not k.startswith("_")}
                        for role, model in entry["models"].items()
                    },
                }
                for key, entry in located.items()
            },
        }
    )
    plan = json.loads(read_line() or '{"abort": true}')
    if plan.get("abort") or "download" not in plan:
        return
    emit({"event": "result", "downloads": download_planned(session, located, plan["download"], emit)})


PARENT_POLL_SECONDS = 0.5
EXIT_ORPHANED = 70


# What a private path of this tool is called (tempfile prefixes in core, databricks and action).
PRIVATE_PREFIXES = ("mlflow-version-check-", "mvc-databricks-", "mvc-home-")
# Set once the parent is found gone: no download starts after it, and cleanup runs once.
ORPHANED = threading.Event()
_PRIVATE_PATHS: list[str] = []  # from the request: this run's private directories
_CLEANUP = threading.Lock()


def _is_private(entry: str) -> bool:
    """Only a directory this run made: a tool prefix, in the temporary directory, ours, mode 0700."""
    try:
        info = os.lstat(entry)
    except OSError:
        return False
    return (
        os.path.isabs(entry)
        and os.path.basename(entry).startswith(PRIVATE_PREFIXES)
        and os.path.dirname(os.path.normpath(entry)) == os.path.normpath(tempfile.gettempdir())
        and stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def remove_private_paths() -> None:
    """Remove the run's private directories when the parent cannot: it was killed.

    The parent names them in its request (never the environment, which anyone could fill): the
    private Databricks config copy and the action's HOME hold credentials in clear, the temporary
    downloads hold the model. Credentials first; then the downloads, again after a moment, since a
    download already under way may still create its folder (no new one starts: ORPHANED).
    """
    with _CLEANUP:
        # Credential copies first, the downloads (the first prefix) last.
        ordered = sorted(
            _PRIVATE_PATHS, key=lambda entry: os.path.basename(entry).startswith(PRIVATE_PREFIXES[0])
        )
        for attempt in range(3):
            for entry in ordered:
                if _is_private(entry):
                    shutil.rmtree(entry, ignore_errors=True)
            if attempt < 2:
                time.sleep(0.3)


def orphaned() -> NoReturn:
    """The parent is gone: stop downloading, remove the private directories, end with every child
    process of this worker (its process group: e.g. a `databricks auth token` it started)."""
    ORPHANED.set()
    remove_private_paths()
    logging.shutdown()
    try:
        if os.getpgid(0) == os.getpid():  # it leads its own group (runner.py), never the parent's
            os.killpg(os.getpid(), signal.SIGKILL)
    finally:
        os._exit(EXIT_ORPHANED)


def watch_parent(parent_pid: int) -> threading.Thread:
    """End this process as soon as the parent that started it is gone.

    A worker may sit in a network call for its whole timeout, and a parent killed by SIGKILL (a
    cancelled CI job) cannot stop it. When the parent dies the worker is re-parented (to init or a
    subreaper), so os.getppid() stops being the pid the parent passed: that works on Linux and
    macOS alike, unlike prctl(PR_SET_PDEATHSIG), which is Linux-only and fires when the *thread*
    that started the worker ends, a short-lived thread of a parent that is still alive. A failed
    write to the parent (main's emit) leads here too, whichever notices first.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        orphaned()

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread


def main(argv: list[str]) -> int:
    # The parent's pid from the command line: one that died before this line still counts as gone.
    parent_pid = int(argv[2]) if len(argv) > 2 else os.getppid()
    watch_parent(parent_pid)
    channel = os.fdopen(int(argv[1]), "w", encoding="utf-8", buffering=1)
    lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        line = json.dumps(event)
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
        emit({"event": "error", "type": exc.type_name, "message": redact(exc.message)})
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


if __name__ == "__main__":
    exit_now(main(sys.argv))
