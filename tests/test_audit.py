"""`audit` and `audit merge` against a real `mlflow server` of their own (a registry whose every
version a test knows): one incomplete version is exactly the one that fails; selections by name,
filter, aliased and latest; a version whose files vanished is an error while the others are still
checked; a server that dies mid-audit leaves a complete report; shards cover the selection exactly
once and merge into the unsharded verdict; merges of missing, duplicated or foreign shards are
refused; a recorded seal that no longer matches fails its version."""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlflow_version_check import audit_registry
from mlflow_version_check.audit import fingerprint, merge_audit_reports, parse_shard, shard_of
from mlflow_version_check.errors import AuditMergeError, InvalidOption
from mvc_testing import models
from mvc_testing.servers import MlflowServer
from tests.conftest import Run, load_valid_report, run_command
from tests.fault_proxy import FaultProxy

pytestmark = pytest.mark.server


class Registry:
    """A server with three models: fraud (versions 1-3, 2 aliased @champion, 3 incomplete), churn
    (version 1 in Production, version 2), and vanished (version 1, its files removed)."""

    def __init__(self, server: MlflowServer) -> None:
        self.server = server
        url = server.url
        for seed in range(3):
            models.log_sklearn(url, "fraud", seed=seed)
        models.set_alias(url, "fraud", "champion", "2")
        broken = models.Registered("fraud", "3", "", None)
        (models.artifact_directory(server.artifacts, url, broken) / "model.pkl").unlink()
        models.log_directory_flavor(url, "churn")
        models.log_directory_flavor(url, "churn")
        models.set_stage(url, "churn", "1", "Production")
        gone = models.log_sklearn(url, "vanished")
        shutil.rmtree(models.artifact_directory(server.artifacts, url, gone))
        self.all = {
            ("fraud", "1"),
            ("fraud", "2"),
            ("fraud", "3"),
            ("churn", "1"),
            ("churn", "2"),
            ("vanished", "1"),
        }


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with MlflowServer(tmp_path_factory.mktemp("audit_server")) as server:
        yield Registry(server)


def audit(
    registry: Registry, folder: Path, *arguments: str, name: str = "report"
) -> tuple[Run, dict[str, Any]]:
    report = folder / f"{name}.json"
    run = run_command(
        "mlflow-version-check", "audit", "--tracking-uri", registry.server.url, *arguments,
        "--report-file", str(report), "--junit-file", str(folder / f"{name}.xml"),
    )  # fmt: skip
    return run, load_valid_report(report)


def statuses(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(item["model"], item["version"]): item["status"] for item in report["Audit"]["versions"]}


def test_every_version_with_exactly_the_incomplete_one_failed(registry: Registry, tmp_path: Path) -> None:
    """Exit 1 (a failure outweighs an error); fraud 3 failed with its problem, vanished 1 is an error
    with its cause, the rest passed; one JUnit test case per version."""
    run, report = audit(registry, tmp_path)
    assert run.exit_code == 1, run.stdout + run.stderr
    assert statuses(report) == {
        ("fraud", "1"): "passed",
        ("fraud", "2"): "passed",
        ("fraud", "3"): "failed",
        ("churn", "1"): "passed",
        ("churn", "2"): "passed",
        ("vanished", "1"): "error",
    }
    assert report["status"] == "failed" and report["equals"] is False
    assert report["Audit"]["summary"] == {"passed": 4, "failed": 1, "error": 1, "total": 6}
    assert report["Audit"]["selection"]["total"] == 6
    assert report["Audit"]["selection"]["fingerprint"] == fingerprint(registry.all)
    by_version = {(item["model"], item["version"]): item for item in report["Audit"]["versions"]}
    assert any("model.pkl" in problem for problem in by_version[("fraud", "3")]["problems"])
    assert by_version[("vanished", "1")]["error"]["exit_code"] == 3
    assert by_version[("fraud", "2")]["aliases"] == ["champion"]
    assert by_version[("churn", "1")]["stage"] == "Production"
    assert by_version[("fraud", "1")]["root_digest"].startswith("sha256:")
    junit = (tmp_path / "report.xml").read_text()
    assert junit.count("<testcase ") == 6 and 'failures="1"' in junit and 'errors="1"' in junit
    rows = [line.split() for line in run.stdout.splitlines()]
    assert rows[3][:3] == ["failed", "fraud", "3"] and rows[4][:3] == ["error", "vanished", "1"], run.stdout


