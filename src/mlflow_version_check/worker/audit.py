"""The worker's side of an audit: list the selection, then resolve, locate, download and hash each
planned version, `jobs` at a time, one event per version as it is done.

One process serves the whole audit (MLflow is imported once). Each version's folder is removed as
soon as its files are hashed, so disk use is bounded by the versions in flight. A version's failure
is its own event and never stops the others; once the server is found unreachable, the versions not
yet started fail at once with that error instead of each waiting out its timeouts.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import protocol
from ..errors import InvalidOption, ModelNotFound, RegistryError, ServerUnreachable, VersionCheckError
from ..protocol import (
    AuditItem,
    AuditPlan,
    AuditRequest,
    ListedVersion,
    ModelManifest,
    Selection,
    WantedVersion,
)
from ..redact import redact
from .downloads import Emit, download_tree, read_mlmodel
from .failures import error_code, registry_call, short
from .session import Session, resolve_and_locate
from .versions import filter_literal

# Versions per search page: MLflow servers accept up to 200,000; smaller pages keep each answer short.
SEARCH_PAGE = 1000


def _search(session: Session, filter_string: str, doing: str) -> list[ListedVersion]:
    """Every version a search names, page by page."""
    found: list[ListedVersion] = []
    token: str | None = None

    def refused() -> VersionCheckError:
        return ModelNotFound(f"{doing}: nothing found")

    def bad_filter(exc: BaseException) -> bool:
        return error_code(exc) == "INVALID_PARAMETER_VALUE"

    while True:
        try:
            with registry_call(session.server, doing, refused, lambda exc: False):
                page = session.client.search_model_versions(
                    filter_string=filter_string or None,
                    max_results=SEARCH_PAGE,
                    page_token=token,
                    # A fixed order: by default versions are ordered by their last update, so one
                    # edited during the listing would move onto a page already read, unlisted.
                    order_by=["name ASC", "version_number ASC"],
                )
        except VersionCheckError as exc:
            cause = exc.__cause__
            if cause is not None and bad_filter(cause):
                raise InvalidOption(
                    f"the registry refused the filter {filter_string!r}: {short(cause)}",
                    fix="use MLflow's search syntax, e.g. name LIKE 'fraud_%' or tags.team = 'risk'.",
                    server=session.server.shown,
                ) from cause
            raise
        found += [
            ListedVersion(mv.name, str(mv.version), getattr(mv, "current_stage", None) or None) for mv in page
        ]
        token = page.token
        if not token:
            return found


def _with_aliases(session: Session, listed: list[ListedVersion]) -> list[ListedVersion]:
    """The listed versions with their aliases (searches leave them out): one read per model."""
    aliases: dict[str, dict[str, list[str]]] = {}
    for name in sorted({item.name for item in listed}):
        with registry_call(session.server, f"reading registered model '{name}'", _vanished(name)):
            model = session.client.get_registered_model(name)
        by_version: dict[str, list[str]] = {}
        for alias, version in (getattr(model, "aliases", None) or {}).items():
            by_version.setdefault(str(version), []).append(str(alias))
        aliases[name] = by_version
    return [
        ListedVersion(
            item.name, item.version, item.stage, tuple(sorted(aliases[item.name].get(item.version, ())))
        )
        for item in listed
    ]


def _vanished(name: str) -> Callable[[], VersionCheckError]:
    return lambda: ModelNotFound(f"registered model '{name}' vanished while listing it")


def _not_found(session: Session, name: str) -> Callable[[], VersionCheckError]:
    return lambda: ModelNotFound(
        f"registered model '{name}' not found on {redact(session.server.registry_uri)}",
        cause="a typo in the name or the wrong server/workspace",
        fix="check the name (it is case-sensitive) and the tracking/registry URI.",
    )


# Listings until two in a row agree: a version registered or deleted during a paged listing shifts
# the pages after it, so one listing alone may miss a version.
LISTING_ATTEMPTS = 4


def list_selection(session: Session, selection: Selection) -> list[ListedVersion]:
    """Every version the selection names (before `versions` narrows them: the parent does that),
    listed until two listings in a row agree."""
    previous = _list_once(session, selection)
    for _ in range(LISTING_ATTEMPTS - 1):
        current = _list_once(session, selection)
        if set(current) == set(previous):
            return current
        previous = current
    raise RegistryError(
        f"the registry changed during each of {LISTING_ATTEMPTS} listings of the selection",
        cause="versions were registered, deleted or moved while the audit listed them",
        fix="rerun the audit when the registry is quieter.",
        server=session.server.shown,
    )


def _list_once(session: Session, selection: Selection) -> list[ListedVersion]:
    if selection.models:
        listed: list[ListedVersion] = []
        for name in selection.models:
            with registry_call(
                session.server, f"reading registered model '{name}'", _not_found(session, name)
            ):
                session.client.get_registered_model(name)
            listed += _search(session, f"name={filter_literal(name)}", f"listing the versions of '{name}'")
    else:
        doing = (
            f"searching versions matching {selection.filter!r}"
            if selection.filter
            else "listing every version"
        )
        listed = _search(session, selection.filter or "", doing)
    if selection.versions == "aliased":
        listed = _with_aliases(session, listed)
    return listed


def _audit_one(session: Session, item: AuditItem, emit: Emit) -> protocol.VersionAudited:
    """Resolve, locate, download and hash one version's run model and registry model (once when they
    are one storage location), then remove its folder."""
    located = resolve_and_locate(session, WantedVersion(item.key, item.name, item.version), protocol.ROLES)
    destination = Path(item.destination)
    try:
        manifests: list[ModelManifest] = []
        seen: dict[str, str] = {}
        for role in protocol.ROLES:
            key = located.version.models[role].location_key
            if key in seen:
                continue  # the same bytes: downloaded once, reported as one location
            seen[key] = role
            folder = destination / role
            files = download_tree(
                session.server, located.storage[role], folder, f"{item.name} v{item.version} {role}", emit
            )
            manifests.append(
                ModelManifest(
                    key=item.key,
                    role=role,
                    # Removed once hashed, but the parent tells one download from two by this path,
                    # as check does (two roles, one path: one storage location).
                    local_path=str(folder),
                    files=files,
                    mlmodel_text=read_mlmodel(folder, files),
                    download_seconds=0.0,
                )
            )
    except VersionCheckError as exc:
        exc.resolved[item.key] = located.version.version  # the report keeps what was read
        raise
    finally:
        shutil.rmtree(destination, ignore_errors=True)
    return protocol.VersionAudited(located.version, tuple(manifests))


def run_plan(session: Session, plan: AuditPlan, emit: Emit) -> None:
    """Audit the planned versions, `jobs` at a time; one event per version, then AuditDone."""
    unreachable: list[VersionCheckError] = []
    lock = threading.Lock()

    def quiet(event: protocol.Event) -> None:
        # Per-file progress of many versions at once would drown the log: the parent counts versions.
        if not isinstance(event, protocol.DownloadProgress):
            emit(event)

    def one(item: AuditItem) -> None:
        with lock:
            dead = unreachable[0] if unreachable else None
        if dead is not None:
            emit(protocol.VersionFailed(item.key, None, protocol.Failure.of(dead)))
            return
        try:
            emit(_audit_one(session, item, quiet))
        except VersionCheckError as exc:
            if isinstance(exc, ServerUnreachable):
                with lock:
                    unreachable.append(exc)
            fields = {name: redact(value) if value else value for name, value in exc.fields().items()}
            emit(
                protocol.VersionFailed(
                    item.key, exc.resolved.get(item.key), protocol.Failure(exc.type_name, fields)
                )
            )
        except Exception as exc:  # noqa: BLE001 - one version's unexpected failure must not end the audit
            what = f"internal error auditing {item.name} version {item.version}: {type(exc).__name__}: {exc}"
            emit(
                protocol.VersionFailed(
                    item.key, None, protocol.Failure("WorkerCrashed", {"what": redact(what)})
                )
            )

    with ThreadPoolExecutor(max_workers=plan.jobs, thread_name_prefix="audit") as pool:
        for future in [pool.submit(one, item) for item in plan.items]:
            future.result()
    emit(protocol.AuditDone())


def serve_audit(session: Session, request: AuditRequest, read_line: Callable[[], str], emit: Emit) -> None:
    """The audit conversation (protocol.py): AuditRequest -> Listed -> AuditPlan -> events, AuditDone."""
    emit(protocol.Listed(tuple(list_selection(session, request.selection))))
    plan = AuditPlan.from_json(json.loads(read_line() or "null"))
    if plan.abort:
        return
    run_plan(session, plan, emit)
