"""The comparison engine on real local trees: every kind of change gets the right verdict and path."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mlflow_version_check.comparison import (
    MLMODEL_IDENTITY_FIELDS,
    compare_trees,
    narrow_both,
    native_model_paths,
)
from mlflow_version_check.errors import NativeModelNotFound
from mlflow_version_check.manifest import FileEntry, hash_file, manifest_of_directory, tree_digest

MLMODEL = """\
artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.0
mlflow_version: 3.17.2
model_id: m-0123456789abcdef
model_size_bytes: 6
model_uuid: 0123456789abcdef0123456789abcdef
run_id: 0123456789abcdef0123456789abcdef
signature:
  inputs: '[{"type": "double", "name": "x"}]'
  outputs: '[{"type": "double"}]'
utc_time_created: '2026-01-01 10:00:00.000000'
"""


def make_model(root: Path) -> Path:
    files = {
        "MLmodel": MLMODEL,
        "model.pkl": "pickle",
        "conda.yaml": "name: env\n",
        "python_env.yaml": "python: 3.11\n",
        "requirements.txt": "scikit-learn\n",
        "data/weights/layer0.bin": "abcdefgh",
        "data/weights/layer1.bin": "ijklmnop",
        "data/empty.txt": "",
    }
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    left = make_model(tmp_path / "left")
    right = tmp_path / "right"
    shutil.copytree(left, right)
    return left, right


def compare_dirs(left: Path, right: Path, *, strict: bool = False):  # type: ignore[no-untyped-def]
    return compare_trees(
        manifest_of_directory(left),
        manifest_of_directory(right),
        left_mlmodel=(left / "MLmodel").read_text() if (left / "MLmodel").exists() else None,
        right_mlmodel=(right / "MLmodel").read_text() if (right / "MLmodel").exists() else None,
        strict=strict,
    )


def test_identical_trees_are_equal(trees: tuple[Path, Path]) -> None:
    """A byte-for-byte copy is equal, with no differences and nothing ignored."""
    comparison = compare_dirs(*trees)
    assert comparison.equals
    assert comparison.differences == ()
    assert comparison.ignored == ()
    assert comparison.left.tree_sha256 == comparison.right.tree_sha256
    assert comparison.left.files == 8


def _change_nested(root: Path) -> None:
    (root / "data/weights/layer1.bin").write_text("ijklmnoX")


def _same_size_same_mtime(root: Path) -> None:
    target = root / "data/weights/layer0.bin"
    stat = target.stat()
    target.write_text("abcdefgX")  # same length
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _add(root: Path) -> None:
    (root / "data/weights/extra.bin").write_text("new")


def _remove(root: Path) -> None:
    (root / "data/weights/layer1.bin").unlink()


def _rename(root: Path) -> None:
    (root / "data/weights/layer1.bin").rename(root / "data/weights/layer1.old")


def _empty_vs_missing(root: Path) -> None:
    (root / "data/empty.txt").unlink()


def _signature(root: Path) -> None:
    text = (root / "MLmodel").read_text().replace('"name": "x"', '"name": "y"')
    (root / "MLmodel").write_text(text)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(_change_nested, [("data/weights/layer1.bin", "changed")], id="nested-file-changed"),
        pytest.param(
            _same_size_same_mtime, [("data/weights/layer0.bin", "changed")], id="same-size-same-mtime"
        ),
        pytest.param(_add, [("data/weights/extra.bin", "right_only")], id="added-file"),
        pytest.param(_remove, [("data/weights/layer1.bin", "left_only")], id="removed-file"),
        pytest.param(
            _rename,
            [("data/weights/layer1.bin", "left_only"), ("data/weights/layer1.old", "right_only")],
            id="renamed-file",
        ),
        pytest.param(_empty_vs_missing, [("data/empty.txt", "left_only")], id="empty-file-vs-missing"),
        pytest.param(_signature, [("MLmodel", "changed")], id="mlmodel-signature"),
    ],
)
def test_each_change_is_different_and_named(
    trees: tuple[Path, Path], mutate: Callable[[Path], None], expected: list[tuple[str, str]]
) -> None:
    """Every kind of change makes the trees different and names the path and kind."""
    left, right = trees
    mutate(right)
    comparison = compare_dirs(left, right)
    assert not comparison.equals
    assert [(d.path, d.kind) for d in comparison.differences] == expected
    for difference in comparison.differences:
        if difference.kind == "changed":
            assert difference.left is not None and difference.right is not None
            assert difference.left.sha256 != difference.right.sha256
    assert comparison.left.tree_sha256 != comparison.right.tree_sha256


def test_same_size_change_keeps_size_but_not_hash(trees: tuple[Path, Path]) -> None:
    """The same-size change is caught by content, not by size or time."""
    left, right = trees
    _same_size_same_mtime(right)
    (difference,) = compare_dirs(left, right).differences
    assert difference.left is not None and difference.right is not None
    assert difference.left.size == difference.right.size


def test_signature_change_note_names_the_field(trees: tuple[Path, Path]) -> None:
    """A semantic MLmodel difference names the key that differs, down to the nested key."""
    left, right = trees
    _signature(right)
    (difference,) = compare_dirs(left, right).differences
    assert difference.note == "MLmodel differs in: signature.inputs"


def _rewrite_identity(root: Path) -> None:
    text = (root / "MLmodel").read_text()
    for old, new in [
        ("run_id: 0123456789abcdef0123456789abcdef", "run_id: fedcba9876543210fedcba9876543210"),
        ("model_id: m-0123456789abcdef", "model_id: m-fedcba9876543210"),
        ("model_uuid: 0123456789abcdef0123456789abcdef", "model_uuid: ffffffffffffffffffffffffffffffff"),
        ("'2026-01-01 10:00:00.000000'", "'2026-06-30 12:34:56.000000'"),
        ("artifact_path: model", "artifact_path: imported"),
    ]:
        assert old in text
        text = text.replace(old, new)
    (root / "MLmodel").write_text(text)


def test_mlmodel_identity_fields_are_ignored_and_reported(trees: tuple[Path, Path]) -> None:
    """A copy's new run id, model id, uuid, time and path: equal, each listed with both values."""
    left, right = trees
    _rewrite_identity(right)
    comparison = compare_dirs(left, right)
    assert comparison.equals
    ignored = {item.field: (item.left, item.right) for item in comparison.ignored}
    assert set(ignored) == {"run_id", "model_id", "model_uuid", "utc_time_created", "artifact_path"}
    assert ignored["run_id"] == ("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210")
    assert ignored["utc_time_created"] == ("2026-01-01 10:00:00.000000", "2026-06-30 12:34:56.000000")
    assert all(
        item.path == "MLmodel" and item.rule == "mlmodel-identity-field" for item in comparison.ignored
    )
    assert set(ignored) <= set(MLMODEL_IDENTITY_FIELDS)


