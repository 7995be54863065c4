"""check, compare, seal/verify and audit against MLflow 2.22 servers, the ones many teams still run.

Two servers from .venv-mlflow2 (scripts/ci/mlflow2-venv.sh), one per artifact mode: "proxied"
(`--serve-artifacts`, versions at mlflow-artifacts:/ URIs) and "plain" (`--no-serve-artifacts
--default-artifact-root`, versions at paths this machine reads). Their models are registered by an
MLflow 2.22 client (mvc_testing.mlflow2); this project's client, MLflow 3, checks them through the
real CLI. Version resolution is the registry's API, the same in both modes, so each way of naming a
version runs once, spread over the two servers; downloads and tampering run in both modes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mvc_testing import mlflow2, models
from mvc_testing.mlflow2 import Registered2
from mvc_testing.servers import ArtifactMode, MlflowServer
from tests.conftest import Run, load_valid_report, run_command

pytestmark = pytest.mark.server

MODES: tuple[ArtifactMode, ...] = ("proxied", "plain")
# Each version's files as an MLflow 2.22 client logs a scikit-learn model with pip requirements.
MODEL_FILES = {"MLmodel", "model.pkl", "conda.yaml", "python_env.yaml", "requirements.txt"}
OTHER: dict[ArtifactMode, ArtifactMode] = {"proxied": "plain", "plain": "proxied"}
# Models registered once on each server; each tampering test changes only its own.
SINGLE_VERSION_MODELS = ("check_renamed", "check_cut", "sealed", "audit_broken", "original")


@dataclass(frozen=True)
class Fleet:
    """The two servers and what the MLflow 2.22 client registered: on each server `promoted`
    (version 1 @champion in Production, version 2 the latest) and the single-version models; and
    `copy` / `copy_tampered` of each server's `original`, registered on the other server."""

    servers: dict[ArtifactMode, MlflowServer]
    versions: dict[tuple[ArtifactMode, str], Registered2]

    def version(self, mode: ArtifactMode, key: str) -> Registered2:
        return self.versions[mode, key]

    def files(self, mode: ArtifactMode, key: str) -> Path:
        """The folder of a version's files in its server's artifact store (copies live on the other)."""
        server = self.servers[OTHER[mode] if key.startswith("copy") else mode]
        return self.version(mode, key).directory(server)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    python = mlflow2.python_for_tests()
    roots = {mode: (tmp_path_factory.mktemp(f"mlflow2-{mode}"), mode) for mode in MODES}
    with mlflow2.running_servers(python, roots) as servers:
        plan = mlflow2.Plan()
        steps: dict[tuple[ArtifactMode, str], int] = {}
        for mode in MODES:
            server = servers[mode]
            steps[mode, "promoted-1"] = plan.log_sklearn(
                server, "promoted", seed=1, alias="champion", stage="Production"
            )
            steps[mode, "promoted-2"] = plan.log_sklearn(server, "promoted", seed=2)
            for number, name in enumerate(SINGLE_VERSION_MODELS, start=3):
                steps[mode, name] = plan.log_sklearn(server, name, seed=number)
        for mode in MODES:
            for copy in ("copy", "copy_tampered"):
                steps[mode, copy] = plan.copy(
                    steps[mode, "original"], servers[OTHER[mode]], f"{copy}_of_{mode}"
                )
        registered = plan.run(python)
        yield Fleet(servers, {key: registered[index] for key, index in steps.items()})


def cli(*arguments: str) -> Run:
    return run_command("mlflow-version-check", *arguments)


def check(server: MlflowServer, name: str, version_or_stage: str, report: Path) -> tuple[Run, dict[str, Any]]:
    run = cli("check", "--model", name, "--version-or-stage", version_or_stage,
              "--tracking-uri", server.url, "--report-file", str(report))  # fmt: skip
    return run, load_valid_report(report)


def compare(left: Registered2, right: Registered2, folder: Path) -> tuple[Run, dict[str, Any]]:
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                f"tracking_server_{number}": {
                    "host": side.tracking_uri,
                    "model": side.name,
                    "version_or_stage": side.version,
                }
                for number, side in ((1, left), (2, right))
            }
        )
    )
    report = folder / "compare.json"
    run = cli("compare", "--config-file", str(config), "--report-file", str(report))
    return run, load_valid_report(report)


