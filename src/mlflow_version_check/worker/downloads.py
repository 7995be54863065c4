"""Listing and downloading a model's files, hashing each file as soon as it is on disk.

`download_tree` lists a storage location (refusing unsafe or duplicate names and local symlinks),
downloads its files on DOWNLOAD_THREADS threads and returns the manifest `path -> [size, sha256]`,
emitting `progress` events on the way.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from ..errors import ArtifactDownloadError, ArtifactNotFound, UnsafeArtifactPath
from ..manifest import HASH_CHUNK_BYTES, FileEntry, hash_file
from ..protocol import DownloadProgress, Event
from ..redact import redact
from ..untrusted import escape_surrogates
from .failures import download_error, means_not_found, raise_common, short
from .parent import ORPHANED
from .server import Server

if TYPE_CHECKING:
    from mlflow.store.artifact.artifact_repo import ArtifactRepository
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

DOWNLOAD_THREADS = 8
PROGRESS_INTERVAL_SECONDS = 0.5
MLMODEL_MAX_BYTES = 4 * 1024 * 1024

Emit = Callable[[Event], None]


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


def has_files(location: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        return bool(_repository(location).list_artifacts())
    except (MlflowException, OSError):
        return False


# The cause's sentence is followed by what was done, as the message has always said it.
UNSAFE_LISTING_CAUSE = "a broken or hostile artifact store. Nothing was written for it"


def _safe_relative(path: str, parent: str | None) -> str:
    """Refuse listing entries that would land outside the download directory."""
    if not path or "\\" in path or "\0" in path or path.startswith("/"):
        raise UnsafeArtifactPath(
            f"the artifact listing names an unsafe path {path!r}",
            cause=UNSAFE_LISTING_CAUSE,
            fix="inspect the model's storage.",
        )
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts) or posixpath.normpath(path) != path:
        raise UnsafeArtifactPath(
            f"the artifact listing names an unsafe path {path!r}",
            cause=UNSAFE_LISTING_CAUSE,
            fix="inspect the model's storage.",
        )
    if parent and not path.startswith(parent + "/"):
        raise UnsafeArtifactPath(
            f"the artifact listing of {parent!r} names {path!r}, which is not inside it",
            fix="inspect the model's storage.",
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
            f"{os.readlink(stored)!r}), not a stored file",
            cause="the model's storage links to files kept elsewhere",
            fix="replace the link with the file itself, then rerun.",
        )


MAX_DEPTH = 32  # below Linux's 40 symlinks per path lookup, far above any real model


def list_files(
    repo: ArtifactRepository, parent: str | None = None, depth: int = 0
) -> Iterator[tuple[str, int | None]]:
    if depth > MAX_DEPTH:
        # A local store follows symlinked folders: a link to a parent would list forever.
        raise UnsafeArtifactPath(
            f"the artifact listing nests deeper than {MAX_DEPTH} folders at {parent!r}",
            cause="a symlink loop in the artifact store",
            fix="remove the link from the model's storage.",
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
                    DownloadProgress(
                        self._role, self._files, self._files_total, self._bytes, self._bytes_total
                    )
                )


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
        # Private and new in MLflow 3.15. Where it is missing, MLflow's own download and a hash of the
        # written file: slower, and right whatever that MLflow's download does.
        multipart = getattr(repo, "_is_multipart_download_enabled", None)
        return multipart is not None and not multipart()
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
            f"{manifest_name(path)!r} in the artifact store {redact(repo.artifact_uri)} resolves outside it",
            cause="a link or a changed tree. Nothing was written for it",
            fix="inspect the model's storage.",
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
                "puts it into a URL unquoted, where '%', '?' and '#' change which file is read",
                cause="a file name with URL syntax in the store",
                fix="rename the file, or check without multipart downloads "
                "(MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD unset).",
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
    """A listed path as a manifest key (the package docstring): untrusted.escape_surrogates."""
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
                "entry would hide the other",
                cause="a stored name with '%XX' that the server decodes into another file's name",
                fix="rename the file in the model's storage.",
            )
        seen.add(path)


def download_tree(
    server: Server, location: str, destination: Path, role: str, emit: Emit
) -> dict[str, FileEntry]:
    """Download every file at location into destination; return path -> size and SHA-256."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        repo = _repository(location)
        files = sorted(list_files(repo))
    except (MlflowException, requests.RequestException, OSError, ValueError) as exc:
        raise_common(exc, server, f"listing {redact(location)}")
        if means_not_found(exc):
            files = []
        elif "invalid path" in str(exc).lower():
            # MLflow's own path check (validate_path_is_safe) caught a `..` or absolute entry first.
            raise UnsafeArtifactPath(
                f"the artifact listing of {redact(location)} names an unsafe path ({short(exc)})",
                cause=UNSAFE_LISTING_CAUSE,
                fix="inspect the model's storage.",
            ) from exc
        else:
            raise ArtifactDownloadError(
                f"listing {redact(location)} failed: {short(exc)}",
                fix="check the server's artifact store and rerun with {option:verbose}.",
            ) from exc
    if not files:
        raise ArtifactNotFound(
            f"no files at {redact(location)} ({role})",
            cause="the model's artifacts were deleted or never uploaded, or the version points at the "
            "wrong path",
            fix="check the version's source in the registry.",
        )
    _refuse_duplicates(files, location)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    progress = Progress(emit, role, len(files), sum(size or 0 for _, size in files))
    manifest: dict[str, FileEntry] = {}
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
            download_error(exc, server, location, name)
        if listed_size is not None and entry.size != listed_size:
            # A transfer cut short without an error would otherwise look like a changed file.
            raise ArtifactDownloadError(
                f"downloading {name} of {redact(location)} gave {entry.size} bytes but the listing "
                f"says {listed_size}",
                cause="the transfer was cut short or the file changed during the check",
                fix="rerun; if it persists, check the artifact store.",
            )
        with lock:
            manifest[name] = entry
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


def read_mlmodel(root: Path, manifest: dict[str, FileEntry]) -> str | None:
    """The MLmodel file's text as MLflow reads it (strict UTF-8, universal newlines); None when there
    is none, it is too large, or it is not UTF-8: MLflow cannot load such a model, so it must never
    compare equal (a replaced byte inside an ignored identity field would)."""
    entry = manifest.get("MLmodel")
    if entry is None or entry.size > MLMODEL_MAX_BYTES:
        return None
    try:
        return (root / "MLmodel").read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None
