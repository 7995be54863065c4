"""Attacks on `audit` and `audit merge` from a red-team read (issue 13); each failed on the code it
attacked: merges of forged or malformed shard reports, a shard count that would exhaust memory, a
version edited during a paged listing, a malformed seal tag hiding a failure, a worker killed
mid-audit. Real `mlflow server`s; faults through the proxy."""

from __future__ import annotations

import copy
import json
import os
import resource
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from mvc_testing import models
from mvc_testing.servers import MlflowServer
from tests.conftest import BIN, Run, load_valid_report, run_command
from tests.fault_proxy import FaultProxy
from tests.test_interrupts import children_of

pytestmark = pytest.mark.server

SEAL_TAG = "mlflow_version_check.seal.root_digest"


def _incomplete(server: MlflowServer, name: str, seed: int = 0) -> models.Registered:
    """A registered sklearn version whose registry copy lost its model.pkl (a `failed` version)."""
    version = models.log_sklearn(server.url, name, seed=seed)
    (models.artifact_directory(server.artifacts, server.url, version) / "model.pkl").unlink()
    return version


class Registry:
    """drift: 1 incomplete (failed), 2 fine. tagged: 1 incomplete. crashy: 1 incomplete, 2 fine."""

    def __init__(self, server: MlflowServer) -> None:
        self.server = server
        _incomplete(server, "drift")
        models.log_sklearn(server.url, "drift", seed=1)
        _incomplete(server, "tagged")
        _incomplete(server, "crashy")
        models.log_sklearn(server.url, "crashy", seed=1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with MlflowServer(tmp_path_factory.mktemp("redteam_audit_server")) as server:
        yield Registry(server)


def _audit(url: str, report: Path, *arguments: str) -> Run:
    return run_command(
        "mlflow-version-check", "audit", "--tracking-uri", url, *arguments, "--report-file", str(report)
    )


@pytest.fixture(scope="module")
def drift_shards(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The two shard reports of `audit --model drift` (drift 1 failed in one of them)."""
    folder = tmp_path_factory.mktemp("drift_shards")
    reports = []
    for index in (1, 2):
        path = folder / f"shard{index}.json"
        run = _audit(registry.server.url, path, "--model", "drift", "--shard", f"{index}/2")
        assert run.exit_code in (0, 1), run.stdout + run.stderr
        reports.append(load_valid_report(path))
    return reports


def _merge(folder: Path, reports: list[dict[str, Any]], **kwargs: Any) -> Run:
    paths = []
    for index, report in enumerate(reports, 1):
        path = folder / f"in{index}.json"
        path.write_text(json.dumps(report))
        paths.append(str(path))
    return run_command(
        "mlflow-version-check",
        "audit",
        "merge",
        *paths,
        "--report-file",
        str(folder / "merged.json"),
        **kwargs,
    )


def _failed_item(reports: list[dict[str, Any]]) -> dict[str, Any]:
    (item,) = [v for r in reports for v in r["Audit"]["versions"] if v["status"] == "failed"]
    assert isinstance(item, dict)
    return item


def test_merge_does_not_pass_a_shard_whose_failed_version_was_flipped_to_passed(
    drift_shards: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Only the version's `status` edited to passed: the shard report still says status failed,
    summary failed 1, and the version still lists its problems. The merge trusts the one field and
    says PASSED, exit 0; it should refuse a report that contradicts itself (exit 2)."""
    forged = copy.deepcopy(drift_shards)
    item = _failed_item(forged)
    assert item["problems"]  # the evidence of the failure stays in the report
    item["status"] = "passed"
    run = _merge(tmp_path, forged)
    assert run.exit_code == 2, run.stdout + run.stderr


def test_merge_does_not_pass_a_version_whose_status_is_not_passed_failed_or_error(
    drift_shards: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A status the schema does not allow ('skipped') is counted nowhere: the merge says 'PASSED:
    2 versions checked ... 1 passed' and exits 0, and writes a report that fails its own schema."""
    forged = copy.deepcopy(drift_shards)
    _failed_item(forged)["status"] = "skipped"
    run = _merge(tmp_path, forged)
    assert run.exit_code == 2, run.stdout + run.stderr


def _drop(path: tuple[Any, ...]) -> Any:
    def edit(report: dict[str, Any]) -> None:
        *parents, last = path
        target: Any = report
        for key in parents:
            target = target[key]
        del target[last]

    return edit


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def edit(report: dict[str, Any]) -> None:
        *parents, last = path
        target: Any = report
        for key in parents:
            target = target[key]
        target[last] = value

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_set(("Audit", "versions"), None), id="versions-null"),
        pytest.param(_drop(("Audit", "selection")), id="no-selection"),
        pytest.param(_set(("Audit", "versions", 0), "drift 1"), id="version-not-an-object"),
        pytest.param(_drop(("Audit", "versions", 0, "status")), id="version-without-status"),
        pytest.param(_set(("Timings", "total_seconds"), "soon"), id="timings-not-a-number"),
    ],
)
def test_merge_of_a_malformed_shard_report_is_one_line_and_exit_2(
    drift_shards: list[dict[str, Any]], tmp_path: Path, edit: Any
) -> None:
    """A cut or hand-edited shard report: a Python traceback and exit 1 ('different') today."""
    forged = copy.deepcopy(drift_shards)
    edit(forged[0])
    run = _merge(tmp_path, forged)
    assert "Traceback" not in run.stderr, run.stderr[-600:]
    assert run.exit_code == 2 and len(run.error_lines) == 1, run.stdout + run.stderr


