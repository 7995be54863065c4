"""check and compare on Databricks workspaces: profiles, PAT and OAuth M2M, the workspace registry's
separate copy, failures, all against loopback workspace doubles (tests/databricks_double.py)."""

from __future__ import annotations

import configparser
import os
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlflow_version_check import databricks
from mvc_testing.servers import free_port
from tests.conftest import BIN, Run, load_valid_report
from tests.databricks_double import WorkspaceDouble
from tests.silent_server import SilentServer

MLMODEL = {
    "artifact_path": "model",
    "flavors": {
        "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl",
                            "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}},
        "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"},
    },
    "model_size_bytes": 4096 + 10 + 20,
    "run_id": "0" * 32,
    "model_uuid": "1" * 32,
    "utc_time_created": "2026-01-01 00:00:00.000000",
    "signature": {"inputs": '[{"type": "double"}]', "outputs": '[{"type": "double"}]'},
}  # fmt: skip
MODEL_FILES = {
    "model.pkl": bytes(range(256)) * 16,
    "data/weights/layer0.bin": b"0123456789",
    "data/weights/layer1.bin": b"abcdefghijklmnopqrst",
    "conda.yaml": b"name: env\n",
    "python_env.yaml": b"python: 3.11\n",
}
CLIENT_SECRET = "oauth-canary-secret-4d1f"  # noqa: S105 - a canary for leak checks, not a credential


def model_files(run_id: str, **changes: object) -> dict[str, bytes]:
    mlmodel = {**MLMODEL, "run_id": run_id, "model_uuid": uuid.uuid4().hex, **changes}
    return {**MODEL_FILES, "MLmodel": yaml.safe_dump(mlmodel).encode()}


def seed(workspace: WorkspaceDouble, name: str, stage: str = "Production", **changes: object) -> str:
    """A run with a model, registered (the registry makes its own copy); returns the version."""
    run_id = workspace.create_run("42")
    workspace.put_files(workspace.run_path(run_id, "model"), model_files(run_id, **changes))
    return workspace.register(name, run_id, stage=stage)


@pytest.fixture(scope="module")
def ws1() -> Iterator[WorkspaceDouble]:
    """A workspace reached with a personal access token."""
    with WorkspaceDouble() as workspace:
        yield workspace


@pytest.fixture(scope="module")
def ws2() -> Iterator[WorkspaceDouble]:
    """A workspace reached with OAuth machine-to-machine credentials."""
    with WorkspaceDouble(oauth_clients={"mvc-client": CLIENT_SECRET}) as workspace:
        yield workspace


@pytest.fixture
def home(tmp_path: Path, ws1: WorkspaceDouble, ws2: WorkspaceDouble) -> Path:
    """A HOME whose .databrickscfg has a PAT profile, an OAuth M2M profile, a wrong token and a dead host."""
    directory = tmp_path / "home"
    directory.mkdir()
    (directory / ".databrickscfg").write_text(
        f"[ws1]\nhost = {ws1.url}\ntoken = {ws1.token}\n\n"
        f"[ws2]\nhost = {ws2.url}\nclient_id = mvc-client\nclient_secret = {CLIENT_SECRET}\n\n"
        f"[wrong]\nhost = {ws1.url}\ntoken = dapi00000000000000000000000000000000\n\n"
        f"[dead]\nhost = http://127.0.0.1:{free_port()}\ntoken = dapi11111111111111111111111111111111\n"
    )
    return directory


def run_cli(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Run:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLFLOW_"))}
    completed = subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout, check=False,
        env={**clean, "HOME": str(home), **(env or {})},
    )  # fmt: skip
    return Run(completed.returncode, completed.stdout, completed.stderr)


def check(home: Path, profile: str, name: str, version: str, report: Path, *extra: str) -> Run:
    return run_cli(home, "check-model-version", "--model", name, "--version-or-stage", version,
                   "--tracking-uri", f"databricks://{profile}",
                   "--report-file", str(report), *extra)  # fmt: skip


