"""The action's image: its cold build time, what it holds by size, and its start-up with and without
byte code (part of `make bench`).

Cold means without the layer cache (`--no-cache`); the base image is already local (here the Debian
base of scripts/ci/base-image.sh, as CI has no Docker Hub) and pip fetches every package again.

What the image holds: its size and the size of the layers above the base (issue 14's budget: at
most 120 MB), each layer from `docker history`, and, read inside the image, the virtualenv by kind
of file and its largest packages, whether an installer (pip, setuptools, wheel) or a cache is left.

Start-up: `mlflow-version-check --help` and a real `check` of a small model on a loopback MLflow
server (the action's entrypoint, one worker), each a fresh `docker run`, in three images: as built
(byte code for the modules runs import, see the Dockerfile), with every .pyc removed, and with every
module compiled (what pip leaves). `docker run` of `true` gives the container's own cost.
BENCH_CONTAINER_COMPARE_WITH=<tag> times one more image beside them (one from an older commit).
Results: bench/out/container.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import write_results
from mvc_testing import models
from mvc_testing.servers import MlflowServer

ROOT = Path(__file__).resolve().parent.parent

BASE_IMAGE = os.environ.get("BASE_IMAGE_TAG", "mvc-base:bookworm")
TAG = "mlflow-version-check:bench"
HELP_REPEATS = 7
CHECK_REPEATS = 4
# In-container timing: rounds of one `docker run` per image, each timing INNER_REPEATS runs.
ROUNDS = 3
INNER_REPEATS = 3
# An image to time beside the three, e.g. one built from an older commit (optional).
COMPARE_WITH = os.environ.get("BENCH_CONTAINER_COMPARE_WITH", "")

# The two other byte-code variants, each a layer on the built image: deleting only hides files (an
# empty layer), compiling adds what keeping every .pyc would have cost.
VARIANTS = {
    "no .pyc": "RUN find /opt/venv -name '*.pyc' -delete",
    "every module compiled": "RUN python -m compileall -q /opt/venv/lib",
}

# Run inside the image: what /opt/venv holds, by kind of file and by top-level package.
CONTENTS = r"""
import json, pathlib
venv = pathlib.Path("/opt/venv")
site = next(venv.glob("lib/python3*/site-packages"))
def kind(path):
    if path.suffix in (".py", ".pyc", ".pyi", ".so"):
        return path.suffix
    return "other"
by_kind, counts, packages = {}, {}, {}
for path in venv.rglob("*"):
    if path.is_symlink() or not path.is_file():
        continue
    size = path.stat().st_size
    by_kind[kind(path)] = by_kind.get(kind(path), 0) + size
    counts[kind(path)] = counts.get(kind(path), 0) + 1
    if site in path.parents:
        top = path.relative_to(site).parts[0]
        entry = packages.setdefault(top, {"bytes": 0, "pyc_bytes": 0})
        entry["bytes"] += size
        entry["pyc_bytes"] += size if path.suffix == ".pyc" else 0
def tree_bytes(folder):
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
largest = sorted(packages.items(), key=lambda item: -item[1]["bytes"])[:15]
installers = sorted(p.name for p in site.iterdir()
                    if p.name.split("-")[0].lower() in ("pip", "setuptools", "wheel", "pkg_resources"))
print(json.dumps({
    "venv_bytes": sum(by_kind.values()),
    "bytes_by_kind": by_kind,
    "files_by_kind": counts,
    "largest_packages": dict(largest),
    "installer_left": installers,
    "cache_bytes": {folder: tree_bytes(folder)
                    for folder in ("/root/.cache", "/tmp", "/var/cache/apt", "/var/lib/apt/lists")},
}))
"""


# Run inside the image: time a command (argv[2:]) argv[1] times after one warming run, so the
# figures hold the program's start-up without docker's own (container create, start, remove).
TIMER = r"""
import json, subprocess, sys, time
repeats, command = int(sys.argv[1]), sys.argv[2:]
durations = []
for attempt in range(repeats + 1):
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"{command} exited {completed.returncode}: {completed.stderr[-1000:]!r}")
    if attempt:
        durations.append(time.perf_counter() - started)
