"""`--native-model auto` covers what MLflow reads to load the model: MLmodel, the native files, `code/`,
a python_model's pickle and artifacts; a loader this tool does not know means the whole model."""

from __future__ import annotations

import copy
import hashlib
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlflow_version_check.core import compare_pair
from mlflow_version_check.integrity import check_integrity
from mlflow_version_check.manifest import FileEntry
from mlflow_version_check.results import DownloadedModel, ModelComparison
from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.conftest import load_valid_report, run_command

# ---------------------------------------------------------------------------------------------------
# Pure comparisons: manifests and MLmodel texts, no server.

SKLEARN_MLMODEL: dict[str, Any] = {
    "artifact_path": "model",
    "flavors": {
        "python_function": {
            "code": "code",
            "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
            "loader_module": "mlflow.sklearn",
            "model_path": "model.pkl",
            "predict_fn": "predict",
            "python_version": "3.11.7",
        },
        "sklearn": {
            "code": "code",
            "pickled_model": "model.pkl",
            "serialization_format": "cloudpickle",
            "sklearn_version": "1.5.0",
        },
    },
    "mlflow_version": "3.17.2",
    "model_id": "m-0123456789abcdef",
    "model_size_bytes": 40,
    "model_uuid": "0123456789abcdef0123456789abcdef",
    "run_id": "0123456789abcdef0123456789abcdef",
    "utc_time_created": "2026-01-01 10:00:00.000000",
}

SKLEARN_FILES: dict[str, bytes] = {
    "model.pkl": b"pickled estimator",
    "conda.yaml": b"name: env\n",
    "python_env.yaml": b"python: 3.11\n",
    "requirements.txt": b"scikit-learn\n",
    "code/helpers/util.py": b"SCALE = 2\n",
}


def model_files(mlmodel: dict[str, Any], files: dict[str, bytes]) -> dict[str, bytes]:
    return {"MLmodel": yaml.safe_dump(mlmodel).encode(), **files}


def sklearn_model() -> tuple[dict[str, Any], dict[str, bytes]]:
    """A fresh, mutable sklearn model: its MLmodel as a mapping and its other files."""
    return copy.deepcopy(SKLEARN_MLMODEL), dict(SKLEARN_FILES)


def as_copy(mlmodel: dict[str, Any]) -> dict[str, Any]:
    """The MLmodel of a copy on another server: new identity fields, as an export/import writes it."""
    return {
        **copy.deepcopy(mlmodel),
        "run_id": "fedcba9876543210fedcba9876543210",
        "model_id": "m-fedcba9876543210",
        "model_uuid": "ffffffffffffffffffffffffffffffff",
        "utc_time_created": "2030-01-02 03:04:05.000000",
    }


def downloaded(side: str, files: dict[str, bytes]) -> DownloadedModel:
    manifest = {
        path: FileEntry(size=len(data), sha256=hashlib.sha256(data).hexdigest())
        for path, data in files.items()
    }
    mlmodel = files["MLmodel"].decode() if "MLmodel" in files else None
    return DownloadedModel(
        role="run_model",
        uri=f"runs:/{side}/model",
        location=f"mlflow-artifacts:/{side}/model",
        local_path=f"/downloads/{side}",
        manifest=manifest,
        mlmodel_text=mlmodel,
        integrity=check_integrity(manifest, mlmodel),
        download_seconds=0.0,
    )


def compare(
    left: dict[str, bytes],
    right: dict[str, bytes],
    *,
    left_native: str = "auto",
    right_native: str | None = None,
    strict: bool = False,
) -> ModelComparison:
    return compare_pair(
        "run_model",
        downloaded("left", left),
        downloaded("right", right),
        strict=strict,
        left_native=left_native,
        right_native=right_native,
    )


def differences(pair: ModelComparison) -> list[tuple[str, str]]:
    assert pair.comparison is not None
    return [(d.path, d.kind) for d in pair.comparison.differences]


