"""Locating: from a version's URIs to the storage location that holds the files, and its key.

`locate` follows runs:/ and models:/ to the storage URI; a path on this machine is accepted only
from this machine's own store (`is_local_uri`). `location_key` names the bytes a location holds on
this server, so that the parent downloads each location once (the package docstring).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import TYPE_CHECKING

from ..errors import AliasNotFound, ArtifactNotFound, ModelVersionNotFound, UnsafeArtifactPath
from ..redact import redact
from .downloads import has_files
from .failures import registry_call
from .server import Server, normal_http
from .versions import filter_literal

if TYPE_CHECKING:
    from mlflow import MlflowClient

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
            f"run {run_id} named by {uri} not found",
            cause="the run was deleted",
            fix="re-register the version from an existing run.",
        ),
    ):
        run = client.get_run(run_id)
    run_location = run.info.artifact_uri.rstrip("/")
    location = f"{run_location}/{sub_path}" if sub_path else run_location
    _refuse_local_from_remote(server, location, uri, supplier="tracking")
    if not sub_path or has_files(location):
        return location
    # MLflow 3 keeps a model logged with `name=` in a logged model, which runs:/ also reaches.
    model_name, _, rest = sub_path.partition("/")
    with registry_call(server, f"searching logged models of run {run_id}", lambda: ArtifactNotFound(uri)):
        logged = client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"name = {filter_literal(model_name)}",
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
                f"logged model {head} named by {uri} not found",
                cause="it was deleted",
                fix="re-register the version.",
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
        # MlflowClient's own method: it refuses a name that is now a prompt (whose versions have a
        # placeholder source), which a models:/ source registered earlier may have come to name.
        target = client.get_model_version_download_uri(name, version)
    return locate(client, server, target, depth + 1)


def registry_download_uri(client: MlflowClient, name: str, version: str) -> str:
    """Where the registry keeps its copy of a version. MlflowClient's own method first reads the
    registered model to refuse prompts: one more round trip per version, on an answer the version
    record already gave; the registry client (private, pinned) answers the question alone."""
    uri: str = client._get_registry_client().get_model_version_download_uri(name, version)  # type: ignore[no-untyped-call]
    return uri


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
        supplier_shown, who = server.shown, "the tracking server"
    else:
        supplier_shown, who = redact(supplier_uri), "the registry"
    named = f" (for {redact(named_by)})" if named_by != location else ""
    raise UnsafeArtifactPath(
        f"{who} {supplier_shown} names a path on this machine, {redact(location)}{named}, as the "
        "model's storage; it was not read",
        cause="the version was registered from a local path on another machine, or a hostile server",
        fix="register the model from the server's artifact store (runs:/ or mlflow-artifacts:/), or "
        "check it against a tracking URI on this machine (file:, sqlite:, http://127.0.0.1).",
        server=supplier_shown,
    )


def locate(client: MlflowClient, server: Server, uri: str, depth: int = 0) -> str:
    """Return the storage URI behind a version's source or download URI."""
    if depth > 3:
        raise ArtifactNotFound(f"cannot resolve {uri}: it refers to itself", fix="report this.")
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme == "runs":
        return _locate_runs_uri(client, server, uri)
    if scheme == "models":
        return _locate_models_uri(client, server, uri, depth)
    # Any other URI here is a storage location that the registry gave: a version's source or
    # download URI, or the download URI of the version a models:/ source names.
    if scheme == "" and not uri.startswith("/"):
        # MLflow would read it from this process's working directory (a prompt's "dummy-source").
        raise UnsafeArtifactPath(
            f"the registry names the relative path {uri!r} as a model's storage; it was not read",
            cause="a placeholder source (a prompt's), or a version registered from a relative path",
            fix="register the model from its artifact store (runs:/, models:/ or an absolute URI).",
        )
    _refuse_local_from_remote(server, uri, uri, supplier="registry")
    if scheme == "" and uri.startswith("/"):
        return "file://" + uri
    if scheme == "dbfs":
        from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

        return str(add_databricks_profile_info_to_artifact_uri(uri, server.tracking_uri))  # type: ignore[no-untyped-call]
    return uri


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
        return normal_http(resolved)
    if scheme in ("http", "https"):
        return normal_http(location)
    return scheme + location[len(parsed.scheme) :].rstrip("/")


def location_key(location: str, server: Server) -> str:
    """The key under which the parent downloads a storage location once (the package docstring).

    Two models share a key only when they are the same storage URI on the same server identity;
    two servers never share one, however alike their paths (a replica, a restored backup, two Unity
    Catalog workspaces with the same model names): when in doubt, both are downloaded.
    """
    return json.dumps([*server.identity, _storage_key(location, server)])
