"""Never a false pass: random trees and random single mutations, compared from real files on disk."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlflow_version_check.comparison import compare_trees
from mlflow_version_check.manifest import manifest_of_directory

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=8).filter(
    # MLmodel and registered_model_meta have their own, reported rules (test_comparison.py).
    lambda name: name not in {".", "..", "MLmodel", "registered_model_meta"}
)
PATH = st.lists(NAME, min_size=1, max_size=4).map("/".join)
TREE = st.dictionaries(PATH, st.binary(max_size=300), min_size=1, max_size=12).filter(
    # A path may not be both a file and a folder.
    lambda tree: not any(other.startswith(path + "/") for path in tree for other in tree)
)
MUTATIONS = ("flip", "same_size", "truncate", "rename", "add", "remove", "append")


def write(root: Path, tree: dict[str, bytes]) -> Path:
    for relative, data in tree.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def compare(left: dict[str, bytes], right: dict[str, bytes]):  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as scratch:
        left_root = write(Path(scratch) / "left", left)
        right_root = write(Path(scratch) / "right", right)
        return compare_trees(manifest_of_directory(left_root), manifest_of_directory(right_root))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[dict[str, bytes], dict[str, bytes], set[str]]:
    """A tree, a copy with exactly one mutation, and the paths the mutation touches."""
    tree = draw(TREE)
    copy = dict(tree)
    path = draw(st.sampled_from(sorted(tree)))
    kind = draw(st.sampled_from(MUTATIONS))
    data = tree[path]
    if kind == "flip" and data:
        index = draw(st.integers(0, len(data) - 1))
        copy[path] = data[:index] + bytes([data[index] ^ (1 << draw(st.integers(0, 7)))]) + data[index + 1 :]
    elif kind == "same_size" and data:
        replacement = draw(st.binary(min_size=len(data), max_size=len(data)).filter(lambda b: b != data))
        copy[path] = replacement
    elif kind == "truncate" and data:
        copy[path] = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "rename":
        new = draw(
            PATH.filter(
                lambda p: (
                    p not in tree and not any(o.startswith(p + "/") or p.startswith(o + "/") for o in tree)
                )
            )
        )
        copy[new] = copy.pop(path)
        return tree, copy, {path, new}
    elif kind == "add":
        new = draw(
            PATH.filter(
                lambda p: (
                    p not in tree and not any(o.startswith(p + "/") or p.startswith(o + "/") for o in tree)
                )
            )
        )
        copy[new] = draw(st.binary(max_size=50))
        return tree, copy, {new}
    elif kind == "remove":
        del copy[path]
    else:  # append, and the flip/same_size/truncate of an empty file
        copy[path] = data + draw(st.binary(min_size=1, max_size=20))
    return tree, copy, {path}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_any_single_mutation_is_different_and_named(
    case: tuple[dict[str, bytes], dict[str, bytes], set[str]],
) -> None:
    """Whatever the tree and wherever the mutation, the verdict is different and names the path."""
    original, changed, touched = case
    comparison = compare(original, changed)
    assert not comparison.equals
    assert {difference.path for difference in comparison.differences} == touched
    assert comparison.left.tree_sha256 != comparison.right.tree_sha256


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TREE)
def test_identical_trees_are_always_equal(tree: dict[str, bytes]) -> None:
    """Two byte-identical trees written separately are always equal, with the same digest."""
    comparison = compare(tree, dict(tree))
    assert comparison.equals
    assert comparison.differences == ()
    assert comparison.left.tree_sha256 == comparison.right.tree_sha256
