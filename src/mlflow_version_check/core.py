"""The core: resolve -> locate -> download -> compare, returning typed results.

It never prints and never exits; failures are the named errors of errors.py.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import databricks
from .comparison import (
    MLMODEL,
    MLmodel,
    compare_trees,
    narrow_both,
    summarize,
    with_native,
    without_registry_meta,
)
from .config import SERVER_KEYS, CompareConfig, load_config, uri_problem, validate_config
from .errors import InvalidOption, VersionCheckError
from .integrity import check_integrity
from .pool import (
    PRIVATE_PATHS,
    LogCallback,
    Plan,
    ProgressCallback,
    ServerSpec,
    Wanted,
    WorkerPool,
    label_of,
    plan_downloads,
)
from .protocol import LocatedVersion, ModelManifest, RegistryVersion
from .results import (
    CheckResult,
    CompareResult,
    DownloadedModel,
    ModelComparison,
    ModelVersionInfo,
    SealResult,
    VerifyResult,
)


def resolve_server_uris(tracking_uri: str | None, registry_uri: str | None) -> tuple[str, str | None]:
    """Options override MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, as in MLflow and the seed."""
    tracking = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    registry = (registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or "").strip() or None
    if not tracking:
        raise InvalidOption(
            "no tracking server given: neither {option:tracking_uri} nor MLFLOW_TRACKING_URI is set",
            what_names_options=True,
            fix="pass {option:tracking_uri} http://host:5000 (or databricks://<profile>), or export "
            "MLFLOW_TRACKING_URI.",
        )
    for name, value in (("tracking", tracking), ("registry", registry)):
        if value and (problem := uri_problem(value)):
            raise InvalidOption(
                f"the {name} URI: {problem}",
                fix="give a full URI such as http://127.0.0.1:5000 or databricks://<profile> "
                "({option:tracking_uri} / {option:registry_uri} or MLFLOW_*_URI).",
            )
    return tracking, registry


def server_spec(
    tracking_uri: str, registry_uri: str | None, model: str, *, timeout: float, retries: int
) -> ServerSpec:
    """The server a version lives on: its registry (Databricks rule) and its worker's environment."""
    registry = registry_uri or databricks.default_registry(tracking_uri, model)
    return ServerSpec(
        tracking_uri=tracking_uri,
        registry_uri=registry,
        timeout_seconds=timeout,
        retries=retries,
        extra_env=databricks.worker_environment(tracking_uri, registry, os.environ),
    )


def validate_name_and_version(model: str, version_or_stage: str) -> None:
    if not model or not model.strip():
        raise InvalidOption("the model name is empty", fix="pass {option:model} <registered model name>.")
    spec = (version_or_stage or "").strip()
    if not spec:
        raise InvalidOption(
            "the version or stage is empty",
            fix="pass {option:version_or_stage} with a version number, 'latest', a stage (production, "
            "staging, archived, none) or '@alias'.",
        )
    if spec == "@":
        raise InvalidOption("version_or_stage '@' names no alias", fix="give '@<alias>'.")


def validate_timeouts(timeout: float, retries: int) -> None:
    if not timeout > 0:
        raise InvalidOption(
            f"{{option:timeout}} must be more than 0 seconds, not {timeout}.", what_names_options=True
        )
    if retries < 0 or retries > 20:
        raise InvalidOption(
            f"{{option:retries}} must be between 0 and 20, not {retries}.", what_names_options=True
        )


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
        raise InvalidOption(
            f"{{option:download_dir}} {base} is a file, not a directory",
            fix="give a directory path.",
            what_names_options=True,
        )
    try:
        base.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        fresh = base / f"{label}-{stamp}-{secrets.token_hex(3)}"
        fresh.mkdir()
    except OSError as exc:
        raise InvalidOption(
            f"{{option:download_dir}} {base} cannot be used: {exc.strerror or exc}",
            fix="give a directory you can write to.",
            what_names_options=True,
        ) from exc
    yield DownloadArea(path=fresh.resolve(), kept=True)


@dataclass(frozen=True)
class Inspection:
    """What the workers found and downloaded, by version key and role."""

    versions: dict[str, ModelVersionInfo]
    models: dict[str, dict[str, DownloadedModel]]
    timings: dict[str, float]
    # The versions as the registry described them (what an error report keeps).
    resolved: dict[str, RegistryVersion]

    def timings_with(self, compare_started: float, started: float) -> dict[str, float]:
        """These timings plus the comparison's and the run's total, as of now (monotonic clock)."""
        now = time.monotonic()
        return {**self.timings, "compare_seconds": now - compare_started, "total_seconds": now - started}


