"""The JSON report as JUnit XML, for the test-report views of GitLab, Jenkins and Azure Pipelines.

One test case per comparison: check has one (run model against registry copy), compare one per
compared role (run models, registry models). A difference is a <failure> listing the files; a run that
could not be done is one <error> with the report's error message. Built from the report itself, so the
two never disagree and carry the same redactions. Every text from the report passes through
untrusted.xml_text: control characters (which XML 1.0 forbids) are shown escaped, so the document
stays well-formed whatever a model's file names hold, and no line can be read as a workflow command.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree

from ..config import SERVER_KEYS
from ..untrusted import escape_controls, xml_text
from .sections import (
    AUDIT_SECTION,
    CHECK_SECTION,
    COMPARE_SECTIONS,
    SEAL_SECTION,
    SECTION_LABELS,
    VERIFY_SECTION,
)

SUITE = "mlflow-version-check"
LISTED_DIFFERENCES = 200  # the JSON report has all; a test view needs the first ones


def _version(version: Mapping[str, Any] | None, fallback: str) -> str:
    if not version:
        return fallback
    return f"{version['name']} version {version['version']}"


def _difference_line(difference: Mapping[str, Any]) -> str:
    def side(entry: Mapping[str, Any] | None) -> str:
        return "absent" if entry is None else f"{entry['size']} B sha256 {entry['sha256'][:16]}"

    if "expected_sha256" in difference:  # a verify's: the reference lists a digest, not a size
        expected = difference["expected_sha256"]
        listed = f"sha256 {expected[:16]}" if expected else "absent"
        sides = f"expected {listed} / now {side(difference['actual'])}"
    else:
        sides = f"{side(difference['left'])} / {side(difference['right'])}"
    line = f"{difference['kind']}: {difference['path']} ({sides})"
    return line + (f" - {difference['note']}" if difference.get("note") else "")


def _failure_text(section: Mapping[str, Any]) -> tuple[str, str]:
    """(message, body) of a comparison that found differences or an incomplete model."""
    differences = section.get("differences") or []
    if "reference" in section and section.get("problem"):  # a verify whose signature failed
        return escape_controls(section["problem"]), ""
    if "reference" in section and section["reference"]["files"] is None:  # a verify against a root
        found, expected = section["root_digest"], section["reference"]["root_digest"]
        return f"root digest {found} is not the expected {expected}", ""
    if "root_digest" in section:  # a seal: its registry model's completeness
        integrity = (section.get("reg_model") or {}).get("integrity")
    else:
        integrity = section.get("integrity") if section.get("same_location") else None
    problems = list((integrity or {}).get("problems") or [])
    # Each line escaped on its own: a line break inside a file name must not start a new line.
    lines = [escape_controls(_difference_line(d)) for d in differences[:LISTED_DIFFERENCES]]
    if len(differences) > LISTED_DIFFERENCES:
        lines.append(f"... and {len(differences) - LISTED_DIFFERENCES} more in the JSON report")
    lines += [escape_controls(f"model incomplete: {problem}") for problem in problems]
    if differences:
        message = f"{len(differences)} file(s) differ"
    elif problems:
        message = f"the model is incomplete: {problems[0]}"
    else:
        message = "the models differ"
    return message, "\n".join(lines)


def _cases(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any] | None]]:
    """(test case name, its comparison section or None for an error) in report order."""
    if report["System"]["command"] == "check":
        subject = _version(report.get("Model_Version"), f"{report['Options'].get('model')}")
        name = f"{subject}: run model equals the registry copy"
        return [(name, report.get(CHECK_SECTION))]
    if report["System"]["command"] == "verify":
        subject = _version(report.get("Model_Version"), f"{report['Options'].get('model')}")
        return [(f"{subject}: the registry model is the one sealed", report.get(VERIFY_SECTION))]
    if report["System"]["command"] == "seal":
        subject = _version(report.get("Model_Version"), f"{report['Options'].get('model')}")
        return [(f"{subject}: the registry model is complete and sealed", report.get(SEAL_SECTION))]
    versions = report.get("Model_Versions") or {}
    first, second = (_version(versions.get(key), key) for key in SERVER_KEYS)
    if report["status"] == "error":
        return [(f"{first} equals {second}", None)]
    return [
        (f"{SECTION_LABELS[key]}: {first} equals {second}", report[key])
        for key in COMPARE_SECTIONS.values()
        if key in report
    ]


def _audit_cases(report: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(name, status, message, body) of each audited version: one test case per version."""
    from .terminal import audit_reason

    cases = []
    for item in (report.get(AUDIT_SECTION) or {}).get("versions") or []:
        name = f"{item['model']} version {item['version']}"
        if item["status"] == "error":
            cases.append((name, "error", audit_reason(item), item["error"]["type"]))
        elif item["status"] == "failed":
            body = "\n".join(
                escape_controls(f"{d['kind']}: {d['path']}" + (f" - {d['note']}" if d.get("note") else ""))
                for d in item["differences"][:LISTED_DIFFERENCES]
            )
            problems = "\n".join(escape_controls(f"problem: {problem}") for problem in item["problems"])
            cases.append(
                (name, "failed", audit_reason(item), "\n".join(part for part in (body, problems) if part))
            )
        else:
            cases.append((name, "passed", "", ""))
    return cases