def flip_one_byte(path: Path) -> None:
    """Change one byte in the middle of a file; its size stays the same."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def expect_download_uri(server: MlflowServer, uri: str) -> None:
    """A version's download URI has the form its server's artifact mode gives."""
    if server.artifact_mode == "proxied":
        assert uri.startswith("mlflow-artifacts:/"), uri
    else:
        assert Path(uri).is_relative_to(server.artifacts), uri


@pytest.mark.parametrize(
    ("mode", "version_or_stage", "version", "resolved_by"),
    [
        pytest.param("proxied", "2", "2", "version", id="proxied-version-number"),
        pytest.param("proxied", "@champion", "1", "alias", id="proxied-at-alias"),
        pytest.param("plain", "production", "1", "stage", id="plain-stage"),
        pytest.param("plain", "latest", "2", "latest", id="plain-latest"),
        pytest.param("plain", "champion", "1", "alias", id="plain-bare-alias"),
    ],
)
def test_check_resolves_and_passes(
    fleet: Fleet, tmp_path: Path, mode: ArtifactMode, version_or_stage: str, version: str, resolved_by: str
) -> None:
    """Every way of naming a version resolves on a 2.22 registry, and the sound model passes as one
    storage location (open-source MLflow keeps no separate registry copy), complete."""
    server = fleet.servers[mode]
    run, report = check(server, "promoted", version_or_stage, tmp_path / "check.json")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert report["status"] == "passed" and report["equals"] is True
    resolved = report["Model_Version"]
    assert (resolved["version"], resolved["resolved_by"]) == (version, resolved_by)
    assert resolved["run_id"] == fleet.version(mode, f"promoted-{version}").run_id
    assert (resolved["stage"], resolved["aliases"]) == (
        ("Production", ["champion"]) if version == "1" else ("None", [])
    )
    expect_download_uri(server, resolved["download_uri"])
    comparison = report["Comparison"]
    assert comparison["same_location"] is True and comparison["method"] == "integrity"
    assert comparison["integrity"]["ok"] is True
    assert comparison["integrity"]["counted_bytes"] == comparison["integrity"]["model_size_bytes"]
    assert comparison["run_model"]["files"] == len(MODEL_FILES)
    assert comparison["differences"] == []


def _rename_reference(model: Path) -> str:
    """One byte of MLmodel: its first mention of model.pkl now names model.pkX."""
    mlmodel = model / "MLmodel"
    mlmodel.write_bytes(mlmodel.read_bytes().replace(b"model.pkl", b"model.pkX", 1))
    return "MLmodel names model.pkX"


def _cut_one_byte(model: Path) -> str:
    """The last byte of model.pkl removed."""
    pickled = model / "model.pkl"
    pickled.write_bytes(pickled.read_bytes()[:-1])
    return "model_size_bytes"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("key", "tamper"),
    [
        pytest.param("check_renamed", _rename_reference, id="mlmodel-names-a-missing-file"),
        pytest.param("check_cut", _cut_one_byte, id="one-byte-cut-from-model-pkl"),
    ],
)
def test_a_registry_model_changed_on_disk_fails_check(
    fleet: Fleet, tmp_path: Path, mode: ArtifactMode, key: str, tamper: Any
) -> None:
    """A one-byte change in the store that breaks the model's completeness fails check (exit 1), and
    the report says which file."""
    expected_problem = tamper(fleet.files(mode, key))
    run, report = check(fleet.servers[mode], key, "1", tmp_path / "check.json")
    assert run.exit_code == 1, run.stdout + run.stderr
    assert report["status"] == "failed" and report["equals"] is False
    integrity = report["Comparison"]["integrity"]
    assert integrity["ok"] is False
    assert any(expected_problem in problem for problem in integrity["problems"]), integrity["problems"]
    if key == "check_renamed":
        missing = [ref["path"] for ref in integrity["references"] if not ref["exists"]]
        assert missing == ["model.pkX"]
    else:
        assert integrity["counted_bytes"] == integrity["model_size_bytes"] - 1


@pytest.mark.parametrize("mode", MODES)
def test_seal_then_verify_names_a_changed_byte_that_check_cannot_see(
    fleet: Fleet, tmp_path: Path, mode: ArtifactMode
) -> None:
    """seal, then verify --manifest-file: the sealed version verifies; after one byte of model.pkl
    changes in place (same size), verify fails naming model.pkl. check still passes then: with no
    separate registry copy it proves completeness, not content; that is what a seal is for."""
    server = fleet.servers[mode]
    manifest = tmp_path / "seal.json"
    sealed = cli("seal", "--model", "sealed", "--version-or-stage", "1", "--tracking-uri", server.url,
                 "--manifest-file", str(manifest))  # fmt: skip
    assert sealed.exit_code == 0, sealed.stdout + sealed.stderr
    digest = re.search(r"root digest: (sha256:[0-9a-f]{64})", sealed.stdout)
    assert digest, sealed.stdout

    def verify(report: Path) -> tuple[Run, dict[str, Any]]:
        run = cli("verify", "--model", "sealed", "--version-or-stage", "1", "--tracking-uri", server.url,
                  "--manifest-file", str(manifest), "--report-file", str(report))  # fmt: skip
        return run, load_valid_report(report)

    run, report = verify(tmp_path / "before.json")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert report["status"] == "passed" and report["Verification"]["root_digest"] == digest[1]

    flip_one_byte(fleet.files(mode, "sealed") / "model.pkl")
    run, report = check(server, "sealed", "1", tmp_path / "check.json")
    assert run.exit_code == 0, run.stdout + run.stderr
    assert report["Comparison"]["same_location"] is True and report["Comparison"]["method"] == "integrity"

    run, report = verify(tmp_path / "after.json")
    assert run.exit_code == 1, run.stdout + run.stderr
    assert report["status"] == "failed" and report["Verification"]["root_digest"] != digest[1]
    assert [(d["path"], d["kind"]) for d in report["Verification"]["differences"]] == [
        ("model.pkl", "changed")
    ]
    assert "model.pkl" in run.stdout


@pytest.mark.parametrize("mode", MODES, ids=[f"{mode}-to-{OTHER[mode]}" for mode in MODES])
def test_a_copy_on_the_other_server_compares_equal(fleet: Fleet, tmp_path: Path, mode: ArtifactMode) -> None:
    """A version copied between the two 2.22 servers (new run, MLmodel run_id rewritten) compares
    equal, run and registry models alike; only the run_id is ignored, with both values."""
    original, copy = fleet.version(mode, "original"), fleet.version(mode, "copy")
    run, report = compare(original, copy, tmp_path)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert report["status"] == "passed" and report["equals"] is True
    for section in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        comparison = report[section]
        assert comparison["equals"] is True and comparison["same_location"] is False
        assert comparison["differences"] == []
        assert [
            (item["path"], item["field"], item["left"], item["right"]) for item in comparison["ignored"]
        ] == [("MLmodel", "run_id", original.run_id, copy.run_id)]
    versions = report["Model_Versions"]
    expect_download_uri(fleet.servers[mode], versions["tracking_server_1"]["download_uri"])
    expect_download_uri(fleet.servers[OTHER[mode]], versions["tracking_server_2"]["download_uri"])


@pytest.mark.parametrize("mode", MODES, ids=[f"{mode}-to-{OTHER[mode]}" for mode in MODES])
def test_a_copy_with_one_changed_byte_is_named(fleet: Fleet, tmp_path: Path, mode: ArtifactMode) -> None:
    """One byte of the copy's model.pkl changed on disk: compare exits 1 and both sections name the
    file, with both sides' size and hash."""
    flip_one_byte(fleet.files(mode, "copy_tampered") / "model.pkl")
    run, report = compare(fleet.version(mode, "original"), fleet.version(mode, "copy_tampered"), tmp_path)
    assert run.exit_code == 1, run.stdout + run.stderr
    assert report["status"] == "failed" and report["equals"] is False
    for section in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        (difference,) = report[section]["differences"]
        assert (difference["path"], difference["kind"]) == ("model.pkl", "changed")
        assert difference["left"]["size"] == difference["right"]["size"]
        assert difference["left"]["sha256"] != difference["right"]["sha256"]
    assert "model.pkl" in run.stdout


