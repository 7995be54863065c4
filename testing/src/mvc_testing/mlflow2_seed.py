"""Register models on MLflow 2.x tracking servers with an MLflow 2.x client; run with that client's Python.

    .venv-mlflow2/bin/python testing/src/mvc_testing/mlflow2_seed.py < plan.json > registered.json

An MLflow 3 client cannot do this: its `log_model` creates a logged model first
(`POST /api/2.0/mlflow/logged-models`), which 2.x servers answer with 404. So the tests hand this
script a plan (a JSON list of steps) and read back one JSON object per step. Only MLflow and the
standard library are imported: this file runs in the 2.x virtualenv, where mvc_testing is not
installed (mlflow2.py in this package builds the plans and starts the script).

Steps:
- {"action": "log_sklearn", "tracking_uri": ..., "name": ..., "seed": 0, "alias": null, "stage": null}
  logs a small scikit-learn model the MLflow 2 way (`artifact_path=`, `registered_model_name=`), then
  sets the alias and transitions the stage when given.
- {"action": "copy", "from_step": <index of an earlier step>, "tracking_uri": ..., "name": ...}
  copies that version's files into a new run on `tracking_uri` as a copying tool does (MLmodel gets
  the new run id) and registers them under `name`.
Each result: {"name", "version", "source", "run_id", "download_uri", "tracking_uri"}.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

# Given explicitly so that MLflow does not load each model in a subprocess to infer them (slow).
PIP_REQUIREMENTS = ["scikit-learn", "numpy"]


def _describe(client: Any, tracking_uri: str, name: str, version: str) -> dict[str, str]:
    found = client.get_model_version(name, version)
    return {
        "name": name,
        "version": str(found.version),
        "source": str(found.source),
        "run_id": str(found.run_id),
        "download_uri": str(client.get_model_version_download_uri(name, str(found.version))),
        "tracking_uri": tracking_uri,
    }


def log_sklearn(step: dict[str, Any]) -> dict[str, str]:
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    tracking_uri = step["tracking_uri"]
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    rng = np.random.default_rng(step.get("seed", 0))
    features = rng.normal(size=(20, 3))
    model = LinearRegression().fit(features, features @ np.array([1.0, -2.0, 0.5]))
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            artifact_path="model",
            registered_model_name=step["name"],
            serialization_format="cloudpickle",
            pip_requirements=PIP_REQUIREMENTS,
        )
    version = str(info.registered_model_version)
    if step.get("alias"):
        client.set_registered_model_alias(step["name"], step["alias"], version)
    if step.get("stage"):
        client.transition_model_version_stage(step["name"], version, step["stage"])
    return _describe(client, tracking_uri, step["name"], version)


def copy_version(step: dict[str, Any], original: dict[str, str]) -> dict[str, str]:
    import mlflow
    import yaml

    with tempfile.TemporaryDirectory() as scratch:
        mlflow.set_tracking_uri(original["tracking_uri"])
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=original["download_uri"],
                tracking_uri=original["tracking_uri"],
                dst_path=scratch,
            )
        )
        tracking_uri = step["tracking_uri"]
        mlflow.set_tracking_uri(tracking_uri)
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        with mlflow.start_run() as run:
            mlmodel = yaml.safe_load((local / "MLmodel").read_text())
            mlmodel["run_id"] = run.info.run_id
            (local / "MLmodel").write_text(yaml.safe_dump(mlmodel, default_flow_style=False))
            mlflow.log_artifacts(str(local), "model")
        with contextlib.suppress(mlflow.exceptions.MlflowException):
            client.create_registered_model(step["name"])
        created = client.create_model_version(
            step["name"], source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
    return _describe(client, tracking_uri, step["name"], str(created.version))


def run_plan(steps: list[dict[str, Any]]) -> list[dict[str, str]]:
    results: list[dict[str, str]] = []
    for step in steps:
        if step["action"] == "log_sklearn":
            results.append(log_sklearn(step))
        elif step["action"] == "copy":
            results.append(copy_version(step, results[step["from_step"]]))
        else:
            raise ValueError(f"unknown step action {step['action']!r}")
    return results


def main() -> int:
    steps = json.load(sys.stdin)
    # MLflow 2 prints "View run ... at ..." on stdout: keep stdout for the one JSON answer.
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        # Stages are deprecated in MLflow 2.x; these servers are what users still run.
        warnings.simplefilter("ignore", FutureWarning)
        results = run_plan(steps)
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