def test_strict_counts_identity_fields(trees: tuple[Path, Path]) -> None:
    """--strict compares bytes only, so the rewritten MLmodel is a difference."""
    left, right = trees
    _rewrite_identity(right)
    comparison = compare_dirs(left, right, strict=True)
    assert not comparison.equals
    assert [(d.path, d.kind) for d in comparison.differences] == [("MLmodel", "changed")]
    assert comparison.ignored == ()


def test_identity_and_signature_change_together_is_different(trees: tuple[Path, Path]) -> None:
    """Ignoring identity fields never hides another change in the same file."""
    left, right = trees
    _rewrite_identity(right)
    _signature(right)
    comparison = compare_dirs(left, right)
    assert not comparison.equals
    assert comparison.differences[0].note == "MLmodel differs in: signature.inputs"


def test_unparseable_mlmodel_is_different(trees: tuple[Path, Path]) -> None:
    """An MLmodel that is not YAML cannot be compared semantically: different."""
    left, right = trees
    (right / "MLmodel").write_text("flavors: [unclosed\n")
    comparison = compare_dirs(left, right)
    assert not comparison.equals
    assert "does not parse" in (comparison.differences[0].note or "")


def test_registered_model_meta_is_ignored_and_reported(trees: tuple[Path, Path]) -> None:
    """MLflow's registered_model_meta in a models:/ download is not part of the model."""
    left, right = trees
    (right / "registered_model_meta").write_text("model_name: x\nmodel_version: '1'\n")
    comparison = compare_dirs(left, right)
    assert comparison.equals
    assert [(i.path, i.rule, i.left, i.right) for i in comparison.ignored] == [
        ("registered_model_meta", "registry-download-metadata", "absent", "present")
    ]
    assert compare_dirs(left, right, strict=True).differences[0].path == "registered_model_meta"


