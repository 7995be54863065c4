"""Benchmarks (`make bench`): figures, not pass/fail tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def write_results(name: str, results: Any) -> Path:
    """Write one harness's figures to bench/out/<name>.json (bench/RESULTS.md records them)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