def inspect_versions(
    wanted: list[Wanted],
    roles: list[str],
    destination: Callable[[str, str], Path],
    *,
    on_progress: ProgressCallback | None = None,
    on_log: LogCallback | None = None,
    private_paths: Sequence[Path] = (),
) -> Inspection:
    """Resolve, locate and download the roles of each wanted version; one worker per server.

    `destination(key, role)` gives the local directory of a download. Versions on the same server
    share one worker; a storage location is downloaded once. `private_paths` (a temporary download
    area) are removed by a worker that finds its parent killed (SIGKILL leaves no `finally`).
    """
    servers: list[ServerSpec] = []
    for item in wanted:
        if item.server not in servers:
            servers.append(item.server)
    with contextlib.ExitStack() as stack:
        run_env: dict[str, str] = {}
        if any(
            databricks.uses_databricks(s.tracking_uri) or databricks.uses_databricks(s.registry_uri)
            for s in servers
        ):
            timeout = max(server.timeout_seconds for server in servers)
            run_env = stack.enter_context(databricks.bounded_config(timeout, os.environ))
        private = list(PRIVATE_PATHS)  # the process's own (the action's private HOME)
        if run_env:  # the private copy of the Databricks config, with credentials in clear
            private.append(str(Path(run_env["DATABRICKS_CONFIG_FILE"]).parent))
        private += [str(path) for path in private_paths]
        pool = stack.enter_context(
            WorkerPool(
                wanted, roles, on_progress=on_progress, on_log=on_log, run_env=run_env, private_paths=private
            )
        )
        keys = [item.key for item in wanted]
        located = pool.locate_all()
        plan = plan_downloads(located, keys, roles, lambda key, role: str(destination(key, role)))
        manifests = pool.download_all(plan)
    return assemble(wanted, roles, located, plan, manifests)


def assemble(
    wanted: Sequence[Wanted],
    roles: Sequence[str],
    located: Mapping[str, LocatedVersion],
    plan: Plan,
    manifests: Mapping[tuple[str, str], ModelManifest],
) -> Inspection:
    """The inspection of located and downloaded versions: a model that shares another's storage
    location gets that download's files, with its own URI and location."""
    models: dict[str, dict[str, DownloadedModel]] = {}
    for item in wanted:
        for role in roles:
            owner = plan.owner(item.key, role)
            manifest = manifests[owner]
            where = located[item.key].models[role]
            mlmodel = MLmodel.parse(manifest.mlmodel_text)
            models.setdefault(item.key, {})[role] = DownloadedModel(
                role=role,
                uri=where.uri,
                location=where.location,
                local_path=manifest.local_path,
                manifest=manifest.files,
                mlmodel_text=manifest.mlmodel_text,
                integrity=check_integrity(manifest.files, mlmodel),
                download_seconds=manifest.download_seconds if owner == (item.key, role) else 0.0,
                shared_with=None if owner == (item.key, role) else label_of(*owner),
                mlmodel=mlmodel,
            )
    versions = {
        item.key: ModelVersionInfo.of(
            located[item.key].version, item.server.tracking_uri, item.server.registry_uri
        )
        for item in wanted
    }
    timings = {
        "resolve_seconds": max(located[item.key].resolve_seconds for item in wanted),
        "download_seconds": max((manifest.download_seconds for manifest in manifests.values()), default=0.0),
    }
    resolved = {item.key: located[item.key].version for item in wanted}
    return Inspection(versions=versions, models=models, timings=timings, resolved=resolved)