def test_tree_digest_covers_names(tmp_path: Path) -> None:
    """Two trees with the same bytes under different names have different digests."""
    entry = hash_file(make_model(tmp_path / "m") / "model.pkl")
    assert tree_digest([("a.bin", entry)]) != tree_digest([("b.bin", entry)])
    assert tree_digest([("a", entry), ("b", entry)]) == tree_digest([("b", entry), ("a", entry)])


def test_hash_file_streams_large_files(tmp_path: Path) -> None:
    """A file larger than the hashing chunk hashes to hashlib's answer."""
    import hashlib

    data = os.urandom(3 * 1024 * 1024 + 17)
    target = tmp_path / "big.bin"
    target.write_bytes(data)
    entry = hash_file(target)
    assert entry.size == len(data)
    assert entry.sha256 == hashlib.sha256(data).hexdigest()


def test_symlink_in_tree_is_refused(trees: tuple[Path, Path]) -> None:
    """A symlink is never followed: it could point outside the model."""
    left, _ = trees
    (left / "link.pkl").symlink_to(left / "model.pkl")
    with pytest.raises(ValueError, match=r"link\.pkl is not a regular file"):
        manifest_of_directory(left)


PYTHON_MODEL_MLMODEL = """\
flavors:
  python_function:
    artifacts:
      net:
        path: artifacts/net
        uri: /tmp/somewhere/net
    code: null
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
"""


def test_native_model_auto_finds_pickled_model() -> None:
    """auto reads the model's own flavor first (sklearn pickled_model)."""
    assert native_model_paths(MLMODEL) == ("model.pkl",)
    assert native_model_paths("flavors:\n  python_function:\n    model_path: net\n") == ("net",)
    assert native_model_paths("not: [yaml") == ()


def test_native_model_auto_keeps_a_python_models_artifacts() -> None:
    """A custom python_model's weights live in its artifacts: auto keeps them with the pickle."""
    assert native_model_paths(PYTHON_MODEL_MLMODEL) == ("python_model.pkl", "artifacts/net")


def test_native_model_narrows_to_one_file(trees: tuple[Path, Path]) -> None:
    """--native-model model.pkl ignores a difference elsewhere and reports the file's own hash."""
    left, right = trees
    _change_nested(right)
    manifest_left, manifest_right = manifest_of_directory(left), manifest_of_directory(right)
    narrowed = narrow_both(
        manifest_left, manifest_right, "model.pkl", left_mlmodel=MLMODEL, right_mlmodel=MLMODEL
    )
    assert narrowed.left_paths == narrowed.right_paths == ("model.pkl",)
    comparison = compare_trees(narrowed.left, narrowed.right)
    assert comparison.equals
    assert comparison.left.hash == manifest_left["model.pkl"].sha256


def test_native_model_folder_catches_nested_change(trees: tuple[Path, Path]) -> None:
    """A folder as native model still compares every file inside it."""
    left, right = trees
    _change_nested(right)
    narrowed = narrow_both(
        manifest_of_directory(left),
        manifest_of_directory(right),
        "data/",
        left_mlmodel=None,
        right_mlmodel=None,
    )
    comparison = compare_trees(narrowed.left, narrowed.right)
    assert [d.path for d in comparison.differences] == ["data/weights/layer1.bin"]


def test_native_model_missing_everywhere_is_a_usage_error(trees: tuple[Path, Path]) -> None:
    """A native path in neither model is a wrong option (exit 2), not a silent pass."""
    left, right = trees
    with pytest.raises(NativeModelNotFound) as caught:
        narrow_both(
            manifest_of_directory(left),
            manifest_of_directory(right),
            "nope.pkl",
            left_mlmodel=None,
            right_mlmodel=None,
        )
    assert caught.value.exit_code == 2


