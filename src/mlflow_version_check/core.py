"""The core: resolve -> locate -> download -> compare, returning typed results.

It never prints and never exits; failures are the named errors of errors.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import databricks, oms
from .comparison import (
    MLMODEL,
    REGISTERED_MODEL_META,
    MLmodel,
    compare_trees,
    compare_with_reference,
    narrow_both,
    summarize,
    with_native,
    without_registry_meta,
)
from .config import SERVER_KEYS, CompareConfig, load_config, uri_problem, validate_config
from .errors import InvalidOption, ManifestError, SignatureMismatch, VersionCheckError
from .integrity import IntegrityReport, check_integrity
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
from .protocol import LocatedVersion, ModelManifest, RegistryVersion, VersionTag
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
    # The model version tags set once the downloads were judged (tags_to_record).
    recorded_tags: tuple[VersionTag, ...] = ()

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
    tags_to_record: Callable[[Inspection], Sequence[VersionTag]] | None = None,
) -> Inspection:
    """Resolve, locate and download the roles of each wanted version; one worker per server.

    `destination(key, role)` gives the local directory of a download. Versions on the same server
    share one worker; a storage location is downloaded once. `private_paths` (a temporary download
    area) are removed by a worker that finds its parent killed (SIGKILL leaves no `finally`).
    `tags_to_record`, given the inspection, names the model version tags to set then (seal
    --record-tag), by the same workers.
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
        inspection = assemble(wanted, roles, located, plan, manifests)
        to_record = tuple(tags_to_record(inspection)) if tags_to_record else ()
        pool.finish_all(to_record)
    return dataclasses.replace(inspection, recorded_tags=to_record)


def parse_and_judge(manifest: ModelManifest) -> tuple[MLmodel, IntegrityReport]:
    """A downloaded model's MLmodel, parsed, and its completeness (check_integrity)."""
    mlmodel = MLmodel.parse(manifest.mlmodel_text)
    return mlmodel, check_integrity(manifest.files, mlmodel)


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
    parsed: dict[tuple[str, str], tuple[MLmodel, IntegrityReport]] = {}
    for item in wanted:
        for role in roles:
            owner = plan.owner(item.key, role)
            manifest = manifests[owner]
            where = located[item.key].models[role]
            if owner not in parsed:  # one download, shared by two models: parsed and judged once
                parsed[owner] = parse_and_judge(manifest)
            mlmodel, integrity = parsed[owner]
            models.setdefault(item.key, {})[role] = DownloadedModel(
                role=role,
                uri=where.uri,
                location=where.location,
                local_path=manifest.local_path,
                manifest=manifest.files,
                mlmodel_text=manifest.mlmodel_text,
                integrity=integrity,
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
    tags_to_record: Callable[[Inspection, DownloadArea], Sequence[VersionTag]] | None = None,
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
                tags_to_record=(lambda inspection: tags_to_record(inspection, area))
                if tags_to_record
                else None,
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
    record_tag: bool = False,
    before_recording: Callable[[SealResult], None] | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    on_progress: ProgressCallback | None = None,
    on_log: LogCallback | None = None,
) -> SealResult:
    """Hash a version's registry model (the bytes a deployment downloads) as it streams.

    The result's `root_digest` and `files` are the seal: `oms.statement(result.files, ...)` is its
    OpenSSF Model Signing manifest. `result.equals` is False when the model is not a complete MLflow
    model (its integrity problems say why): a seal of a broken model would approve it.

    `record_tag` also sets the version's tag `oms.SEAL_TAG` to `sha256:<root digest>`: on the version
    number resolved, only for a complete model, and last. `before_recording(result)` runs first
    (the CLI writes the manifest and the report there): when it raises, nothing is recorded and its
    exception propagates, so that no tag outlives a seal that was not published. A tag that cannot
    be set raises a VersionCheckError after it.
    Raises a subclass of `VersionCheckError` when the version cannot be read or downloaded.
    """
    validate_name_and_version(model, version_or_stage)
    validate_timeouts(timeout, retries)
    tracking, registry = resolve_server_uris(tracking_uri, registry_uri)
    started = time.monotonic()
    sealed: list[SealResult] = []

    def judge(inspection: Inspection, area: DownloadArea) -> list[VersionTag]:
        hashed = inspection.models["version"]["reg_model"]
        files = without_registry_meta(hashed.manifest)[0]
        result = SealResult(
            version=inspection.versions["version"],
            model=hashed,
            files=files,
            root_digest=oms.root_digest(files),
            download_dir=str(area.path),
            download_dir_kept=area.kept,
            timings={**inspection.timings, "total_seconds": time.monotonic() - started},
            recorded_tag=oms.SEAL_TAG if record_tag and hashed.integrity.ok else None,
        )
        sealed.append(result)
        if before_recording is not None:
            before_recording(result)
        if result.recorded_tag is None:
            return []
        version = result.version
        return [
            VersionTag(
                "version", version.name, version.version, oms.SEAL_TAG, oms.DIGEST_PREFIX + result.root_digest
            )
        ]

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
        tags_to_record=judge,
    ):
        return sealed[0]