def test_auto_covers_mlmodel_and_code_and_keeps_the_native_files_hash() -> None:
    """An intact copy is equal under auto, which covers MLmodel, code/ and the pickle (the seed's hash)."""
    mlmodel, files = sklearn_model()
    pair = compare(model_files(mlmodel, files), model_files(as_copy(mlmodel), files))
    assert pair.equals
    assert pair.native_paths == (("MLmodel", "code", "model.pkl"), ("MLmodel", "code", "model.pkl"))
    assert pair.native_whole_model is None
    assert pair.comparison is not None
    assert {item.field for item in pair.comparison.ignored} >= {"run_id", "model_id", "utc_time_created"}
    assert pair.left_summary.files == 3
    assert pair.left_summary.native_path == "model.pkl"
    assert pair.left_summary.hash == hashlib.sha256(files["model.pkl"]).hexdigest()


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        pytest.param("code/helpers/evil.py", b"import os\n", "right_only", id="module-added"),
        pytest.param("code/helpers/util.py", b"SCALE = 3\n", "changed", id="module-changed"),
        pytest.param("code/sitecustomize.py", b"import os\n", "right_only", id="top-level-module-added"),
    ],
)
def test_auto_catches_a_change_in_code(path: str, data: bytes, expected: str) -> None:
    """MLflow puts code/ on sys.path when it loads the model: a module added or changed there differs."""
    mlmodel, files = sklearn_model()
    pair = compare(model_files(mlmodel, files), model_files(as_copy(mlmodel), {**files, path: data}))
    assert not pair.equals
    assert differences(pair) == [(path, expected)]


def _loader_module(mlmodel: dict[str, Any], files: dict[str, bytes]) -> None:
    mlmodel["flavors"]["python_function"]["loader_module"] = "mlflow.xgboost"


def _model_path(mlmodel: dict[str, Any], files: dict[str, bytes]) -> None:
    mlmodel["flavors"]["python_function"]["model_path"] = "model_v2.pkl"


def _model_path_to_a_new_file(mlmodel: dict[str, Any], files: dict[str, bytes]) -> None:
    _model_path(mlmodel, files)
    files["model_v2.pkl"] = files["model.pkl"]


def _native_file_renamed(mlmodel: dict[str, Any], files: dict[str, bytes]) -> None:
    mlmodel["flavors"]["python_function"]["model_path"] = "other.pkl"
    mlmodel["flavors"]["sklearn"]["pickled_model"] = "other.pkl"
    files["other.pkl"] = files.pop("model.pkl")


def _serialization_format(mlmodel: dict[str, Any], files: dict[str, bytes]) -> None:
    mlmodel["flavors"]["sklearn"]["serialization_format"] = "pickle"


@pytest.mark.parametrize(
    ("tamper", "both_have", "key", "extra"),
    [
        pytest.param(_loader_module, {}, "flavors.python_function.loader_module", [], id="loader-module"),
        pytest.param(
            _model_path,
            {"model_v2.pkl": b"another estimator"},
            "flavors.python_function.model_path",
            [],
            id="model-path-to-an-equal-file-on-both-sides",
        ),
        pytest.param(
            _model_path_to_a_new_file,
            {},
            "flavors.python_function.model_path",
            [("model_v2.pkl", "right_only")],
            id="model-path-to-a-file-of-the-copy-only",
        ),
        pytest.param(
            _native_file_renamed,
            {},
            "flavors.sklearn.pickled_model",
            [("model.pkl", "left_only"), ("other.pkl", "right_only")],
            id="each-side-names-its-own-equal-file",
        ),
        pytest.param(
            _serialization_format, {}, "flavors.sklearn.serialization_format", [], id="serialization-format"
        ),
    ],
)
def test_auto_counts_what_mlmodel_tells_the_loader(
    tamper: Callable[[dict[str, Any], dict[str, bytes]], None],
    both_have: dict[str, bytes],
    key: str,
    extra: list[tuple[str, str]],
) -> None:
    """An MLmodel that loads the model another way differs in MLmodel, and the note names the key."""
    mlmodel, files = sklearn_model()
    files.update(both_have)
    changed_mlmodel, changed_files = as_copy(mlmodel), dict(files)
    tamper(changed_mlmodel, changed_files)
    pair = compare(model_files(mlmodel, files), model_files(changed_mlmodel, changed_files))
    assert not pair.equals
    assert differences(pair) == [("MLmodel", "changed"), *extra]
    assert pair.comparison is not None
    note = pair.comparison.differences[0].note
    assert note is not None and key in note


