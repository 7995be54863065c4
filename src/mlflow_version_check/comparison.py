"""Compare two model trees by their manifests, with the explicit, reported rules of DESIGN.md."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from .errors import NativeModelNotFound
from .manifest import FileEntry, Manifest, total_bytes, tree_digest

MLMODEL = "MLmodel"
REGISTERED_MODEL_META = "registered_model_meta"

# Fields of MLmodel that legitimately differ between a model and its copy (new run, new logged model,
# new upload time, another Databricks runtime). Everything else in MLmodel must match.
MLMODEL_IDENTITY_FIELDS = (
    "run_id",
    "model_id",
    "model_uuid",
    "artifact_path",
    "utc_time_created",
    "databricks_runtime",
)

DifferenceKind = Literal["changed", "left_only", "right_only"]


@dataclass(frozen=True)
class FileDifference:
    """One path that differs between the two trees."""

    path: str
    kind: DifferenceKind
    left: FileEntry | None
    right: FileEntry | None
    note: str | None = None


@dataclass(frozen=True)
class IgnoredItem:
    """Something that differs or exists but, by a named rule, does not count."""

    path: str
    rule: str
    field: str | None = None
    left: Any = None
    right: Any = None


@dataclass(frozen=True)
class TreeSummary:
    """Size and digest of the tree that was compared (after the rules and narrowing)."""

    files: int
    bytes: int
    tree_sha256: str
    # When narrowed to one file, its own SHA-256 (what the seed's report called `hash`).
    single_file: str | None = None
    single_file_sha256: str | None = None

    @property
    def hash(self) -> str:
        return self.single_file_sha256 or self.tree_sha256


@dataclass(frozen=True)
class TreeComparison:
    """The verdict on two trees, with every difference and every ignored item."""

    equals: bool
    left: TreeSummary
    right: TreeSummary
    differences: tuple[FileDifference, ...]
    ignored: tuple[IgnoredItem, ...]
    strict: bool


def summarize(manifest: Manifest) -> TreeSummary:
    single = next(iter(manifest.items())) if len(manifest) == 1 else None
    return TreeSummary(
        files=len(manifest),
        bytes=total_bytes(manifest),
        tree_sha256=tree_digest(manifest.items()),
        single_file=single[0] if single else None,
        single_file_sha256=single[1].sha256 if single else None,
    )


def _json_safe(value: Any) -> Any:
    """YAML may give datetimes and other objects; a report holds plain JSON values."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    return str(value)


def parse_mlmodel(text: str | None) -> dict[str, Any] | None:
    """Parse MLmodel YAML; None when absent, unparseable or not a mapping."""
    if text is None:
        return None
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _compare_mlmodel(left_text: str | None, right_text: str | None) -> tuple[bool, list[IgnoredItem], str]:
    """Semantic MLmodel comparison: equal but for the identity fields, which are reported."""
    left = parse_mlmodel(left_text)
    right = parse_mlmodel(right_text)
    if left is None or right is None:
        return False, [], "MLmodel does not parse as a YAML mapping on at least one side"
    ignored = [
        IgnoredItem(
            path=MLMODEL,
            rule="mlmodel-identity-field",
            field=key,
            left=_json_safe(left.get(key)),
            right=_json_safe(right.get(key)),
        )
        for key in MLMODEL_IDENTITY_FIELDS
        if left.get(key) != right.get(key)
    ]
    differing = sorted(
        key
        for key in set(left) | set(right)
        if key not in MLMODEL_IDENTITY_FIELDS and left.get(key) != right.get(key)
    )
    if differing:
        return False, [], "MLmodel differs in: " + ", ".join(differing)
    return True, ignored, ""


def without_registry_meta(manifest: Manifest) -> tuple[dict[str, FileEntry], bool]:
    """Drop MLflow's `registered_model_meta` (written into models:/ downloads; not the model)."""
    kept = {path: entry for path, entry in manifest.items() if path != REGISTERED_MODEL_META}
    return kept, len(kept) != len(manifest)


def compare_trees(
    left: Manifest,
    right: Manifest,
    *,
    left_mlmodel: str | None = None,
    right_mlmodel: str | None = None,
    strict: bool = False,
) -> TreeComparison:
    """Compare two manifests file by file; MLmodel semantically unless strict."""
    ignored: list[IgnoredItem] = []
    if not strict:
        left, left_had_meta = without_registry_meta(left)
        right, right_had_meta = without_registry_meta(right)
        if left_had_meta or right_had_meta:
            ignored.append(
                IgnoredItem(
                    path=REGISTERED_MODEL_META,
                    rule="registry-download-metadata",
                    left="present" if left_had_meta else "absent",
                    right="present" if right_had_meta else "absent",
                )
            )
    differences: list[FileDifference] = []
    for path in sorted(set(left) | set(right)):
        left_entry, right_entry = left.get(path), right.get(path)
        if left_entry is None:
            differences.append(FileDifference(path, "right_only", None, right_entry))
        elif right_entry is None:
            differences.append(FileDifference(path, "left_only", left_entry, None))
        elif left_entry != right_entry:
            if path == MLMODEL and not strict:
                same, mlmodel_ignored, note = _compare_mlmodel(left_mlmodel, right_mlmodel)
                if same:
                    # Different bytes, same content: say so even when no identity field differs
                    # (key order, quoting, whitespace), so that no normalisation goes unreported.
                    ignored.extend(
                        mlmodel_ignored
                        or [
                            IgnoredItem(
                                path=MLMODEL,
                                rule="mlmodel-same-content",
                                left=left_entry.sha256,
                                right=right_entry.sha256,
                            )
                        ]
                    )
                    continue
                differences.append(FileDifference(path, "changed", left_entry, right_entry, note))
            else:
                differences.append(FileDifference(path, "changed", left_entry, right_entry))
    return TreeComparison(
        equals=not differences,
        left=summarize(left),
        right=summarize(right),
        differences=tuple(differences),
        ignored=tuple(ignored),
        strict=strict,
    )


