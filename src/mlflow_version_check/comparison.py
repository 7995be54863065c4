"""Compare two model trees by their manifests, with the explicit, reported rules of DESIGN.md."""

from __future__ import annotations

import datetime
import math
import posixpath
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import yaml

from .errors import NativeModelNotFound
from .manifest import FileEntry, Manifest, total_bytes, tree_digest
from .oms import is_ignored

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
    # When the tree is one file, its own SHA-256 (what the seed's report called `hash`).
    single_file: str | None = None
    single_file_sha256: str | None = None
    # When narrowed to a native model that is one file or folder: its path (the seed's
    # `local_path.path`) and its digest (the file's SHA-256, or the folder's tree digest), even when
    # the comparison covered more (MLmodel, code/). `equals` is the verdict, never this digest.
    native_path: str | None = None
    native_sha256: str | None = None

    @property
    def hash(self) -> str:
        return self.native_sha256 or self.single_file_sha256 or self.tree_sha256


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


def with_native(summary: TreeSummary, files: Manifest, native_path: str | None) -> TreeSummary:
    """The summary with its native model file or folder and that path's own digest (see TreeSummary)."""
    if native_path is None:
        return summary
    return replace(
        summary, native_path=native_path, native_sha256=summarize(narrow(files, (native_path,))).hash
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


def _yaml_mapping(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return parsed if isinstance(parsed, dict) else None


@dataclass(frozen=True)
class MLmodel:
    """A model's MLmodel file, parsed once: the core parses each downloaded model's MLmodel here and
    hands this to integrity, native-model narrowing and the MLmodel rule (none of which mutate it)."""

    text: str | None
    data: dict[str, Any] | None  # None when absent, unparseable or not a mapping

    @classmethod
    def parse(cls, text: str | None) -> MLmodel:
        return cls(text, _yaml_mapping(text))


# What the functions below accept: an MLmodel parsed already, or its text (parsed on the spot).
MLmodelSource = MLmodel | str | None


def parse_mlmodel(source: MLmodelSource) -> dict[str, Any] | None:
    """The MLmodel's YAML mapping; None when absent, unparseable or not a mapping. An `MLmodel`
    is not parsed again."""
    if isinstance(source, MLmodel):
        return source.data
    return _yaml_mapping(source)


_ABSENT = object()


def _typed(value: Any) -> Any:
    """A value with its type made part of it: YAML's `true`, `1` and `1.0` are equal in Python but
    not to a loader that checks `is True` or an int; an absent key is not `key: null`."""
    if isinstance(value, dict):
        return ("map", tuple(sorted(((_typed(k), _typed(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, list | tuple):
        return ("seq", tuple(_typed(item) for item in value))
    if isinstance(value, set | frozenset):
        return ("set", tuple(sorted((_typed(item) for item in value), key=repr)))
    if isinstance(value, float):
        # repr tells 0.0 from -0.0; NaN equals itself here, as the bytes do.
        return ("float", "nan" if math.isnan(value) else repr(value))
    if isinstance(value, datetime.date):  # date and datetime: the same instant in another zone is not
        return (type(value).__name__, value.isoformat())  # the same text a loader reads
    return (type(value).__name__, value)


def _same(left: Any, right: Any) -> bool:
    return bool(_typed(left) == _typed(right))


def _compare_mlmodel(
    left_text: MLmodelSource, right_text: MLmodelSource
) -> tuple[bool, list[IgnoredItem], str]:
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
        if not _same(left.get(key, _ABSENT), right.get(key, _ABSENT))
    ]
    differing = [
        path
        for key in sorted(set(left) | set(right), key=str)
        if key not in MLMODEL_IDENTITY_FIELDS and not _same(left.get(key, _ABSENT), right.get(key, _ABSENT))
        for path in _differing_keys(left.get(key, _ABSENT), right.get(key, _ABSENT), str(key))
    ]
    rest_left = {key: value for key, value in left.items() if key not in MLMODEL_IDENTITY_FIELDS}
    rest_right = {key: value for key, value in right.items() if key not in MLMODEL_IDENTITY_FIELDS}
    if not differing and not _same(rest_left, rest_right):
        # Keys that Python merges (1, 1.0 and true are one dict key) but the YAML tells apart.
        differing = ["its top-level keys (the same keys of another type, e.g. 1 and true)"]
    if differing:
        shown = differing[:MLMODEL_KEYS_SHOWN]
        more = f" and {len(differing) - len(shown)} more" if len(differing) > len(shown) else ""
        return False, [], "MLmodel differs in: " + ", ".join(shown) + more
    return True, ignored, ""


MLMODEL_KEYS_SHOWN = 10


def _differing_keys(left: Any, right: Any, prefix: str) -> Iterator[str]:
    """Dotted paths of the values that differ, down to the deepest mapping both sides share (e.g.
    flavors.python_function.loader_module), so that a note says what changed. A mapping whose keys
    differ only in type (1 and true are one Python key) is named itself."""
    if isinstance(left, dict) and isinstance(right, dict):
        found = False
        for key in sorted(set(left) | set(right), key=str):
            if not _same(left.get(key, _ABSENT), right.get(key, _ABSENT)):
                for path in _differing_keys(
                    left.get(key, _ABSENT), right.get(key, _ABSENT), f"{prefix}.{key}"
                ):
                    found = True
                    yield path
        if not found and not _same(left, right):
            yield prefix
    elif not _same(left, right):
        yield prefix


def without_registry_meta(manifest: Manifest) -> tuple[dict[str, FileEntry], bool]:
    """Drop MLflow's `registered_model_meta` (written into models:/ downloads; not the model)."""
    kept = {path: entry for path, entry in manifest.items() if path != REGISTERED_MODEL_META}
    return kept, len(kept) != len(manifest)


def compare_trees(
    left: Manifest,
    right: Manifest,
    *,
    left_mlmodel: MLmodelSource = None,
    right_mlmodel: MLmodelSource = None,
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


ReferenceDifferenceKind = Literal["changed", "missing", "extra"]


@dataclass(frozen=True)
class ReferenceDifference:
    """One path where a model is not what its reference (an OMS statement) lists: its digest
    changed, the file is missing, or it is extra (not listed)."""

    path: str
    kind: ReferenceDifferenceKind
    expected_sha256: str | None
    actual: FileEntry | None
    note: str | None = None


@dataclass(frozen=True)
class ReferenceComparison:
    """The verdict on a model against the files its reference lists."""

    equals: bool
    differences: tuple[ReferenceDifference, ...]
    ignored: tuple[IgnoredItem, ...]
    compared_files: int
    strict: bool


def compare_with_reference(
    expected: Mapping[str, str],
    actual: Manifest,
    *,
    ignore_paths: Collection[str] = (),
    actual_mlmodel: MLmodelSource = None,
    sealed_mlmodel: MLmodelSource = None,
    sealed_mlmodel_problem: str | None = None,
    strict: bool = False,
) -> ReferenceComparison:
    """Compare a model's files with the digests a reference lists, every difference named.

    MLflow's `registered_model_meta` is left out on both sides, as a seal leaves it out; the model's
    files under the reference's `ignore_paths` are not compared. Both are reported. Unless `strict`,
    an MLmodel whose digest differs is compared by content with `sealed_mlmodel`, the sealed MLmodel's
    text (the caller has checked its digest is the listed one), under the rule compare uses: only
    identity fields may differ. Without it, a changed MLmodel is a difference, with
    `sealed_mlmodel_problem` (or that no sealed copy was found) as its note.
    """
    ignored: list[IgnoredItem] = []
    model, had_meta = without_registry_meta(actual)
    listed = {path: digest for path, digest in expected.items() if path != REGISTERED_MODEL_META}
    if had_meta or len(listed) != len(expected):
        ignored.append(
            IgnoredItem(
                path=REGISTERED_MODEL_META,
                rule="registry-download-metadata",
                left="listed" if len(listed) != len(expected) else "not listed",
                right="present" if had_meta else "absent",
            )
        )
    for path in sorted(model):
        if is_ignored(path, ignore_paths):
            ignored.append(IgnoredItem(path=path, rule="reference-ignore-paths", right=model[path].sha256))
    model = {path: entry for path, entry in model.items() if not is_ignored(path, ignore_paths)}
    differences: list[ReferenceDifference] = []
    for path in sorted(set(listed) | set(model)):
        digest, entry = listed.get(path), model.get(path)
        if entry is None:
            differences.append(ReferenceDifference(path, "missing", digest, None))
        elif digest is None:
            differences.append(ReferenceDifference(path, "extra", None, entry))
        elif digest != entry.sha256:
            if path == MLMODEL and not strict:
                if sealed_mlmodel is None:
                    note = sealed_mlmodel_problem or (
                        "no copy of the sealed MLmodel was found to compare its content with (seal "
                        "writes one next to the manifest)"
                    )
                    differences.append(ReferenceDifference(path, "changed", digest, entry, note))
                    continue
                same, mlmodel_ignored, note = _compare_mlmodel(sealed_mlmodel, actual_mlmodel)
                if same:
                    ignored.extend(
                        mlmodel_ignored
                        or [
                            IgnoredItem(
                                path=MLMODEL, rule="mlmodel-same-content", left=digest, right=entry.sha256
                            )
                        ]
                    )
                    continue
                differences.append(ReferenceDifference(path, "changed", digest, entry, note))
            else:
                differences.append(ReferenceDifference(path, "changed", digest, entry))
    return ReferenceComparison(
        equals=not differences,
        differences=tuple(differences),
        ignored=tuple(ignored),
        compared_files=len(set(listed) & set(model)),
        strict=strict,
    )


# Flavor configuration keys whose values name the native model (what the seed's `local_path` shows),
# most specific first.
NATIVE_MODEL_KEYS = (
    "pickled_model",
    "model_data",
    "saved_model_dir",
    "model_binary",
    "data",
    "model_path",
)

NativePaths = tuple[str, ...]

AUTO = "auto"


def native_model_paths(mlmodel_text: MLmodelSource) -> NativePaths:
    """Find the native model's files or folders from the flavor configuration.

    The model's own flavor comes first (python_function only describes how to load it). A custom
    python_model has no single native file: its pickled class, its artifacts and its code together
    make the model, so all of them are returned. This is what the report shows as the native model;
    what `auto` compares is `loading_set`, which covers more.
    """
    mlmodel = parse_mlmodel(mlmodel_text)
    if mlmodel is None or not isinstance(mlmodel.get("flavors"), dict):
        return ()
    flavors: dict[str, Any] = mlmodel["flavors"]
    ordered = [name for name in flavors if name != PYFUNC] + ([PYFUNC] if PYFUNC in flavors else [])
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
            return tuple(inside for path in paths if (inside := inside_model(path)) not in (None, "."))
        for key in NATIVE_MODEL_KEYS:
            value = config.get(key)
            if isinstance(value, str) and (inside := inside_model(value)) not in (None, "."):
                return (inside,)
    return ()


def inside_model(value: str) -> str | None:
    """The normalised path, relative to the model root, that a configuration value names as MLflow
    joins it to the root (`./model.pkl` and `model.pkl/` are `model.pkl`; `.` is the root), or None
    when it points outside the model (absolute, a URI, `..`)."""
    if not value or value.startswith(("/", "\\")) or _SCHEME.match(value):
        return None
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../"):
        return None
    return normal


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

PYFUNC = "python_function"

# What each flavor's loader reads, from MLflow 3's mlflow.<flavor>.load_model and _load_pyfunc: the
# configuration keys that name its files or folders, with the name the loader falls back to when the
# key is absent. Every loader also puts the flavor's `code` folder on sys.path. A flavor not listed
# may read files its configuration does not name (ONNX's external tensor data next to model.onnx,
# paddle's `model.*` prefix, transformers' components, a user's own flavor), so `auto` then compares
# the whole model rather than guess.
FLAVOR_FILES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "sklearn": (("pickled_model", None),),
    "xgboost": (("data", None),),
    "lightgbm": (("data", None),),
    "catboost": (("data", "model.cb"),),
    "statsmodels": (("data", "model.statsmodels"),),
    "prophet": (("data", "model.pr"),),
    "pmdarima": (("data", "model.pmd"),),
    "spacy": (("data", "model.spacy"),),
    "h2o": (("data", "model.h2o"),),
    "pytorch": (("model_data", None),),
}

# python_function: pyfunc.load_model hands the loader module `data` (else the model root, where a
# flavor's loader reads its own flavor's keys above), mlflow.sklearn's loader reads `model_path`, and
# mlflow.pyfunc.model (and its chat/agent/code variants) reads `python_model`, the artifacts and the
# models-from-code file.
PYFUNC_FILE_KEYS = ("data", "model_path", "python_model")
PYFUNC_LOADERS = frozenset(
    {
        "mlflow.pyfunc.model",
        "mlflow.pyfunc.loaders.chat_model",
        "mlflow.pyfunc.loaders.chat_agent",
        "mlflow.pyfunc.loaders.responses_agent",
        "mlflow.pyfunc.loaders.code_model",
        *(f"mlflow.{name}" for name in FLAVOR_FILES),
    }
)
# The environment MLflow rebuilds for serving (conda.yaml, python_env.yaml), not what the loader reads.
NOT_LOADED_KEYS = frozenset({"env"})

SHOWN_VALUE_CHARS = 200


@dataclass(frozen=True)
class LoadingSet:
    """What MLflow reads to load one model, as its MLmodel tells (relative files and folders), or
    why that cannot be known (then the whole model must be compared)."""

    paths: NativePaths
    unknown: tuple[str, ...] = ()


def loading_set(mlmodel_text: MLmodelSource, present: Collection[str] = ()) -> LoadingSet:
    """The files and folders MLflow reads to load the model: what `auto` compares.

    MLmodel itself (its flavors tell the loader what to do), each known flavor's files (or the name
    its loader falls back to), python_function's data and model_path, a python_model's pickle,
    artifacts and models-from-code file, every `code` folder (on sys.path while loading), and any
    other string in a known flavor's configuration that names one of `present` (files and folders
    of the models: a key this tool does not list is followed, not skipped). `unknown` lists why the
    rest cannot be known: no readable MLmodel or flavors, a flavor or loader module this tool does
    not know, a path that is not a string or points outside the model.
    """
    mlmodel = parse_mlmodel(mlmodel_text)
    if mlmodel is None:
        return LoadingSet((), ("MLmodel is missing or does not parse as a YAML mapping",))
    flavors = mlmodel.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        return LoadingSet((), ("MLmodel names no flavors",))
    paths = {MLMODEL}
    unknown: list[str] = []
    for name, config in flavors.items():
        where = f"flavors.{name}"
        if not isinstance(config, dict):
            unknown.append(f"{where} is not a mapping")
            continue
        if name == PYFUNC:
            named = _pyfunc_files(config, where, unknown)
        elif name in FLAVOR_FILES:
            named = [(f"{where}.{key}", config.get(key, default)) for key, default in FLAVOR_FILES[name]] + [
                (f"{where}.code", config.get("code"))
            ]
        else:
            unknown.append(f"flavor '{_shown(name)}' is not one whose loader this tool knows")
            continue
        for key, value in named:
            if value is None:
                continue
            inside = inside_model(value) if isinstance(value, str) else None
            if inside is None:
                unknown.append(f"{key} is {_shown(value)!r}, not a path inside the model")
            else:
                paths.add(inside)
        paths.update(
            inside
            for value in _strings(config, top=True)
            if (inside := inside_model(value)) is not None and inside in present
        )
    return LoadingSet(tuple(sorted(paths)), tuple(unknown))


def _pyfunc_files(config: dict[Any, Any], where: str, unknown: list[str]) -> list[tuple[str, Any]]:
    loader = config.get("loader_module")
    if loader not in PYFUNC_LOADERS:
        unknown.append(f"{where}.loader_module {_shown(loader)!r} is not a loader this tool knows")
    named: list[tuple[str, Any]] = [
        (f"{where}.{key}", config.get(key)) for key in (*PYFUNC_FILE_KEYS, "code")
    ]
    artifacts = config.get("artifacts")
    if isinstance(artifacts, dict):
        named.extend(
            (f"{where}.artifacts.{artifact}.path", item.get("path") if isinstance(item, dict) else item)
            for artifact, item in artifacts.items()
        )
    elif artifacts is not None:
        named.append((f"{where}.artifacts", artifacts))
    code_path = config.get("model_code_path")
    if code_path is not None:
        # The loader reads <model root>/<basename of the path the model was logged from>.
        named.append(
            (
                f"{where}.model_code_path",
                posixpath.basename(code_path) if isinstance(code_path, str) else code_path,
            )
        )
    return named


def _strings(node: Any, *, top: bool = False) -> Iterator[str]:
    """Every string in a flavor configuration (keys describing the environment left out)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if not (top and key in NOT_LOADED_KEYS):
                yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= SHOWN_VALUE_CHARS else text[:SHOWN_VALUE_CHARS] + "..."


def present_paths(files: Collection[str]) -> set[str]:
    """The files and every folder above them: what a configuration value may name."""
    present = set(files)
    for path in files:
        parts = path.split("/")
        present.update("/".join(parts[:index]) for index in range(1, len(parts)))
    return present


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


@dataclass(frozen=True)
class Narrowed:
    """The files a native-model comparison covers on each side, and what the report says about it."""

    left: dict[str, FileEntry]
    right: dict[str, FileEntry]
    # The files or folders compared, per side (empty: the whole model, see `whole_model`).
    left_paths: NativePaths
    right_paths: NativePaths
    # The native model file or folder, per side: the seed's `local_path` (None: the model root).
    left_native: str | None
    right_native: str | None
    # Why `auto` compared the whole models instead of narrowing (None: it narrowed).
    whole_model: str | None = None


def narrow_both(
    left: Manifest,
    right: Manifest,
    left_native: str | None,
    right_native: str | None = None,
    *,
    left_mlmodel: MLmodelSource,
    right_mlmodel: MLmodelSource,
) -> Narrowed:
    """Narrow both trees to their native model; a side without a setting uses the other side's.

    Paths on both sides: each side keeps its own path (missing on one side is a difference, on both
    a usage error). `auto` on either side: both sides keep the same files, the union of what each
    side's MLmodel has MLflow load (`loading_set`) and of a path given for the other side, so that
    a file only one side names, or two MLmodels naming different files, is a difference; MLmodel is
    among them and compared by its rule. When a side's loading set cannot be known, both whole
    models are compared and `whole_model` says why. Narrowing drops `registered_model_meta` (not part
    of a model); the whole models keep it for compare_trees' reported rule.
    """
    left_native = left_native or right_native
    right_native = right_native or left_native
    if not left_native or not right_native:
        raise NativeModelNotFound("no native model given", fix="give a relative path or 'auto'.")
    left_files, right_files = without_registry_meta(left)[0], without_registry_meta(right)[0]
    if AUTO not in (left_native, right_native):
        left_paths, right_paths = (left_native.strip("/"),), (right_native.strip("/"),)
        narrowed = Narrowed(
            narrow(left_files, left_paths),
            narrow(right_files, right_paths),
            left_paths,
            right_paths,
            left_paths[0],
            right_paths[0],
        )
    else:
        present = present_paths(set(left_files) | set(right_files))
        sets = [
            loading_set(mlmodel, present) if native == AUTO else LoadingSet((native.strip("/"),))
            for native, mlmodel in ((left_native, left_mlmodel), (right_native, right_mlmodel))
        ]
        reasons = list(dict.fromkeys(reason for found in sets for reason in found.unknown))
        if reasons:
            return Narrowed(dict(left), dict(right), (), (), None, None, "; ".join(reasons))
        union = tuple(sorted(set(sets[0].paths) | set(sets[1].paths)))
        narrowed = Narrowed(
            narrow(left_files, union),
            narrow(right_files, union),
            union,
            union,
            _native_path(left_native, left_mlmodel),
            _native_path(right_native, right_mlmodel),
        )
    if not narrowed.left and not narrowed.right:
        shown = left_native if left_native == right_native else f"{left_native}' / '{right_native}"
        raise NativeModelNotFound(
            f"native model path '{shown}' is in neither model: the path is relative to the model "
            "root and names a file or folder of it",
            fix="check the path against the model's files (e.g. model.pkl, data/), or use 'auto'.",
        )
    return narrowed


def _native_path(native: str, mlmodel_text: MLmodelSource) -> str | None:
    if native != AUTO:
        return native.strip("/")
    paths = native_model_paths(mlmodel_text)
    return paths[0] if len(paths) == 1 else None