def test_auto_under_strict_counts_mlmodels_identity_fields() -> None:
    """--strict with auto compares MLmodel as bytes too: a copy's new run id is a difference."""
    mlmodel, files = sklearn_model()
    pair = compare(model_files(mlmodel, files), model_files(as_copy(mlmodel), files), strict=True)
    assert differences(pair) == [("MLmodel", "changed")]


UNKNOWN_FLAVOR = {"my_flavor": {"weights": "data/weights.bin", "threshold": 0.5}}


@pytest.mark.parametrize(
    ("left_flavors", "right_flavors", "expected"),
    [
        pytest.param(
            UNKNOWN_FLAVOR, UNKNOWN_FLAVOR, [("lookup.csv", "changed")], id="unknown-flavor-on-both-sides"
        ),
        pytest.param(
            {}, UNKNOWN_FLAVOR, [("MLmodel", "changed"), ("lookup.csv", "changed")], id="added-to-the-copy"
        ),
    ],
)
def test_auto_with_an_unknown_flavor_compares_the_whole_model(
    left_flavors: dict[str, Any], right_flavors: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    """A flavor whose loader this tool does not know: the whole model is compared, and it says why."""
    mlmodel, files = sklearn_model()
    files.update({"data/weights.bin": b"w", "lookup.csv": b"a,b\n"})
    left_mlmodel, right_mlmodel = copy.deepcopy(mlmodel), as_copy(mlmodel)
    left_mlmodel["flavors"].update(left_flavors)
    right_mlmodel["flavors"].update(right_flavors)
    pair = compare(
        model_files(left_mlmodel, files), model_files(right_mlmodel, {**files, "lookup.csv": b"a,c\n"})
    )
    assert not pair.equals
    assert differences(pair) == expected
    assert pair.native_whole_model is not None and "my_flavor" in pair.native_whole_model
    assert pair.native_paths == ((), ())
    assert pair.left_summary.files == len(files) + 1


def test_auto_with_a_loader_module_it_does_not_know_compares_the_whole_model() -> None:
    """A custom python_function loader_module (code of the user's) may read any file of the model."""
    mlmodel: dict[str, Any] = {
        "flavors": {
            "python_function": {"code": "code", "data": "data/data", "loader_module": "my_loader"},
        },
        "run_id": "0123456789abcdef0123456789abcdef",
    }
    files = {
        "code/my_loader.py": b"def _load_pyfunc(path): ...\n",
        "data/data/w.txt": b"w",
        "vocab.txt": b"a",
    }
    pair = compare(model_files(mlmodel, files), model_files(mlmodel, {**files, "vocab.txt": b"b"}))
    assert not pair.equals
    assert differences(pair) == [("vocab.txt", "changed")]
    assert pair.native_whole_model is not None and "my_loader" in pair.native_whole_model


@pytest.mark.parametrize(
    "mlmodel_text",
    [
        pytest.param(None, id="no-mlmodel"),
        pytest.param("flavors: [unclosed\n", id="mlmodel-does-not-parse"),
        pytest.param("flavors: {}\n", id="no-flavors"),
    ],
)
def test_auto_without_a_readable_mlmodel_compares_the_whole_model(mlmodel_text: str | None) -> None:
    """Without flavors to read, nothing says what the loader loads: the whole model is compared."""
    files = {"model.pkl": b"m", "extra.bin": b"x"}
    if mlmodel_text is not None:
        files["MLmodel"] = mlmodel_text.encode()
    pair = compare(files, {**files, "extra.bin": b"y"})
    assert differences(pair) == [("extra.bin", "changed")]
    assert pair.native_whole_model


def test_auto_normalises_the_paths_mlmodel_names() -> None:
    """`./model.pkl` is the file MLflow loads: it is compared, not silently matched to nothing."""
    mlmodel, files = sklearn_model()
    mlmodel["flavors"]["sklearn"]["pickled_model"] = "./model.pkl"
    mlmodel["flavors"]["python_function"]["model_path"] = "model.pkl/"
    pair = compare(model_files(mlmodel, files), model_files(mlmodel, {**files, "model.pkl": b"other"}))
    assert differences(pair) == [("model.pkl", "changed")]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("../shared/model.pkl", id="parent-folder"),
        pytest.param("/opt/models/model.pkl", id="absolute"),
        pytest.param("s3://bucket/model.pkl", id="uri"),
    ],
)
def test_auto_with_a_path_outside_the_model_compares_the_whole_model(value: str) -> None:
    """A native file outside the model cannot be narrowed to: the whole model is compared, and why."""
    mlmodel, files = sklearn_model()
    mlmodel["flavors"]["sklearn"]["pickled_model"] = value
    pair = compare(model_files(mlmodel, files), model_files(mlmodel, {**files, "conda.yaml": b"x"}))
    assert differences(pair) == [("conda.yaml", "changed")]
    assert pair.native_whole_model is not None and value in pair.native_whole_model


