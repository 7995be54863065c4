"""`check` end to end against a real `mlflow server`: resolution, sources, reports, integrity."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_version_check import check_model_version
from mlflow_version_check.cli import check_model_version_main, main
from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.conftest import load_valid_report, run_command

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def promoted(mlflow_server: MlflowServer) -> models.Registered:
    """A model with two versions; version 2 has alias 'champion' and is in Production."""
    name = unique("promoted")
    models.log_sklearn(mlflow_server.url, name, seed=1)
    second = models.log_sklearn(mlflow_server.url, name, seed=2)
    models.set_alias(mlflow_server.url, name, "champion", second.version)
    models.set_stage(mlflow_server.url, name, second.version, "Production")
    return second


@pytest.mark.parametrize(
    ("version_or_stage", "resolved_by"),
    [
        pytest.param("2", "version", id="version-number"),
        pytest.param("@champion", "alias", id="at-alias"),
        pytest.param("champion", "alias", id="bare-alias"),
        pytest.param("latest", "latest", id="latest"),
        pytest.param("production", "stage", id="stage-lower-case"),
        pytest.param("PRODUCTION", "stage", id="stage-upper-case"),
    ],
)
def test_check_resolves_and_passes(
    mlflow_server: MlflowServer,
    promoted: models.Registered,
    tmp_path: Path,
    version_or_stage: str,
    resolved_by: str,
) -> None:
    """Every way of naming version 2 resolves to it, passes, and gives a valid seed-compatible report."""
    report_file = tmp_path / "reports" / "check.json"
    code = check_model_version_main(
        [
            "--model",
            promoted.name,
            "--version-or-stage",
            version_or_stage,
            "--tracking-uri",
            mlflow_server.url,
            "--report-file",
            str(report_file),
        ]
    )
    assert code == 0
    report = load_valid_report(report_file)
    assert report["status"] == "passed"
    assert report["Comparison"]["equals"] is True
    version = report["Model_Version"]
    assert (version["version"], version["resolved_by"]) == ("2", resolved_by)
    assert version["aliases"] == ["champion"]
    assert version["stage"] == "Production"
    run_hash = report["Comparison"]["run_model"]["local_path"]["hash"]
    reg_hash = report["Comparison"]["reg_model"]["local_path"]["hash"]
    assert len(run_hash) == 64 and run_hash == reg_hash
    assert report["Comparison"]["run_model"]["download_uri"] == promoted.source
    assert report["Comparison"]["reg_model"]["download_uri"].startswith("mlflow-artifacts:/")


def test_open_source_registry_is_reported_as_same_location(
    mlflow_server: MlflowServer, promoted: models.Registered, tmp_path: Path
) -> None:
    """Open-source MLflow: run and registry model are one location, downloaded once, integrity verified."""
    report_file = tmp_path / "check.json"
    assert (
        main(
            [
                "check",
                "--model",
                promoted.name,
                "--version-or-stage",
                "2",
                "--tracking-uri",
                mlflow_server.url,
                "--report-file",
                str(report_file),
            ]
        )
        == 0
    )
    comparison = load_valid_report(report_file)["Comparison"]
    assert comparison["same_location"] is True
    assert comparison["method"] == "integrity"
    assert comparison["run_model"]["downloaded"] is True
    assert comparison["reg_model"]["downloaded"] is False
    integrity = comparison["integrity"]
    assert integrity["ok"] and integrity["mlmodel_parses"]
    referenced = {ref["path"] for ref in integrity["references"]}
    assert {"model.pkl", "conda.yaml", "python_env.yaml", "input_example.json"} <= referenced
    assert integrity["model_size_bytes"] is not None
    assert integrity["counted_bytes"] == integrity["model_size_bytes"]


@pytest.mark.parametrize(
    "register",
    [
        pytest.param(models.log_sklearn, id="logged-model-models-m-id"),
        pytest.param(
            lambda url, name: models.register_run_artifacts(url, name, source_form="runs"), id="runs-uri"
        ),
        pytest.param(
            lambda url, name: models.register_run_artifacts(url, name, source_form="location"),
            id="artifact-location",
        ),
        pytest.param(models.log_directory_flavor, id="directory-flavor"),
    ],
)
def test_every_source_form_resolves_and_downloads(
    mlflow_server: MlflowServer, register, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Versions registered from models:/m-..., runs:/ and an artifact location all download and pass."""
    version = register(mlflow_server.url, unique("source"))
    result = check_model_version(
        version.name, version.version, tracking_uri=mlflow_server.url, download_dir=tmp_path
    )
    assert result.equals
    assert result.version.source == version.source
    assert result.run_model.integrity.ok
    assert "MLmodel" in result.run_model.manifest
    local = Path(result.run_model.local_path)
    assert (local / "MLmodel").is_file()
    assert len(result.run_model.manifest) == sum(1 for p in local.rglob("*") if p.is_file())


