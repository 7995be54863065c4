"""Result objects -> the JSON report (schema_version 1), written atomically, and a text summary."""

from __future__ import annotations

import datetime
import json
import os
import platform
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from . import __version__
from .comparison import FileDifference, IgnoredItem, TreeSummary
from .config import SERVER_KEYS
from .errors import ReportPathError, VersionCheckError
from .integrity import IntegrityReport
from .redact import redact, redact_tree
from .results import CheckResult, CompareResult, DownloadedModel, ModelComparison, ModelVersionInfo
from .untrusted import escape_controls, markdown

SCHEMA_VERSION = 1


def load_schema() -> dict[str, Any]:
    """The JSON Schema that every report validates against (shipped in the package)."""
    text = resources.files(__package__).joinpath("schema/report.schema.json").read_text("utf-8")
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
    data["source"] = redact(version.source)
    data["download_uri"] = redact(version.download_uri)
    data["tracking_uri"] = redact(version.tracking_uri)
    data["registry_uri"] = redact(version.registry_uri) if version.registry_uri else None
    return data


def partial_version_json(
    partial: Mapping[str, Any], key: str, tracking_uri: str | None, registry_uri: str | None
) -> dict[str, Any] | None:
    """A version that was resolved before the failure, or None."""
    version = (partial.get("versions") or {}).get(key)
    if not version:
        return None
    return version_json(ModelVersionInfo.from_worker(version, tracking_uri or "", registry_uri))


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
        "download_uri": redact(model.uri),
        "location": model.location,
        "local_path": {
            "path": str(Path(model.local_path) / native) if native else model.local_path,
            "hash": summary.hash,
        },
        "files": summary.files,
        "bytes": summary.bytes,
        "tree_sha256": summary.tree_sha256,
        "downloaded": model.shared_with is None,
        "download_seconds": round(model.download_seconds, 3),
        "integrity": integrity_json(model.integrity),
    }


def check_report(result: CheckResult, options: Mapping[str, Any]) -> dict[str, Any]:
    """The report of a check that ran (passed or failed)."""
    comparison = result.comparison
    run_paths, reg_paths = result.native_paths or ((), ())
    section: dict[str, Any] = {
        "equals": result.equals,
        "same_location": result.same_location,
        "method": "integrity"
        if result.same_location
        else ("bytes" if result.strict else "bytes+mlmodel-rule"),
        "run_model": model_json(result.run_model, result.run_summary, run_paths),
        "reg_model": model_json(result.reg_model, result.reg_summary, reg_paths),
        "native_model": (
            {
                "requested": result.native_model,
                "run_model": list(run_paths),
                "reg_model": list(reg_paths),
                "whole_model": result.native_whole_model,
            }
            if result.native_model
            else None
        ),
        "differences": [difference_json(d) for d in comparison.differences] if comparison else [],
        "ignored": [ignored_json(i) for i in comparison.ignored] if comparison else [],
        "integrity": integrity_json(result.run_model.integrity) if result.same_location else None,
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "status": result.status,
        "equals": result.equals,
        "error": None,
        "System": system_section("check"),
        "Options": dict(options),
        "Model_Version": version_json(result.version),
        "Comparison": section,
        "Timings": {key: round(value, 3) for key, value in result.timings.items()},
    }


COMPARE_SECTIONS = {"run_model": "Run_Model_Comparison", "reg_model": "Reg_Model_Comparison"}


def compare_side_json(
    model: DownloadedModel, summary: TreeSummary, native_paths: tuple[str, ...]
) -> dict[str, Any]:
    """One server's side of a compare section: the seed's `path` and `hash`, then the added fields."""
    side = model_json(model, summary, native_paths)
    local = side.pop("local_path")
    return {"path": local["path"], "hash": local["hash"], **side}