print(json.dumps(durations))
"""


def image_bytes(tag: str) -> int:
    command = ["docker", "image", "inspect", "--format", "{{.Size}}", tag]
    inspected = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(inspected.stdout.strip())


def layers(tag: str, base_ids: set[str]) -> list[dict[str, Any]]:
    """The layers above the base, newest first: bytes and the instruction that made each."""
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--human=false", "--format", "{{json .}}", tag],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    rows = [json.loads(line) for line in history]
    above = []
    for row in rows:
        if row["ID"] in base_ids:
            break
        instruction = " ".join(row["CreatedBy"].replace("/bin/sh -c #(nop) ", "").split())
        above.append({"bytes": int(row["Size"]), "instruction": instruction[:100]})
    return above


def run_timed(command: list[str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{command} exited {completed.returncode}: {completed.stderr[-2000:]}")
    return elapsed


def interleaved(commands: dict[str, list[str]], repeats: int) -> dict[str, dict[str, float]]:
    """Median and minimum wall time of each command over `repeats` rounds, one run of every command
    a round (so a change in the machine's load weighs on all alike), after one warming run each."""
    for command in commands.values():
        run_timed(command)
    durations: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(repeats):
        for label, command in commands.items():
            durations[label].append(run_timed(command))
    return {
        label: {"median_s": round(statistics.median(runs), 3), "min_s": round(min(runs), 3), "runs": repeats}
        for label, runs in durations.items()
    }


def derived(tag: str, instruction: str, name: str) -> str:
    variant = f"{TAG}-{name.replace(' ', '-').replace('.', '')}"
    subprocess.run(
        ["docker", "build", "--quiet", "-t", variant, "-"],
        input=f"FROM {tag}\n{instruction}\n", capture_output=True, text=True, check=True,
    )  # fmt: skip
    return variant


def in_container(runs: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Per label, a `docker run` that times its command inside the container (TIMER); ROUNDS rounds,
    one run of every label a round, so a change in the machine's load weighs on all alike."""
    durations: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(ROUNDS):
        for label, docker_run in runs.items():
            completed = subprocess.run(docker_run, capture_output=True, text=True, check=False)
            if completed.returncode != 0:
                raise SystemExit(f"{label}: {completed.stderr[-2000:]}")
            durations[label] += json.loads(completed.stdout)
    return {
        label: {
            "median_s": round(statistics.median(runs), 3),
            "min_s": round(min(runs), 3),
            "runs": len(runs),
        }
        for label, runs in durations.items()
    }


def startup(images: dict[str, str]) -> dict[str, Any]:
    """--help and a real check in each image, against one loopback server: each docker run as a
    whole (what a CI step pays) and the program alone, timed inside the container."""
    timer = ["--entrypoint", "/opt/venv/bin/python"]
    helps = {"docker run true": ["docker", "run", "--rm", "--entrypoint", "true", TAG]}
    for label, tag in images.items():
        helps[label] = ["docker", "run", "--rm", "--entrypoint", "mlflow-version-check", tag, "--help"]
    figures: dict[str, Any] = {
        "help, docker run": interleaved(helps, HELP_REPEATS),
        "help, in the container": in_container(
            {
                label: ["docker", "run", "--rm", *timer, tag, "-c", TIMER, str(INNER_REPEATS),
                        "mlflow-version-check", "--help"]
                for label, tag in images.items()
            }
        ),
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, MlflowServer(Path(scratch) / "server") as server:
        version = models.log_sklearn(server.url, "bench_container")
        workspace = Path(scratch) / "workspace"
        workspace.mkdir()
        inputs = {"MODEL": version.name, "VERSION-OR-STAGE": version.version, "TRACKING-URI": server.url,
                  "UPLOAD-ARTIFACT": "false"}  # fmt: skip
        environment = [
            argument for name, value in inputs.items() for argument in ("-e", f"INPUT_{name}={value}")
        ]
        docker_run = ["docker", "run", "--rm", "--network", "host", "-v", f"{workspace}:/work", "-w", "/work",
                      *environment]  # fmt: skip
        figures["check, docker run"] = interleaved(
            {label: [*docker_run, tag] for label, tag in images.items()}, CHECK_REPEATS
        )
        figures["check, in the container"] = in_container(
            {
                label: [*docker_run, *timer, tag, "-c", TIMER, str(INNER_REPEATS),
                        "/opt/venv/bin/python", "/opt/entrypoint.py"]
                for label, tag in images.items()
            }
        )  # fmt: skip
    return figures


def megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def summary(results: dict[str, Any]) -> list[str]:
    """The figures as a few readable lines (the JSON below them has every one)."""
    contents = results["contents"]
    kinds = sorted(contents["bytes_by_kind"].items(), key=lambda item: -item[1])
    files = contents["files_by_kind"]
    lines = [
        f"image {megabytes(results['image_bytes'])} = base {megabytes(results['base_image_bytes'])}"
        f" + {megabytes(results['above_base_bytes'])} above it (budget 120.0 MB)",
        *(
            f"  layer {megabytes(layer['bytes'])}: {layer['instruction'][:70]}"
            for layer in results["layers_above_base"]
            if layer["bytes"]
        ),
        f"/opt/venv {megabytes(contents['venv_bytes'])}: "
        + ", ".join(f"{kind} {megabytes(size)}" for kind, size in kinds)
        + f"; {files.get('.pyc', 0):,} .pyc for {files.get('.py', 0):,} .py",
        "largest packages: "
        + ", ".join(
            f"{name} {megabytes(sizes['bytes'])} (.pyc {megabytes(sizes['pyc_bytes'])})"
            for name, sizes in list(contents["largest_packages"].items())[:8]
        ),
        f"installer left: {', '.join(contents['installer_left']) or 'none'};"
        f" caches: {megabytes(sum(contents['cache_bytes'].values()))}",
        *(
            f"variant '{name}': a layer of {megabytes(size)} over the image as built"
            for name, size in results.get("variant_layer_bytes", {}).items()
        ),
    ]
    for kind, timings in results["startup"].items():
        medians = ", ".join(f"{label} {figures['median_s']:.2f} s" for label, figures in timings.items())
        lines.append(f"start-up, {kind} (median): {medians}")
    return lines


def main() -> int:
    started = time.perf_counter()
    built = subprocess.run(
        ["docker", "build", "--no-cache", "--quiet", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", TAG,
         str(ROOT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    build_seconds = time.perf_counter() - started
    if built.returncode != 0:
        raise SystemExit(f"docker build failed: {built.stderr[-2000:]}")
    size, base_size = (image_bytes(tag) for tag in (TAG, BASE_IMAGE))
    base_ids = set(
        subprocess.run(
            ["docker", "history", "--no-trunc", "--format", "{{.ID}}", BASE_IMAGE],
            capture_output=True, text=True, check=True,
        ).stdout.split()
    )  # fmt: skip
    contents = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "/opt/venv/bin/python", TAG, "-c", CONTENTS],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    images = {"as built": TAG}
    variant_layers: dict[str, int] = {}
    try:
        for name, instruction in VARIANTS.items():
            images[name] = derived(TAG, instruction, name)
            # A removal only hides files (the layer adds nothing); compiling adds what it wrote.
            variant_layers[name] = image_bytes(images[name]) - size
        if COMPARE_WITH:
            images[COMPARE_WITH] = COMPARE_WITH
        timings = startup(images)
    finally:
        for name in VARIANTS:
            if name in images:
                subprocess.run(["docker", "rmi", images[name]], capture_output=True, check=False)
    results = {
        "base_image": BASE_IMAGE,
        "cold_build_seconds": round(build_seconds, 1),
        "image_bytes": size,
        "base_image_bytes": base_size,
        "above_base_bytes": size - base_size,
        "image_mb": round(size / 1e6, 1),
        "base_image_mb": round(base_size / 1e6, 1),
        "above_base_mb": round((size - base_size) / 1e6, 1),
        "layers_above_base": layers(TAG, base_ids),
        "contents": json.loads(contents.stdout),
        "variant_layer_bytes": variant_layers,
        "startup": timings,
    }
    write_results("container", results)
    print("\n".join(summary(results)))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