def test_auto_compares_a_models_from_code_file() -> None:
    """A models-from-code pyfunc loads <model root>/<basename of model_code_path>: that file counts."""
    mlmodel = {
        "flavors": {
            "python_function": {
                "code": "code",
                "loader_module": "mlflow.pyfunc.loaders.code_model",
                "model_code_path": "/tmp/build/agent.py",
            }
        }
    }
    files = {"agent.py": b"set_model(Agent())\n", "code/tools.py": b"", "requirements.txt": b"mlflow\n"}
    changed = compare(model_files(mlmodel, files), model_files(mlmodel, {**files, "agent.py": b"evil()\n"}))
    assert differences(changed) == [("agent.py", "changed")]
    assert changed.native_paths == (("MLmodel", "agent.py", "code"), ("MLmodel", "agent.py", "code"))


def test_auto_follows_a_key_it_does_not_know_in_a_known_flavor() -> None:
    """A file a known flavor names under a key this tool does not list (a newer MLflow's) is compared."""
    mlmodel, files = sklearn_model()
    mlmodel["flavors"]["sklearn"]["calibration"] = {"file": "calibration.bin"}
    files["calibration.bin"] = b"c"
    pair = compare(model_files(mlmodel, files), model_files(mlmodel, {**files, "calibration.bin": b"d"}))
    assert differences(pair) == [("calibration.bin", "changed")]


def test_auto_uses_the_file_a_loader_falls_back_to() -> None:
    """catboost without a `data` key loads model.cb: auto compares it."""
    mlmodel = {"flavors": {"catboost": {"model_type": "CatBoostClassifier", "save_format": "cbm"}}}
    files = {"model.cb": b"trees", "requirements.txt": b"catboost\n"}
    pair = compare(model_files(mlmodel, files), model_files(mlmodel, {**files, "model.cb": b"TREES"}))
    assert differences(pair) == [("model.cb", "changed")]