# The largest reference file read (a manifest of a model of a million files is about 150 MB).
REFERENCE_MAX_BYTES = 512 * 1024 * 1024


def _refuse_unless_regular_file(path: str | os.PathLike[str], what: str, option: str) -> None:
    """A reference must be a regular file: a FIFO would block the run, a device never end."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # the read that follows says why, in the reader's own words
    if not stat.S_ISREG(mode):
        raise ManifestError(
            f"the {what} {path} is not a regular file",
            cause="a device, a pipe or a folder given instead of the file",
            fix=f"give {option} the path of the file itself.",
        )


def _read_reference_file(path: str | os.PathLike[str], what: str, option: str) -> str:
    """A reference file's text; ManifestError (exit 2) when it cannot be read as UTF-8 text."""
    _refuse_unless_regular_file(path, what, option)
    try:
        with open(path, "rb") as stream:
            data = stream.read(REFERENCE_MAX_BYTES + 1)
    except OSError as exc:
        raise ManifestError(
            f"cannot read the {what} {path}: {exc.strerror or exc}",
            cause="a wrong path, or a file the job cannot read",
            fix=f"give {option} the path of the file `seal` (or model_signing) wrote.",
        ) from exc
    if len(data) > REFERENCE_MAX_BYTES:
        raise ManifestError(
            f"the {what} {path} is larger than {REFERENCE_MAX_BYTES // (1024 * 1024)} MB",
            cause="a file other than an OMS statement",
            fix=f"give {option} the path of the file `seal` (or model_signing) wrote.",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"the {what} {path} is not UTF-8 text",
            cause="a file other than an OMS statement, or one damaged in copying",
            fix=f"give {option} the path of the file `seal` (or model_signing) wrote.",
        ) from exc


def sealed_mlmodel_path(reference_file: str | os.PathLike[str]) -> Path:
    """Where a seal keeps its copy of the sealed MLmodel: next to the manifest, `<manifest>.MLmodel`."""
    return Path(os.fspath(reference_file) + oms.SEALED_MLMODEL_SUFFIX)


def _sealed_mlmodel(
    reference: oms.Reference, reference_file: str | None
) -> tuple[str | None, str | None, str | None]:
    """The sealed MLmodel's text for the MLmodel rule, its path, or why none is used.

    A copy is trusted only when its SHA-256 is the MLmodel digest the reference lists: the reference
    (signed, or kept by the approver) vouches for it, so an edited copy is not used.
    """
    if reference_file is None or reference.files is None or MLMODEL not in reference.files:
        return None, None, None
    path = sealed_mlmodel_path(reference_file)
    if not path.is_file() or path.is_symlink():
        return None, None, None
    try:
        with open(path, "rb") as stream:
            data = stream.read(MLMODEL_COPY_MAX_BYTES + 1)
    except OSError as exc:
        return None, None, f"the sealed MLmodel copy {path} cannot be read ({exc.strerror or exc})"
    if hashlib.sha256(data).hexdigest() != reference.files[MLMODEL]:
        return (
            None,
            None,
            (
                f"the sealed MLmodel copy {path} is not the MLmodel the reference lists (its SHA-256 "
                "differs), so it was not used"
            ),
        )
    try:
        return data.decode("utf-8"), str(path), None
    except UnicodeDecodeError:
        return None, None, f"the sealed MLmodel copy {path} is not UTF-8 text, so it was not used"


