"""The JSON report (schema_version 1) built from the result objects: check, compare and error reports.

Every report validates against schema/report.schema.json (load_schema); finalized() is the one pass
that adds the run's nonce and removes secrets before anything is written or rendered from it.
"""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from .. import __version__
from ..comparison import (
    FileDifference,
    IgnoredItem,
    ReferenceDifference,
    TreeSummary,
    summarize,
    without_registry_meta,
)
from ..config import SERVER_KEYS
from ..errors import CLI_NAMES, EXIT_NOT_DONE, VersionCheckError, exit_code_of
from ..integrity import IntegrityReport
from ..oms import DIGEST_PREFIX, root_digest
from ..redact import redact_tree
from ..results import (
    AuditEntry,
    AuditResult,
    CheckResult,
    CompareResult,
    DownloadedModel,
    ModelComparison,
    ModelVersionInfo,
    SealResult,
    VerifyResult,
)
from .sections import AUDIT_SECTION, CHECK_SECTION, COMPARE_SECTIONS, SEAL_SECTION, VERIFY_SECTION

SCHEMA_VERSION = 1


def load_schema() -> dict[str, Any]:
    """The JSON Schema that every report validates against (shipped in the package)."""
    # The schema folder is package data of the top package (pyproject.toml), not of this one.
    text = resources.files("mlflow_version_check").joinpath("schema/report.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _mlflow_version() -> str | None:
    # Read from the installed distribution: importing MLflow here would cost a second.
    for distribution in ("mlflow-skinny", "mlflow"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def system_section(command: str) -> dict[str, Any]:
    return {
        "tool": "mlflow-version-check",
        "tool_version": __version__,
        "command": command,
        "mlflow_version": _mlflow_version(),
        "python_version": platform.python_version(),
        "platform": platform.platform(terse=True),
        "time_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _entry(entry: Any) -> dict[str, Any] | None:
    return None if entry is None else {"size": entry.size, "sha256": entry.sha256}


def difference_json(difference: FileDifference) -> dict[str, Any]:
    return {
        "path": difference.path,
        "kind": difference.kind,
        "left": _entry(difference.left),
        "right": _entry(difference.right),
        "note": difference.note,
    }


def ignored_json(item: IgnoredItem) -> dict[str, Any]:
    return {"path": item.path, "rule": item.rule, "field": item.field, "left": item.left, "right": item.right}


def integrity_json(report: IntegrityReport) -> dict[str, Any]:
    data = asdict(report)
    data["references"] = [asdict(ref) for ref in report.references]
    data["problems"] = list(report.problems)
    return data


def version_json(version: ModelVersionInfo) -> dict[str, Any]:
    data = asdict(version)
    data["aliases"] = list(version.aliases)
    data["registry_uri"] = version.registry_uri or None
    return data


def resolved_version_json(
    error: VersionCheckError, key: str, tracking_uri: str | None, registry_uri: str | None
) -> dict[str, Any] | None:
    """The version `key` if it was resolved before the failure, else None."""
    version = error.resolved.get(key)
    if version is None:
        return None
    return version_json(ModelVersionInfo.of(version, tracking_uri or "", registry_uri))


def model_json(model: DownloadedModel, summary: TreeSummary, native_paths: tuple[str, ...]) -> dict[str, Any]:
    """One side of a comparison; `download_uri` and `local_path` keep the seed's paths.

    With a native model setting (`native_paths` not empty), `local_path.path` is the native model
    file or folder when it is one path and `hash` that file's SHA-256 (or the folder's tree digest),
    as in the seed, even when `auto` compared more (MLmodel, code/: `files`, `bytes` and
    `tree_sha256` describe what was compared, and `equals` is the verdict); else the model root and
    the tree digest of what was compared (a lone file's own SHA-256).
    """
    native = summary.native_path if native_paths else None
    return {
        "download_uri": model.uri,
        "location": model.location,
        "local_path": {
            "path": str(Path(model.local_path) / native) if native else model.local_path,
            "hash": summary.hash,
        },
        "files": summary.files,
        "bytes": summary.bytes,
        "tree_sha256": summary.tree_sha256,
        # The whole model's OMS root digest (what `seal` records), whatever was compared.
        "root_digest": DIGEST_PREFIX + root_digest(without_registry_meta(model.manifest)[0]),
        "downloaded": model.shared_with is None,
        "download_seconds": round(model.download_seconds, 3),
        "integrity": integrity_json(model.integrity),
    }


SideJson = Callable[[DownloadedModel, TreeSummary, tuple[str, ...]], dict[str, Any]]


def pair_section(
    pair: ModelComparison,
    *,
    equals: bool,
    strict: bool,
    same_location_method: str,
    keys: tuple[str, str],
    side: SideJson,
    native_model: dict[str, Any] | None,
) -> dict[str, Any]:
    """A section comparing two models, check's or compare's: its verdict, method, both sides under
    `keys`, the native model setting, and the differences and ignored items."""
    comparison = pair.comparison
    left_paths, right_paths = pair.native_paths or ((), ())
    return {
        "equals": equals,
        "same_location": pair.same_location,
        "method": same_location_method
        if pair.same_location
        else ("bytes" if strict else "bytes+mlmodel-rule"),
        keys[0]: side(pair.left, pair.left_summary, left_paths),
        keys[1]: side(pair.right, pair.right_summary, right_paths),
        "native_model": native_model,
        "differences": [difference_json(d) for d in comparison.differences] if comparison else [],
        "ignored": [ignored_json(i) for i in comparison.ignored] if comparison else [],
    }


def check_report(result: CheckResult, options: Mapping[str, Any]) -> dict[str, Any]:
    """The report of a check that ran (passed or failed)."""
    run_paths, reg_paths = result.native_paths or ((), ())
    section = pair_section(
        result.models,
        equals=result.equals,  # one location: its integrity decides
        strict=result.strict,
        same_location_method="integrity",
        keys=("run_model", "reg_model"),
        side=model_json,
        native_model=(
            {
                "requested": result.native_model,
                "run_model": list(run_paths),
                "reg_model": list(reg_paths),
                "whole_model": result.native_whole_model,
            }
            if result.native_model
            else None
        ),
    )
    section["integrity"] = integrity_json(result.run_model.integrity) if result.same_location else None
    return {
        "schema_version": SCHEMA_VERSION,
        "status": result.status,
        "equals": result.equals,
        "error": None,
        "System": system_section("check"),
        "Options": dict(options),
        "Model_Version": version_json(result.version),
        CHECK_SECTION: section,
        "Timings": {key: round(value, 3) for key, value in result.timings.items()},
    }


def compare_side_json(
    model: DownloadedModel, summary: TreeSummary, native_paths: tuple[str, ...]
) -> dict[str, Any]:
    """One server's side of a compare section: the seed's `path` and `hash`, then the added fields."""
    side = model_json(model, summary, native_paths)
    local = side.pop("local_path")
    return {"path": local["path"], "hash": local["hash"], **side}


def compare_section(pair: ModelComparison, strict: bool) -> dict[str, Any]:
    left_paths, right_paths = pair.native_paths or ((), ())
    return pair_section(
        pair,
        equals=pair.equals,
        strict=strict,
        same_location_method="same-location",
        keys=(SERVER_KEYS[0], SERVER_KEYS[1]),
        side=compare_side_json,
        native_model=(
            {
                SERVER_KEYS[0]: list(left_paths),
                SERVER_KEYS[1]: list(right_paths),
                "whole_model": pair.native_whole_model,
            }
            if pair.native_paths
            else None
        ),
    )


def seal_report(
    result: SealResult,
    options: Mapping[str, Any],
    manifest_file: str | None,
    checksums_file: str | None,
    mlmodel_file: str | None = None,
) -> dict[str, Any]:
    """The report of a seal: the registry model as hashed, its root digest, the files written.

    `equals` says the model is complete (a seal is written only then); `files`, `bytes` and
    `root_digest` describe what the seal covers: the model's files without `registered_model_meta`.
    """
    model = model_json(result.model, summarize(result.files), ())
    return {
        "schema_version": SCHEMA_VERSION,
        "status": result.status,
        "equals": result.equals,
        "error": None,
        "System": system_section("seal"),
        "Options": dict(options),
        "Model_Version": version_json(result.version),
        SEAL_SECTION: {
            "equals": result.equals,  # sealed: the registry model is complete
            "subject": result.subject_name,
            "root_digest": f"sha256:{result.root_digest}",
            "files": len(result.files),
            "bytes": sum(entry.size for entry in result.files.values()),
            "manifest_file": manifest_file if result.equals else None,
            "checksums_file": checksums_file if result.equals else None,
            "mlmodel_file": mlmodel_file if result.equals else None,
            "recorded_tag": result.recorded_tag,
            "reg_model": model,
            "resources": [
                {"name": path, "sha256": entry.sha256, "size": entry.size}
                for path, entry in sorted(result.files.items())
            ],
        },
        "Timings": {key: round(value, 3) for key, value in result.timings.items()},
    }


def reference_difference_json(difference: ReferenceDifference) -> dict[str, Any]:
    return {
        "path": difference.path,
        "kind": difference.kind,
        "expected_sha256": difference.expected_sha256,
        "actual": _entry(difference.actual),
        "note": difference.note,
    }


def verify_report(result: VerifyResult, options: Mapping[str, Any]) -> dict[str, Any]:
    """The report of a verify: the registry model now against its reference, file by file when the
    reference lists files, else by root digest."""
    current = result.current
    reference = result.reference
    comparison = result.comparison
    return {
        "schema_version": SCHEMA_VERSION,
        "status": result.status,
        "equals": result.equals,
        "error": None,
        "System": system_section("verify"),
        "Options": dict(options),
        "Model_Version": version_json(current.version),
        VERIFY_SECTION: {
            "equals": result.equals,
            "reference": {
                "kind": result.kind,
                "source": result.source,
                "signature_verified": result.signature_verified,
                "root_digest": DIGEST_PREFIX + reference.root if reference else None,
                "files": None if reference is None or reference.files is None else len(reference.files),
                "subject": reference.subject_name if reference else None,
                "ignore_paths": list(reference.ignore_paths) if reference else [],
                "sealed_mlmodel_file": result.sealed_mlmodel_file,
            },
            "problem": result.problem,
            "strict": result.strict,
            "root_digest": DIGEST_PREFIX + current.root_digest,
            "files": len(current.files),
            "bytes": sum(entry.size for entry in current.files.values()),
            "compared_files": comparison.compared_files if comparison else None,
            "differences": [reference_difference_json(item) for item in comparison.differences]
            if comparison
            else [],
            "ignored": [ignored_json(item) for item in comparison.ignored] if comparison else [],
            "reg_model": model_json(current.model, summarize(current.files), ()),
        },
        "Timings": {key: round(value, 3) for key, value in current.timings.items()},
    }


def audit_entry_json(entry: AuditEntry, option_names: Mapping[str, str] = CLI_NAMES) -> dict[str, Any]:
    """One audited version, as the report lists it."""
    error = entry.error
    return {
        "model": entry.model,
        "version": entry.version,
        "aliases": list(entry.aliases),
        "stage": entry.stage,
        "status": entry.status,
        "same_location": entry.same_location,
        "root_digest": DIGEST_PREFIX + entry.root_digest if entry.root_digest else None,
        "seal_tag": entry.seal_tag,
        "seal_verified": entry.seal_verified,
        "files": entry.files,
        "bytes": entry.bytes,
        "differences": [
            {"path": item.path, "kind": item.kind, "note": item.note} for item in entry.differences
        ],
        "problems": list(entry.problems),
        "error": None
        if error is None
        else {
            "type": error.type_name,
            "message": error.render(option_names),
            "exit_code": exit_code_of(error),
        },
    }


def audit_summary_counts(versions: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = {
        status: sum(item["status"] == status for item in versions) for status in ("passed", "failed", "error")
    }
    return {**counts, "total": len(versions)}


def audit_envelope(
    versions: list[dict[str, Any]], options: Mapping[str, Any], section: Mapping[str, Any]
) -> dict[str, Any]:
    """An audit report around its versions: the verdict is the versions' (failed when any failed,
    else error when any could not be checked, else passed), whoever built the section (a run or a
    merge of shard reports)."""
    summary = audit_summary_counts(versions)
    status = "failed" if summary["failed"] else "error" if summary["error"] else "passed"
    error = None
    if status == "error":
        error = {
            "type": "AuditIncomplete",
            "message": f"{summary['error']} of {summary['total']} versions could not be checked "
            "(see Audit.versions)",
            "exit_code": EXIT_NOT_DONE,
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "equals": {"passed": True, "failed": False}.get(status),
        "error": error,
        "System": system_section("audit"),
        "Options": dict(options),
        AUDIT_SECTION: {**section, "versions": versions, "summary": summary},
    }


def audit_report(
    result: AuditResult, options: Mapping[str, Any], option_names: Mapping[str, str] = CLI_NAMES
) -> dict[str, Any]:
    """The report of an audit (of a whole selection, or of one shard of it)."""
    section = {
        "server": {"tracking_uri": result.tracking_uri, "registry_uri": result.registry_uri},
        "selection": {**result.selection.to_json(), "total": result.total, "fingerprint": result.fingerprint},
        "shard": f"{result.shard[0]}/{result.shard[1]}" if result.shard else None,
        "merged_from": None,
        "jobs": result.jobs,
    }
    versions = [audit_entry_json(entry, option_names) for entry in result.entries]
    report = audit_envelope(versions, options, section)
    report["Timings"] = {key: round(value, 3) for key, value in result.timings.items()}
    return report


def compare_report(result: CompareResult, options: Mapping[str, Any]) -> dict[str, Any]:
    """The report of a compare that ran, with the seed's sections and summary."""
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "status": result.status,
        "equals": result.equals,
        "error": None,
        "System": system_section("compare"),
        "Options": dict(options),
        "Model_Versions": {
            key: version_json(version) for key, version in zip(SERVER_KEYS, result.versions, strict=True)
        },
    }
    for role, pair in result.comparisons.items():
        report[COMPARE_SECTIONS[role]] = compare_section(pair, result.strict)
    not_compared = [role for role in COMPARE_SECTIONS if role not in result.comparisons]
    report["Comparison_Summary"] = {
        **{role: pair.equals for role, pair in result.comparisons.items()},
        "compared": list(result.comparisons),
        "not_compared": not_compared,
    }
    report["Timings"] = {key: round(value, 3) for key, value in result.timings.items()}
    return report


def error_report(
    command: str,
    error: VersionCheckError,
    options: Mapping[str, Any],
    servers: Mapping[str, tuple[str | None, str | None]] | None = None,
    option_names: Mapping[str, str] = CLI_NAMES,
) -> dict[str, Any]:
    """The report of a run that could not be done: status error, and what was learnt before.

    `servers` maps a version key ("version" for check, "tracking_server_1|2" for compare) to its
    tracking and registry URI, so that a version resolved before the failure is kept. The message
    names options as `option_names` says (the CLI's, or the action's inputs).
    """
    servers = servers or {}
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "status": "error",
        "equals": None,
        "error": {
            "type": error.type_name,
            "message": error.render(option_names),
            "exit_code": exit_code_of(error),
        },
        "System": system_section(command),
        "Options": dict(options),
    }
    if command == "audit":
        report[AUDIT_SECTION] = None
    elif command in ("check", "seal", "verify"):
        report["Model_Version"] = resolved_version_json(
            error, "version", *servers.get("version", (None, None))
        )
        report[{"check": CHECK_SECTION, "seal": SEAL_SECTION, "verify": VERIFY_SECTION}[command]] = None
    else:
        report["Model_Versions"] = {
            key: resolved_version_json(error, key, *servers.get(key, (None, None))) for key in SERVER_KEYS
        }
        report["Comparison_Summary"] = None
    return report


def finalized(report: dict[str, Any], run_nonce: str | None) -> dict[str, Any]:
    """The report with its run's nonce (when given) and every string's secrets removed.

    One pass at the edge, before anything is rendered from it: the JSON file, the JUnit file, the
    summary on stdout, and in the action the annotations, job summary and outputs.
    """
    if run_nonce:
        report["System"]["run_nonce"] = run_nonce
    return redact_tree(report)