@pytest.mark.parametrize(
    ("arguments", "expected", "exit_code"),
    [
        (["--model", "churn"], {("churn", "1"), ("churn", "2")}, 0),
        (
            ["--model", "churn", "--model", "fraud", "--versions", "latest"],
            {("churn", "2"), ("fraud", "3")},
            1,
        ),
        (["--versions", "aliased"], {("fraud", "2"), ("churn", "1")}, 0),
        (["--filter", "name = 'vanished'"], {("vanished", "1")}, 3),
    ],
)
def test_selections(
    registry: Registry, tmp_path: Path, arguments: list[str], expected: set[tuple[str, str]], exit_code: int
) -> None:
    run, report = audit(registry, tmp_path, *arguments)
    assert run.exit_code == exit_code, run.stdout + run.stderr
    assert set(statuses(report)) == expected
    assert report["Audit"]["selection"]["total"] == len(expected)
    if exit_code == 3:  # nothing failed, something could not be checked: the audit is incomplete
        assert report["status"] == "error" and report["error"]["type"] == "AuditIncomplete"


@pytest.mark.parametrize(
    ("arguments", "exit_code", "message"),
    [
        (["--model", "no_such_model"], 3, "registered model 'no_such_model' not found"),
        (["--filter", "name = 'no_such_model'"], 3, "the selection names no model version"),
        (["--filter", "nonsense ==== 1"], 2, "the registry refused the filter"),
        (["--model", "fraud", "--filter", "name = 'fraud'"], 2, "--model and --filter both select models"),
        (["--shard", "3/2"], 2, "is not I/N"),
        (["--versions", "newest"], 2, "--versions 'newest' is not one of"),
    ],
)
def test_selection_errors_are_one_line(
    registry: Registry, tmp_path: Path, arguments: list[str], exit_code: int, message: str
) -> None:
    run, report = audit(registry, tmp_path, *arguments)
    assert run.exit_code == exit_code, run.stdout + run.stderr
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert report["status"] == "error" and report["Audit"] is None


def test_shards_cover_the_selection_once_and_merge_into_the_unsharded_verdict(
    registry: Registry, tmp_path: Path
) -> None:
    _, whole = audit(registry, tmp_path, name="whole")
    shard_files = []
    seen: list[tuple[str, str]] = []
    for index in (1, 2, 3):
        run, report = audit(registry, tmp_path, "--shard", f"{index}/3", name=f"shard{index}")
        assert report["Audit"]["shard"] == f"{index}/3"
        assert report["Audit"]["selection"] == whole["Audit"]["selection"]
        seen += list(statuses(report))
        shard_files.append(str(tmp_path / f"shard{index}.json"))
        failed = any(status == "failed" for status in statuses(report).values())
        errors = any(status == "error" for status in statuses(report).values())
        assert run.exit_code == (1 if failed else 3 if errors else 0)
    assert sorted(seen) == sorted(registry.all)  # every version exactly once

    merged_file = tmp_path / "merged.json"
    run = run_command(
        "mlflow-version-check", "audit", "merge", *reversed(shard_files), "--report-file", str(merged_file),
        "--junit-file", str(tmp_path / "merged.xml"),
    )  # fmt: skip
    assert run.exit_code == 1, run.stdout + run.stderr
    merged = load_valid_report(merged_file)
    assert merged["status"] == whole["status"] and merged["Audit"]["summary"] == whole["Audit"]["summary"]
    assert statuses(merged) == statuses(whole)
    assert [item["model"] + item["version"] for item in merged["Audit"]["versions"]] == [
        item["model"] + item["version"] for item in whole["Audit"]["versions"]
    ]
    assert len(merged["Audit"]["merged_from"]) == 3
    assert (tmp_path / "merged.xml").read_text().count("<testcase ") == 6

    for files, message in (
        (shard_files[:2], "1 of 3 shards missing (3/3)"),
        ([*shard_files, shard_files[0]], "is given twice"),
        ([shard_files[0], str(tmp_path / "whole.json")], "shards of different audits"),
        ([str(tmp_path / "shard1.xml")], "cannot read the shard report"),
    ):
        refused = run_command("mlflow-version-check", "audit", "merge", *files)
        assert refused.exit_code == 2, refused.stdout + refused.stderr
        assert message in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_a_merge_refuses_a_version_moved_to_another_shard(registry: Registry, tmp_path: Path) -> None:
    reports = []
    for index in (1, 2):
        _, report = audit(registry, tmp_path, "--shard", f"{index}/2", name=f"s{index}")
        reports.append((f"s{index}.json", report))
    moved = reports[0][1]["Audit"]["versions"].pop()
    reports[1][1]["Audit"]["versions"].append(moved)
    for _, report in reports:  # each shard consistent with itself again: only the move is wrong
        section = report["Audit"]
        counts = {
            key: sum(item["status"] == key for item in section["versions"])
            for key in ("passed", "failed", "error")
        }
        section["summary"] = {**counts, "total": len(section["versions"])}
        report["status"] = "failed" if counts["failed"] else "error" if counts["error"] else "passed"
    with pytest.raises(AuditMergeError, match="which belongs to shard 1/2, not 2/2"):
        merge_audit_reports(reports, {})