def test_audit_of_a_2_22_registry_fails_exactly_the_broken_version(fleet: Fleet, tmp_path: Path) -> None:
    """audit over models of the proxied 2.22 server: each version checked, the one with a byte cut
    from its model.pkl failed, the rest passed."""
    server = fleet.servers["proxied"]
    _cut_one_byte(fleet.files("proxied", "audit_broken"))
    report_file = tmp_path / "audit.json"
    run = cli("audit", "--tracking-uri", server.url, "--model", "promoted", "--model", "audit_broken",
              "--report-file", str(report_file))  # fmt: skip
    assert run.exit_code == 1, run.stdout + run.stderr
    report = load_valid_report(report_file)
    assert report["status"] == "failed"
    entries = {(item["model"], item["version"]): item for item in report["Audit"]["versions"]}
    assert {key: item["status"] for key, item in entries.items()} == {
        ("promoted", "1"): "passed",
        ("promoted", "2"): "passed",
        ("audit_broken", "1"): "failed",
    }
    assert (
        entries["promoted", "1"]["aliases"] == ["champion"]
        and entries["promoted", "1"]["stage"] == "Production"
    )
    assert any("model_size_bytes" in problem for problem in entries["audit_broken", "1"]["problems"])
    assert report["Audit"]["summary"] == {"passed": 2, "failed": 1, "error": 0, "total": 3}


def test_an_mlflow_3_client_cannot_log_a_model_to_a_2_22_server(fleet: Fleet) -> None:
    """Why the models here are registered by an MLflow 2.22 client: MLflow 3's log_model first creates
    a logged model, an API that 2.22 servers do not have (404)."""
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="logged-models"):
        models.log_sklearn(fleet.servers["proxied"].url, "from_mlflow_3")
