"""Typed, frozen results of the core; the CLI and the report only read them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from .comparison import MLMODEL, FileDifference, MLmodel, ReferenceComparison, TreeComparison, TreeSummary
from .errors import VersionCheckError
from .integrity import IntegrityReport
from .manifest import FileEntry
from .oms import Reference
from .protocol import RegistryVersion, Selection


@dataclass(frozen=True)
class ModelVersionInfo(RegistryVersion):
    """A resolved model version as the registry describes it, and the server it was read from."""

    tracking_uri: str = ""
    registry_uri: str | None = None

    @classmethod
    def of(cls, version: RegistryVersion, tracking_uri: str, registry_uri: str | None) -> ModelVersionInfo:
        """The registry's record of a version, with the server it was read from."""
        return cls(
            **{item.name: getattr(version, item.name) for item in fields(RegistryVersion)},
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
        )


@dataclass(frozen=True)
class DownloadedModel:
    """One MLflow model (a version's run model or registry model) as downloaded and hashed."""

    role: str
    uri: str
    location: str
    local_path: str
    manifest: Mapping[str, FileEntry]
    mlmodel_text: str | None
    integrity: IntegrityReport
    download_seconds: float
    # "run_model" when this is the same storage location as the run model, downloaded once.
    shared_with: str | None = None
    # MLmodel parsed once (the core sets it); None: parse mlmodel_text where needed.
    mlmodel: MLmodel | None = None


@dataclass(frozen=True)
class ModelComparison:
    """Two downloaded models compared: the two run models, or the two registry models."""

    role: str
    left: DownloadedModel
    right: DownloadedModel
    # Both are one storage location, downloaded once: there is nothing to compare.
    same_location: bool
    comparison: TreeComparison | None
    left_summary: TreeSummary
    right_summary: TreeSummary
    # The files or folders the native model setting resolved to, per side (None: no setting; empty:
    # the whole models, because `auto` could not know what the loader reads: native_whole_model).
    native_paths: tuple[tuple[str, ...], tuple[str, ...]] | None
    native_whole_model: str | None = None

    @property
    def equals(self) -> bool:
        return self.same_location or (self.comparison is not None and self.comparison.equals)


@dataclass(frozen=True)
class CompareResult:
    """The answer to: are these two model versions the same model (run models, registry models)?"""

    versions: tuple[ModelVersionInfo, ModelVersionInfo]
    # "run_model" and/or "reg_model", in that order, as requested.
    comparisons: Mapping[str, ModelComparison]
    native_model: str | None
    strict: bool
    download_dir: str
    download_dir_kept: bool
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def equals(self) -> bool:
        return all(comparison.equals for comparison in self.comparisons.values())

    @property
    def status(self) -> str:
        return "passed" if self.equals else "failed"


@dataclass(frozen=True)
class CheckResult:
    """The answer to: is this version's run model identical to the registry's copy?

    `models` is the run model (left) compared with the registry model (right); the properties below
    read it. When both are one storage location there is no tree comparison: integrity decides.
    """

    version: ModelVersionInfo
    models: ModelComparison
    native_model: str | None
    strict: bool
    download_dir: str
    download_dir_kept: bool
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def run_model(self) -> DownloadedModel:
        return self.models.left

    @property
    def reg_model(self) -> DownloadedModel:
        return self.models.right

    @property
    def same_location(self) -> bool:
        return self.models.same_location

    @property
    def comparison(self) -> TreeComparison | None:
        """The tree comparison (None when both are one location: then `integrity` decides)."""
        return self.models.comparison

    @property
    def run_summary(self) -> TreeSummary:
        return self.models.left_summary

    @property
    def reg_summary(self) -> TreeSummary:
        return self.models.right_summary

    @property
    def native_paths(self) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """The files or folders the native model resolved to, per side (None: whole models compared;
        empty: `auto` compared the whole models, for the reason in native_whole_model)."""
        return self.models.native_paths

    @property
    def native_whole_model(self) -> str | None:
        return self.models.native_whole_model

    @property
    def equals(self) -> bool:
        if self.same_location:
            return self.run_model.integrity.ok
        return self.comparison is not None and self.comparison.equals

    @property
    def status(self) -> str:
        return "passed" if self.equals else "failed"