# MLmodel files are kilobytes; the worker reads none larger than this either.
MLMODEL_COPY_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class _GivenReference:
    """The reference a verify was given, read before anything is downloaded."""

    kind: str
    source: str
    reference: oms.Reference | None  # None: a recorded tag (read with the version), or a bad signature
    file: str | None = None
    signature_verified: bool | None = None
    problem: str | None = None


def _refuse_unless_one_reference(
    given: Mapping[str, object], signature_file: object, public_key: object
) -> None:
    # The pair first: a key given alone is a signature left out, not a missing reference.
    if (signature_file in (None, "")) != (public_key in (None, "")):
        missing = "public_key_file" if public_key in (None, "") else "signature_file"
        raise InvalidOption(
            "{option:signature_file} and {option:public_key_file} go together; {option:"
            + missing
            + "} is missing",
            cause="a signature is verified with the public key paired with the key that signed",
            fix="give both, or another reference.",
            what_names_options=True,
        )
    named = [name for name, value in given.items() if value not in (None, "", False)]
    if len(named) != 1:
        shown = " and ".join("{option:" + name + "}" for name in named)
        raise InvalidOption(
            "verify needs exactly one reference, " + (f"got {shown}" if named else "got none"),
            cause="a reference is what the model is verified against",
            fix="give one of {option:manifest_file}, {option:signature_file} (with "
            "{option:public_key_file}), {option:expect_digest} or {option:recorded_tag}.",
            what_names_options=True,
        )


def _given_reference(
    manifest_file: str | None,
    signature_file: str | None,
    public_key_file: str | None,
    expect_digest: str | None,
) -> _GivenReference:
    """Read and check the one reference given (ManifestError, exit 2, when it is unusable)."""
    if manifest_file:
        text = _read_reference_file(manifest_file, "manifest file", "{option:manifest_file}")
        statement = oms.read_statement(text, source=f"the manifest file {manifest_file}")
        found = _GivenReference("manifest", manifest_file, statement, file=manifest_file)
    elif signature_file and public_key_file:
        _refuse_unless_regular_file(signature_file, "signature bundle", "{option:signature_file}")
        _refuse_unless_regular_file(public_key_file, "public key", "{option:public_key_file}")
        try:
            signed = oms.verify_signature(signature_file, public_key_file)
        except SignatureMismatch as exc:
            # A verdict, not a failure to verify: the model is not proven. It is still hashed, so
            # that the report says which version was checked and what its root digest is now.
            problem = exc.what + (f" ({exc.cause})" if exc.cause else "")
            return _GivenReference("signature", signature_file, None, signature_file, False, problem)
        found = _GivenReference(
            "signature", signature_file, signed, file=signature_file, signature_verified=True
        )
    elif expect_digest:
        digest = expect_digest.strip()
        return _GivenReference("digest", digest, oms.Reference(files=None, root=oms.read_digest(digest)))
    else:
        return _GivenReference("recorded-tag", oms.SEAL_TAG, None)
    listed = set(found.reference.files or ()) - {REGISTERED_MODEL_META} if found.reference else set()
    if found.reference is not None and not listed:
        raise ManifestError(
            f"the {found.kind} {found.source} lists no file: it would verify any model",
            cause="a statement made of an empty folder, or one whose files were all ignored",
            fix="seal the version again, or give the reference made of the model.",
        )
    return found


