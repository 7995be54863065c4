"""Completeness of one downloaded model: the check that still means something when the run model and
the registry model are the same storage location (open-source MLflow keeps no separate copy)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .comparison import MLMODEL, REGISTERED_MODEL_META, MLmodelSource, parse_mlmodel
from .manifest import Manifest

# Keys of a flavor configuration (and of saved_input_example_info) whose string values name a file
# or folder of the model, as the flavors of MLflow 3 write them.
PATH_KEYS = frozenset(
    {
        "pickled_model",
        "python_model",
        "model_path",
        "data",
        "code",
        "conda",
        "virtualenv",
        "model_data",
        "saved_model_dir",
        "model_binary",
        "model_code_path",
        "artifact_path",
        "serving_input_path",
    }
)

# What `model_size_bytes` counts: every flavor's save_model calls
# mlflow.utils.file_utils.get_total_file_size(path) *before* it writes MLmodel and the environment
# files, and Model.log adds environment_variables.txt (and, on Databricks, metadata/) after that.
# pyfunc and transformers copy `code/` after the size is taken; sklearn and others before.
WRITTEN_AFTER_SIZE = frozenset(
    {
        MLMODEL,
        "conda.yaml",
        "python_env.yaml",
        "requirements.txt",
        "constraints.txt",
        "environment_variables.txt",
        REGISTERED_MODEL_META,
    }
)
WRITTEN_AFTER_SIZE_DIRS = ("metadata/",)


@dataclass(frozen=True)
class FileReference:
    """A path that MLmodel names, and whether the downloaded tree has it."""

    key: str
    path: str
    exists: bool


@dataclass(frozen=True)
class IntegrityReport:
    """What was verified on one model tree, and whether it held."""

    ok: bool
    mlmodel_present: bool
    mlmodel_parses: bool
    references: tuple[FileReference, ...]
    model_size_bytes: int | None
    counted_bytes: int | None
    size_rule: str | None
    problems: tuple[str, ...]


def _references(node: Any, parent_key: str = "") -> Iterator[tuple[str, str]]:
    in_artifacts = ".artifacts." in f".{parent_key}."
    if isinstance(node, dict):
        for key, value in node.items():
            # A python_model's artifacts map names to {path: <in the model>, uri: <where it came from>}.
            if isinstance(value, str) and (key in PATH_KEYS or (in_artifacts and key == "path")):
                yield (f"{parent_key}.{key}" if parent_key else str(key)), value
            elif isinstance(value, dict | list):
                yield from _references(value, f"{parent_key}.{key}" if parent_key else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _references(value, f"{parent_key}[{index}]")


def _exists(manifest: Manifest, path: str) -> bool:
    path = path.strip("/")
    if path in manifest:
        return True
    prefix = path + "/"
    return any(name.startswith(prefix) for name in manifest)


def _is_relative_path(value: str) -> bool:
    return bool(value) and not value.startswith("/") and "://" not in value and ":\\" not in value


def check_integrity(manifest: Manifest, mlmodel_text: MLmodelSource) -> IntegrityReport:
    """Verify that MLmodel parses, names only files that exist, and that sizes agree."""
    problems: list[str] = []
    if MLMODEL not in manifest:
        return IntegrityReport(
            ok=False,
            mlmodel_present=False,
            mlmodel_parses=False,
            references=(),
            model_size_bytes=None,
            counted_bytes=None,
            size_rule=None,
            problems=("MLmodel is missing: this is not a complete MLflow model",),
        )
    mlmodel = parse_mlmodel(mlmodel_text)
    if mlmodel is None:
        return IntegrityReport(
            ok=False,
            mlmodel_present=True,
            mlmodel_parses=False,
            references=(),
            model_size_bytes=None,
            counted_bytes=None,
            size_rule=None,
            problems=("MLmodel does not parse as a YAML mapping",),
        )
    named: dict[str, Any] = {
        "flavors": mlmodel.get("flavors") or {},
        "saved_input_example_info": mlmodel.get("saved_input_example_info") or {},
    }
    references = tuple(
        FileReference(key=key, path=value, exists=_exists(manifest, value))
        for key, value in _references(named)
        if _is_relative_path(value)
    )
    problems.extend(
        f"MLmodel names {ref.path} ({ref.key}) but the model has no such file or folder"
        for ref in references
        if not ref.exists
    )
    if not mlmodel.get("flavors"):
        problems.append("MLmodel has no flavors")

    declared = mlmodel.get("model_size_bytes")
    counted: int | None = None
    size_rule: str | None = None
    if isinstance(declared, int) and not isinstance(declared, bool):
        counted_files = {
            path: entry
            for path, entry in manifest.items()
            if path not in WRITTEN_AFTER_SIZE and not path.startswith(WRITTEN_AFTER_SIZE_DIRS)
        }
        counted = sum(entry.size for entry in counted_files.values())
        size_rule = "all files but MLmodel, environment files and metadata/"
        if counted != declared:
            without_code = sum(
                entry.size for path, entry in counted_files.items() if not path.startswith("code/")
            )
            if without_code == declared:
                counted, size_rule = without_code, size_rule + " and code/ (copied after sizing)"
            else:
                problems.append(
                    f"files add up to {counted} bytes but MLmodel records model_size_bytes "
                    f"{declared}: a file is missing, truncated or added"
                )
    return IntegrityReport(
        ok=not problems,
        mlmodel_present=True,
        mlmodel_parses=True,
        references=references,
        model_size_bytes=declared if isinstance(declared, int) else None,
        counted_bytes=counted,
        size_rule=size_rule,
        problems=tuple(problems),
    )