def compare_pair(
    role: str,
    left: DownloadedModel,
    right: DownloadedModel,
    *,
    strict: bool,
    left_native: str | None,
    right_native: str | None = None,
) -> ModelComparison:
    """Compare two downloaded models (narrowed to the native model when one is named).

    When both are one storage location (downloaded once), comparing it with itself proves nothing:
    the result says `same_location` and carries the tree's summary; the caller decides what that
    means (check: integrity decides; compare: one location is one model).
    """
    selection = (
        narrow_both(
            left.manifest,
            right.manifest,
            left_native,
            right_native,
            left_mlmodel=left.mlmodel or left.mlmodel_text,
            right_mlmodel=right.mlmodel or right.mlmodel_text,
        )
        if left_native or right_native
        else None
    )
    left_files = selection.left if selection else dict(left.manifest)
    right_files = selection.right if selection else dict(right.manifest)
    native_paths = (selection.left_paths, selection.right_paths) if selection else None
    whole_model = selection.whole_model if selection else None
    left_native_path = selection.left_native if selection else None
    right_native_path = selection.right_native if selection else None
    if left.local_path == right.local_path:
        summary = with_native(summarize(without_registry_meta(left_files)[0]), left_files, left_native_path)
        return ModelComparison(role, left, right, True, None, summary, summary, native_paths, whole_model)
    comparison = compare_trees(
        left_files,
        right_files,
        left_mlmodel=(left.mlmodel or left.mlmodel_text) if MLMODEL in left_files else None,
        right_mlmodel=(right.mlmodel or right.mlmodel_text) if MLMODEL in right_files else None,
        strict=strict,
    )
    return ModelComparison(
        role,
        left,
        right,
        False,
        comparison,
        with_native(comparison.left, left_files, left_native_path),
        with_native(comparison.right, right_files, right_native_path),
        native_paths,
        whole_model,
    )


@contextmanager
def _one_version(
    model: str,
    version_or_stage: str,
    roles: list[str],
    label: str,
    tracking: str,
    registry: str | None,
    *,
    download_dir: str | os.PathLike[str] | None,
    timeout: float,
    retries: int,
    on_progress: ProgressCallback | None,
    on_log: LogCallback | None,
) -> Iterator[tuple[Inspection, DownloadArea]]:
    """One version's `roles`, resolved and downloaded into a fresh download area (check, seal): the
    inspection and its area, which stays until the caller is done with the files."""
    server = server_spec(tracking, registry, model.strip(), timeout=timeout, retries=retries)
    with download_area(download_dir, label) as area:
        yield (
            inspect_versions(
                [Wanted("version", server, model.strip(), version_or_stage.strip())],
                roles,
                lambda key, role: area.path / role,
                on_progress=on_progress,
                on_log=on_log,
                private_paths=() if area.kept else (area.path,),
            ),
            area,
        )


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
        raise InvalidOption(
            "{option:native_model} is empty", fix="give a relative path or 'auto'.", what_names_options=True
        )
    started = time.monotonic()
    with _one_version(
        model,
        version_or_stage,
        ["run_model", "reg_model"],
        "check",
        tracking,
        registry,
        download_dir=download_dir,
        timeout=timeout,
        retries=retries,
        on_progress=on_progress,
        on_log=on_log,
    ) as (inspection, area):
        compare_started = time.monotonic()
        version = inspection.versions["version"]
        models = inspection.models["version"]
        try:
            pair = compare_pair(
                "check", models["run_model"], models["reg_model"], strict=strict, left_native=native_model
            )
        except VersionCheckError as exc:
            exc.resolved.update(inspection.resolved)
            raise
        timings = inspection.timings_with(compare_started, started)
        return CheckResult(
            version=version,
            models=pair,
            native_model=native_model,
            strict=strict,
            download_dir=str(area.path),
            download_dir_kept=area.kept,
            timings=timings,
        )


def requested_roles(compare_run_models: bool, compare_reg_models: bool) -> list[str]:
    """Neither flag compares both, as in the original tool."""
    if compare_run_models == compare_reg_models:
        return ["run_model", "reg_model"]
    return ["run_model"] if compare_run_models else ["reg_model"]