def test_source_forms_point_at_what_they_claim(mlflow_server: MlflowServer) -> None:
    """The helper really produces the three source forms the check must handle."""
    assert models.log_sklearn(mlflow_server.url, unique("form")).source.startswith("models:/m-")
    assert models.register_run_artifacts(
        mlflow_server.url, unique("form"), source_form="runs"
    ).source.startswith("runs:/")
    assert models.register_run_artifacts(
        mlflow_server.url, unique("form"), source_form="location"
    ).source.startswith("mlflow-artifacts:/")


def test_directory_flavor_files_are_all_compared(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """The nested artifacts folder of a directory-format model is in the manifest, file by file."""
    version = models.log_directory_flavor(mlflow_server.url, unique("dir"))
    result = check_model_version(version.name, "latest", tracking_uri=mlflow_server.url)
    nested = [path for path in result.run_model.manifest if path.startswith("artifacts/")]
    assert len(nested) == 3
    assert not Path(result.download_dir).exists(), "the default temporary directory is removed"


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        pytest.param(
            lambda d: (d / "model.pkl").unlink(), "MLmodel names model.pkl", id="native-file-deleted"
        ),
        pytest.param(
            lambda d: (d / "model.pkl").write_bytes((d / "model.pkl").read_bytes()[:-10]),
            "model_size_bytes",
            id="native-file-truncated",
        ),
        pytest.param(
            lambda d: (d / "extra.bin").write_bytes(b"x" * 100), "model_size_bytes", id="file-added"
        ),
    ],
)
def test_tampered_same_location_model_fails(
    mlflow_server: MlflowServer, tmp_path: Path, tamper, problem: str
) -> None:  # type: ignore[no-untyped-def]
    """A model whose stored files no longer match its MLmodel fails the integrity check: exit 1."""
    version = models.log_sklearn(mlflow_server.url, unique("tampered"))
    tamper(models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version))
    report_file = tmp_path / "check.json"
    run = run_command(
        "check-model-version",
        "--model",
        version.name,
        "--version-or-stage",
        version.version,
        "--tracking-uri",
        mlflow_server.url,
        "--report-file",
        str(report_file),
    )
    assert run.exit_code == 1, run.stderr
    report = load_valid_report(report_file)
    assert report["status"] == "failed" and report["equals"] is False
    problems = report["Comparison"]["integrity"]["problems"]
    assert any(problem in text for text in problems), problems
    assert "problem:" in run.stdout


def test_download_dir_gets_a_fresh_subdirectory_each_run(
    mlflow_server: MlflowServer, promoted: models.Registered, tmp_path: Path
) -> None:
    """A given --download-dir is never mixed with an earlier run's files, and nothing in it is deleted."""
    download_dir = tmp_path / "downloads"
    stale = download_dir / "run_model" / "stale.bin"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from an earlier run")
    first = check_model_version(promoted.name, "2", tracking_uri=mlflow_server.url, download_dir=download_dir)
    second = check_model_version(
        promoted.name, "2", tracking_uri=mlflow_server.url, download_dir=download_dir
    )
    assert first.equals and second.equals
    assert first.download_dir != second.download_dir
    for result in (first, second):
        assert Path(result.download_dir).parent == download_dir.resolve()
        assert "stale.bin" not in {Path(p).name for p in result.run_model.manifest}
        assert Path(result.run_model.local_path, "MLmodel").is_file()
    assert stale.read_bytes() == b"left over from an earlier run"


