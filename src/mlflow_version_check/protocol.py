"""The wire between the parent and its worker processes: every message, typed.

The parent (pool.py) and a worker (worker/session.py) talk in JSON lines; this module is the only
place that turns them into values and back. Each message is a frozen dataclass with `to_json` (a
JSON-ready dict) and `from_json` (its inverse, which refuses a message that lacks a field, so that a
mismatch between parent and worker is a clear internal error rather than a wrong verdict).

The conversation, in two phases and an optional third (DESIGN.md, "one worker process per server"):

1. parent -> worker: a `Request` (the server, the roles, the versions to resolve).
   worker -> parent: a `Resolved` event per version as soon as it is known (so that an error report
   keeps it), then one `Located` event: every version with where each model is stored.
2. parent -> worker: a `DownloadPlan` (what this worker downloads, and where), or an abort.
   worker -> parent: `DownloadProgress` events, then one `Downloaded` event with a `ModelManifest`
   per planned download.
3. parent -> worker: a `TagPlan` (model version tags to set, e.g. the root digest `seal --record-tag`
   took), or nothing (the parent closes the worker's stdin).
   worker -> parent: one `TagsRecorded` event.

An audit (audit.py) is a conversation of its own, with one worker for the whole registry:
parent -> worker: an `AuditRequest` (the server, the selection); worker -> parent: `Listed` (every
version the selection names); parent -> worker: an `AuditPlan` (the versions of this shard, where to
download each, how many at once), or an abort; worker -> parent: a `VersionAudited` or
`VersionFailed` event per version, as each is done (its files removed by then), then `AuditDone`.

A `Failure` event ends the conversation at any point; it carries the named error's structured
fields. The manifest of a model travels as `{path: [size, sha256]}`: it is the bulk of a message
(thousands of files) and that is its compact form; `ModelManifest` converts it to `FileEntry`s once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ERRORS_BY_NAME, VersionCheckError, WorkerCrashed
from .manifest import FileEntry

ROLES = ("run_model", "reg_model")


class ProtocolError(ValueError):
    """A message that does not have the shape this module defines: parent and worker disagree."""


def _field(data: Mapping[str, Any], name: str) -> Any:
    try:
        return data[name]
    except (KeyError, TypeError):
        raise ProtocolError(f"a protocol message lacks {name!r}: {str(data)[:200]}") from None


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class WantedVersion:
    """One model version a worker resolves: `key` names it in the run ("version", "tracking_server_1")."""

    key: str
    model: str
    version_or_stage: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "model": self.model, "version_or_stage": self.version_or_stage}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WantedVersion:
        return cls(
            str(_field(data, "key")), str(_field(data, "model")), str(_field(data, "version_or_stage"))
        )


@dataclass(frozen=True)
class Request:
    """Phase 1: the one server of a worker and what to resolve and locate there."""

    tracking_uri: str
    registry_uri: str | None
    roles: tuple[str, ...]
    versions: tuple[WantedVersion, ...]
    # The run's private directories, removed by the worker should the parent be killed.
    private_paths: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "registry_uri": self.registry_uri,
            "roles": list(self.roles),
            "versions": [version.to_json() for version in self.versions],
            "private_paths": list(self.private_paths),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Request:
        roles = tuple(str(role) for role in _field(data, "roles"))
        if not roles or any(role not in ROLES for role in roles):
            raise ProtocolError(f"a request names unknown roles: {roles!r}")
        return cls(
            tracking_uri=str(_field(data, "tracking_uri")),
            registry_uri=_optional_str(data.get("registry_uri")) or None,
            roles=roles,
            versions=tuple(WantedVersion.from_json(item) for item in _field(data, "versions")),
            private_paths=tuple(str(path) for path in data.get("private_paths") or ()),
        )


@dataclass(frozen=True)
class RegistryVersion:
    """A resolved model version as the registry describes it (what a report's version section shows)."""

    name: str
    version: str
    version_or_stage: str
    # How version_or_stage was resolved: "version", "alias", "latest" or "stage".
    resolved_by: str
    source: str
    run_id: str | None
    stage: str | None
    aliases: tuple[str, ...]
    status: str | None
    # Read after the version itself; empty when a failure came between the two reads.
    download_uri: str = ""
    creation_timestamp: int | None = None
    # The value of the version's tag `oms.SEAL_TAG` (the root digest `seal --record-tag` recorded),
    # None when it has none.
    seal_tag: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "version_or_stage": self.version_or_stage,
            "resolved_by": self.resolved_by,
            "source": self.source,
            "run_id": self.run_id,
            "stage": self.stage,
            "aliases": list(self.aliases),
            "status": self.status,
            "download_uri": self.download_uri,
            "creation_timestamp": self.creation_timestamp,
            "seal_tag": self.seal_tag,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegistryVersion:
        timestamp = data.get("creation_timestamp")
        return cls(
            name=str(_field(data, "name")),
            version=str(_field(data, "version")),
            version_or_stage=str(_field(data, "version_or_stage")),
            resolved_by=str(_field(data, "resolved_by")),
            source=str(_field(data, "source")),
            run_id=_optional_str(data.get("run_id")) or None,
            stage=_optional_str(data.get("stage")) or None,
            aliases=tuple(str(alias) for alias in data.get("aliases") or ()),
            status=_optional_str(data.get("status")),
            download_uri=str(data.get("download_uri") or ""),
            creation_timestamp=None if timestamp is None else int(timestamp),
            seal_tag=_optional_str(data.get("seal_tag")),
        )


@dataclass(frozen=True)
class LocatedModel:
    """Where one model (a version's run model or registry model) is stored."""

    # The URI the registry gave (the version's source, or its download URI).
    uri: str
    # The storage location it resolved to, secrets removed (shown in reports).
    location: str
    # Who else stores the same bytes: equal keys are one storage location, downloaded once
    # (worker/locations.py says what a key is made of). Never shown.
    location_key: str

    def to_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "location": self.location, "location_key": self.location_key}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LocatedModel:
        return cls(str(_field(data, "uri")), str(_field(data, "location")), str(_field(data, "location_key")))