def test_merge_of_a_shard_claiming_a_huge_shard_count_is_refused_at_once(
    drift_shards: list[dict[str, Any]], tmp_path: Path
) -> None:
    """`shard: "1/100000000000000"` makes the merge build the list of every missing shard index: it
    runs until memory is gone (here capped at 2 GiB, so it dies of MemoryError) instead of one line,
    exit 2."""
    forged = copy.deepcopy(drift_shards[0])
    forged["Audit"]["shard"] = "1/100000000000000"
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(forged))

    def capped() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    completed = subprocess.run(
        [str(BIN / "mlflow-version-check"), "audit", "merge", str(path)],
        capture_output=True, text=True, timeout=600, preexec_fn=capped, check=False,
    )  # fmt: skip
    assert "Traceback" not in completed.stderr, completed.stderr[-600:]
    assert completed.returncode == 2, completed.stderr[-600:]


def test_a_malformed_seal_tag_does_not_turn_a_failed_version_into_could_not_check(
    registry: Registry, tmp_path: Path
) -> None:
    """tagged 1 is incomplete (its problems are in the report) and carries a junk seal tag: the
    version is `error`, the audit 'INCOMPLETE', exit 3, when its check failed (exit 1). Anyone who
    may set a version tag can so downgrade a failure to 'could not be checked'."""
    client = MlflowClient(registry.server.url, registry_uri=registry.server.url)
    client.set_model_version_tag("tagged", "1", SEAL_TAG, "garbage")
    report = tmp_path / "report.json"
    run = _audit(registry.server.url, report, "--model", "tagged")
    (item,) = load_valid_report(report)["Audit"]["versions"]
    assert item["problems"], item
    assert run.exit_code == 1, run.stdout + run.stderr
    assert item["status"] == "failed", item


def test_a_worker_crash_mid_audit_keeps_the_verdicts_already_reached(
    registry: Registry, tmp_path: Path
) -> None:
    """crashy 1 is judged failed; the worker is then SIGKILLed (as the OOM killer would) while it
    reads crashy 2. The report drops every verdict (Audit: null) and the run exits 3, 'could not
    check', though a version failed: a failure becomes an error, and it is gone from the report."""
    holder: dict[str, subprocess.Popen[str]] = {}

    def kill_the_worker_at_version_2(answer: Any) -> Any:
        if answer.get("model_version", {}).get("version") == "2":
            for pid in children_of(holder["audit"].pid):
                os.kill(pid, signal.SIGKILL)
        return answer

    report = tmp_path / "report.json"
    with FaultProxy(registry.server.url) as proxy:
        proxy.add(r"/model-versions/get\?", "rewrite", rewrite=kill_the_worker_at_version_2)
        holder["audit"] = subprocess.Popen(
            [str(BIN / "mlflow-version-check"), "audit", "--tracking-uri", proxy.url, "--model", "crashy",
             "--jobs", "1", "--report-file", str(report)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        stdout, stderr = holder["audit"].communicate(timeout=300)
    assert "[1/2] crashy version 1: failed" in stderr, stderr  # the verdict was reached
    audited = load_valid_report(report)
    assert holder["audit"].returncode == 1, stdout + stderr
    assert audited["Audit"] is not None, audited["error"]
    by_version = {item["version"]: item["status"] for item in audited["Audit"]["versions"]}
    assert by_version == {"1": "failed", "2": "error"}, by_version


def test_merge_accepts_shards_whose_selection_differs_only_in_key_order(
    drift_shards: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Shards compared by repr() of their selection: one passed through `jq -S` (keys sorted, same
    values, same fingerprint) is refused as 'shards of different audits', exit 2, the message
    showing the same fingerprint twice. Low: a false refusal, not a false pass."""
    reordered = copy.deepcopy(drift_shards)
    selection = reordered[0]["Audit"]["selection"]
    reordered[0]["Audit"]["selection"] = dict(sorted(selection.items()))
    run = _merge(tmp_path, reordered)
    assert run.exit_code == 1, run.stdout + run.stderr  # drift 1 failed: the unsharded verdict


def test_a_version_edited_while_the_registry_is_listed_is_still_audited(tmp_path: Path) -> None:
    """big has 1002 versions (two search pages); 1 is @champion and incomplete, 1002 is @stable.
    Its description is edited while the audit reads the first page: MLflow's default search order
    is last_updated_timestamp DESC with offset page tokens, so the edited version moves onto the
    page already read and is never listed. `audit --versions aliased` checks 1002 alone and says
    PASSED, exit 0, while @champion is broken."""
    with MlflowServer(tmp_path / "server") as server:
        broken = _incomplete(server, "big")
        good = models.register_run_artifacts(server.url, "big_source", source_form="runs")
        client = MlflowClient(server.url, registry_uri=server.url)
        for _ in range(1001):
            client.create_model_version("big", good.source, run_id=good.run_id, await_creation_for=0)
        client.set_registered_model_alias("big", "champion", broken.version)
        client.set_registered_model_alias("big", "stable", "1002")

        def edit_champion(answer: Any) -> Any:
            client.update_model_version("big", broken.version, description="edited during the audit")
            return answer

        report = tmp_path / "report.json"
        with FaultProxy(server.url) as proxy:
            proxy.add(r"/model-versions/search", "rewrite", rewrite=edit_champion, times=1)
            run = _audit(proxy.url, report, "--model", "big", "--versions", "aliased")
    audited = load_valid_report(report)
    assert {item["version"] for item in audited["Audit"]["versions"]} == {"1", "1002"}, run.stdout
    assert run.exit_code == 1, run.stdout + run.stderr
