"""`make bench-large`: check on large synthetic models next to the floor, with peak RSS.

Models on one local server: one 1 GiB file; 5,000 files of 4 KiB; a 300 MiB mixed tree. For each:
wall time and peak RSS (largest process of the run, from the kernel's rusage of children) of
`check-model-version`, and the floor measured in the same run: one process that downloads the
same URI with mlflow.artifacts.download_artifacts and SHA-256s every file (what any MLflow-based
tool must at least do). Results: bench/out/large.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import models  # noqa: E402
from tests.servers import MlflowServer  # noqa: E402

from bench.run import FLOOR  # noqa: E402 - after the path is set

BIN = Path(sys.executable).parent
MIB = 1024 * 1024


WRAPPER = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "r = subprocess.run(sys.argv[1:], capture_output=True); w = time.perf_counter() - t; "
    "sys.stderr.buffer.write(r.stderr[-2000:]); "
    "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)"
)


def measured(command: list[str]) -> dict[str, float]:
    """Wall time and the peak RSS of the largest process the command ran (parent or worker).

    A fresh wrapper process per measurement: its RUSAGE_CHILDREN maximum then covers this command
    and the processes it started, nothing measured before.
    """
    completed = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, check=False
    )
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
            uri = models._client(server.url).get_model_version_download_uri(name, version.version)
            check = [str(BIN / "check-model-version"), "--model", name, "--version-or-stage", version.version,
                     "--tracking-uri", server.url]  # fmt: skip
            runs = []
            for _ in range(2):
                destination = tempfile.mkdtemp(dir=scratch)
                floor = measured([sys.executable, "-c", FLOOR, uri, server.url, destination])
                subprocess.run(["rm", "-rf", destination], check=True)
                tool = measured(check)
                runs.append(
                    {"check": tool, "floor": floor, "ratio": round(tool["wall_s"] / floor["wall_s"], 3)}
                )
            results[name] = {
                "files": len(DATASETS[name]),
                "bytes": sum(DATASETS[name].values()),
                "runs": runs,
            }
            print(json.dumps({name: results[name]}, indent=1), flush=True)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "large.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