def test_auto_on_one_side_and_a_path_on_the_other_compare_the_same_files() -> None:
    """auto on one server and model.pkl on the other: both sides compare the same files, MLmodel too."""
    mlmodel, files = sklearn_model()
    changed = as_copy(mlmodel)
    changed["flavors"]["python_function"]["loader_module"] = "mlflow.xgboost"
    pair = compare(
        model_files(mlmodel, files), model_files(changed, files), left_native="model.pkl", right_native="auto"
    )
    assert differences(pair) == [("MLmodel", "changed")]
    assert pair.native_paths == (("MLmodel", "code", "model.pkl"), ("MLmodel", "code", "model.pkl"))


# ---------------------------------------------------------------------------------------------------
# End to end: real servers, models logged through MLflow, the CLI in its own process.


def log_sklearn_with_code(tracking_uri: str, name: str) -> models.Registered:
    """An sklearn model logged with code_paths (a helpers package under code/), registered."""
    import mlflow

    client = models._client(tracking_uri)
    with tempfile.TemporaryDirectory() as scratch:
        helpers = Path(scratch) / "helpers"
        helpers.mkdir()
        (helpers / "__init__.py").write_text("")
        (helpers / "features.py").write_text("def scale(x):\n    return x * 2\n")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mlflow.start_run():
                info = mlflow.sklearn.log_model(
                    models.fit_sklearn(),
                    name="model",
                    registered_model_name=name,
                    serialization_format="cloudpickle",
                    pip_requirements=models.PIP_REQUIREMENTS,
                    code_paths=[str(helpers)],
                )
    return models._registered(client, name, str(info.registered_model_version))


def log_custom_flavor(tracking_uri: str, name: str) -> models.Registered:
    """A model with its own flavor ("my_flavor") and pyfunc loader, saved by MLflow and registered."""
    import mlflow
    from mlflow.models import Model

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "source"
        (source / "data").mkdir(parents=True)
        (source / "data" / "weights.txt").write_text("0.5\n")
        (source / "my_loader.py").write_text("def _load_pyfunc(path):\n    return None\n")
        mlflow_model = Model()
        mlflow_model.add_flavor("my_flavor", weights="data/data/weights.txt")
        saved = Path(scratch) / "model"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.pyfunc.save_model(
                str(saved),
                loader_module="my_loader",
                data_path=str(source / "data"),
                code_paths=[str(source / "my_loader.py")],
                mlflow_model=mlflow_model,
                pip_requirements=["numpy"],
            )
        (saved / "lookup.csv").write_text("label,id\ncat,1\n")
        return models.register_run_artifacts(tracking_uri, name, source_form="runs", model_dir=saved)


def compare_with_auto(
    server_1: MlflowServer,
    original: models.Registered,
    server_2: MlflowServer,
    copy_: models.Registered,
    tmp: Path,
) -> tuple[int, str, dict[str, Any]]:
    config = tmp / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "tracking_server_1": {
                    "host": server_1.url,
                    "model": original.name,
                    "version_or_stage": original.version,
                },
                "tracking_server_2": {
                    "host": server_2.url,
                    "model": copy_.name,
                    "version_or_stage": copy_.version,
                },
            }
        )
    )
    report_file = tmp / "compare.json"
    run = run_command(
        "mlflow-version-check", "compare", "--config-file", str(config), "--native-model", "auto",
        "--report-file", str(report_file),
    )  # fmt: skip
    assert run.exit_code in (0, 1), run.stderr
    return run.exit_code, run.stdout, load_valid_report(report_file)