def test_native_model_auto_reports_the_native_file(
    mlflow_server: MlflowServer, promoted: models.Registered, tmp_path: Path
) -> None:
    """--native-model auto compares MLmodel and the pickle; the seed's path and hash stay the pickle's."""
    import hashlib

    report_file = tmp_path / "check.json"
    download_dir = tmp_path / "dl"
    assert (
        check_model_version_main(
            [
                "--model",
                promoted.name,
                "--version-or-stage",
                "2",
                "--tracking-uri",
                mlflow_server.url,
                "--native-model",
                "auto",
                "--download-dir",
                str(download_dir),
                "--report-file",
                str(report_file),
            ]
        )
        == 0
    )
    comparison = load_valid_report(report_file)["Comparison"]
    run_model = comparison["run_model"]
    path = Path(run_model["local_path"]["path"])
    assert path.name == "model.pkl" and path.is_file()
    assert run_model["local_path"]["hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert run_model["files"] == 2
    assert comparison["native_model"] == {
        "requested": "auto",
        "run_model": ["MLmodel", "model.pkl"],
        "reg_model": ["MLmodel", "model.pkl"],
        "whole_model": None,
    }


def test_tracking_uri_from_environment(mlflow_server: MlflowServer, promoted: models.Registered) -> None:
    """Like the seed, check-model-version takes its server from MLFLOW_TRACKING_URI."""
    run = run_command(
        "check-model-version",
        "--model",
        promoted.name,
        "--version-or-stage",
        "@champion",
        env={"MLFLOW_TRACKING_URI": mlflow_server.url},
    )
    assert run.exit_code == 0, run.stderr
    assert "check PASSED" in run.stdout


def test_source_copied_from_another_version_resolves(mlflow_server: MlflowServer) -> None:
    """copy_model_version gives a source models:/<name>/<version>; it resolves through the registry."""
    original = models.log_sklearn(mlflow_server.url, unique("original"))
    client = models._client(mlflow_server.url)
    copy_name = unique("copy")
    copied = client.copy_model_version(f"models:/{original.name}/{original.version}", copy_name)
    assert copied.source == f"models:/{original.name}/{original.version}"
    result = check_model_version(copy_name, str(copied.version), tracking_uri=mlflow_server.url)
    assert result.equals
    assert result.run_model.location.startswith("mlflow-artifacts:/")
    assert set(result.run_model.manifest) >= {"MLmodel", "model.pkl"}


def test_local_store_with_file_artifacts(tmp_path: Path) -> None:
    """A sqlite tracking URI with file: artifact locations (no server) resolves, downloads and passes."""
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = models._client(tracking_uri)
    experiment = client.create_experiment("local", artifact_location=(tmp_path / "artifacts").as_uri())
    logged = models.log_sklearn(tracking_uri, "local_model", experiment_id=experiment)
    by_location = models.register_run_artifacts(
        tracking_uri, "local_model", source_form="location", experiment_id=experiment
    )
    assert by_location.source.startswith("file://")
    for version in (logged.version, by_location.version):
        result = check_model_version("local_model", version, tracking_uri=tracking_uri)
        assert result.equals, result
        assert result.same_location
        assert result.run_model.location.startswith("file://")
        assert result.run_model.integrity.ok


def test_eight_checks_at_once_agree(
    mlflow_server: MlflowServer, promoted: models.Registered, tmp_path: Path
) -> None:
    """Eight concurrent checks against one server, each with its own download dir: all pass and agree."""
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int):  # type: ignore[no-untyped-def]
        return check_model_version(
            promoted.name, "@champion", tracking_uri=mlflow_server.url, download_dir=tmp_path / f"dl{index}"
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    assert all(result.equals for result in results)
    assert len({result.run_summary.tree_sha256 for result in results}) == 1
    assert len({result.download_dir for result in results}) == 8
    for index, result in enumerate(results):
        assert Path(result.download_dir).parent == (tmp_path / f"dl{index}").resolve()


def test_credentials_never_reach_output_or_report(
    mlflow_server: MlflowServer, promoted: models.Registered, tmp_path: Path
) -> None:
    """A tracking URI with user:password, and a token, user and password in MLflow's credential
    variables (canaries), verbose, on a passing and a failing run: no trace in output or report."""
    user, password, token = "canary-user-7a1", "canary-pass-93f", "canary-token-c4e"
    tracking = mlflow_server.url.replace("http://", f"http://{user}:{password}@")
    variables = {
        "MLFLOW_TRACKING_TOKEN": token,
        "MLFLOW_TRACKING_USERNAME": "canary-env-user-2b8",
        "MLFLOW_TRACKING_PASSWORD": "canary-env-pass-6d0",
    }
    report_file = tmp_path / "r.json"
    for version_or_stage, expected in (("@champion", 0), ("@no-such-alias", 3)):
        run = run_command(
            "check-model-version", "--model", promoted.name, "--version-or-stage", version_or_stage,
            "--tracking-uri", tracking, "--report-file", str(report_file), "--verbose", env=variables,
        )  # fmt: skip
        assert run.exit_code == expected, run.stderr
        text = run.stdout + run.stderr + report_file.read_text()
        for canary in (user, password, *variables.values()):
            assert canary not in text, (canary, version_or_stage)
        assert "http://***@127.0.0.1" in report_file.read_text()


def test_alias_that_looks_like_a_number(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """`@1` is the alias named 1, `1` is version 1: an alias never shadows a version number."""
    name = unique("numeric_alias")
    models.log_sklearn(mlflow_server.url, name, seed=1)
    second = models.log_sklearn(mlflow_server.url, name, seed=2)
    models.set_alias(mlflow_server.url, name, "1", second.version)
    by_alias = check_model_version(name, "@1", tracking_uri=mlflow_server.url)
    by_number = check_model_version(name, "1", tracking_uri=mlflow_server.url)
    assert (by_alias.version.version, by_alias.version.resolved_by) == (second.version, "alias")
    assert (by_number.version.version, by_number.version.resolved_by) == ("1", "version")


def test_hashing_during_the_transfer_only_where_mlflow_writes_one_stream(
    mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hash is taken from the written chunks only where MLflow itself would write a file as one
    sequential stream: a tracking server without multipart downloads. With multipart downloads
    (parallel ranges) or a local store, files are hashed after they are complete."""
    from mlflow_version_check.worker import downloads

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    served = "mlflow-artifacts:/0/any/artifacts/model"
    assert downloads._streams_sequentially(downloads._repository(served))
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "true")
    assert not downloads._streams_sequentially(downloads._repository(served))
    assert not downloads._streams_sequentially(downloads._repository(tmp_path.as_uri()))
