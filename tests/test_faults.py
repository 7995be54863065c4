"""Server faults and hostile answers, through a fault-injecting proxy in front of a real server:
each case gives the documented exit code, one clear line, an error report, and writes nothing
outside the download and report paths."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import models
from tests.conftest import assert_one_clear_line, load_valid_report, run_command
from tests.fault_proxy import FaultProxy
from tests.servers import MlflowServer

pytestmark = pytest.mark.server
_names = itertools.count()
ARTIFACT_FILES = r"/api/2.0/mlflow-artifacts/artifacts/.+"
LISTING = r"/api/2.0/mlflow-artifacts/artifacts\?"


@pytest.fixture(scope="module")
def version(mlflow_server: MlflowServer) -> models.Registered:
    return models.log_sklearn(mlflow_server.url, f"faults_{next(_names)}")


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Iterator[FaultProxy]:
    with FaultProxy(mlflow_server.url) as running:
        yield running


def check(proxy: FaultProxy, version: models.Registered, tmp_path: Path, *extra: str) -> tuple[Any, Path]:
    report = tmp_path / "report" / "r.json"
    run = run_command(
        "check-model-version", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", proxy.url, "--download-dir", str(tmp_path / "downloads"),
        "--report-file", str(report), *extra,
    )  # fmt: skip
    return run, report


def outside_files(tmp_path: Path) -> list[Path]:
    """Files the run wrote anywhere in tmp_path but its download and report directories."""
    allowed = (tmp_path / "downloads", tmp_path / "report")
    return [p for p in tmp_path.rglob("*") if p.is_file() and not any(a in p.parents for a in allowed)]


def test_500_then_200_is_retried(proxy: FaultProxy, version: models.Registered, tmp_path: Path) -> None:
    """Two 500 answers, then the real one: the retries make the check pass."""
    proxy.add(r"registered-models/get", "status", status=500, times=2)
    run, report = check(proxy, version, tmp_path)
    assert run.exit_code == 0, run.stderr
    assert load_valid_report(report)["status"] == "passed"
    assert sum("registered-models/get" in path for path in proxy.seen) >= 3


@pytest.mark.parametrize(
    ("kind", "status", "words"),
    [
        pytest.param("status", 401, "refused the credentials (authentication failed)", id="401"),
        pytest.param(
            "text-status", 401, "refused the credentials (authentication failed)", id="401-plain-text"
        ),
        pytest.param("status", 403, "refused the permission (authentication failed)", id="403"),
        pytest.param("status", 503, "failed", id="503-always"),
        pytest.param("status", 500, "failed", id="500-always"),
    ],
)
def test_refusals_exit_3(
    proxy: FaultProxy, version: models.Registered, tmp_path: Path, kind: str, status: int, words: str
) -> None:
    """401, 403 and a server that keeps failing: exit 3, one clear line, an error report."""
    proxy.add(r"/api/2.0/mlflow/", kind, status=status)
    run, report = check(proxy, version, tmp_path, "--retries", "1")
    assert run.exit_code == 3, run.stderr
    assert words in assert_one_clear_line(run)
    assert load_valid_report(report)["status"] == "error"
    assert outside_files(tmp_path) == []


def test_hanging_server_times_out(proxy: FaultProxy, version: models.Registered, tmp_path: Path) -> None:
    """A server that never answers: exit 3 after the timeout, not after minutes."""
    proxy.add(r"registered-models/get", "hang")
    started = time.monotonic()
    run, report = check(proxy, version, tmp_path, "--timeout", "2", "--retries", "0")
    assert run.exit_code == 3
    assert "timed out" in assert_one_clear_line(run)
    assert time.monotonic() - started < 18
    assert load_valid_report(report)["error"]["type"] == "ServerUnreachable"


def test_connection_dropped_mid_download(
    proxy: FaultProxy, version: models.Registered, tmp_path: Path
) -> None:
    """The model file's transfer is cut halfway: exit 3 (never a verdict on half a file)."""
    proxy.add(ARTIFACT_FILES + "model.pkl", "cut")
    run, report = check(proxy, version, tmp_path, "--retries", "0")
    assert run.exit_code == 3, (run.stdout, run.stderr)
    assert "model.pkl" in assert_one_clear_line(run)
    assert load_valid_report(report)["error"]["type"] == "ArtifactDownloadError"


@pytest.mark.parametrize(
    "hostile",
    [pytest.param("../escaped.txt", id="dot-dot"), pytest.param("/tmp/absolute.txt", id="absolute"),
     pytest.param("a/../../b.txt", id="nested-dot-dot")],
)  # fmt: skip
def test_hostile_listing_is_refused(
    proxy: FaultProxy, version: models.Registered, tmp_path: Path, hostile: str
) -> None:
    """An artifact listing that names a path outside the model: refused, nothing written outside."""

    def add_entry(listing: dict[str, Any]) -> dict[str, Any]:
        listing.setdefault("files", []).append({"path": hostile, "is_dir": False, "file_size": 3})
        return listing

    proxy.add(LISTING, "rewrite", rewrite=add_entry, times=1)
    run, report = check(proxy, version, tmp_path)
    assert run.exit_code == 3, run.stderr
    assert "unsafe path" in assert_one_clear_line(run)
    assert load_valid_report(report)["error"]["type"] == "UnsafeArtifactPath"
    assert outside_files(tmp_path) == []
    assert not Path("/tmp/absolute.txt").exists()


def test_empty_model_exits_3(proxy: FaultProxy, version: models.Registered, tmp_path: Path) -> None:
    """A listing with no files: there is no model to check, exit 3."""
    proxy.add(LISTING, "rewrite", rewrite=lambda listing: {})
    run, _ = check(proxy, version, tmp_path)
    assert run.exit_code == 3
    assert "no files at" in assert_one_clear_line(run)


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs for the download directory (root, as in CI)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr!r}")
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_full_filesystem_exits_3_with_advice(
    mlflow_server: MlflowServer, tiny_filesystem: Path, tmp_path: Path
) -> None:
    """A download directory on a full file system: exit 3, 'no space left', the report elsewhere intact."""
    big = models.log_directory_flavor(
        mlflow_server.url, f"big_{next(_names)}", files={"w/big.bin": os.urandom(200_000)}
    )
    report = tmp_path / "r.json"
    run = run_command(
        "check-model-version", "--model", big.name, "--version-or-stage", big.version,
        "--tracking-uri", mlflow_server.url, "--download-dir", str(tiny_filesystem),
        "--report-file", str(report),
    )  # fmt: skip
    assert run.exit_code == 3
    assert "no space left" in assert_one_clear_line(run)
    assert load_valid_report(report)["error"]["type"] == "ArtifactDownloadError"


def test_report_path_under_a_file_is_refused(
    version: models.Registered, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """A report path whose parent is a file cannot be written: exit 2 before any download."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    run = run_command(
        "check-model-version", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", mlflow_server.url, "--report-file", str(blocker / "r.json"),
    )  # fmt: skip
    assert run.exit_code == 2
    assert "cannot be written" in assert_one_clear_line(run)
    assert blocker.read_text() == "not a directory"
