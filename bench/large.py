"""Large synthetic models: check, seal and verify next to the floor, with peak RSS (part of `make bench`).

Models on one local server: one 1 GiB file; 5,000 files of 4 KiB; a 300 MiB mixed tree. For each,
measured in the same run, in ROUNDS rounds (medians reported), each a fresh process (peak RSS is
the largest process of the run, parent or worker, from the kernel's rusage of children):
- `check`: check-model-version with --download-dir, whose size afterwards shows how many copies of
  the model were downloaded (one: the registry keeps no separate copy on an open-source server);
- `seal` (issue 12) with --manifest-file and --checksums-file, then `verify --manifest-file` against
  that seal and `verify --expect-digest` of the root digest it recorded, each with --download-dir
  (one copy each: they download the registry model only) and each required to exit 0;
- floor (issue 6): `mlflow artifacts download` of the same URI, then `sha256sum` of every file;
- floor (DESIGN.md): one Python process, mlflow.artifacts.download_artifacts plus SHA-256 of every
  file (no CLI start-up, so the stricter of the two), run just before each command, which is
  measured against that run. Its URI is the version's download URI, the one location that check,
  seal and verify each download once;
- for the single large file, the bytes alone: curl of the file to /dev/null (the room left).
Results: bench/out/large.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from harness import FLOOR, write_results
from mvc_testing import models
from mvc_testing.servers import MlflowServer

BIN = Path(sys.executable).parent
MIB = 1024 * 1024
# The loopback server's throughput varies by +-20 % between runs: medians of 3 rounds, or of
# BENCH_ROUNDS (more rounds for a verdict close to a ratio of 1.0).
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


WRAPPER = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "r = subprocess.run(sys.argv[1:], capture_output=True); w = time.perf_counter() - t; "
    "sys.stderr.buffer.write(r.stderr[-2000:]); "
    "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)"
)


FLOOR_CLI = (
    'mlflow artifacts download --artifact-uri "$1" --dst-path "$2" >/dev/null && '
    'find "$2" -type f -print0 | xargs -0 sha256sum >/dev/null'
)


# The commands measured against the floors, each timed and sized as `check` is.
COMMANDS = ("check", "seal", "verify_manifest", "verify_digest")


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The median of each figure over the rounds (wall and RSS per command, and the ratios)."""
    figures: dict[str, list[float]] = {}
    for run in runs:
        for key, value in run.items():
            if isinstance(value, dict):
                for inner, number in value.items():
                    figures.setdefault(f"{key}.{inner}", []).append(number)
            else:
                figures.setdefault(key, []).append(value)
    return {key: round(statistics.median(values), 3) for key, values in figures.items()}


def ratio_of_medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Each command's median wall time over the median of every in-process floor run of the model
    (ROUNDS x COMMANDS of them): steadier than the median of the rounds' paired ratios."""
    floors = statistics.median(wall for run in runs for wall in run["floor_in_process"].values())
    return {
        command: round(statistics.median(run[command]["wall_s"] for run in runs) / floors, 3)
        for command in COMMANDS
    }


def tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def measured(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall time and the peak RSS of the largest process the command ran (parent or worker).

    A fresh wrapper process per measurement: its RUSAGE_CHILDREN maximum then covers this command
    and the processes it started, nothing measured before.
    """
    completed = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    wall, peak_kib, code = completed.stdout.split()
    if code != "0":
        raise SystemExit(f"{command[:3]} failed: {completed.stderr}")
    return {"wall_s": round(float(wall), 2), "peak_rss_mib": round(int(peak_kib) / 1024, 1)}


def write_files(root: Path, files: dict[str, int]) -> None:
    for relative, size in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as stream:
            remaining = size
            while remaining:
                chunk = os.urandom(min(remaining, 8 * MIB))
                stream.write(chunk)
                remaining -= len(chunk)


def artifact_url(tracking_url: str, client: Any, uri: str, model_dir: Path) -> str:
    """The HTTP URL through which the tracking server serves the one-file model's weights."""
    (weights,) = model_dir.rglob("weights.bin")
    prefix = "mlflow-artifacts:/"
    if uri.startswith("runs:/"):
        run_id, _, sub = uri[len("runs:/") :].partition("/")
        uri = client.get_run(run_id).info.artifact_uri + "/" + sub
    if not uri.startswith(prefix):
        raise SystemExit(f"not served by the tracking server: {uri}")
    relative = uri[len(prefix) :].lstrip("/")
    return f"{tracking_url}/api/2.0/mlflow-artifacts/artifacts/{relative}/{weights.relative_to(model_dir)}"


def sealing(command: str, one_version: list[str], seal_dir: Path) -> list[str]:
    """The command line of seal or a verify against this round's seal in seal_dir (verify after seal)."""
    cli = [str(BIN / "mlflow-version-check")]
    manifest = seal_dir / "model.oms.json"
    if command == "seal":
        return [*cli, "seal", *one_version, "--manifest-file", str(manifest),
                "--checksums-file", str(seal_dir / "model.sha256")]  # fmt: skip
    if command == "verify_manifest":
        return [*cli, "verify", *one_version, "--manifest-file", str(manifest)]
    # The root digest the seal recorded (its statement's subject), as seal printed it.
    (subject,) = json.loads(manifest.read_text())["subject"]
    return [*cli, "verify", *one_version, "--expect-digest", "sha256:" + subject["digest"]["sha256"]]


def make_model(scratch: Path, name: str, files: dict[str, int]) -> Path:
    """A pyfunc model whose artifacts folder holds the given files (MLflow records its size)."""
    import mlflow

    data = scratch / f"{name}-data"
    write_files(data, files)
    target = scratch / f"{name}-model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(
            str(target),
            python_model=models._Scaler(),
            artifacts={"data": str(data)},
            pip_requirements=["numpy"],
        )
    return target