def test_native_model_missing_on_one_side_is_a_difference(trees: tuple[Path, Path]) -> None:
    """The native file missing from one copy is a difference, never an error or a pass."""
    left, right = trees
    (right / "model.pkl").unlink()
    narrowed = narrow_both(
        manifest_of_directory(left),
        manifest_of_directory(right),
        "model.pkl",
        left_mlmodel=None,
        right_mlmodel=None,
    )
    comparison = compare_trees(narrowed.left, narrowed.right)
    assert [(d.path, d.kind) for d in comparison.differences] == [("model.pkl", "left_only")]


def test_integrity_follows_a_python_models_artifacts() -> None:
    """Integrity checks the pickled class and each artifact folder that MLmodel names."""
    from mlflow_version_check.integrity import check_integrity
    from mlflow_version_check.manifest import FileEntry

    entry = FileEntry(size=1, sha256="0" * 64)
    complete = {"MLmodel": entry, "python_model.pkl": entry, "artifacts/net/weights.bin": entry}
    report = check_integrity(complete, PYTHON_MODEL_MLMODEL)
    assert report.ok
    assert {(ref.key, ref.path) for ref in report.references} == {
        ("flavors.python_function.artifacts.net.path", "artifacts/net"),
        ("flavors.python_function.python_model", "python_model.pkl"),
    }
    missing = {"MLmodel": entry, "python_model.pkl": entry}
    broken = check_integrity(missing, PYTHON_MODEL_MLMODEL)
    assert not broken.ok
    assert broken.problems == (
        "MLmodel names artifacts/net (flavors.python_function.artifacts.net.path) "
        "but the model has no such file or folder",
    )


def test_mlmodel_reformatted_is_equal_and_reported(trees: tuple[Path, Path]) -> None:
    """MLmodel with other bytes but the same content (key order, quoting): equal, and said so."""
    import yaml

    left, right = trees
    content = yaml.safe_load((right / "MLmodel").read_text())
    (right / "MLmodel").write_text(yaml.safe_dump(content, sort_keys=False, default_style='"'))
    comparison = compare_dirs(left, right)
    assert comparison.equals
    assert [(i.path, i.rule) for i in comparison.ignored] == [("MLmodel", "mlmodel-same-content")]


@pytest.mark.parametrize(
    ("left_value", "right_value"),
    [
        pytest.param("true", "1", id="bool-vs-int"),
        pytest.param("1", "1.0", id="int-vs-float"),
        pytest.param("'1'", "1", id="string-vs-int"),
        pytest.param("null", None, id="null-vs-absent"),
    ],
)
def test_mlmodel_values_of_another_type_differ(left_value: str, right_value: str | None) -> None:
    """MLmodel values equal in Python but of another YAML type are a difference, not the same content."""
    base = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
    left = base + f"    streamable: {left_value}\n"
    right = base + (f"    streamable: {right_value}\n" if right_value is not None else "")
    manifests = ({"MLmodel": FileEntry(len(left), "a" * 64)}, {"MLmodel": FileEntry(len(right), "b" * 64)})
    result = compare_trees(*manifests, left_mlmodel=left, right_mlmodel=right)
    assert not result.equals
    assert "flavors.python_function.streamable" in (result.differences[0].note or "")


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param("a: 0.0\n", "a: -0.0\n", id="zero-and-negative-zero"),
        pytest.param(
            "a: 2024-01-01 00:00:00+00:00\n", "a: 2024-01-01 05:00:00+05:00\n", id="one-instant-two-zones"
        ),
        pytest.param("1: x\n", "true: x\n", id="top-level-key-int-vs-bool"),
        pytest.param("a:\n  1: x\n", "a:\n  1.0: x\n", id="nested-key-int-vs-float"),
        pytest.param("a: !!set {1}\n", "a: !!set {true}\n", id="set-members-of-another-type"),
    ],
)
def test_mlmodel_texts_python_calls_equal_differ(left: str, right: str) -> None:
    """Values and keys Python's == merges, but a YAML reader tells apart, make MLmodel differ."""
    manifests = ({"MLmodel": FileEntry(len(left), "a" * 64)}, {"MLmodel": FileEntry(len(right), "b" * 64)})
    result = compare_trees(*manifests, left_mlmodel=left, right_mlmodel=right)
    assert not result.equals
    assert (result.differences[0].note or "").startswith("MLmodel differs in: ")