@dataclass(frozen=True)
class LocatedVersion:
    """A resolved version and where each requested model of it is stored."""

    key: str
    version: RegistryVersion
    models: Mapping[str, LocatedModel]  # by role
    resolve_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version": self.version.to_json(),
            "models": {role: model.to_json() for role, model in self.models.items()},
            "resolve_seconds": self.resolve_seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LocatedVersion:
        return cls(
            key=str(_field(data, "key")),
            version=RegistryVersion.from_json(_field(data, "version")),
            models={
                str(role): LocatedModel.from_json(model) for role, model in _field(data, "models").items()
            },
            resolve_seconds=float(_field(data, "resolve_seconds")),
        )


@dataclass(frozen=True)
class PlannedDownload:
    """One model a worker downloads: (key, role) of a located version, into `destination`."""

    key: str
    role: str
    destination: str
    # How progress and sharing name it: "run_model", or "reg_model of tracking_server_2".
    label: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "role": self.role, "destination": self.destination, "label": self.label}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlannedDownload:
        return cls(
            str(_field(data, "key")),
            str(_field(data, "role")),
            str(_field(data, "destination")),
            str(_field(data, "label")),
        )


@dataclass(frozen=True)
class DownloadPlan:
    """Phase 2: what one worker downloads (nothing when another worker has the same location), or
    an abort (another worker failed: end without downloading)."""

    downloads: tuple[PlannedDownload, ...] = ()
    abort: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.abort:
            return {"abort": True}
        return {"download": [item.to_json() for item in self.downloads]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> DownloadPlan:
        # No plan at all (the parent closed stdin) means: stop, as an abort does.
        if not data or data.get("abort") or "download" not in data:
            return cls(abort=True)
        return cls(downloads=tuple(PlannedDownload.from_json(item) for item in data["download"]))


@dataclass(frozen=True)
class ModelManifest:
    """One planned download done: every file's size and SHA-256, and the MLmodel file's text."""

    key: str
    role: str
    local_path: str
    files: Mapping[str, FileEntry]
    # The MLmodel file as text (None when there is none, or it is too large to be one).
    mlmodel_text: str | None
    download_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "role": self.role,
            "local_path": self.local_path,
            "manifest": {path: [entry.size, entry.sha256] for path, entry in self.files.items()},
            "mlmodel": self.mlmodel_text,
            "download_seconds": self.download_seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelManifest:
        mlmodel = data.get("mlmodel")
        return cls(
            key=str(_field(data, "key")),
            role=str(_field(data, "role")),
            local_path=str(_field(data, "local_path")),
            files={
                str(path): FileEntry(size=int(size), sha256=str(sha))
                for path, (size, sha) in _field(data, "manifest").items()
            },
            mlmodel_text=None if mlmodel is None else str(mlmodel),
            download_seconds=float(_field(data, "download_seconds")),
        )


@dataclass(frozen=True)
class VersionTag:
    """A model version tag to set: on version `version` of `name` (a number, never an alias that
    may have moved since), the version the worker resolved for `key`."""

    key: str
    name: str
    version: str
    tag: str
    value: str

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "version": self.version,
            "tag": self.tag,
            "value": self.value,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionTag:
        return cls(*(str(_field(data, name)) for name in ("key", "name", "version", "tag", "value")))


@dataclass(frozen=True)
class TagPlan:
    """Phase 3: the tags one worker sets once the parent has judged the downloads."""

    tags: tuple[VersionTag, ...]

    def to_json(self) -> dict[str, Any]:
        return {"tags": [tag.to_json() for tag in self.tags]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TagPlan:
        return cls(tuple(VersionTag.from_json(item) for item in _field(data, "tags")))


@dataclass(frozen=True)
class Selection:
    """Which versions an audit covers: the named models (else `filter`, MLflow's search syntax, else
    every model), and of those `versions`: all, aliased (an alias, or a stage other than None), or
    latest (each model's highest version number)."""

    models: tuple[str, ...] = ()
    filter: str | None = None
    versions: str = "all"

    def to_json(self) -> dict[str, Any]:
        return {"models": list(self.models), "filter": self.filter, "versions": self.versions}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Selection:
        versions = str(_field(data, "versions"))
        if versions not in AUDIT_VERSIONS:
            raise ProtocolError(f"an audit selection names unknown versions: {versions!r}")
        return cls(
            models=tuple(str(name) for name in data.get("models") or ()),
            filter=_optional_str(data.get("filter")),
            versions=versions,
        )


AUDIT_VERSIONS = ("all", "aliased", "latest")


@dataclass(frozen=True)
class AuditRequest:
    """An audit's first message: the one server and the selection to list there."""

    tracking_uri: str
    registry_uri: str | None
    selection: Selection
    private_paths: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "audit": self.selection.to_json(),
            "tracking_uri": self.tracking_uri,
            "registry_uri": self.registry_uri,
            "private_paths": list(self.private_paths),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditRequest:
        return cls(
            tracking_uri=str(_field(data, "tracking_uri")),
            registry_uri=_optional_str(data.get("registry_uri")) or None,
            selection=Selection.from_json(_field(data, "audit")),
            private_paths=tuple(str(path) for path in data.get("private_paths") or ()),
        )


@dataclass(frozen=True)
class ListedVersion:
    """A version as the registry's search lists it (aliases only when the selection needs them)."""

    name: str
    version: str
    stage: str | None
    aliases: tuple[str, ...] = ()

    def to_json(self) -> list[Any]:
        return [self.name, self.version, self.stage, list(self.aliases)]

    @classmethod
    def from_json(cls, data: Any) -> ListedVersion:
        if not isinstance(data, list) or len(data) != 4:
            raise ProtocolError(f"a listed version is not [name, version, stage, aliases]: {str(data)[:200]}")
        name, version, stage, aliases = data
        return cls(
            str(name), str(version), _optional_str(stage), tuple(str(alias) for alias in aliases or ())
        )


@dataclass(frozen=True)
class AuditItem:
    """One version to audit: its key in the events, and the folder its models are downloaded into
    (removed by the worker once they are hashed)."""

    key: str
    name: str
    version: str
    destination: str

    def to_json(self) -> list[str]:
        return [self.key, self.name, self.version, self.destination]

    @classmethod
    def from_json(cls, data: Any) -> AuditItem:
        if not isinstance(data, list) or len(data) != 4:
            raise ProtocolError(f"an audit item is not [key, name, version, destination]: {str(data)[:200]}")
        return cls(*(str(part) for part in data))


@dataclass(frozen=True)
class AuditPlan:
    """The versions of this audit (its shard), `jobs` at a time; or an abort."""

    items: tuple[AuditItem, ...] = ()
    jobs: int = 1
    abort: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.abort:
            return {"abort": True}
        return {"items": [item.to_json() for item in self.items], "jobs": self.jobs}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> AuditPlan:
        if not data or data.get("abort") or "items" not in data:
            return cls(abort=True)
        jobs = int(data.get("jobs") or 1)
        return cls(tuple(AuditItem.from_json(item) for item in data["items"]), max(1, jobs))


# ---------------------------------------------------------------------------------------------
# Events: worker -> parent, one JSON object per line with its kind in "event".


@dataclass(frozen=True)
class Resolved:
    """A version is resolved (its download location may still be unknown)."""

    kind: ClassVar[str] = "resolved"
    key: str
    version: RegistryVersion

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "key": self.key, "version": self.version.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resolved:
        return cls(str(_field(data, "key")), RegistryVersion.from_json(_field(data, "version")))


@dataclass(frozen=True)
class Located:
    """Phase 1 done: every version of the request, located."""

    kind: ClassVar[str] = "located"
    versions: tuple[LocatedVersion, ...]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "versions": [version.to_json() for version in self.versions]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Located:
        return cls(tuple(LocatedVersion.from_json(item) for item in _field(data, "versions")))


@dataclass(frozen=True)
class DownloadProgress:
    """Files and bytes done of one download (at most one event per half second)."""

    kind: ClassVar[str] = "progress"
    role: str  # the download's label
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "role": self.role,
            "files_done": self.files_done,
            "files_total": self.files_total,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DownloadProgress:
        return cls(
            str(_field(data, "role")),
            int(_field(data, "files_done")),
            int(_field(data, "files_total")),
            int(_field(data, "bytes_done")),
            int(_field(data, "bytes_total")),
        )


@dataclass(frozen=True)
class Downloaded:
    """Phase 2 done: a manifest per planned download."""

    kind: ClassVar[str] = "result"
    manifests: tuple[ModelManifest, ...]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "manifests": [manifest.to_json() for manifest in self.manifests]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Downloaded:
        return cls(tuple(ModelManifest.from_json(item) for item in _field(data, "manifests")))


@dataclass(frozen=True)
class TagsRecorded:
    """Phase 3 done: every tag of the plan is set."""

    kind: ClassVar[str] = "tagged"
    tags: tuple[VersionTag, ...]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "tags": [tag.to_json() for tag in self.tags]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TagsRecorded:
        return cls(tuple(VersionTag.from_json(item) for item in _field(data, "tags")))


@dataclass(frozen=True)
class Listed:
    """An audit's selection, listed: every version it names."""

    kind: ClassVar[str] = "listed"
    versions: tuple[ListedVersion, ...]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "versions": [version.to_json() for version in self.versions]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Listed:
        return cls(tuple(ListedVersion.from_json(item) for item in _field(data, "versions")))


@dataclass(frozen=True)
class VersionAudited:
    """One audited version: located, and a manifest per distinct storage location (one when the run
    model and the registry model are the same location: `ModelManifest.role` says which)."""

    kind: ClassVar[str] = "audited"
    located: LocatedVersion
    manifests: tuple[ModelManifest, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "located": self.located.to_json(),
            "manifests": [manifest.to_json() for manifest in self.manifests],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionAudited:
        return cls(
            LocatedVersion.from_json(_field(data, "located")),
            tuple(ModelManifest.from_json(item) for item in _field(data, "manifests")),
        )


@dataclass(frozen=True)
class VersionFailed:
    """One version that could not be audited: the named error's fields, and the version's registry
    record when it was read before the failure."""

    kind: ClassVar[str] = "audit_failed"
    key: str
    version: RegistryVersion | None
    failure: Failure

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.kind,
            "key": self.key,
            "version": self.version.to_json() if self.version else None,
            "type": self.failure.type,
            "fields": dict(self.failure.fields),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionFailed:
        version = data.get("version")
        return cls(
            str(_field(data, "key")),
            RegistryVersion.from_json(version) if version else None,
            Failure.from_json(data),
        )


@dataclass(frozen=True)
class AuditDone:
    """Every version of the audit plan has its event."""

    kind: ClassVar[str] = "audit_done"

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditDone:
        return cls()


@dataclass(frozen=True)
class Failure:
    """The worker stopped with a named error (errors.py); the fields of its one-line message."""

    kind: ClassVar[str] = "error"
    type: str
    fields: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, error: VersionCheckError) -> Failure:
        return cls(error.type_name, error.fields())

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, "type": self.type, "fields": dict(self.fields)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Failure:
        fields = _field(data, "fields")
        return cls(str(_field(data, "type")), {str(k): _optional_str(v) for k, v in fields.items()})

    def error(self, label: str = "") -> VersionCheckError:
        """The named error again, in the parent (an unknown name is this tool's internal error);
        `label` names the worker when a run has several (compare: "tracking_server_2: ...")."""
        error_class = ERRORS_BY_NAME.get(self.type, WorkerCrashed)
        return error_class.from_fields(self.fields, prefix=f"{label}: " if label else "")


Event = (
    Resolved
    | Located
    | DownloadProgress
    | Downloaded
    | TagsRecorded
    | Listed
    | VersionAudited
    | VersionFailed
    | AuditDone
    | Failure
)
EVENTS: dict[str, Any] = {
    event.kind: event
    for event in (
        Resolved,
        Located,
        DownloadProgress,
        Downloaded,
        TagsRecorded,
        Listed,
        VersionAudited,
        VersionFailed,
        AuditDone,
        Failure,
    )
}


def encode(message: Request | DownloadPlan | TagPlan | AuditRequest | AuditPlan | Event) -> str:
    """One line of the wire (no newline inside: JSON escapes it)."""
    return json.dumps(message.to_json())


def decode_event(line: str) -> Event:
    data = json.loads(line)
    kind = data.get("event") if isinstance(data, dict) else None
    if kind not in EVENTS:
        raise ProtocolError(f"an unknown event from a worker: {line[:200]!r}")
    event: Event = EVENTS[kind].from_json(data)
    return event
