"""The core: resolve -> locate -> download -> compare, returning typed results.

It never prints and never exits; failures are the named errors of errors.py.
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .comparison import (
    MLMODEL,
    NativePaths,
    TreeComparison,
    compare_trees,
    narrow_both,
    summarize,
    without_registry_meta,
)
from .errors import InvalidOption, VersionCheckError
from .integrity import check_integrity
from .manifest import FileEntry
from .results import CheckResult, DownloadedModel, ModelVersionInfo
from .runner import LogCallback, ProgressCallback, ServerSpec, run_worker


def resolve_server_uris(tracking_uri: str | None, registry_uri: str | None) -> tuple[str, str | None]:
    """Options override MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, as in MLflow and the seed."""
    tracking = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    registry = (registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or "").strip() or None
    if not tracking:
        raise InvalidOption(
            "no tracking server given: neither --tracking-uri nor MLFLOW_TRACKING_URI is set. "
            "Fix: pass --tracking-uri http://host:5000 (or databricks://<profile>), or export "
            "MLFLOW_TRACKING_URI."
        )
    return tracking, registry


def validate_name_and_version(model: str, version_or_stage: str) -> None:
    if not model or not model.strip():
        raise InvalidOption("the model name is empty. Fix: pass --model <registered model name>.")
    spec = (version_or_stage or "").strip()
    if not spec:
        raise InvalidOption(
            "the version or stage is empty. Fix: pass --version-or-stage with a version number, "
            "'latest', a stage (production, staging, archived, none) or '@alias'."
        )
    if spec == "@":
        raise InvalidOption("version_or_stage '@' names no alias. Fix: give '@<alias>'.")


def validate_timeouts(timeout: float, retries: int) -> None:
    if not timeout > 0:
        raise InvalidOption(f"--timeout must be more than 0 seconds, not {timeout}.")
    if retries < 0 or retries > 20:
        raise InvalidOption(f"--retries must be between 0 and 20, not {retries}.")


@dataclass(frozen=True)
class DownloadArea:
    """Where one run's files go: a fresh directory, never shared with an earlier run."""

    path: Path
    kept: bool


@contextmanager
def download_area(download_dir: str | os.PathLike[str] | None, label: str) -> Iterator[DownloadArea]:
    """A fresh sub-directory of download_dir (kept), or a temporary directory (removed after).

    A given directory is never emptied: each run gets its own new sub-directory, so stale files of
    an earlier run cannot mix in and nothing outside the new directory is ever deleted.
    """
    if download_dir is None or str(download_dir) == "":
        temporary = Path(tempfile.mkdtemp(prefix="mlflow-version-check-"))
        try:
            yield DownloadArea(path=temporary, kept=False)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return
    base = Path(download_dir).expanduser()
    if base.exists() and not base.is_dir():
        raise InvalidOption(f"--download-dir {base} is a file, not a directory. Fix: give a directory path.")
    try:
        base.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        fresh = base / f"{label}-{stamp}-{secrets.token_hex(3)}"
        fresh.mkdir()
    except OSError as exc:
        raise InvalidOption(
            f"--download-dir {base} cannot be used: {exc.strerror or exc}. Fix: give a directory "
            "you can write to."
        ) from exc
    yield DownloadArea(path=fresh.resolve(), kept=True)


def _downloaded(role: str, data: Mapping[str, Any]) -> DownloadedModel:
    manifest = {path: FileEntry(size=int(size), sha256=sha) for path, (size, sha) in data["manifest"].items()}
    return DownloadedModel(
        role=role,
        uri=data["uri"],
        location=data["location"],
        local_path=data["local_path"],
        manifest=manifest,
        mlmodel_text=data.get("mlmodel"),
        integrity=check_integrity(manifest, data.get("mlmodel")),
        download_seconds=float(data.get("download_seconds") or 0.0),
        shared_with=data.get("shared_with"),
    )


