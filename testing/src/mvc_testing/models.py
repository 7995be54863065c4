"""Log and register example models on a real tracking server, the ways users do it.

Used by the tests, the benchmarks, `make demo` and the self-test workflow. Each function talks to the
server through MLflow's own client.
"""

from __future__ import annotations

import itertools
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

# Given explicitly so that MLflow does not load each model in a subprocess to infer them (slow).
PIP_REQUIREMENTS = ["scikit-learn", "numpy"]
# One counter for the whole process: every test module registers models on the same session servers.
_serial_numbers = itertools.count()


def unique(prefix: str) -> str:
    """A name made from `prefix` that no other caller in this process gets (for registered models)."""
    return f"{prefix}_{next(_serial_numbers)}"


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    source: str
    run_id: str | None


def _client(tracking_uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def fit_sklearn(seed: int = 0) -> Any:
    import numpy as np
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(seed)
    features = rng.normal(size=(20, 3))
    target = features @ np.array([1.0, -2.0, 0.5]) + seed
    return LinearRegression().fit(features, target)


def _registered(client: MlflowClient, name: str, version: str) -> Registered:
    mv = client.get_model_version(name, version)
    if mv.source is None:
        raise ValueError(f"{name} version {version} has no source on the server")
    return Registered(name=name, version=str(mv.version), source=mv.source, run_id=mv.run_id)


def log_sklearn(
    tracking_uri: str, name: str, *, seed: int = 0, experiment_id: str | None = None
) -> Registered:
    """MLflow 3 style: log_model(name=..., registered_model_name=...) -> source models:/m-<id>."""
    import numpy as np

    client = _client(tracking_uri)
    model = fit_sklearn(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run(experiment_id=experiment_id):
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=name,
                serialization_format="cloudpickle",
                pip_requirements=PIP_REQUIREMENTS,
                input_example=np.array([[0.0, 1.0, 2.0]]),
            )
    return _registered(client, name, str(info.registered_model_version))


def save_sklearn_locally(directory: Path, *, seed: int = 0) -> Path:
    path = directory / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            fit_sklearn(seed),
            str(path),
            serialization_format="cloudpickle",
            pip_requirements=PIP_REQUIREMENTS,
        )
    return path


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)


def register_run_artifacts(
    tracking_uri: str,
    name: str,
    *,
    source_form: str,
    seed: int = 0,
    model_dir: Path | None = None,
    experiment_id: str | None = None,
) -> Registered:
    """Log a saved model as plain run artifacts, then create_model_version with a given source form.

    source_form: "runs" (runs:/<run>/model) or "location" (the run's artifact URI + /model).
    """
    client = _client(tracking_uri)
    with tempfile.TemporaryDirectory() as scratch:
        local = model_dir or save_sklearn_locally(Path(scratch), seed=seed)
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_artifacts(str(local), "model")
    run_id = run.info.run_id
    source = f"runs:/{run_id}/model" if source_form == "runs" else f"{run.info.artifact_uri}/model"
    _ensure_registered_model(client, name)
    mv = client.create_model_version(name, source=source, run_id=run_id)
    return _registered(client, name, str(mv.version))


class _Scaler(mlflow.pyfunc.PythonModel):  # type: ignore[misc, name-defined]
    """A pyfunc whose native model is a folder of files (like SavedModel or Spark ML)."""

    def predict(self, context: Any, model_input: list[str], params: Any = None) -> list[str]:
        return model_input


def log_directory_flavor(
    tracking_uri: str, name: str, *, files: dict[str, bytes] | None = None
) -> Registered:
    """A python_function model with an artifacts/ folder (nested files), registered by name."""
    client = _client(tracking_uri)
    contents = files or {
        "weights/layer0.bin": bytes(range(256)) * 16,
        "weights/layer1.bin": b"\x01\x02" * 1000,
        "config/params.json": b'{"scale": 2.0}',
    }
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "net"
        for relative, data in contents.items():
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mlflow.start_run():
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=_Scaler(),
                    artifacts={"net": str(folder)},
                    registered_model_name=name,
                    pip_requirements=["numpy"],
                )
    return _registered(client, name, str(info.registered_model_version))


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    _client(tracking_uri).set_registered_model_alias(name, alias, version)


def set_stage(tracking_uri: str, name: str, version: str, stage: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _client(tracking_uri).transition_model_version_stage(name, version, stage)


def artifact_directory(server_artifacts: Path, client_uri: str, version: Registered) -> Path:
    """Where a registered version's files live in the server's --artifacts-destination."""
    client = _client(client_uri)
    download_uri = client.get_model_version_download_uri(version.name, version.version)
    if download_uri.startswith("runs:/"):
        run_id, _, sub = download_uri[len("runs:/") :].partition("/")
        download_uri = client.get_run(run_id).info.artifact_uri + "/" + sub
    prefix = "mlflow-artifacts:/"
    if not download_uri.startswith(prefix):
        raise ValueError(f"not on the server's proxied artifact store: {download_uri}")
    return server_artifacts / download_uri[len(prefix) :].lstrip("/")


def download_version_files(tracking_uri: str, version: Registered, destination: Path) -> Path:
    """The files of a registered version, fetched through MLflow with explicit URIs."""
    client = _client(tracking_uri)
    uri = client.get_model_version_download_uri(version.name, version.version)
    if uri.startswith("runs:/"):
        run_id, _, sub = uri[len("runs:/") :].partition("/")
        uri = client.get_run(run_id).info.artifact_uri + "/" + sub
    destination.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, tracking_uri=tracking_uri, dst_path=str(destination)
    )
    meta = Path(local) / "registered_model_meta"
    meta.unlink(missing_ok=True)
    return Path(local)


def rewrite_identity(model_dir: Path, run_id: str) -> None:
    """Rewrite MLmodel's identity fields as an export/import tool does for the copy's new home."""
    import uuid

    import yaml

    mlmodel_path = model_dir / "MLmodel"
    mlmodel = yaml.safe_load(mlmodel_path.read_text())
    mlmodel["run_id"] = run_id
    mlmodel["model_uuid"] = uuid.uuid4().hex
    if mlmodel.get("model_id"):
        mlmodel["model_id"] = f"m-{uuid.uuid4().hex}"
    mlmodel["utc_time_created"] = "2030-01-02 03:04:05.000000"
    mlmodel["artifact_path"] = "model"
    mlmodel_path.write_text(yaml.safe_dump(mlmodel, default_flow_style=False))


def copy_version(
    source_uri: str,
    version: Registered,
    destination_uri: str,
    name: str,
    *,
    tamper: Any = None,
) -> Registered:
    """Copy a version to another server as mlflow-export-import does: same files, new run, MLmodel
    rewritten with the new run id, model id and time; `tamper(model_dir)` may change the copy."""
    with tempfile.TemporaryDirectory() as scratch:
        local = download_version_files(source_uri, version, Path(scratch) / "download")
        client = _client(destination_uri)
        with mlflow.start_run() as run:
            rewrite_identity(local, run.info.run_id)
            if tamper is not None:
                tamper(local)
            mlflow.log_artifacts(str(local), "model")
        _ensure_registered_model(client, name)
        mv = client.create_model_version(
            name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
        )
    return _registered(client, name, str(mv.version))
