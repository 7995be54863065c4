"""Typed, frozen results of the core; the CLI and the report only read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .comparison import TreeComparison, TreeSummary
from .integrity import IntegrityReport
from .manifest import FileEntry


@dataclass(frozen=True)
class ModelVersionInfo:
    """A resolved model version, as the registry describes it."""

    name: str
    version: str
    version_or_stage: str
    resolved_by: str
    source: str
    run_id: str | None
    stage: str | None
    aliases: tuple[str, ...]
    status: str | None
    download_uri: str
    creation_timestamp: int | None
    tracking_uri: str
    registry_uri: str | None

    @classmethod
    def from_worker(
        cls, data: Mapping[str, Any], tracking_uri: str, registry_uri: str | None
    ) -> ModelVersionInfo:
        return cls(
            name=data["name"],
            version=str(data["version"]),
            version_or_stage=data["version_or_stage"],
            resolved_by=data["resolved_by"],
            source=data["source"],
            run_id=data.get("run_id"),
            stage=data.get("stage"),
            aliases=tuple(data.get("aliases") or ()),
            status=data.get("status"),
            download_uri=data.get("download_uri") or "",
            creation_timestamp=data.get("creation_timestamp"),
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
    """The answer to: is this version's run model identical to the registry's copy?"""

    version: ModelVersionInfo
    run_model: DownloadedModel
    reg_model: DownloadedModel
    same_location: bool
    # The tree comparison (None when both are one location: then `integrity` decides).
    comparison: TreeComparison | None
    run_summary: TreeSummary
    reg_summary: TreeSummary
    native_model: str | None
    # The files or folders the native model resolved to, per side (None: whole models compared;
    # empty: `auto` compared the whole models, for the reason in native_whole_model).
    native_paths: tuple[tuple[str, ...], tuple[str, ...]] | None
    strict: bool
    download_dir: str
    download_dir_kept: bool
    timings: Mapping[str, float] = field(default_factory=dict)
    native_whole_model: str | None = None

    @property
    def equals(self) -> bool:
        if self.same_location:
            return self.run_model.integrity.ok
        return self.comparison is not None and self.comparison.equals

    @property
    def status(self) -> str:
        return "passed" if self.equals else "failed"