def test_shard_assignment_is_independent_of_listing_order() -> None:
    """The partition is a function of name and version alone: any order, the same shards; every
    version in exactly one of N."""
    versions = [(f"model_{index % 7}", str(index)) for index in range(60)]
    for total in (1, 2, 3, 4):
        first = {version: shard_of(*version, total) for version in versions}
        shuffled = versions[:]
        random.Random(total).shuffle(shuffled)  # noqa: S311 - an order to test, not a secret
        assert {version: shard_of(*version, total) for version in shuffled} == first
        assert set(first.values()) <= set(range(1, total + 1))
    counts = [sum(shard_of(*version, 4) == index for version in versions) for index in range(1, 5)]
    assert all(counts), counts  # 60 versions spread over 4 shards: none empty
    assert fingerprint(versions) == fingerprint(reversed(versions))


def test_a_server_that_dies_mid_audit_leaves_a_complete_report(tmp_path: Path) -> None:
    """The server stops while the second version is being read (the proxy stops it as it forwards
    that answer): the first version keeps its verdict, the others are errors (unreachable, the
    ones not yet started at once), and the report lists every version."""
    server = MlflowServer(tmp_path / "server").__enter__()
    try:
        for seed in range(4):
            models.log_sklearn(server.url, "dying", seed=seed)
        reads: list[str] = []

        def stop_at_the_second_version(answer: Any) -> Any:
            reads.append("read")
            if len(reads) == 2:  # each version is read once
                server.stop()
            return answer

        with FaultProxy(server.url) as proxy:
            proxy.add(r"/model-versions/get\?", "rewrite", rewrite=stop_at_the_second_version)
            report = tmp_path / "report.json"
            run = run_command(
                "mlflow-version-check", "audit", "--tracking-uri", proxy.url, "--jobs", "1", "--retries", "0",
                "--timeout", "5", "--report-file", str(report),
            )  # fmt: skip
    finally:
        server.stop()
    assert run.exit_code == 3, run.stdout + run.stderr
    audited = load_valid_report(report)
    assert [item["version"] for item in audited["Audit"]["versions"]] == ["1", "2", "3", "4"]
    outcomes = [item["status"] for item in audited["Audit"]["versions"]]
    assert outcomes[0] == "passed" and outcomes[1:] == ["error"] * 3, outcomes
    assert {item["error"]["type"] for item in audited["Audit"]["versions"][1:]} == {"ServerUnreachable"}
    assert audited["Audit"]["summary"] == {"passed": 1, "failed": 0, "error": 3, "total": 4}


def test_a_recorded_seal_that_no_longer_matches_fails_its_version(tmp_path: Path) -> None:
    with MlflowServer(tmp_path / "server") as server:
        version = models.log_sklearn(server.url, "sealed")
        sealed = run_command(
            "mlflow-version-check", "seal", "--model", "sealed", "--version-or-stage", "1",
            "--tracking-uri", server.url, "--manifest-file", str(tmp_path / "m.json"), "--record-tag",
        )  # fmt: skip
        assert sealed.exit_code == 0, sealed.stdout + sealed.stderr
        result = audit_registry(tracking_uri=server.url)
        (entry,) = result.entries
        assert entry.status == "passed" and entry.seal_verified is True

        store = models.artifact_directory(server.artifacts, server.url, version)
        (store / "requirements.txt").write_text((store / "requirements.txt").read_text().upper())
        run = run_command(
            "mlflow-version-check",
            "audit",
            "--tracking-uri",
            server.url,
            "--report-file",
            str(tmp_path / "r.json"),
        )
        assert run.exit_code == 1, run.stdout + run.stderr
        (item,) = load_valid_report(tmp_path / "r.json")["Audit"]["versions"]
        assert item["status"] == "failed" and item["seal_verified"] is False
        assert any("changed since the seal" in problem for problem in item["problems"])