def compare_section(pair: ModelComparison, strict: bool) -> dict[str, Any]:
    comparison = pair.comparison
    left_paths, right_paths = pair.native_paths or ((), ())
    return {
        "equals": pair.equals,
        "same_location": pair.same_location,
        "method": "same-location" if pair.same_location else ("bytes" if strict else "bytes+mlmodel-rule"),
        SERVER_KEYS[0]: compare_side_json(pair.left, pair.left_summary, left_paths),
        SERVER_KEYS[1]: compare_side_json(pair.right, pair.right_summary, right_paths),
        "native_model": (
            {
                SERVER_KEYS[0]: list(left_paths),
                SERVER_KEYS[1]: list(right_paths),
                "whole_model": pair.native_whole_model,
            }
            if pair.native_paths
            else None
        ),
        "differences": [difference_json(d) for d in comparison.differences] if comparison else [],
        "ignored": [ignored_json(i) for i in comparison.ignored] if comparison else [],
    }


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
) -> dict[str, Any]:
    """The report of a run that could not be done: status error, and what was learnt before.

    `servers` maps a version key ("version" for check, "tracking_server_1|2" for compare) to its
    tracking and registry URI, so that a version resolved before the failure is kept.
    """
    servers = servers or {}
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "status": "error",
        "equals": None,
        "error": {"type": error.type_name, "message": redact(error.message), "exit_code": error.exit_code},
        "System": system_section(command),
        "Options": dict(options),
    }
    if command == "check":
        report["Model_Version"] = partial_version_json(
            error.partial, "version", *servers.get("version", (None, None))
        )
        report["Comparison"] = None
    else:
        report["Model_Versions"] = {
            key: partial_version_json(error.partial, key, *servers.get(key, (None, None)))
            for key in SERVER_KEYS
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


def write_report(
    report: Mapping[str, Any], path: str | os.PathLike[str], option: str = "--report-file"
) -> Path:
    """Write the JSON report atomically (see write_text_atomically).

    JSON keeps every name exactly: control characters and the `\\xNN` bytes of a file name that is
    not UTF-8 are escaped by JSON itself (ensure_ascii), so the file is always valid UTF-8.
    """
    return write_text_atomically(json.dumps(report, indent=2, sort_keys=False) + "\n", path, option)


def refuse_special_target(option: str, path: Path) -> None:
    """An existing target that is not a regular file is refused (ReportPathError), never replaced.

    The atomic write renames a new file over the target: as root that would turn /dev/null into a
    regular file, and a FIFO or socket that another program reads would be silently swapped out.
    A symlink is refused as well (neither followed nor replaced): the report would otherwise land
    wherever the link points, or a link someone placed on purpose would be lost.
    """
    try:
        info = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there (yet): whether it can be written is the caller's check
    except OSError as exc:
        raise ReportPathError(
            f"{option} {path} cannot be inspected: {exc.strerror or exc}. Fix: give a path in a "
            "directory you can read and write."
        ) from exc
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        raise ReportPathError(
            f"{option} {path} is a symlink (to {os.readlink(path)}); it is neither followed nor replaced. "
            "Fix: give the path of a regular file (or of a file that does not exist yet)."
        )
    if stat.S_ISDIR(mode):
        suffix = "xml" if "junit" in option else "json"
        raise ReportPathError(
            f"{option} {path} is a directory. Fix: give a file path, e.g. {path}/report.{suffix}."
        )
    if not stat.S_ISREG(mode):
        kind = (
            "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode)
            else "a FIFO" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file"
        )  # fmt: skip
        raise ReportPathError(
            f"{option} {path} is {kind}, not a regular file; it is never replaced. Fix: give the path "
            "of a regular file (or of a file that does not exist yet)."
        )


def write_text_atomically(text: str, path: str | os.PathLike[str], option: str = "the target") -> Path:
    """Write a temporary file in the same directory, then rename it over the target.

    A crash or a full disk therefore never leaves half a file at `path`. A target that exists and is
    not a regular file is refused (refuse_special_target), checked again just before the rename.
    """
    target = Path(path).expanduser()
    refuse_special_target(option, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    replaced = False
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        refuse_special_target(option, target)  # it may have been replaced while we wrote
        os.replace(temporary, target)
        replaced = True
    finally:
        if not replaced:  # whatever stopped the write, the half-written file goes
            Path(temporary).unlink(missing_ok=True)
    return target


def _size(value: int) -> str:
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def _t(value: Any) -> str:
    """A model's or server's text in the terminal summary: control characters shown escaped, so a
    line break in a name stays inside its line (the CLI makes every line safe as well)."""
    return escape_controls(str(value))


def check_summary(report: Mapping[str, Any]) -> str:
    """A short human summary of a check report, for stdout."""
    version = report.get("Model_Version") or {}
    comparison = report.get("Comparison") or {}
    verdict = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR"}[report["status"]]
    head = f"check {verdict}: {_t(version.get('name', '?'))} version {_t(version.get('version', '?'))}"
    if version.get("resolved_by") and version.get("resolved_by") != "version":
        head += f" (resolved from {_t(repr(version.get('version_or_stage')))} by {version['resolved_by']})"
    lines = [head]
    if not comparison:
        return "\n".join(lines)
    rows: list[tuple[str, ...]] = [("model", "files", "size", "sha256 (tree)", "location")]
    for role in ("run_model", "reg_model"):
        side = comparison[role]
        rows.append(
            (
                role,
                str(side["files"]),
                _size(side["bytes"]),
                side["local_path"]["hash"][:16],
                _t(side["location"]),
            )
        )
    lines.extend(_table(rows))
    lines.extend(_whole_model_line("native model", comparison.get("native_model")))
    if comparison["same_location"]:
        integrity = comparison["integrity"]
        lines.append(
            "same_location: the registry keeps no separate copy; verified the model is complete: "
            + ("MLmodel parses, " if integrity["mlmodel_parses"] else "")
            + f"{sum(r['exists'] for r in integrity['references'])}/{len(integrity['references'])}"
            + " files named by MLmodel exist"
            + (
                f", size {integrity['counted_bytes']} = model_size_bytes"
                if integrity["model_size_bytes"] is not None
                and integrity["counted_bytes"] == integrity["model_size_bytes"]
                else ""
            )
        )
        lines.extend(f"  problem: {_t(problem)}" for problem in integrity["problems"])
    differences = comparison["differences"]
    if differences:
        rows = [("difference", "path", "run_model", "reg_model")]
        for difference in differences:
            rows.append(
                (
                    difference["kind"],
                    _t(difference["path"]),
                    _side(difference["left"]),
                    _side(difference["right"]),
                )
            )
        lines.extend(_table(rows))
        lines.extend(f"  {_t(d['path'])}: {_t(d['note'])}" for d in differences if d.get("note"))
    ignored = comparison["ignored"]
    if ignored:
        lines.append(
            "ignored: "
            + ", ".join(_t(f"{i['path']}:{i['field']}" if i["field"] else i["path"]) for i in ignored)
        )
    return "\n".join(lines)


def _whole_model_line(label: str, native: Mapping[str, Any] | None) -> list[str]:
    """Say when `--native-model auto` compared the whole model, and why."""
    if not native or not native.get("whole_model"):
        return []
    return [f"{label}: the whole model was compared ({_t(native['whole_model'])})"]


def _side(entry: Mapping[str, Any] | None) -> str:
    return "-" if entry is None else f"{_size(entry['size'])} {entry['sha256'][:12]}"


def compare_summary(report: Mapping[str, Any]) -> str:
    """A short human summary of a compare report, for stdout."""
    verdict = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR"}[report["status"]]
    versions = report.get("Model_Versions") or {}
    names = [
        _t(f"{v['name']} v{v['version']}") if v else "?" for v in (versions.get(key) for key in SERVER_KEYS)
    ]
    lines = [f"compare {verdict}: {names[0]} (tracking_server_1) vs {names[1]} (tracking_server_2)"]
    summary = report.get("Comparison_Summary")
    if not summary:
        return "\n".join(lines)
    rows: list[tuple[str, ...]] = [
        ("model", "equals", "server_1 files", "server_1 sha256", "server_2 files", "server_2 sha256")
    ]
    for role, section_name in COMPARE_SECTIONS.items():
        section = report.get(section_name)
        if section is None:
            rows.append((role, "not compared", "", "", "", ""))
            continue
        left, right = section[SERVER_KEYS[0]], section[SERVER_KEYS[1]]
        equals = "yes" if section["equals"] else "NO"
        if section["same_location"]:
            equals += " (same location)"
        rows.append(
            (role, equals, str(left["files"]), left["hash"][:16], str(right["files"]), right["hash"][:16])
        )
    lines.extend(_table(rows))
    if any(
        (section := report.get(name))
        and section["equals"]
        and section["ignored"]
        and section[SERVER_KEYS[0]]["hash"] != section[SERVER_KEYS[1]]["hash"]
        for name in COMPARE_SECTIONS.values()
    ):
        lines.append(
            "(equal models with different digests: the digests cover the ignored MLmodel fields below)"
        )
    for role, section_name in COMPARE_SECTIONS.items():
        section = report.get(section_name)
        if not section:
            continue
        lines.extend(_whole_model_line(f"{role} native model", section.get("native_model")))
        if section["differences"]:
            rows = [(f"{role} difference", "path", "server_1", "server_2")]
            rows.extend(
                (d["kind"], _t(d["path"]), _side(d["left"]), _side(d["right"]))
                for d in section["differences"]
            )
            lines.extend(_table(rows))
            lines.extend(
                f"  {_t(d['path'])}: {_t(d['note'])}" for d in section["differences"] if d.get("note")
            )
        if section["ignored"]:
            lines.append(
                f"{role} ignored: "
                + ", ".join(
                    _t(f"{i['path']}:{i['field']}" if i["field"] else i["path"]) for i in section["ignored"]
                )
            )
    return "\n".join(lines)


def _md(value: Any) -> str:
    """Text for the job summary: inert (no line breaks, pipes, HTML, links, mentions; untrusted.markdown)."""
    return markdown(value)


def _md_version(version: Mapping[str, Any] | None) -> str:
    if not version:
        return "not resolved"
    text = f"{_md(version['name'])} version {_md(version['version'])}"
    if version.get("resolved_by") not in (None, "version"):
        text += f" (from {_md(version['version_or_stage'])}, by {_md(version['resolved_by'])})"
    return text


def _md_differences(title: str, section: Mapping[str, Any], left: str, right: str) -> list[str]:
    lines: list[str] = []
    if section.get("differences"):
        lines += [
            "",
            f"**{title}: differences**",
            "",
            f"| kind | path | {left} | {right} |",
            "| --- | --- | --- | --- |",
        ]
        for d in section["differences"][:100]:
            cells = [_md(d["kind"]), _md(d["path"]), _md(_side(d["left"])), _md(_side(d["right"]))]
            lines.append("| " + " | ".join(cells) + " |")
        if len(section["differences"]) > 100:
            lines.append(f"| … | {len(section['differences']) - 100} more in the report | | |")
    if section.get("ignored"):
        lines += ["", f"**{title}: ignored (by rule)**", "", f"| path | field | {left} | {right} |",
                  "| --- | --- | --- | --- |"]  # fmt: skip
        for i in section["ignored"]:
            cells = [_md(i["path"]), _md(i["field"] or ""), _md(i["left"]), _md(i["right"])]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _md_check(report: Mapping[str, Any]) -> list[str]:
    lines = [f"**Model version:** {_md_version(report.get('Model_Version'))}"]
    comparison = report.get("Comparison")
    if not comparison:
        return lines
    lines += ["", "| model | files | bytes | sha256 | location |", "| --- | --- | --- | --- | --- |"]
    for role in ("run_model", "reg_model"):
        side = comparison[role]
        lines.append(
            f"| {role} | {side['files']} | {side['bytes']} | `{side['local_path']['hash'][:16]}` | "
            f"{_md(side['location'])} |"
        )
    if comparison["same_location"]:
        lines += ["", "Run and registry model are one storage location (no separate registry copy): "
                  "verified the model is complete."]  # fmt: skip
        lines += [f"- problem: {_md(problem)}" for problem in comparison["integrity"]["problems"]]
    lines += [f"- {_md(line)}" for line in _whole_model_line("native model", comparison.get("native_model"))]
    return lines + _md_differences("check", comparison, "run_model", "reg_model")


def _md_compare(report: Mapping[str, Any]) -> list[str]:
    versions = report.get("Model_Versions") or {}
    lines = [f"**{key}:** {_md_version(versions.get(key))}  " for key in SERVER_KEYS]
    summary = report.get("Comparison_Summary")
    if not summary:
        return lines
    lines += ["", "| models | equal |", "| --- | --- |"]
    for role in COMPARE_SECTIONS:
        value = summary.get(role)
        lines.append(f"| {role} | {'not compared' if value is None else ('yes' if value else '**no**')} |")
    for role, name in COMPARE_SECTIONS.items():
        if report.get(name):
            native = report[name].get("native_model")
            lines += [f"- {_md(line)}" for line in _whole_model_line(f"{role} native model", native)]
            lines += _md_differences(role, report[name], "tracking_server_1", "tracking_server_2")
    return lines


def markdown_summary(
    report: Mapping[str, Any] | None, report_path: str, artifact_id: str, upload_problem: str | None
) -> str:
    """The job summary: verdict, versions, differences and ignored fields, where the report is."""
    if report is None:
        return (
            "## mlflow-version-check: no report\n\nThe run ended before a report was written; see the log.\n"
        )
    status = report["status"]
    icon = {"passed": "✅", "failed": "❌", "error": "⚠️"}[status]
    command = report["System"]["command"]
    lines = [f"## {icon} mlflow-version-check {command}: {status}", ""]
    if report.get("error"):
        lines += [f"**Error** ({_md(report['error']['type'])}): {_md(report['error']['message'])}", ""]
    lines += _md_check(report) if command == "check" else _md_compare(report)
    lines += [
        "",
        f"Report: `{_md(report_path)}`" + (f" (artifact {_md(artifact_id)})" if artifact_id else ""),
    ]
    if upload_problem:
        lines.append(f"Artifact upload {_md(upload_problem)}")
    return "\n".join(lines) + "\n"