def test_check_intact_registry_copy_passes(ws1: WorkspaceDouble, home: Path, tmp_path: Path) -> None:
    """The workspace registry keeps a separate copy: both are downloaded, compared and equal."""
    seed(ws1, "Sklearn_Wine")
    run = check(home, "ws1", "Sklearn_Wine", "production", tmp_path / "r.json")
    assert run.exit_code == 0, run.stderr
    report = load_valid_report(tmp_path / "r.json")
    comparison = report["Comparison"]
    assert comparison["equals"] is True and comparison["same_location"] is False
    assert comparison["run_model"]["location"].startswith("dbfs://ws1@databricks/databricks/mlflow-tracking/")
    assert comparison["reg_model"]["location"].startswith("dbfs://ws1@databricks/databricks/mlflow-registry/")
    assert comparison["run_model"]["files"] == comparison["reg_model"]["files"] == 6
    assert report["Model_Version"]["registry_uri"] == "databricks://ws1"
    assert ws1.token not in run.stdout + run.stderr + (tmp_path / "r.json").read_text()


@pytest.mark.parametrize("side", ["registry", "run"])
def test_tampered_copy_fails_naming_the_file(
    ws1: WorkspaceDouble, home: Path, tmp_path: Path, side: str
) -> None:
    """One nested file changed in the registry copy (or the run's): exit 1 and the file is named."""
    name = f"Tampered_{side}"
    version = seed(ws1, name)
    base = (
        ws1.registry_path(name, version)
        if side == "registry"
        else ws1.models[name]["versions"][version]["source"][5:]
    )
    ws1.files[f"{base}/data/weights/layer1.bin"] = b"abcdefghijklmnopqrsX"
    run = check(home, "ws1", name, version, tmp_path / "r.json")
    assert run.exit_code == 1, run.stderr
    differences = load_valid_report(tmp_path / "r.json")["Comparison"]["differences"]
    assert [(d["path"], d["kind"]) for d in differences] == [("data/weights/layer1.bin", "changed")]
    assert "data/weights/layer1.bin" in run.stdout


def test_compare_two_workspaces_pat_and_oauth(
    ws1: WorkspaceDouble, ws2: WorkspaceDouble, home: Path, tmp_path: Path
) -> None:
    """databricks://ws1 (PAT) vs databricks://ws2 (OAuth M2M): an equal copy passes, a tampered one fails."""
    seed(ws1, "Wine_Source", stage="Staging")
    seed(ws2, "Wine_Imported", stage="Staging")  # same files, new run id and uuid: a copy
    seed(ws2, "Wine_Tampered", stage="Staging", signature={"inputs": '[{"type": "long"}]', "outputs": "[]"})
    results = {}
    for target in ("Wine_Imported", "Wine_Tampered"):
        config = tmp_path / f"{target}.yaml"
        config.write_text(
            "tracking_server_1:\n  host: databricks://ws1\n  model: Wine_Source\n"
            "  version_or_stage: staging\n"
            f"tracking_server_2:\n  host: databricks://ws2\n  model: {target}\n  version_or_stage: staging\n"
        )
        report = tmp_path / f"{target}.json"
        results[target] = (run_cli(home, "compare-model-versions", "--config-file", str(config),
                                   "--report-file", str(report)), report)  # fmt: skip
    equal_run, equal_report = results["Wine_Imported"]
    assert equal_run.exit_code == 0, equal_run.stderr
    summary = load_valid_report(equal_report)["Comparison_Summary"]
    assert summary["run_model"] is True and summary["reg_model"] is True
    tampered_run, tampered_report = results["Wine_Tampered"]
    assert tampered_run.exit_code == 1, tampered_run.stderr
    section = load_valid_report(tampered_report)["Reg_Model_Comparison"]
    assert section["differences"][0]["path"] == "MLmodel"
    assert any(request.startswith("POST /oidc/v1/token") for request in ws2.requests), "ws2 used OAuth"
    assert not any("Wine_Imported" in request for request in ws1.requests), "no ws2 call reached ws1"
    assert not any("Wine_Source" in request for request in ws2.requests), "no ws1 call reached ws2"
    for run in (equal_run, tampered_run):
        assert CLIENT_SECRET not in run.stdout + run.stderr