@dataclass(frozen=True)
class SealResult:
    """A version's registry model, hashed as it downloaded: the reference a later `verify` checks.

    `files` is what the seal covers: the model's files without MLflow's `registered_model_meta` (a
    file MLflow writes into a `models:/` download, not part of the model). `root_digest` is their OMS
    root digest (hex): the SHA-256 of the files' raw SHA-256 digests, concatenated in path order.
    """

    version: ModelVersionInfo
    model: DownloadedModel
    files: Mapping[str, FileEntry]
    root_digest: str
    download_dir: str
    download_dir_kept: bool
    timings: Mapping[str, float] = field(default_factory=dict)
    # The model version tag set to `sha256:<root_digest>` (seal --record-tag), None when none was.
    # Seen by `before_recording` before the tag is set: a failure to set it raises instead.
    recorded_tag: str | None = None

    @property
    def subject_name(self) -> str:
        """What the seal names: the version's registry URI, e.g. models:/Sklearn_Wine/3."""
        return f"models:/{self.version.name}/{self.version.version}"

    @property
    def sealed_mlmodel(self) -> bytes | None:
        """The MLmodel file's bytes, for the copy a seal keeps next to its manifest (what lets a copy
        of the version with a new run id verify): None when the text as read does not give back the
        very bytes the seal lists (another encoding, CR LF line ends) or the model has no MLmodel."""
        entry = self.files.get(MLMODEL)
        text = self.model.mlmodel_text
        if entry is None or text is None:
            return None
        data = text.encode("utf-8")
        return data if hashlib.sha256(data).hexdigest() == entry.sha256 else None

    @property
    def equals(self) -> bool:
        """A seal is taken only of a complete MLflow model (MLmodel parses, names existing files)."""
        return self.model.integrity.ok

    @property
    def status(self) -> str:
        return "passed" if self.equals else "failed"


# What a verify checks against: an OMS statement in a file, a signed one, a root digest as given,
# or the root digest recorded in the version's tag.
REFERENCE_KINDS = ("manifest", "signature", "digest", "recorded-tag")


@dataclass(frozen=True)
class VerifyResult:
    """A version's registry model, hashed now, against the reference it was approved with.

    A reference that lists files (`manifest`, `signature`) is compared file by file (`comparison`:
    every changed, missing and extra file named; MLmodel by content unless strict, when the sealed
    copy is at hand). A root digest alone (`digest`, `recorded-tag`) is matched exactly: it covers the
    files' contents in path order, not their names, and cannot tell which file changed.
    """

    current: SealResult
    # None when the reference could not be trusted: a signature that does not verify.
    reference: Reference | None
    kind: str
    # The reference's file (manifest, signature bundle), or the tag it was read from.
    source: str
    comparison: ReferenceComparison | None
    strict: bool
    # The sealed MLmodel copy used for the MLmodel rule (its path), None when none was.
    sealed_mlmodel_file: str | None = None
    # A signature reference: whether its signature verified (None for other kinds).
    signature_verified: bool | None = None
    # Why the model fails before any file is compared (the signature does not verify).
    problem: str | None = None

    @property
    def equals(self) -> bool:
        if self.reference is None or self.problem is not None or self.signature_verified is False:
            return False
        if self.comparison is not None:
            return self.comparison.equals
        return self.current.root_digest == self.reference.root

    @property
    def status(self) -> str:
        return "passed" if self.equals else "failed"


@dataclass(frozen=True)
class AuditEntry:
    """One audited version: `passed`, `failed` (check found a difference or an incomplete model, or
    the files changed since the recorded seal) or `error` (it could not be checked: `error` says why)."""

    model: str
    version: str
    aliases: tuple[str, ...]
    stage: str | None
    status: str
    # None when the version could not be checked.
    same_location: bool | None
    # The registry model's OMS root digest (hex), as `seal` would record it.
    root_digest: str | None
    # The recorded seal (seal --record-tag), and whether the files still have its root digest.
    seal_tag: str | None
    seal_verified: bool | None
    differences: tuple[FileDifference, ...]
    # Why a model on one location is incomplete, and a seal mismatch.
    problems: tuple[str, ...]
    files: int | None
    bytes: int | None
    error: VersionCheckError | None = None


@dataclass(frozen=True)
class AuditResult:
    """Every audited version of one registry (of this shard), with what the selection was."""

    tracking_uri: str
    registry_uri: str | None
    selection: Selection
    # (index, total), 1-based; None when the whole selection was audited.
    shard: tuple[int, int] | None
    # The whole selection's size and fingerprint (audit.fingerprint), whatever the shard.
    total: int
    fingerprint: str
    entries: tuple[AuditEntry, ...]
    jobs: int
    timings: Mapping[str, float] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(entry.status == status for entry in self.entries)

    @property
    def status(self) -> str:
        """failed when any version failed, else error when any could not be checked, else passed."""
        if self.count("failed"):
            return "failed"
        return "error" if self.count("error") else "passed"

    @property
    def equals(self) -> bool | None:
        return {"passed": True, "failed": False}.get(self.status)