def narrowed(
    left: DownloadedModel, right: DownloadedModel, native_model: str | None
) -> tuple[dict[str, FileEntry], dict[str, FileEntry], NativePaths | None, NativePaths | None]:
    """The files a comparison covers: all but registered_model_meta, or the native model's."""
    left_files, right_files = (
        without_registry_meta(left.manifest)[0],
        without_registry_meta(right.manifest)[0],
    )
    if not native_model:
        return dict(left.manifest), dict(right.manifest), None, None
    return narrow_both(
        left_files,
        right_files,
        native_model,
        left_mlmodel=left.mlmodel_text,
        right_mlmodel=right.mlmodel_text,
    )


def compare_models(
    left: DownloadedModel, right: DownloadedModel, *, strict: bool, native_model: str | None
) -> tuple[TreeComparison, NativePaths | None, NativePaths | None]:
    """Compare two downloaded models, narrowed to the native model when one is named."""
    left_files, right_files, left_paths, right_paths = narrowed(left, right, native_model)
    comparison = compare_trees(
        left_files,
        right_files,
        left_mlmodel=left.mlmodel_text if MLMODEL in left_files else None,
        right_mlmodel=right.mlmodel_text if MLMODEL in right_files else None,
        strict=strict,
    )
    return comparison, left_paths, right_paths


def check_model_version(
    model: str,
    version_or_stage: str,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    download_dir: str | os.PathLike[str] | None = None,
    strict: bool = False,
    native_model: str | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    on_progress: ProgressCallback | None = None,
    on_log: LogCallback | None = None,
) -> CheckResult:
    """Check that a model version's run model is identical to the registry's copy.

    Resolves `version_or_stage` (`@alias`, a number, `latest`, a stage, else an alias), downloads
    both models (once when they are one storage location) and compares them file by file.
    Raises a subclass of `VersionCheckError` when the check cannot be done.
    """
    validate_name_and_version(model, version_or_stage)
    validate_timeouts(timeout, retries)
    tracking, registry = resolve_server_uris(tracking_uri, registry_uri)
    if native_model is not None and not native_model.strip():
        raise InvalidOption("--native-model is empty. Fix: give a relative path or 'auto'.")
    server = ServerSpec(
        tracking_uri=tracking, registry_uri=registry, timeout_seconds=timeout, retries=retries
    )
    started = time.monotonic()
    with download_area(download_dir, "check") as area:
        result = run_worker(
            server,
            {
                "tracking_uri": tracking,
                "registry_uri": registry,
                "model": model.strip(),
                "version_or_stage": version_or_stage.strip(),
                "download_dir": str(area.path),
                "roles": ["run_model", "reg_model"],
            },
            label="",
            on_progress=on_progress,
            on_log=on_log,
        )
        compare_started = time.monotonic()
        version = ModelVersionInfo.from_worker(result["version"], tracking, registry)
        run_model = _downloaded("run_model", result["models"]["run_model"])
        reg_model = _downloaded("reg_model", result["models"]["reg_model"])
        same_location = bool(result["same_location"])
        try:
            if same_location:
                # One location compared with itself proves nothing: integrity decides (results.py).
                comparison = None
                files, _, run_paths, _ = narrowed(run_model, run_model, native_model)
                run_summary = reg_summary = summarize(without_registry_meta(files)[0])
                reg_paths = run_paths
            else:
                comparison, run_paths, reg_paths = compare_models(
                    run_model, reg_model, strict=strict, native_model=native_model
                )
                run_summary, reg_summary = comparison.left, comparison.right
        except VersionCheckError as exc:
            exc.partial.setdefault("version", result["version"])
            raise
        timings = dict(result.get("timings") or {})
        timings["download_seconds"] = run_model.download_seconds + (
            0.0 if same_location else reg_model.download_seconds
        )
        timings["compare_seconds"] = time.monotonic() - compare_started
        timings["total_seconds"] = time.monotonic() - started
        return CheckResult(
            version=version,
            run_model=run_model,
            reg_model=reg_model,
            same_location=same_location,
            comparison=comparison,
            run_summary=run_summary,
            reg_summary=reg_summary,
            native_model=native_model,
            native_paths=(run_paths or (), reg_paths or ()) if native_model else None,
            strict=strict,
            download_dir=str(area.path),
            download_dir_kept=area.kept,
            timings=timings,
        )