def seed_uc(workspace: WorkspaceDouble, full_name: str, aliases: tuple[str, ...] = ("champion",)) -> str:
    run_id = workspace.create_run("43")
    workspace.put_files(workspace.run_path(run_id, "model"), model_files(run_id))
    return workspace.register_uc(full_name, run_id, aliases=aliases)


def test_unity_catalog_alias_resolves_and_compares(ws1: WorkspaceDouble, home: Path, tmp_path: Path) -> None:
    """catalog.schema.model@champion on Unity Catalog: resolved by alias, its copy fetched through the
    registry's presigned URLs and compared with the run model; a tampered copy fails."""
    version = seed_uc(ws1, "main.ml.wine")
    run = check(home, "ws1", "main.ml.wine", "@champion", tmp_path / "r.json")
    assert run.exit_code == 0, run.stderr
    report = load_valid_report(tmp_path / "r.json")
    assert report["Model_Version"]["registry_uri"] == "databricks-uc://ws1"
    assert report["Model_Version"]["resolved_by"] == "alias"
    assert report["Model_Version"]["aliases"] == ["champion"]
    comparison = report["Comparison"]
    assert comparison["same_location"] is False and comparison["equals"] is True
    assert comparison["reg_model"]["location"] == f"models:/main.ml.wine/{version}"
    assert comparison["reg_model"]["download_uri"].startswith("s3://double-uc-bucket/")
    assert any("generate-temporary-credentials" in request for request in ws1.requests)

    ws1.files[f"{ws1.uc_storage_path('main.ml.wine', version)}/data/weights/layer0.bin"] = b"0123456789X"
    tampered = check(home, "ws1", "main.ml.wine", "@champion", tmp_path / "t.json")
    assert tampered.exit_code == 1
    differences = load_valid_report(tmp_path / "t.json")["Comparison"]["differences"]
    assert [d["path"] for d in differences] == ["data/weights/layer0.bin"]


def test_version_from_a_logged_model(ws1: WorkspaceDouble, home: Path, tmp_path: Path) -> None:
    """An MLflow 3 version whose source is models:/m-<id>: the logged model's files are the run model."""
    run_id = ws1.create_run("44")
    model_id = ws1.create_logged_model("44", model_files(run_id), run_id=run_id)
    version = ws1.register("Logged_Wine", run_id, logged_model=model_id)
    run = check(home, "ws1", "Logged_Wine", version, tmp_path / "r.json")
    assert run.exit_code == 0, run.stderr
    report = load_valid_report(tmp_path / "r.json")
    assert report["Model_Version"]["source"] == f"models:/{model_id}"
    assert f"/logged_models/{model_id}/artifacts" in report["Comparison"]["run_model"]["location"]
    assert any("/LoggedModels/" in request for request in ws1.requests)


def test_credential_variables_never_leak(
    ws1: WorkspaceDouble, ws2: WorkspaceDouble, home: Path, tmp_path: Path
) -> None:
    """Host `databricks` from DATABRICKS_* variables: a refused canary token and a refused canary
    OAuth secret, verbose; neither appears in stdout, stderr or the report."""
    seed(ws1, "Env_Model")
    token, secret = "dapiCANARYenv0123456789abcdef01234567", "CANARY-env-client-secret-1f2e"
    attempts = {
        token: {"DATABRICKS_HOST": ws1.url, "DATABRICKS_TOKEN": token},
        secret: {"DATABRICKS_HOST": ws2.url, "DATABRICKS_CLIENT_ID": "mvc-client",
                 "DATABRICKS_CLIENT_SECRET": secret},
    }  # fmt: skip
    for canary, variables in attempts.items():
        report = tmp_path / "r.json"
        run = run_cli(home, "check-model-version", "--model", "Env_Model", "--version-or-stage", "1",
                      "--tracking-uri", "databricks", "--report-file", str(report), "--verbose",
                      env=variables)  # fmt: skip
        assert run.exit_code == 3, run.stderr
        assert "authentication failed" in run.stderr.splitlines()[-1]
        assert canary not in run.stdout + run.stderr + report.read_text()


