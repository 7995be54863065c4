"""`make bench`: timings that are figures, not pass/fail tests.

Start-up: `--help` of both console scripts and a failing invocation (exit 2), each run repeatedly as
a separate process, as CI would call them. Small check: one `check` of a small model against a local
server, next to the floor (MLflow's own download of the same URI plus SHA-256 of every file, in one
process). Large compare: a model with a 256 MiB file on two servers; `check` on each, its floor, and
`compare` of the two, whose wall time shows whether the two servers' downloads overlap (close to one
check, not the sum of both). Results are printed and written to bench/out/results.json;
bench/RESULTS.md records them.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import FLOOR, write_results
from mvc_testing import models
from mvc_testing.servers import MlflowServer

BIN = Path(sys.executable).parent
REPEATS = 10


def timed(command: list[str], expected: int) -> float:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != expected:
        raise SystemExit(
            f"{command} exited {completed.returncode}, expected {expected}: {completed.stderr!r}"
        )
    return elapsed


def series(command: list[str], expected: int, repeats: int = REPEATS) -> dict[str, float]:
    timed(command, expected)  # warm the file cache
    runs = [timed(command, expected) for _ in range(repeats)]
    return {"min_s": round(min(runs), 3), "median_s": round(statistics.median(runs), 3), "runs": repeats}


def large_compare() -> dict[str, object]:
    """check, floor and compare on a 256 MiB model held by two servers."""
    import os

    with (
        tempfile.TemporaryDirectory() as scratch,
        MlflowServer(Path(scratch) / "s1") as first,
        MlflowServer(Path(scratch) / "s2") as second,
    ):
        payload = {"weights/big.bin": os.urandom(256 << 20), "config/params.json": b"{}"}
        original = models.log_directory_flavor(first.url, "bench_big", files=payload)
        copy = models.copy_version(first.url, original, second.url, "bench_big")
        del payload
        config = Path(scratch) / "config.yaml"
        config.write_text(
            f"tracking_server_1: {{host: '{first.url}', model: bench_big, version_or_stage: '1'}}\n"
            f"tracking_server_2: {{host: '{second.url}', model: bench_big, "
            f"version_or_stage: '{copy.version}'}}\n"
        )
        check = [str(BIN / "check-model-version"), "--model", "bench_big", "--version-or-stage", "1"]
        figures: dict[str, object] = {
            "check_server_1": series([*check, "--tracking-uri", first.url], 0, repeats=3),
            "check_server_2": series([*check, "--tracking-uri", second.url], 0, repeats=3),
            "compare_run_models": series(
                [str(BIN / "compare-model-versions"), "--config-file", str(config), "--compare-run-models"],
                0,
                repeats=3,
            ),
        }
        download_uri = models._client(first.url).get_model_version_download_uri("bench_big", "1")
        figures["floor_server_1"] = series(
            [sys.executable, "-c", FLOOR, download_uri, first.url, tempfile.mkdtemp(dir=scratch)],
            0,
            repeats=3,
        )
        return figures


def main() -> int:
    results: dict[str, object] = {"python": platform.python_version(), "machine": platform.machine()}
    startup = {
        "mlflow-version-check --help": series([str(BIN / "mlflow-version-check"), "--help"], 0),
        "check-model-version --help": series([str(BIN / "check-model-version"), "--help"], 0),
        "check-model-version (missing option, exit 2)": series(
            [str(BIN / "check-model-version"), "--model", "m"], 2
        ),
    }
    results["startup"] = startup
    with tempfile.TemporaryDirectory() as scratch, MlflowServer(Path(scratch) / "server") as server:
        version = models.log_sklearn(server.url, "bench_small")
        check = series(
            [
                str(BIN / "check-model-version"), "--model", "bench_small", "--version-or-stage", "1",
                "--tracking-uri", server.url,
            ],
            0,
            repeats=5,
        )  # fmt: skip
        download_uri = models._client(server.url).get_model_version_download_uri(
            "bench_small", version.version
        )
        floor = series(
            [sys.executable, "-c", FLOOR, download_uri, server.url, tempfile.mkdtemp(dir=scratch)],
            0,
            repeats=5,
        )
        results["small_check"] = {"check": check, "floor": floor}
    results["large"] = large_compare()
    write_results("results", results)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