def compare_model_versions(
    config: CompareConfig | str | os.PathLike[str] | Mapping[str, Any],
    *,
    compare_run_models: bool = False,
    compare_reg_models: bool = False,
    download_dir: str | os.PathLike[str] | None = None,
    strict: bool = False,
    native_model: str | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    on_progress: ProgressCallback | None = None,
    on_log: LogCallback | None = None,
) -> CompareResult:
    """Compare two model versions, on one server or two: run models with run models, registry models
    with registry models (neither flag: both).

    `config` is a CompareConfig, the path of a config.yaml, or its content as a dict. `native_model`
    overrides the config's per-server native_model. The two servers are inspected concurrently.
    Raises a subclass of `VersionCheckError` when the comparison cannot be done.
    """
    if isinstance(config, CompareConfig):
        loaded = config
    elif isinstance(config, Mapping):
        loaded = validate_config(dict(config))
    else:
        loaded = load_config(os.fspath(config))
    validate_timeouts(timeout, retries)
    if native_model is not None and not native_model.strip():
        raise InvalidOption(
            "{option:native_model} is empty", fix="give a relative path or 'auto'.", what_names_options=True
        )
    roles = requested_roles(compare_run_models, compare_reg_models)
    wanted = [
        Wanted(
            key,
            server_spec(side.host, side.registry_uri, side.model, timeout=timeout, retries=retries),
            side.model,
            side.version_or_stage,
        )
        for key, side in zip(SERVER_KEYS, loaded.servers, strict=True)
    ]
    for item in wanted:
        validate_name_and_version(item.model, item.version_or_stage)
    started = time.monotonic()
    with download_area(download_dir, "compare") as area:
        inspection = inspect_versions(
            wanted,
            roles,
            lambda key, role: area.path / role / key.replace("tracking_", ""),
            on_progress=on_progress,
            on_log=on_log,
            private_paths=() if area.kept else (area.path,),
        )
        compare_started = time.monotonic()
        left_native = native_model or loaded.tracking_server_1.native_model
        right_native = native_model or loaded.tracking_server_2.native_model
        try:
            comparisons = {
                role: compare_pair(
                    role,
                    inspection.models[SERVER_KEYS[0]][role],
                    inspection.models[SERVER_KEYS[1]][role],
                    strict=strict,
                    left_native=left_native,
                    right_native=right_native,
                )
                for role in roles
            }
        except VersionCheckError as exc:
            exc.resolved.update(inspection.resolved)
            raise
        timings = inspection.timings_with(compare_started, started)
        return CompareResult(
            versions=(inspection.versions[SERVER_KEYS[0]], inspection.versions[SERVER_KEYS[1]]),
            comparisons=comparisons,
            native_model=native_model,
            strict=strict,
            download_dir=str(area.path),
            download_dir_kept=area.kept,
            timings=timings,
        )


def seal_model_version(
    model: str,
    version_or_stage: str,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    download_dir: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    on_progress: ProgressCallback | None = None,
    on_log: LogCallback | None = None,
) -> SealResult:
    """Hash a version's registry model (the bytes a deployment downloads) as it streams.

    The result's `root_digest` and `files` are the seal: `oms.statement(result.files, ...)` is its
    OpenSSF Model Signing manifest. `result.equals` is False when the model is not a complete MLflow
    model (its integrity problems say why): a seal of a broken model would approve it.
    Raises a subclass of `VersionCheckError` when the version cannot be read or downloaded.
    """
    from .oms import root_digest

    validate_name_and_version(model, version_or_stage)
    validate_timeouts(timeout, retries)
    tracking, registry = resolve_server_uris(tracking_uri, registry_uri)
    started = time.monotonic()
    with _one_version(
        model,
        version_or_stage,
        ["reg_model"],
        "seal",
        tracking,
        registry,
        download_dir=download_dir,
        timeout=timeout,
        retries=retries,
        on_progress=on_progress,
        on_log=on_log,
    ) as (inspection, area):
        hashed = inspection.models["version"]["reg_model"]
        files = without_registry_meta(hashed.manifest)[0]
        return SealResult(
            version=inspection.versions["version"],
            model=hashed,
            files=files,
            root_digest=root_digest(files),
            download_dir=str(area.path),
            download_dir_kept=area.kept,
            timings={**inspection.timings, "total_seconds": time.monotonic() - started},
        )


def verify_model_version(
    model: str,
    version_or_stage: str,
    *,
    expect_digest: str,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    download_dir: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    on_progress: ProgressCallback | None = None,
    on_log: LogCallback | None = None,
) -> VerifyResult:
    """Prove that a version's registry model is still the one sealed: its OMS root digest, hashed
    now as it streams, equals `expect_digest` (`sha256:<hex>`, as `seal` printed it).

    A malformed digest is refused (ManifestError, exit 2) before anything is downloaded.
    """
    from .oms import read_digest

    expected = read_digest(expect_digest.strip())
    current = seal_model_version(
        model,
        version_or_stage,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        download_dir=download_dir,
        timeout=timeout,
        retries=retries,
        on_progress=on_progress,
        on_log=on_log,
    )
    return VerifyResult(current=current, expected_root=expected)