def test_each_audited_version_costs_one_read_of_its_record(registry: Registry, tmp_path: Path) -> None:
    """Per version: its record once and its download URI once; the registered model is known from the
    listing, so not asked for again (the audit's cost is its downloads, not its registry round trips)."""
    with FaultProxy(registry.server.url) as proxy:
        report = tmp_path / "report.json"
        run = run_command(
            "mlflow-version-check", "audit", "--tracking-uri", proxy.url, "--model", "fraud",
            "--model", "churn", "--report-file", str(report),
        )  # fmt: skip
    assert run.exit_code == 1, run.stdout + run.stderr  # fraud 3 is incomplete
    assert len(load_valid_report(report)["Audit"]["versions"]) == 5
    calls = [path.split("?")[0].rsplit("/", 2)[-2:] for path in proxy.seen]
    assert calls.count(["model-versions", "get"]) == 5, calls
    assert calls.count(["model-versions", "get-download-uri"]) == 5, calls
    # The registered models named by --model are read while listing, before any version is checked.
    first_version_read = calls.index(["model-versions", "get"])
    assert ["registered-models", "get"] not in calls[first_version_read:], calls


def test_a_registry_copy_that_differs_from_its_run_model_fails_as_check_fails_it(tmp_path: Path) -> None:
    """Red team: a version registered from `models:/source/1` keeps a registry copy of those bytes;
    when `source` is then replaced, its run model (source v1 now) differs from the copy. Two storage
    locations: audit compares them, as check does, and fails the version naming the file."""
    with MlflowServer(tmp_path / "server") as server:
        models.log_sklearn(server.url, "source", seed=0)
        client = models._client(server.url)
        client.create_registered_model("copied")
        client.create_model_version("copied", "models:/source/1")
        client.delete_registered_model("source")
        models.log_sklearn(server.url, "source", seed=5)
        checked = run_command(
            "mlflow-version-check", "check", "--model", "copied", "--version-or-stage", "1",
            "--tracking-uri", server.url, "--report-file", str(tmp_path / "check.json"),
        )  # fmt: skip
        report = tmp_path / "audit.json"
        audited = run_command(
            "mlflow-version-check", "audit", "--model", "copied", "--tracking-uri", server.url,
            "--report-file", str(report),
        )  # fmt: skip
    assert checked.exit_code == 1, checked.stdout + checked.stderr
    assert audited.exit_code == 1, audited.stdout + audited.stderr
    (entry,) = load_valid_report(report)["Audit"]["versions"]
    assert entry["status"] == "failed" and entry["same_location"] is False, entry
    assert "model.pkl" in {difference["path"] for difference in entry["differences"]}, entry


def test_the_python_api(registry: Registry) -> None:
    result = audit_registry(tracking_uri=registry.server.url, models=["churn"], shard="2/2")
    assert result.shard == (2, 2) and result.total == 2
    assert {entry.version for entry in result.entries} == {
        version
        for name, version in itertools.product(["churn"], ["1", "2"])
        if shard_of(name, version, 2) == 2
    }
    assert json.dumps(result.selection.to_json())


def test_shard_auto_reads_gitlabs_parallel_variables(registry: Registry, tmp_path: Path) -> None:
    """`--shard auto` is GitLab's CI_NODE_INDEX/CI_NODE_TOTAL (1-based, as GitLab counts); with
    neither set it audits the whole selection."""
    assert parse_shard("auto", {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "3"}) == (2, 3)
    assert parse_shard("auto", {}) is None
    assert parse_shard("auto", {"CI_NODE_TOTAL": "1"}) is None  # GitLab, a job without parallel:
    with pytest.raises(InvalidOption):
        parse_shard("auto", {"CI_NODE_INDEX": "4", "CI_NODE_TOTAL": "3"})
    report = tmp_path / "auto.json"
    run = run_command(
        "mlflow-version-check", "audit", "--tracking-uri", registry.server.url, "--shard", "auto",
        "--report-file", str(report), env={**os.environ, "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "2"},
    )  # fmt: skip
    assert run.exit_code in (0, 1, 3), run.stdout + run.stderr
    audited = load_valid_report(report)
    assert audited["Audit"]["shard"] == "1/2"
    assert {(item["model"], item["version"]) for item in audited["Audit"]["versions"]} == {
        version for version in registry.all if shard_of(*version, 2) == 1
    }