@pytest.mark.server
def test_cli_auto_finds_a_module_added_to_code(
    mlflow_server: MlflowServer, mlflow_server_2: MlflowServer, tmp_path: Path
) -> None:
    """A copy of an sklearn model with one more module under code/: compare --native-model auto fails."""
    original = log_sklearn_with_code(mlflow_server.url, unique("with_code"))

    def tamper(model: Path) -> None:
        (model / "code" / "helpers" / "patch.py").write_text("import os\n")

    copied = models.copy_version(
        mlflow_server.url, original, mlflow_server_2.url, unique("code_copy"), tamper=tamper
    )
    code, stdout, report = compare_with_auto(mlflow_server, original, mlflow_server_2, copied, tmp_path)
    assert code == 1
    assert report["status"] == "failed"
    for name in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        section = report[name]
        assert [(d["path"], d["kind"]) for d in section["differences"]] == [
            ("code/helpers/patch.py", "right_only")
        ]
        assert section["native_model"]["whole_model"] is None
        assert "code" in section["native_model"]["tracking_server_1"]
        assert Path(section["tracking_server_1"]["path"]).name == "model.pkl"
    assert "code/helpers/patch.py" in stdout


def _copy_loads_another_module(model: Path) -> None:
    mlmodel = yaml.safe_load((model / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"]["loader_module"] = "mlflow.xgboost"
    (model / "MLmodel").write_text(yaml.safe_dump(mlmodel))


def _copy_loads_another_file(model: Path) -> None:
    mlmodel = yaml.safe_load((model / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"]["model_path"] = "model_v2.pkl"
    (model / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    shutil.copyfile(model / "model.pkl", model / "model_v2.pkl")


@pytest.mark.server
@pytest.mark.parametrize(
    ("tamper", "key", "expected"),
    [
        pytest.param(
            _copy_loads_another_module,
            "flavors.python_function.loader_module",
            [("MLmodel", "changed")],
            id="loader-module",
        ),
        pytest.param(
            _copy_loads_another_file,
            "flavors.python_function.model_path",
            [("MLmodel", "changed"), ("model_v2.pkl", "right_only")],
            id="model-path",
        ),
    ],
)
def test_cli_auto_finds_a_changed_loader_in_mlmodel(
    mlflow_server: MlflowServer,
    mlflow_server_2: MlflowServer,
    tmp_path: Path,
    tamper: Callable[[Path], None],
    key: str,
    expected: list[tuple[str, str]],
) -> None:
    """A copy whose MLmodel names another loader or model file: auto fails, naming MLmodel and the key."""
    original = models.log_sklearn(mlflow_server.url, unique("loader"))
    copied = models.copy_version(
        mlflow_server.url, original, mlflow_server_2.url, unique("loader_copy"), tamper=tamper
    )
    code, stdout, report = compare_with_auto(mlflow_server, original, mlflow_server_2, copied, tmp_path)
    assert code == 1
    for name in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        section = report[name]
        assert [(d["path"], d["kind"]) for d in section["differences"]] == expected
        assert key in section["differences"][0]["note"]
    assert key in stdout


@pytest.mark.server
def test_cli_auto_with_an_unknown_flavor_compares_the_whole_model(
    mlflow_server: MlflowServer, mlflow_server_2: MlflowServer, tmp_path: Path
) -> None:
    """An unknown flavor: auto compares the whole model, a change anywhere fails, the report says why."""
    original = log_custom_flavor(mlflow_server.url, unique("custom"))

    def tamper(model: Path) -> None:
        (model / "lookup.csv").write_text("label,id\ncat,2\n")

    copied = models.copy_version(
        mlflow_server.url, original, mlflow_server_2.url, unique("custom_copy"), tamper=tamper
    )
    code, stdout, report = compare_with_auto(mlflow_server, original, mlflow_server_2, copied, tmp_path)
    assert code == 1
    assert "run_model native model: the whole model was compared" in stdout  # the reader is told too
    for name in ("Run_Model_Comparison", "Reg_Model_Comparison"):
        section = report[name]
        assert [(d["path"], d["kind"]) for d in section["differences"]] == [("lookup.csv", "changed")]
        native = section["native_model"]
        assert "my_flavor" in native["whole_model"]
        assert native["tracking_server_1"] == native["tracking_server_2"] == []
        assert section["tracking_server_1"]["files"] == section["tracking_server_2"]["files"] >= 6