# ---------------------------------------------------------------------------------------------
# --timeout reaches named profiles (issue 10, point 7).


def test_timeout_bounds_a_named_profile_whose_workspace_never_answers(tmp_path: Path) -> None:
    """databricks://hang, a workspace that accepts connections and never answers: --timeout 2
    ends the run with exit 3 and one error line within a minute (it took minutes before)."""
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLFLOW_"))}
    with SilentServer() as workspace:
        (home / ".databrickscfg").write_text(
            f"[DEFAULT]\nhost = http://127.0.0.1:{free_port()}\n\n"
            f"[hang]\nhost = {workspace.url}\ntoken = dapi{'5e' * 16}\n"
        )
        started = time.monotonic()
        # A session of its own: on a timeout the whole run (the CLI and its worker) is killed.
        process = subprocess.Popen(
            [str(BIN / "check-model-version"), "--model", "m", "--version-or-stage", "1",
             "--tracking-uri", "databricks://hang", "--timeout", "2", "--retries", "0",
             "--report-file", str(tmp_path / "r.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**clean, "HOME": str(home)},
            start_new_session=True,
        )  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail("the run still hung after 120 s")
        elapsed = time.monotonic() - started
        assert workspace.accepted > 0, "the run reached the silent workspace"
    run = Run(process.returncode, stdout, stderr)
    assert run.exit_code == 3, run.stderr
    assert len(run.error_lines) == 1 and run.error_lines[0].startswith("error: "), run.stderr
    assert "timed out" in run.error_lines[0]
    assert elapsed < 60, f"took {elapsed:.0f} s"


def test_bounded_config_writes_the_limits_into_every_profile(tmp_path: Path) -> None:
    """The private copy gives each profile, as databricks-sdk reads it (ConfigParser()._sections,
    no [DEFAULT] inheritance), its own limits, and keeps a profile's own value and every credential."""
    source = tmp_path / "databrickscfg"
    source.write_text(
        "[DEFAULT]\nhost = https://default.example\ntoken = dapi-default-canary\n\n"
        "[hang]\nhost = https://hang.example\ntoken = dapi-hang-canary\n\n"
        "[own]\nhost = https://own.example\nclient_id = c\nclient_secret = s\nretry_timeout_seconds = 77\n\n"
        "[__settings__]\ndefault_profile = hang\n"
    )
    with databricks.bounded_config(12, {"DATABRICKS_CONFIG_FILE": str(source)}) as variables:
        copy = Path(variables["DATABRICKS_CONFIG_FILE"])
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        parser = configparser.ConfigParser()
        parser.read(copy)
        # What databricks.sdk.config.Config._known_file_config_loader reads: sections without DEFAULT.
        profiles = {name: dict(values) for name, values in parser._sections.items()}  # type: ignore[attr-defined]
        defaults = dict(parser.defaults())
    assert profiles["hang"] == {"host": "https://hang.example", "token": "dapi-hang-canary",
                                "retry_timeout_seconds": "2", "http_timeout_seconds": "12"}  # fmt: skip
    assert profiles["own"] == {"host": "https://own.example", "client_id": "c", "client_secret": "s",
                               "retry_timeout_seconds": "77", "http_timeout_seconds": "12"}  # fmt: skip
    assert defaults == {"host": "https://default.example", "token": "dapi-default-canary",
                        "retry_timeout_seconds": "2", "http_timeout_seconds": "12"}  # fmt: skip
    assert profiles["__settings__"] == {"default_profile": "hang"}
    assert not copy.exists(), "the private copy is removed afterwards"