# Flavor configuration keys whose values name a file or folder of the model, most specific first.
NATIVE_MODEL_KEYS = (
    "pickled_model",
    "model_data",
    "saved_model_dir",
    "model_binary",
    "data",
    "model_path",
)

NativePaths = tuple[str, ...]


def native_model_paths(mlmodel_text: str | None) -> NativePaths:
    """Find the native model's files or folders from the flavor configuration.

    The model's own flavor comes first (python_function only describes how to load it). A custom
    python_model has no single native file: its pickled class, its artifacts and its code together
    make the model, so all of them are returned (narrowing to the pickle alone would hide changed
    weights).
    """
    mlmodel = parse_mlmodel(mlmodel_text)
    if mlmodel is None or not isinstance(mlmodel.get("flavors"), dict):
        return ()
    flavors: dict[str, Any] = mlmodel["flavors"]
    ordered = [name for name in flavors if name != "python_function"] + (
        ["python_function"] if "python_function" in flavors else []
    )
    for name in ordered:
        config = flavors[name]
        if not isinstance(config, dict):
            continue
        if isinstance(config.get("python_model"), str):
            paths = [config["python_model"]]
            artifacts = config.get("artifacts")
            if isinstance(artifacts, dict):
                paths.extend(
                    item["path"]
                    for item in artifacts.values()
                    if isinstance(item, dict) and isinstance(item.get("path"), str)
                )
            if isinstance(config.get("code"), str):
                paths.append(config["code"])
            return tuple(path.strip("/") for path in paths if _is_relative(path))
        for key in NATIVE_MODEL_KEYS:
            value = config.get(key)
            if isinstance(value, str) and _is_relative(value):
                return (value.strip("/"),)
    return ()


def _is_relative(value: str) -> bool:
    return bool(value.strip("/")) and not (value.startswith(("/", "\\")) or "://" in value)


def narrow(manifest: Manifest, paths: NativePaths) -> dict[str, FileEntry]:
    """Keep the files at, or below, any of the paths (relative to the model root)."""
    kept: dict[str, FileEntry] = {}
    for given in paths:
        native_path = given.strip("/")
        if native_path in ("", "."):
            return dict(manifest)
        prefix = native_path + "/"
        kept.update(
            (path, entry)
            for path, entry in manifest.items()
            if path == native_path or path.startswith(prefix)
        )
    return kept


def _native_paths_for(native: str, mlmodel_text: str | None) -> NativePaths:
    return native_model_paths(mlmodel_text) if native == "auto" else (native.strip("/"),)


def narrow_both(
    left: Manifest,
    right: Manifest,
    left_native: str | None,
    right_native: str | None = None,
    *,
    left_mlmodel: str | None,
    right_mlmodel: str | None,
) -> tuple[dict[str, FileEntry], dict[str, FileEntry], NativePaths, NativePaths]:
    """Narrow both trees to their native model (`auto`: found per side from each MLmodel).

    A side without its own native model setting uses the other side's. With `auto`, a side whose
    MLmodel names other native files keeps those, so the comparison reports the mismatch.
    """
    left_native = left_native or right_native
    right_native = right_native or left_native
    if not left_native or not right_native:
        raise NativeModelNotFound("no native model given. Fix: give a relative path or 'auto'.")
    left_paths = _native_paths_for(left_native, left_mlmodel)
    right_paths = _native_paths_for(right_native, right_mlmodel)
    if not left_paths and not right_paths:
        raise NativeModelNotFound(
            "native_model 'auto' found no native model file in either MLmodel's flavors: the "
            "flavor names its files under a key this tool does not know. Fix: give the path "
            "instead, e.g. --native-model model.pkl."
        )
    left_paths = left_paths or right_paths
    right_paths = right_paths or left_paths
    left_narrow, right_narrow = narrow(left, left_paths), narrow(right, right_paths)
    if not left_narrow and not right_narrow:
        shown = left_native if left_native == right_native else f"{left_native}' / '{right_native}"
        raise NativeModelNotFound(
            f"native model path '{shown}' is in neither model: the path is relative to the model "
            "root and names a file or folder of it. Fix: check the path against the model's files "
            "(e.g. model.pkl, data/), or use 'auto'."
        )
    return left_narrow, right_narrow, left_paths, right_paths
