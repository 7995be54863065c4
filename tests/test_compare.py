"""`compare` end to end against two real `mlflow server` processes, and its config validation."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlflow_version_check import compare_model_versions
from mlflow_version_check.cli import compare_model_versions_main, main
from mlflow_version_check.config import parse_config
from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.conftest import BIN, load_valid_report, run_command

pytestmark = pytest.mark.server


def write_config(path: Path, side_1: dict[str, Any], side_2: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"tracking_server_1": side_1, "tracking_server_2": side_2}))
    return path


def side(server: MlflowServer | str, version: models.Registered, **extra: Any) -> dict[str, Any]:
    host = server if isinstance(server, str) else server.url
    return {"host": host, "model": version.name, "version_or_stage": version.version, **extra}


@pytest.fixture(scope="module")
def original(mlflow_server: MlflowServer) -> models.Registered:
    """A directory-format model (nested files, a signature) on the first server."""
    return models.log_directory_flavor(mlflow_server.url, unique("original"))


def _nested_file(model: Path) -> None:
    target = next((model / "artifacts").rglob("layer1.bin"))
    target.write_bytes(target.read_bytes() + b"\x00")


def _same_size(model: Path) -> None:
    target = next((model / "artifacts").rglob("layer0.bin"))
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))


def _extra_file(model: Path) -> None:
    (model / "artifacts" / "net" / "extra.txt").write_text("smuggled")


def _missing_file(model: Path) -> None:
    next((model / "artifacts").rglob("params.json")).unlink()


def _signature(model: Path) -> None:
    mlmodel = yaml.safe_load((model / "MLmodel").read_text())
    mlmodel["signature"]["inputs"] = '[{"type": "double", "required": true}]'
    (model / "MLmodel").write_text(yaml.safe_dump(mlmodel))


def test_copy_on_another_server_is_equal_with_ignored_fields(
    mlflow_server: MlflowServer, mlflow_server_2: MlflowServer, original: models.Registered, tmp_path: Path
) -> None:
    """A model re-uploaded to a second server (new run id, model id, time) compares equal; the ignored
    MLmodel fields are listed with both values."""
    copy = models.copy_version(mlflow_server.url, original, mlflow_server_2.url, unique("copy"))
    config = write_config(
        tmp_path / "config.yaml", side(mlflow_server, original), side(mlflow_server_2, copy)
    )
    report_file = tmp_path / "compare.json"
    code = compare_model_versions_main(["--config-file", str(config), "--report-file", str(report_file)])
    assert code == 0
    report = load_valid_report(report_file)
    assert report["status"] == "passed"
    assert report["Comparison_Summary"]["run_model"] is True
    assert report["Comparison_Summary"]["reg_model"] is True
    for section in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        comparison = report[section]
        assert comparison["equals"] is True
        assert comparison["same_location"] is False
        assert comparison["tracking_server_1"]["files"] == comparison["tracking_server_2"]["files"] == 8
        ignored = {item["field"]: item for item in comparison["ignored"]}
        assert {"run_id", "model_uuid", "utc_time_created"} <= set(ignored)
        assert ignored["run_id"]["left"] == original.run_id
        assert ignored["run_id"]["right"] == copy.run_id
        assert ignored["utc_time_created"]["right"] == "2030-01-02 03:04:05.000000"
    versions = report["Model_Versions"]
    assert versions["tracking_server_1"]["tracking_uri"] == mlflow_server.url
    assert versions["tracking_server_2"]["tracking_uri"] == mlflow_server_2.url


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(_nested_file, [("artifacts/net/weights/layer1.bin", "changed")], id="nested-file"),
        pytest.param(_same_size, [("artifacts/net/weights/layer0.bin", "changed")], id="same-size-bytes"),
        pytest.param(_extra_file, [("artifacts/net/extra.txt", "right_only")], id="extra-file"),
        pytest.param(_missing_file, [("artifacts/net/config/params.json", "left_only")], id="missing-file"),
        pytest.param(_signature, [("MLmodel", "changed")], id="mlmodel-signature"),
    ],
)
def test_tampered_copy_is_different_and_named(
    mlflow_server: MlflowServer,
    mlflow_server_2: MlflowServer,
    original: models.Registered,
    tmp_path: Path,
    tamper: Callable[[Path], None],
    expected: list[tuple[str, str]],
) -> None:
    """Each kind of tampering on the second server: exit 1, and each section names the path with both
    sizes and hashes."""
    copy = models.copy_version(
        mlflow_server.url, original, mlflow_server_2.url, unique("tampered"), tamper=tamper
    )
    config = write_config(
        tmp_path / "config.yaml", side(mlflow_server, original), side(mlflow_server_2, copy)
    )
    report_file = tmp_path / "compare.json"
    run = run_command(
        "compare-model-versions", "--config-file", str(config), "--report-file", str(report_file)
    )
    assert run.exit_code == 1, run.stderr
    report = load_valid_report(report_file)
    assert report["status"] == "failed"
    assert report["Comparison_Summary"] == {
        "run_model": False,
        "reg_model": False,
        "compared": ["run_model", "reg_model"],
        "not_compared": [],
    }
    for section in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        differences = report[section]["differences"]
        assert [(d["path"], d["kind"]) for d in differences] == expected
        for difference in differences:
            for entry in (difference["left"], difference["right"]):
                if entry is not None:
                    assert entry["size"] >= 0
                    assert len(entry["sha256"]) == 64
            if difference["kind"] == "changed":
                assert difference["left"]["sha256"] != difference["right"]["sha256"]
    assert expected[0][0] in run.stdout


def test_same_server_two_versions_with_the_same_files(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """Same server, two versions whose files are byte-identical copies in two locations: equal."""
    name = unique("twins")
    with_files = models.register_run_artifacts(mlflow_server.url, name, source_form="runs")
    files = models.download_version_files(mlflow_server.url, with_files, tmp_path / "files")
    twin = models.register_run_artifacts(mlflow_server.url, name, source_form="location", model_dir=files)
    result = compare_model_versions(
        {"tracking_server_1": side(mlflow_server, with_files), "tracking_server_2": side(mlflow_server, twin)}
    )
    assert result.equals
    for pair in result.comparisons.values():
        assert not pair.same_location
        assert pair.comparison is not None
        assert pair.comparison.ignored == ()
        assert pair.left.local_path != pair.right.local_path


def test_same_location_is_downloaded_once(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """A version copied within the registry shares its storage: one download, same_location reported."""
    original = models.log_sklearn(mlflow_server.url, unique("shared"))
    copied = models._client(mlflow_server.url).copy_model_version(
        f"models:/{original.name}/{original.version}", unique("shared_copy")
    )
    copy = models.Registered(copied.name, str(copied.version), copied.source, copied.run_id)
    config = write_config(tmp_path / "c.yaml", side(mlflow_server, original), side(mlflow_server, copy))
    report_file = tmp_path / "r.json"
    download_dir = tmp_path / "dl"
    assert main(["compare", "--config-file", str(config), "--report-file", str(report_file),
                 "--download-dir", str(download_dir)]) == 0  # fmt: skip
    report = load_valid_report(report_file)
    run_section = report["Run_Model_Comparison"]
    assert run_section["same_location"] is True
    assert run_section["tracking_server_1"]["downloaded"] is True
    assert run_section["tracking_server_2"]["downloaded"] is False
    assert report["Reg_Model_Comparison"]["tracking_server_1"]["downloaded"] is False
    downloaded = [p for p in download_dir.rglob("MLmodel")]
    assert len(downloaded) == 1, downloaded


@pytest.mark.parametrize(
    ("flags", "compared", "absent"),
    [
        pytest.param(["--compare-run-models"], ["run_model"], "Reg_Model_Comparison", id="run-only"),
        pytest.param(["--compare-reg-models"], ["reg_model"], "Run_Model_Comparison", id="reg-only"),
        pytest.param([], ["run_model", "reg_model"], None, id="neither-means-both"),
        pytest.param(
            ["--compare-run-models", "--compare-reg-models"], ["run_model", "reg_model"], None, id="both"
        ),
    ],
)
def test_compare_flags_choose_sections(
    mlflow_server: MlflowServer,
    mlflow_server_2: MlflowServer,
    original: models.Registered,
    tmp_path: Path,
    flags: list[str],
    compared: list[str],
    absent: str | None,
) -> None:
    """--compare-run-models / --compare-reg-models select the sections; the summary says what was left out."""
    copy = models.copy_version(mlflow_server.url, original, mlflow_server_2.url, unique("flags"))
    config = write_config(tmp_path / "c.yaml", side(mlflow_server, original), side(mlflow_server_2, copy))
    report_file = tmp_path / "r.json"
    assert (
        compare_model_versions_main(["--config-file", str(config), "--report-file", str(report_file), *flags])
        == 0
    )
    report = load_valid_report(report_file)
    summary = report["Comparison_Summary"]
    assert summary["compared"] == compared
    for role in compared:
        assert summary[role] is True
    if absent:
        assert absent not in report
        left_out = "reg_model" if absent.startswith("Reg") else "run_model"
        assert summary["not_compared"] == [left_out]
        assert left_out not in summary
    else:
        assert summary["not_compared"] == []


def test_config_from_standard_input(
    mlflow_server: MlflowServer, mlflow_server_2: MlflowServer, original: models.Registered
) -> None:
    """--config-file - reads the YAML from standard input."""
    copy = models.copy_version(mlflow_server.url, original, mlflow_server_2.url, unique("stdin"))
    text = yaml.safe_dump(
        {"tracking_server_1": side(mlflow_server, original), "tracking_server_2": side(mlflow_server_2, copy)}
    )
    completed = subprocess.run(
        [str(BIN / "mlflow-version-check"), "compare", "--config-file", "-", "--compare-reg-models"],
        input=text, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "compare PASSED" in completed.stdout


def test_native_model_auto_from_config(
    mlflow_server: MlflowServer, mlflow_server_2: MlflowServer, tmp_path: Path
) -> None:
    """native_model: auto compares MLmodel and the pickle (the seed's path and hash), not requirements.txt."""
    original = models.log_sklearn(mlflow_server.url, unique("native"))
    copy = models.copy_version(
        mlflow_server.url, original, mlflow_server_2.url, unique("native_copy"),
        tamper=lambda model: (model / "requirements.txt").write_text("something-else\n"),
    )  # fmt: skip
    config = write_config(
        tmp_path / "c.yaml",
        side(mlflow_server, original, native_model="auto"),
        side(mlflow_server_2, copy, native_model="auto"),
    )
    report_file = tmp_path / "r.json"
    assert compare_model_versions_main(["--config-file", str(config), "--report-file", str(report_file)]) == 0
    section = load_valid_report(report_file)["Run_Model_Comparison"]
    assert section["native_model"] == {
        "tracking_server_1": ["MLmodel", "model.pkl"],
        "tracking_server_2": ["MLmodel", "model.pkl"],
        "whole_model": None,
    }
    assert {item["field"] for item in section["ignored"]} >= {"run_id", "utc_time_created"}
    assert Path(section["tracking_server_1"]["path"]).name == "model.pkl"
    assert section["tracking_server_1"]["hash"] == section["tracking_server_2"]["hash"]
    # Without narrowing the same pair differs in requirements.txt: proof the narrowing did the work.
    assert (
        compare_model_versions_main(
            ["--config-file", str(config), "--native-model", ".", "--report-file", str(report_file)]
        )
        == 1
    )
    assert [d["path"] for d in load_valid_report(report_file)["Run_Model_Comparison"]["differences"]] == [
        "requirements.txt"
    ]


SEED_CONFIG = """\
tracking_server_1:
  host: databricks://test_env
  model: Sklearn_Wine
  version_or_stage: staging
  native_model: model.pkl
tracking_server_2:
  host: databricks://prod_env
  model: Sklearn_Wine_Imported
  version_or_stage: staging
  native_model: model.pkl
"""


def test_seed_readme_config_parses() -> None:
    """The original tool's README config (two databricks:// profiles) parses unchanged."""
    config = parse_config(SEED_CONFIG, "config.yaml")
    assert config.tracking_server_1.host == "databricks://test_env"
    assert config.tracking_server_2.model == "Sklearn_Wine_Imported"
    assert config.tracking_server_2.native_model == "model.pkl"
    assert config.tracking_server_1.version_or_stage == "staging"


def test_file_names_with_spaces_and_unicode(
    mlflow_server: MlflowServer, mlflow_server_2: MlflowServer, tmp_path: Path
) -> None:
    """Names with spaces, accents, CJK and URL-special characters are fetched, compared and named:
    an intact copy is equal, a change to one of them is found under its own name."""
    files = {"weights/données 1.bin": b"abc", "a+b=c.txt": b"plus", "sp ace/x y.txt": b"q",
             "日本/語.bin": b"jp", "semi;colon,comma.txt": b"s"}  # fmt: skip
    original = models.log_directory_flavor(mlflow_server.url, unique("unicode"), files=files)

    def tamper(model: Path) -> None:
        next(model.rglob("語.bin")).write_bytes(b"JP")

    intact = models.copy_version(mlflow_server.url, original, mlflow_server_2.url, unique("unicode_copy"))
    changed = models.copy_version(
        mlflow_server.url, original, mlflow_server_2.url, unique("unicode_tampered"), tamper=tamper
    )
    for copy, expected_code in ((intact, 0), (changed, 1)):
        config = write_config(tmp_path / "c.yaml", side(mlflow_server, original), side(mlflow_server_2, copy))
        report_file = tmp_path / f"{copy.name}.json"
        run = run_command(
            "compare-model-versions", "--config-file", str(config), "--report-file", str(report_file)
        )
        assert run.exit_code == expected_code, run.stderr
        report = load_valid_report(report_file)
        section = report["Run_Model_Comparison"]
        assert section["tracking_server_1"]["files"] == section["tracking_server_2"]["files"] >= len(files)
        differences = [(d["path"], d["kind"]) for d in section["differences"]]
        assert differences == ([] if expected_code == 0 else [("artifacts/net/日本/語.bin", "changed")])


def test_names_with_url_syntax_are_fetched_as_named(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """A file named `evil?x` in the server's store, changed between two versions, next to an unchanged
    decoy `evil`: it is fetched under its own name and the change is found (unquoted in the URL it
    would be read from the decoy: a false "equal")."""
    versions = [models.log_sklearn(mlflow_server.url, unique("urlname")) for _ in range(2)]
    for version, content in zip(versions, (b"A" * 64, b"B" * 64), strict=True):
        store = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version)
        (store / "evil?x").write_bytes(content)
        (store / "evil").write_bytes(b"D" * 64)
    config = write_config(
        tmp_path / "c.yaml", side(mlflow_server, versions[0]), side(mlflow_server, versions[1])
    )
    report_file = tmp_path / "r.json"
    run = run_command(
        "compare-model-versions", "--config-file", str(config), "--compare-run-models",
        "--report-file", str(report_file),
    )  # fmt: skip
    assert run.exit_code == 1, run.stdout + run.stderr
    section = load_valid_report(report_file)["Run_Model_Comparison"]
    assert [(d["path"], d["kind"]) for d in section["differences"]] == [("evil?x", "changed")]


def test_a_name_the_server_lists_as_another_is_refused(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """A stored `evil%41` next to `evilA`: MLflow's server lists both as `evilA`; the check refuses the
    listing (exit 3) instead of comparing the decoy twice and passing a changed file."""
    version = models.log_sklearn(mlflow_server.url, unique("decoded"))
    store = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version)
    (store / "evil%41").write_bytes(b"changed")
    (store / "evilA").write_bytes(b"decoy")
    run = run_command(
        "check-model-version", "--model", version.name, "--version-or-stage", version.version,
        "--tracking-uri", mlflow_server.url, "--report-file", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert run.exit_code == 3, run.stdout + run.stderr
    assert "'evilA' twice" in run.stderr
    assert load_valid_report(tmp_path / "r.json")["error"]["type"] == "UnsafeArtifactPath"