def _recorded_reference(version: ModelVersionInfo) -> oms.Reference:
    """The root digest `seal --record-tag` stored in the version's tag (ManifestError, exit 2, when
    there is none or it is malformed)."""
    try:
        if version.seal_tag is None:
            raise ManifestError(
                f"version {version.version} of '{version.name}' has no tag {oms.SEAL_TAG}",
                cause="it was not sealed with {option:record_tag}, or the tag was removed",
                fix="seal it with {option:record_tag}, or give another reference.",
            )
        try:
            return oms.Reference(files=None, root=oms.read_digest(version.seal_tag.strip()))
        except ManifestError as exc:
            exc.what = f"the tag {oms.SEAL_TAG} of version {version.version} of '{version.name}': {exc.what}"
            raise
    except ManifestError as exc:
        exc.resolved["version"] = version
        raise


def verify_model_version(
    model: str,
    version_or_stage: str,
    *,
    manifest_file: str | os.PathLike[str] | None = None,
    signature_file: str | os.PathLike[str] | None = None,
    public_key_file: str | os.PathLike[str] | None = None,
    expect_digest: str | None = None,
    recorded_tag: bool = False,
    strict: bool = False,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    download_dir: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    on_progress: ProgressCallback | None = None,
    on_log: LogCallback | None = None,
) -> VerifyResult:
    """Prove that a version's registry model is still the one approved, against exactly one reference:

    - `manifest_file`: an OMS statement (`seal`'s, or any OMS v1.0 `files` statement): every file's
      digest; each changed, missing and extra file is named;
    - `signature_file` with `public_key_file`: an OMS Sigstore bundle signed with a key (`model_signing
      sign key`): the signature is verified (a signature that does not verify fails the model), then
      the files it lists, as for a manifest;
    - `expect_digest`: the root digest `sha256:<hex>` seal printed, matched exactly;
    - `recorded_tag`: the root digest `seal --record-tag` stored in the version's tag `oms.SEAL_TAG`.

    A changed MLmodel is compared by content (only identity fields may differ: a copy of the version
    on another server verifies) when the reference lists files and the sealed MLmodel copy
    (`<reference file>.MLmodel`, seal writes it) is found and is the one listed; `strict` compares
    every file's bytes. A missing, unreadable or malformed reference is refused (ManifestError,
    exit 2) before anything is downloaded, but for a recorded tag, which is read with the version.
    """
    paths = [
        os.fspath(path) if path is not None else None
        for path in (manifest_file, signature_file, public_key_file)
    ]
    _refuse_unless_one_reference(
        {
            "manifest_file": paths[0],
            "signature_file": paths[1],
            "expect_digest": expect_digest,
            "recorded_tag": recorded_tag,
        },
        paths[1],
        paths[2],
    )
    validate_name_and_version(model, version_or_stage)
    validate_timeouts(timeout, retries)
    given = _given_reference(paths[0], paths[1], paths[2], expect_digest)
    sealed_text, sealed_file, sealed_problem = (
        _sealed_mlmodel(given.reference, given.file) if given.reference is not None else (None, None, None)
    )
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
    reference = given.reference
    if reference is None and given.kind == "recorded-tag":
        reference = _recorded_reference(current.version)
    comparison = None
    if reference is not None and reference.files is not None:
        comparison = compare_with_reference(
            reference.files,
            current.model.manifest,
            ignore_paths=reference.ignore_paths,
            actual_mlmodel=current.model.mlmodel or current.model.mlmodel_text,
            sealed_mlmodel=sealed_text,
            sealed_mlmodel_problem=sealed_problem,
            strict=strict,
        )
    return VerifyResult(
        current=current,
        reference=reference,
        kind=given.kind,
        source=given.source,
        comparison=comparison,
        strict=strict,
        sealed_mlmodel_file=sealed_file,
        signature_verified=given.signature_verified,
        problem=given.problem,
    )
