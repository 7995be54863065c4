"""What the benchmark harnesses (`make bench`) share: the floor they are measured against and where
their figures are written. The harnesses run as scripts (`python bench/run.py`), so Python finds this
module beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"

# The least a check must do, in one Python process: MLflow's own download of the URI, then SHA-256 of
# every file. argv: artifact URI, tracking URI, destination folder.
FLOOR = """
import hashlib, os, sys, mlflow
uri, tracking_uri, destination = sys.argv[1:4]
path = mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri, dst_path=destination)
for root, _, files in os.walk(path):
    for name in files:
        digest = hashlib.sha256()
        with open(os.path.join(root, name), "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
"""


def write_results(name: str, results: Any) -> Path:
    """Write one harness's figures to bench/out/<name>.json (bench/RESULTS.md records them)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
