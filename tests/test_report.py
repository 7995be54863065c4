"""Report writing and redaction: atomic files, valid schema, no credentials."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from mlflow_version_check.errors import ServerUnreachable
from mlflow_version_check.redact import redact
from mlflow_version_check.report.document import error_report, finalized, load_schema
from mlflow_version_check.report.files import write_report


def test_write_report_creates_parents_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    """The report lands whole at its path; parents are created; no temporary file remains."""
    target = tmp_path / "a" / "b" / "report.json"
    write_report({"schema_version": 1}, target)
    assert json.loads(target.read_text()) == {"schema_version": 1}
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_failed_write_keeps_the_previous_report(tmp_path: Path) -> None:
    """A write that fails midway never leaves half a report: the old one stays intact."""
    target = tmp_path / "report.json"
    write_report({"old": True}, target)
    with pytest.raises(TypeError):
        write_report({"unserializable": object()}, target)
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_error_report_validates_and_redacts() -> None:
    """An error report validates against the schema and carries no credentials."""
    error = ServerUnreachable("no answer from https://alice:s3cret@mlflow.example:5000 (connection refused)")
    report = finalized(  # the one redaction pass, before anything renders the report
        error_report(
            "check",
            error,
            {"tracking_uri": redact("https://alice:s3cret@mlflow.example:5000")},
            {"version": ("https://***@mlflow.example:5000", None)},
        ),
        None,
    )
    jsonschema.validate(report, load_schema(), cls=jsonschema.Draft202012Validator)
    text = json.dumps(report)
    assert "s3cret" not in text and "alice" not in text
    assert report["error"] == {
        "type": "ServerUnreachable",
        "message": report["error"]["message"],
        "exit_code": 3,
    }


def test_schema_rejects_a_passed_report_that_is_not_equal() -> None:
    """The schema itself catches an inconsistent verdict (it is a real check, not a formality)."""
    bad = {
        "schema_version": 1,
        "status": "passed",
        "equals": False,
        "error": None,
        "System": {
            "tool": "mlflow-version-check",
            "tool_version": "0",
            "command": "check",
            "mlflow_version": None,
            "python_version": "3.11",
            "time_utc": "2026-01-01T00:00:00Z",
        },
        "Options": {},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, load_schema(), cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param("https://user:pass@host:5000/path", "user:pass", id="userinfo"),
        pytest.param("https://token@host/x", "token@", id="token-userinfo"),
        pytest.param("https://bucket.s3/x?X-Amz-Signature=abcdef123&b=1", "abcdef123", id="s3-signature"),
        pytest.param("https://acct.blob/x?sv=2020&sig=SIGNATURE%3D", "SIGNATURE", id="azure-sas"),
        pytest.param(
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload", "eyJhbGciOiJIUzI1NiJ9", id="bearer"
        ),
        pytest.param(
            "token dapi0123456789abcdef0123456789abcdef", "dapi0123456789abcdef", id="databricks-pat"
        ),
    ],
)
def test_redact_removes_credentials(text: str, secret: str) -> None:
    """Credentials in URIs, signed URLs and headers are replaced."""
    assert secret not in redact(text)
    assert "***" in redact(text)


def test_redact_keeps_plain_uris_and_known_secrets() -> None:
    """Plain URIs stay readable; explicitly known secrets are removed wherever they appear."""
    assert redact("http://127.0.0.1:5000/api") == "http://127.0.0.1:5000/api"
    assert redact("value is hunter22 here", ("hunter22",)) == "value is *** here"
