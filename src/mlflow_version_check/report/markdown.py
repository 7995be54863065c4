"""The Markdown job summary of a report: verdict, versions, differences, ignored fields, the report's place.

Every text from the report passes through untrusted.markdown, so a name cannot add links, HTML,
mentions or table cells to the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import SERVER_KEYS
from ..untrusted import markdown
from .sections import AUDIT_SECTION, CHECK_SECTION, COMPARE_SECTIONS, SEAL_SECTION, VERIFY_SECTION
from .terminal import audit_reason, side_cell, whole_model_lines


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
            cells = [_md(d["kind"]), _md(d["path"]), _md(side_cell(d["left"])), _md(side_cell(d["right"]))]
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
    comparison = report.get(CHECK_SECTION)
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
    lines += [f"- {_md(line)}" for line in whole_model_lines("native model", comparison.get("native_model"))]
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
            lines += [f"- {_md(line)}" for line in whole_model_lines(f"{role} native model", native)]
            lines += _md_differences(role, report[name], *SERVER_KEYS)
    return lines


def _md_seal(report: Mapping[str, Any]) -> list[str]:
    lines = [f"Model version: {_md_version(report.get('Model_Version'))}"]
    seal = report.get(SEAL_SECTION)
    if not seal:
        return lines
    lines += ["", f"{seal['files']} files, {seal['bytes']} bytes; root digest `{_md(seal['root_digest'])}`"]
    if seal["manifest_file"]:
        lines.append(f"Manifest: `{_md(seal['manifest_file'])}`")
    if seal["recorded_tag"]:
        lines.append(f"Recorded in the version's tag `{_md(seal['recorded_tag'])}`")
    problems = seal["reg_model"]["integrity"]["problems"]
    if problems:
        lines += ["", "**Not sealed: the registry model is not a complete MLflow model**", ""]
        lines += [f"- {_md(problem)}" for problem in problems]
    return lines


def _md_verify(report: Mapping[str, Any]) -> list[str]:
    lines = [f"Model version: {_md_version(report.get('Model_Version'))}"]
    section = report.get(VERIFY_SECTION)
    if not section:
        return lines
    reference = section["reference"]
    lines += [
        "",
        f"Reference: {_md(reference['kind'])} `{_md(reference['source'])}`",
        f"Root digest now `{_md(section['root_digest'])}`"
        + (
            f", expected `{_md(reference['root_digest'])}`"
            if reference["files"] is None and reference["root_digest"]
            else ""
        ),
    ]
    if section["problem"]:
        lines += ["", f"**{_md(section['problem'])}**"]
    if section["differences"]:
        lines += ["", "**Differences from the reference**", "", "| kind | path | expected sha256 | now |",
                  "| --- | --- | --- | --- |"]  # fmt: skip
        for d in section["differences"][:100]:
            cells = [
                _md(d["kind"]),
                _md(d["path"]),
                _md((d["expected_sha256"] or "-")[:12]),
                _md(side_cell(d["actual"])),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        if len(section["differences"]) > 100:
            lines.append(f"| … | {len(section['differences']) - 100} more in the report | | |")
    if section["ignored"]:
        lines += ["", "**Ignored (by rule)**", "", "| path | rule | field |", "| --- | --- | --- |"]
        for i in section["ignored"]:
            lines.append("| " + " | ".join([_md(i["path"]), _md(i["rule"]), _md(i["field"] or "")]) + " |")
    return lines


# The job summary's table of versions that did not pass is capped; the report lists every version.
AUDIT_ROWS_SHOWN = 100


def _md_audit(report: Mapping[str, Any]) -> list[str]:
    audit = report.get(AUDIT_SECTION)
    if not audit:
        return []
    summary, selection = audit["summary"], audit["selection"]
    lines = [
        f"{summary['total']} versions checked"
        + (f" (shard {_md(audit['shard'])})" if audit["shard"] else "")
        + (f" (merged from {len(audit['merged_from'])} shard reports)" if audit.get("merged_from") else "")
        + f" of a selection of {selection['total']}: {summary['passed']} passed, {summary['failed']} failed, "
        f"{summary['error']} could not be checked",
    ]
    # Failed versions first: past the cap, a failure must not hide behind versions that errored.
    unhealthy = sorted(
        (item for item in audit["versions"] if item["status"] != "passed"),
        key=lambda item: item["status"] != "failed",
    )
    if unhealthy:
        lines += ["", "| status | model | version | why |", "| --- | --- | --- | --- |"]
        for item in unhealthy[:AUDIT_ROWS_SHOWN]:
            cells = [_md(item["status"]), _md(item["model"]), _md(item["version"]), _md(audit_reason(item))]
            lines.append("| " + " | ".join(cells) + " |")
        if len(unhealthy) > AUDIT_ROWS_SHOWN:
            lines.append(f"| … | {len(unhealthy) - AUDIT_ROWS_SHOWN} more in the report | | |")
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
    lines += {
        "check": _md_check,
        "compare": _md_compare,
        "seal": _md_seal,
        "verify": _md_verify,
        "audit": _md_audit,
    }[command](report)
    lines += [
        "",
        f"Report: `{_md(report_path)}`" + (f" (artifact {_md(artifact_id)})" if artifact_id else ""),
    ]
    if upload_problem:
        lines.append(f"Artifact upload {_md(upload_problem)}")
    return "\n".join(lines) + "\n"