DATASETS = {
    "one_file_1GiB": {"weights.bin": 1024 * MIB},
    "5000_files_4KiB": {f"shard{i // 100:02d}/part{i:04d}.bin": 4096 for i in range(5000)},
    "mixed_300MiB": {
        **{f"big/{i}.bin": 64 * MIB for i in range(4)},
        **{f"mid/{i}.bin": 2 * MIB for i in range(20)},
        **{f"small/{i}.bin": 16 * 1024 for i in range(560)},
    },
}


def main() -> int:
    only = sys.argv[1:] or list(DATASETS)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as scratch_dir, MlflowServer(Path(scratch_dir) / "server") as server:
        scratch = Path(scratch_dir)
        for name in only:
            model_dir = make_model(scratch, name, DATASETS[name])
            version = models.register_run_artifacts(
                server.url, name, source_form="location", model_dir=model_dir
            )
            client = models._client(server.url)
            uri = client.get_model_version_download_uri(name, version.version)
            one_version = ["--model", name, "--version-or-stage", version.version,
                           "--tracking-uri", server.url]  # fmt: skip
            check = [str(BIN / "check-model-version"), *one_version]
            cli_env = {"MLFLOW_TRACKING_URI": server.url, "PATH": f"{BIN}:{os.environ['PATH']}"}
            # Warm the server's page cache, so that no measurement below pays for a cold disk.
            warm = tempfile.mkdtemp(dir=scratch)
            measured([sys.executable, "-c", FLOOR, uri, server.url, warm])
            subprocess.run(["rm", "-rf", warm], check=True)
            runs = []
            for _ in range(ROUNDS):
                # Other work on the machine shows here (2 cores: the server and one command use both).
                figures: dict[str, Any] = {"load_average_1min": os.getloadavg()[0]}
                destination = tempfile.mkdtemp(dir=scratch)
                figures["floor_cli"] = measured(["sh", "-c", FLOOR_CLI, "_", uri, destination], cli_env)
                subprocess.run(["rm", "-rf", destination], check=True)
                if len(DATASETS[name]) == 1:
                    figures["transfer_curl"] = measured(
                        ["curl", "-sSf", "-o", "/dev/null", artifact_url(server.url, client, uri, model_dir)]
                    )
                seal_dir = Path(tempfile.mkdtemp(dir=scratch))
                for key in ("floor_in_process", "copies_downloaded", "ratio_to_floor_in_process",
                            "ratio_to_floor_cli"):  # fmt: skip
                    figures[key] = {}
                for command in COMMANDS:
                    # Each command's own in-process floor, run just before it: one run of either varies
                    # by up to 20 % here, and a floor shared by four commands would skew all four alike.
                    destination = tempfile.mkdtemp(dir=scratch)
                    floor = measured([sys.executable, "-c", FLOOR, uri, server.url, destination])
                    subprocess.run(["rm", "-rf", destination], check=True)
                    figures["floor_in_process"][command] = floor["wall_s"]
                    figures["floor_in_process_peak_rss_mib"] = max(
                        floor["peak_rss_mib"], figures.get("floor_in_process_peak_rss_mib", 0.0)
                    )
                    downloads = Path(tempfile.mkdtemp(dir=scratch))
                    argv = check if command == "check" else sealing(command, one_version, seal_dir)
                    figures[command] = measured([*argv, "--download-dir", str(downloads)])
                    figures["copies_downloaded"][command] = round(
                        tree_bytes(downloads) / tree_bytes(model_dir), 3
                    )
                    subprocess.run(["rm", "-rf", str(downloads)], check=True)
                    wall = figures[command]["wall_s"]
                    figures["ratio_to_floor_in_process"][command] = round(wall / floor["wall_s"], 3)
                    figures["ratio_to_floor_cli"][command] = round(wall / figures["floor_cli"]["wall_s"], 3)
                subprocess.run(["rm", "-rf", str(seal_dir)], check=True)
                runs.append(figures)
                print(json.dumps({name: figures}), flush=True)
            results[name] = {
                "files": len(DATASETS[name]),
                "bytes": sum(DATASETS[name].values()),
                "median": medians(runs),
                "ratio_of_medians_to_floor_in_process": ratio_of_medians(runs),
                "runs": runs,
            }
            print(json.dumps({name: results[name]}, indent=1), flush=True)
    write_results("large", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
