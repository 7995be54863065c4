"""The terminal summary of a report: a verdict line and plain-text tables, printed on stdout.

Rendered from the finalized report (secrets already removed); a model's or server's text shows its
control characters escaped, so a name cannot break a line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import SERVER_KEYS
from ..untrusted import escape_controls
from .sections import AUDIT_SECTION, CHECK_SECTION, COMPARE_SECTIONS, SEAL_SECTION, VERIFY_SECTION


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


VERDICTS = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR"}


def _version_head(command: str, verdicts: Mapping[str, str], report: Mapping[str, Any]) -> str:
    """The first line of a one-version summary: command, verdict, the version and how it resolved."""
    version = report.get("Model_Version") or {}
    head = f"{command} {verdicts[report['status']]}: {_t(version.get('name', '?'))} version "
    head += _t(version.get("version", "?"))
    if version.get("resolved_by") and version.get("resolved_by") != "version":
        head += f" (resolved from {_t(repr(version.get('version_or_stage')))} by {version['resolved_by']})"
    return head


def check_summary(report: Mapping[str, Any]) -> str:
    """A short human summary of a check report, for stdout."""
    comparison = report.get(CHECK_SECTION) or {}
    lines = [_version_head("check", VERDICTS, report)]
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
    lines.extend(whole_model_lines("native model", comparison.get("native_model")))
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
                    side_cell(difference["left"]),
                    side_cell(difference["right"]),
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


def whole_model_lines(label: str, native: Mapping[str, Any] | None) -> list[str]:
    """Say when `--native-model auto` compared the whole model, and why (the job summary says it too)."""
    if not native or not native.get("whole_model"):
        return []
    return [f"{label}: the whole model was compared ({_t(native['whole_model'])})"]


def side_cell(entry: Mapping[str, Any] | None) -> str:
    """One side of a difference in a table: size and short digest, or "-" where the file is absent."""
    return "-" if entry is None else f"{_size(entry['size'])} {entry['sha256'][:12]}"


def compare_summary(report: Mapping[str, Any]) -> str:
    """A short human summary of a compare report, for stdout."""
    verdict = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR"}[report["status"]]
    versions = report.get("Model_Versions") or {}
    names = [
        _t(f"{v['name']} v{v['version']}") if v else "?" for v in (versions.get(key) for key in SERVER_KEYS)
    ]
    lines = [f"compare {verdict}: {names[0]} ({SERVER_KEYS[0]}) vs {names[1]} ({SERVER_KEYS[1]})"]
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
        lines.extend(whole_model_lines(f"{role} native model", section.get("native_model")))
        if section["differences"]:
            rows = [(f"{role} difference", "path", "server_1", "server_2")]
            rows.extend(
                (d["kind"], _t(d["path"]), side_cell(d["left"]), side_cell(d["right"]))
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


def seal_summary(report: Mapping[str, Any]) -> str:
    """A short human summary of a seal report: the root digest first (what a pipeline records)."""
    seal = report.get(SEAL_SECTION) or {}
    lines = [_version_head("seal", {"passed": "SEALED", "failed": "NOT SEALED", "error": "ERROR"}, report)]
    if not seal:
        return "\n".join(lines)
    lines.append(f"{seal['files']} files, {_size(seal['bytes'])}, at {_t(seal['reg_model']['location'])}")
    if report["status"] == "passed":
        lines.append(f"root digest: {seal['root_digest']}")
        if seal["recorded_tag"]:
            lines.append(f"recorded in the version's tag {seal['recorded_tag']}")
    else:
        problems = seal["reg_model"]["integrity"]["problems"]
        lines.append("the registry model is not a complete MLflow model; no seal was written:")
        lines.extend(f"  {_t(problem)}" for problem in problems)
    return "\n".join(lines)


def verify_summary(report: Mapping[str, Any]) -> str:
    """A short human summary of a verify report: the reference, then every file that differs from
    it (or the root digests, for a reference that names no file)."""
    section = report.get(VERIFY_SECTION) or {}
    lines = [_version_head("verify", VERDICTS, report)]
    if not section:
        return "\n".join(lines)
    reference = section["reference"]
    lines.append(
        f"{section['files']} files, {_size(section['bytes'])}, at {_t(section['reg_model']['location'])}"
    )
    shown_kind = {"recorded-tag": "the version's tag"}.get(reference["kind"], reference["kind"])
    lines.append(f"reference: {shown_kind} {_t(reference['source'])}")
    if section["problem"]:
        lines.append(f"  {_t(section['problem'])}")
    lines.append(f"root digest: {section['root_digest']}")
    if reference["files"] is None and report["status"] == "failed" and reference["root_digest"]:
        lines.append(
            f"expected:    {reference['root_digest']} (a digest names no file: verify against the "
            "manifest seal wrote to see which files changed)"
        )
    if reference["files"] is not None:
        lines.append(f"{section['compared_files']} of {reference['files']} listed files compared")
        if report["status"] == "passed" and reference["root_digest"] != section["root_digest"]:
            lines.append(
                f"(the sealed root was {reference['root_digest']}: "
                "the ignored items below make the difference)"
            )
    differences = section["differences"]
    if differences:
        rows: list[tuple[str, ...]] = [("difference", "path", "expected sha256", "now")]
        rows.extend(
            (
                d["kind"],
                _t(d["path"]),
                (d["expected_sha256"] or "-")[:12],
                side_cell(d["actual"]),
            )
            for d in differences
        )
        lines.extend(_table(rows))
        lines.extend(f"  {_t(d['path'])}: {_t(d['note'])}" for d in differences if d.get("note"))
    if section["ignored"]:
        lines.append(
            "ignored: "
            + ", ".join(
                _t(f"{i['path']}:{i['field']}" if i["field"] else f"{i['path']} ({i['rule']})")
                for i in section["ignored"]
            )
        )
    return "\n".join(lines)


# The summary lists this many versions that did not pass; the report lists every version.
AUDIT_ROWS_SHOWN = 50


def audit_summary(report: Mapping[str, Any]) -> str:
    """A short human summary of an audit report: the counts, then the versions that did not pass."""
    audit = report.get(AUDIT_SECTION) or {}
    verdict = {"passed": "PASSED", "failed": "FAILED", "error": "INCOMPLETE"}[report["status"]]
    if not audit:
        return f"audit {verdict}"
    summary, selection = audit["summary"], audit["selection"]
    scope = (
        f"shard {audit['shard']} of {selection['total']} versions"
        if audit["shard"]
        else f"{selection['total']} versions"
    )
    if audit.get("merged_from"):
        scope += f", merged from {len(audit['merged_from'])} shard reports"
    lines = [
        f"audit {verdict}: {summary['total']} versions checked ({scope}): {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['error']} could not be checked"
    ]
    # Failed versions first: past the cap, a failure must not hide behind versions that errored.
    unhealthy = sorted(
        (item for item in audit["versions"] if item["status"] != "passed"),
        key=lambda item: item["status"] != "failed",
    )
    if unhealthy:
        rows: list[tuple[str, ...]] = [("status", "model", "version", "why")]
        for item in unhealthy[:AUDIT_ROWS_SHOWN]:
            rows.append((item["status"], _t(item["model"]), _t(item["version"]), _t(audit_reason(item))))
        lines.extend(_table(rows))
        if len(unhealthy) > AUDIT_ROWS_SHOWN:
            lines.append(f"... and {len(unhealthy) - AUDIT_ROWS_SHOWN} more in the report")
    return "\n".join(lines)


def audit_reason(item: Mapping[str, Any]) -> str:
    """One line on why an audited version did not pass."""
    if item["error"]:
        return str(item["error"]["message"]).splitlines()[0][:200]
    reasons = [f"{d['kind']} {d['path']}" for d in item["differences"][:3]]
    if len(item["differences"]) > 3:
        reasons.append(f"{len(item['differences']) - 3} more differences")
    reasons += [str(problem) for problem in item["problems"][:2]]
    return "; ".join(reasons)[:200] or "failed"