def _suite(
    report: Mapping[str, Any], tests: int, failures: int, errors: int
) -> tuple[ElementTree.Element, ElementTree.Element]:
    """The document's root and its one test suite, with the run's properties (tool and MLflow
    versions, run nonce); test cases go into the suite."""
    command = report["System"]["command"]
    seconds = f"{(report.get('Timings') or {}).get('total_seconds', 0.0):.3f}"
    suites = ElementTree.Element(
        "testsuites", name=SUITE, tests=str(tests), failures=str(failures), errors=str(errors)
    )
    suite = ElementTree.SubElement(
        suites, "testsuite", name=f"{SUITE} {command}", tests=str(tests), failures=str(failures),
        errors=str(errors), skipped="0", time=seconds, timestamp=report["System"]["time_utc"].rstrip("Z"),
    )  # fmt: skip
    properties = ElementTree.SubElement(suite, "properties")
    for name in ("tool_version", "mlflow_version", "run_nonce"):
        if name in report["System"]:
            ElementTree.SubElement(properties, "property", name=name, value=xml_text(report["System"][name]))
    return suites, suite


def _document(suites: ElementTree.Element) -> str:
    ElementTree.indent(suites)
    document = ElementTree.tostring(suites, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{document}\n'


def _audit_junit(report: Mapping[str, Any]) -> str:
    cases = _audit_cases(report)
    failures = sum(status == "failed" for _, status, _, _ in cases)
    errors = sum(status == "error" for _, status, _, _ in cases)
    if report.get(AUDIT_SECTION) is None and report["status"] == "error":  # the audit itself failed
        error = report["error"]
        cases = [("audit", "error", error["message"], error["type"])]
        errors = 1
    suites, suite = _suite(report, len(cases), failures, errors)
    for name, status, message, detail in cases:
        case = ElementTree.SubElement(
            suite, "testcase", name=xml_text(name), classname=f"{SUITE}.audit", time="0"
        )
        if status == "error":
            element = ElementTree.SubElement(case, "error", message=xml_text(message), type=xml_text(detail))
            element.text = xml_text(message)
        elif status == "failed":
            element = ElementTree.SubElement(
                case, "failure", message=xml_text(message), type="ModelDifference"
            )
            element.text = xml_text(detail)
    return _document(suites)


def junit_xml(report: Mapping[str, Any]) -> str:
    """The JUnit XML document of a report (any status)."""
    command = report["System"]["command"]
    if command == "audit":
        return _audit_junit(report)
    seconds = f"{(report.get('Timings') or {}).get('total_seconds', 0.0):.3f}"
    cases = _cases(report)
    failures = sum(1 for _, section in cases if section is not None and not section.get("equals"))
    errors = 1 if report["status"] == "error" else 0
    suites, suite = _suite(report, len(cases), failures, errors)
    for name, section in cases:
        case = ElementTree.SubElement(
            suite, "testcase", name=xml_text(name), classname=f"{SUITE}.{command}", time=seconds
        )
        if report["status"] == "error":
            error = report["error"]
            message, kind = xml_text(error["message"]), xml_text(error["type"])
            element = ElementTree.SubElement(case, "error", message=message, type=kind)
            element.text = message
        elif section is not None and not section.get("equals"):
            message, body = _failure_text(section)
            element = ElementTree.SubElement(
                case, "failure", message=xml_text(message), type="ModelDifference"
            )
            element.text = xml_text(body)
    return _document(suites)
