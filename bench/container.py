"""The action's image: its size and the time of a cold `docker build` (part of `make bench`).

Cold means without the layer cache (`--no-cache`); the base image is already local (here the Debian
base of scripts/ci/base-image.sh, as CI has no Docker Hub) and pip fetches every package again.
Results: bench/out/container.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from harness import write_results

ROOT = Path(__file__).resolve().parent.parent

BASE_IMAGE = os.environ.get("BASE_IMAGE_TAG", "mvc-base:bookworm")
TAG = "mlflow-version-check:bench"


def image_bytes(tag: str) -> int:
    command = ["docker", "image", "inspect", "--format", "{{.Size}}", tag]
    inspected = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(inspected.stdout.strip())


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
    results = {
        "base_image": BASE_IMAGE,
        "cold_build_seconds": round(build_seconds, 1),
        "image_mb": round(size / 1e6, 1),
        "base_image_mb": round(base_size / 1e6, 1),
    }
    write_results("container", results)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
