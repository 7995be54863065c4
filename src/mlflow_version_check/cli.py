"""The command line: parse options, call the core, render, choose the exit code.

Console scripts: `mlflow-version-check` (sub-commands) and the seed-compatible `check-model-version`.
Exit codes: 0 equal, 1 different, 2 wrong invocation, 3 could not check (errors.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from . import __version__
from .errors import (
    CLI_NAMES,
    EXIT_DIFFERENT,
    EXIT_EQUAL,
    EXIT_NOT_DONE,
    EXIT_USAGE,
    Interrupted,
    InvalidOption,
    ReportPathError,
    VersionCheckError,
    exit_code_of,
    render_options,
)
from .redact import redact, remember_secrets, secrets_in_uri
from .untrusted import safe_line, safe_text

if TYPE_CHECKING:
    from .results import AuditEntry, SealResult

PROGRESS_AFTER_SECONDS = 2.0


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"mlflow-version-check {__version__}")
        raise typer.Exit(0)


VersionFlag = Annotated[
    bool,
    typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit."),
]
ModelOption = Annotated[str, typer.Option("--model", help="Registered model name.", show_default=False)]
VersionOrStageOption = Annotated[
    str,
    typer.Option(
        "--version-or-stage",
        help="A version number, 'latest', a stage (production, staging, archived, none; any case), "
        "'@alias' or an alias name.",
        show_default=False,
    ),
]
DownloadDirOption = Annotated[
    str | None,
    typer.Option(
        "--download-dir",
        help="Directory for the downloaded models; each run writes a new sub-directory and keeps it. "
        "Default: a temporary directory, removed at the end.",
        show_default=False,
    ),
]
ReportFileOption = Annotated[
    str | None,
    typer.Option(
        "--report-file",
        help="Write the JSON report here (parent directories are created).",
        show_default=False,
    ),
]
ManifestFileOption = Annotated[
    str,
    typer.Option(
        "--manifest-file",
        help="Write the seal here: an OpenSSF Model Signing (OMS v1.0) statement of the registry model's "
        "files (unsigned; `model_signing` and `verify --manifest-file` read it), and next to it "
        "<manifest>.MLmodel, the sealed MLmodel (lets a copy of the version verify by content).",
        show_default=False,
    ),
]
RecordTagOption = Annotated[
    bool,
    typer.Option(
        "--record-tag",
        help="Also store the root digest in the version's tag mlflow_version_check.seal.root_digest "
        "(evidence only where the registry's database is better guarded than its artifact store).",
    ),
]
ReferenceManifestOption = Annotated[
    str | None,
    typer.Option(
        "--manifest-file",
        help="Reference: an OMS v1.0 statement (seal's, or one model_signing wrote); every changed, "
        "missing and extra file is named. A <manifest>.MLmodel next to it (seal writes one) lets a "
        "copy of the version with a new run id verify.",
        show_default=False,
    ),
]
SignatureOption = Annotated[
    str | None,
    typer.Option(
        "--signature",
        help="Reference: an OMS Sigstore bundle signed with a key (`model_signing sign key`); needs "
        "--public-key and the optional extra `signing`. The signature is verified, then the files.",
        show_default=False,
    ),
]
PublicKeyOption = Annotated[
    str | None,
    typer.Option(
        "--public-key",
        help="The PEM public key paired with the key that made --signature.",
        show_default=False,
    ),
]
ExpectDigestOption = Annotated[
    str | None,
    typer.Option(
        "--expect-digest",
        help="Reference: the root digest the registry model must have, sha256:<hex> as `seal` printed "
        "it (covers contents, not file names).",
        show_default=False,
    ),
]
RecordedTagOption = Annotated[
    bool,
    typer.Option(
        "--recorded-tag",
        help="Reference: the root digest `seal --record-tag` stored in the version's tag "
        "mlflow_version_check.seal.root_digest.",
    ),
]
ChecksumsFileOption = Annotated[
    str | None,
    typer.Option(
        "--checksums-file",
        help="Also write the files' SHA-256 in `sha256sum` format (for `sha256sum -c` and "
        "actions/attest subject-checksums).",
        show_default=False,
    ),
]
JunitFileOption = Annotated[
    str | None,
    typer.Option(
        "--junit-file",
        help="Also write the result as JUnit XML here, for CI test views (one test case per comparison).",
        show_default=False,
    ),
]
TrackingUriOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="Tracking server URI (http(s)://..., databricks, databricks://<profile>, file:...). "
        "Default: $MLFLOW_TRACKING_URI.",
        show_default=False,
    ),
]
RegistryUriOption = Annotated[
    str | None,
    typer.Option(
        "--registry-uri",
        help="Model registry URI. Default: $MLFLOW_REGISTRY_URI, else the tracking URI.",
        show_default=False,
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict", help="Compare bytes only: MLmodel identity fields (run_id, model_id, ...) count too."
    ),
]
NativeModelOption = Annotated[
    str | None,
    typer.Option(
        "--native-model",
        help="Compare only this file or folder of the model (relative path), or 'auto': what MLflow loads "
        "(MLmodel, the flavor's files, code/; the whole model for a flavor whose loading set is unknown).",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for each HTTP request to a server.", min=0.1)
]
RetriesOption = Annotated[
    int,
    typer.Option(
        "--retries", help="Retries of a failed HTTP request (429, 5xx, connection errors).", min=0, max=20
    ),
]
RunNonceOption = Annotated[
    str | None,
    typer.Option(
        "--run-nonce",
        help="Write this text into the report (System.run_nonce) and the JUnit file, so that the caller "
        "can tell the report of this run from one an earlier run left at the same path.",
        show_default=False,
    ),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", help="Show MLflow's log and each step on stderr.")]
ConfigFileOption = Annotated[
    str,
    typer.Option(
        "--config-file",
        help="The config.yaml with tracking_server_1 and tracking_server_2 (host, model, version_or_stage, "
        "optional registry_uri and native_model); - reads it from standard input.",
        show_default=False,
    ),
]
CompareRunOption = Annotated[
    bool, typer.Option("--compare-run-models", help="Compare the run models (neither flag: both).")
]
CompareRegOption = Annotated[
    bool, typer.Option("--compare-reg-models", help="Compare the registry models (neither flag: both).")
]


class Progress:
    """Renders worker progress on stderr once a download has taken a while."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.clock = clock
        self.first_seen: dict[tuple[str, str], float] = {}
        self.last_shown = float("-inf")
        self.interactive = self.stream.isatty()
        self.shown = False

    def __call__(self, event: Mapping[str, Any]) -> None:
        now = self.clock()
        key = (str(event.get("label") or ""), str(event["role"]))
        started = self.first_seen.setdefault(key, now)
        finished = event["files_done"] >= event["files_total"]
        if now - started < PROGRESS_AFTER_SECONDS and not (finished and self.shown):
            return
        if now - self.last_shown < (0.5 if self.interactive else 5.0) and not finished:
            return
        self.last_shown = now
        who = f"{key[0]} " if key[0] else ""
        text = (
            f"downloading {who}{key[1]}: {event['files_done']}/{event['files_total']} files, "
            f"{event['bytes_done'] / 2**20:.1f}/{event['bytes_total'] / 2**20:.1f} MiB"
        )
        text = safe_line(text)
        self.stream.write("\r" + text.ljust(78) if self.interactive else text + "\n")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown and self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def _log(line: str) -> None:
    sys.stderr.write(safe_line(redact(line)) + "\n")


# How this run's messages name options: the CLI's flags, or the action's inputs when the action
# runs the CLI (main(option_names=errors.ACTION_NAMES)).
OPTION_NAMES: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "OPTION_NAMES", default=CLI_NAMES
)


def failed(error: VersionCheckError) -> int:
    """An expected failure as its one line on stderr; returns its exit code."""
    fail(error.render(OPTION_NAMES.get()))
    return exit_code_of(error)


def fail(message: str) -> None:
    """The one line on stderr for an expected failure (secrets removed, no workflow command)."""
    sys.stderr.write(f"error: {safe_line(redact(message))}\n")
    sys.stderr.flush()


def _echo(text: str) -> None:
    """Standard output, each line made safe: names and paths in it come from models and servers."""
    typer.echo(safe_text(redact(text)))


def check_output_paths(
    report_file: str | None,
    junit_file: str | None = None,
    *,
    manifest_file: str | None = None,
    checksums_file: str | None = None,
    mlmodel_file: str | None = None,
    download_dir: str | None = None,
    inputs: Sequence[tuple[str, str | None]] = (),
) -> None:
    """Refuse an output path that cannot be written before any slow work starts: one that another
    output shares, one the download directory would be made at, or one of the run's own inputs
    (`inputs`: (option, path), e.g. verify's reference, which a report must never replace)."""
    outputs = (
        ("{option:report_file}", report_file),
        ("{option:junit_file}", junit_file),
        ("{option:manifest_file}", manifest_file),
        ("{option:checksums_file}", checksums_file),
        ("the MLmodel copy of {option:manifest_file}", mlmodel_file),
    )
    for option, value in (*outputs, ("{option:download_dir}", download_dir), *inputs):
        if value is not None and not value.strip():
            # Not "no file": seal would report a manifest it never wrote, and write `.MLmodel` here.
            raise InvalidOption(
                f"{option} is empty", fix="give a path, or leave the option out.", what_names_options=True
            )
    _refuse_shared_paths([(option, value) for option, value in outputs if value])
    _refuse_overwritten_inputs(
        [(option, value) for option, value in outputs if value],
        [(option, value) for option, value in inputs if value],
        download_dir,
    )
    for option, value in outputs:
        if not value:
            continue
        from .report.files import refuse_special_target

        path = Path(value).expanduser()
        refuse_special_target(option, path)
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ReportPathError(
                f"{option} {path} cannot be written: {parent} is not a writable directory",
                fix="give a path in a directory you can write to.",
                what_names_options=True,
            )


def _refuse_overwritten_inputs(
    outputs: list[tuple[str, str]], inputs: list[tuple[str, str]], download_dir: str | None
) -> None:
    """An output at an input's path would replace what the run reads (a verify report over its
    reference); one at or above the download directory would be a folder, or be removed with it."""
    resolved = [(option, Path(value).expanduser().resolve()) for option, value in outputs]
    for input_option, value in inputs:
        source = Path(value).expanduser().resolve()
        for option, path in resolved:
            if path == source:
                raise ReportPathError(
                    f"{option} is {input_option} ({path}): writing it would replace what this run reads",
                    fix="give the output its own file.",
                    what_names_options=True,
                )
    if download_dir:
        downloads = Path(download_dir).expanduser().resolve()
        for option, path in resolved:
            if path == downloads or path in downloads.parents:
                raise ReportPathError(
                    f"{option} and {{option:download_dir}} name the same path, or the downloads would lie "
                    f"inside the output ({path}, {downloads})",
                    fix="give the downloads a directory of their own.",
                    what_names_options=True,
                )


def _refuse_shared_paths(outputs: list[tuple[str, str]]) -> None:
    """Two outputs at one path, or one inside another, would overwrite each other (or fail late,
    after the first was written): refused before anything runs."""
    resolved = [(option, Path(value).expanduser().resolve()) for option, value in outputs]
    for index, (option, path) in enumerate(resolved):
        for other, other_path in resolved[index + 1 :]:
            if path == other_path or path in other_path.parents or other_path in path.parents:
                raise ReportPathError(
                    f"{option} and {other} name the same path, or one lies inside the other ({path}, "
                    f"{other_path})",
                    fix="give each output its own file.",
                    what_names_options=True,
                )


def _write(report: Mapping[str, Any], report_file: str | None, junit_file: str | None) -> bool:
    """Write the JSON report and the JUnit XML that were asked for; one line and False if one fails."""
    from .report.files import write_report, write_text_atomically
    from .report.junit import junit_xml

    for option, path in (("{option:report_file}", report_file), ("{option:junit_file}", junit_file)):
        if not path:
            continue
        try:
            # The writer checks the target again: it may have been replaced since the start.
            if option == "{option:report_file}":
                write_report(report, path, option)
            else:
                write_text_atomically(junit_xml(report), path, option)
        except ReportPathError as exc:
            failed(exc)
            return False
        except OSError as exc:
            shown = render_options(option, OPTION_NAMES.get())
            fail(
                f"writing {shown} {path} failed: {exc.strerror or exc}. Fix: give a writable "
                f"{shown} path with free space."
            )
            return False
    return True


def _shown_server(tracking_uri: str | None, registry_uri: str | None) -> tuple[str | None, str | None]:
    """The server of a one-version command as reports show it (options, else MLFLOW_*_URI), redacted.

    Credentials written into a URI are secrets by value from here on, in every message and report.
    """
    given_tracking = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    given_registry = registry_uri or os.environ.get("MLFLOW_REGISTRY_URI", "")
    remember_secrets([*secrets_in_uri(given_tracking), *secrets_in_uri(given_registry)])
    return redact(given_tracking) or None, redact(given_registry) or None


def run_check(
    *,
    model: str,
    version_or_stage: str,
    download_dir: str | None,
    report_file: str | None,
    junit_file: str | None,
    tracking_uri: str | None,
    registry_uri: str | None,
    strict: bool,
    native_model: str | None,
    timeout: float,
    retries: int,
    verbose: bool,
    run_nonce: str | None = None,
) -> int:
    """Run a check and render it; return the exit code."""
    from .core import check_model_version, resolve_server_uris
    from .report.document import check_report, error_report, finalized
    from .report.terminal import check_summary

    shown_tracking, shown_registry = _shown_server(tracking_uri, registry_uri)
    options = {
        "model": model,
        "version_or_stage": version_or_stage,
        "tracking_uri": shown_tracking,
        "registry_uri": shown_registry,
        "strict": strict,
        "native_model": native_model,
        "download_dir": download_dir,
        "report_file": report_file,
        "junit_file": junit_file,
        "timeout": timeout,
        "retries": retries,
    }
    progress = Progress()
    try:
        check_output_paths(report_file, junit_file, download_dir=download_dir)
        tracking, registry = resolve_server_uris(tracking_uri, registry_uri)
        if verbose:
            _log(f"checking {model} {version_or_stage!r} on {redact(tracking)}")
        result = check_model_version(
            model,
            version_or_stage,
            tracking_uri=tracking,
            registry_uri=registry,
            download_dir=download_dir,
            strict=strict,
            native_model=native_model,
            timeout=timeout,
            retries=retries,
            on_progress=progress,
            on_log=_log if verbose else None,
        )
    except VersionCheckError as exc:
        progress.finish()
        report = error_report(
            "check", exc, options, {"version": (shown_tracking, shown_registry)}, OPTION_NAMES.get()
        )
        return _failed(exc, finalized(report, run_nonce), report_file, junit_file)
    progress.finish()
    report = finalized(check_report(result, options), run_nonce)
    kept = result.download_dir if result.download_dir_kept else None
    return _finished(report, check_summary, report_file, junit_file, kept)


def run_seal(
    *,
    model: str,
    version_or_stage: str,
    manifest_file: str,
    checksums_file: str | None,
    download_dir: str | None,
    report_file: str | None,
    junit_file: str | None,
    tracking_uri: str | None,
    registry_uri: str | None,
    timeout: float,
    retries: int,
    verbose: bool,
    record_tag: bool = False,
    run_nonce: str | None = None,
) -> int:
    """Seal a version's registry model and write its manifest; return the exit code."""
    from .core import resolve_server_uris, seal_model_version, sealed_mlmodel_path
    from .report.document import error_report, finalized, seal_report
    from .report.terminal import seal_summary

    shown_tracking, shown_registry = _shown_server(tracking_uri, registry_uri)
    options = {
        "model": model,
        "version_or_stage": version_or_stage,
        "tracking_uri": shown_tracking,
        "registry_uri": shown_registry,
        "manifest_file": manifest_file,
        "checksums_file": checksums_file,
        "record_tag": record_tag,
        "download_dir": download_dir,
        "report_file": report_file,
        "junit_file": junit_file,
        "timeout": timeout,
        "retries": retries,
    }
    progress = Progress()
    servers = {"version": (shown_tracking, shown_registry)}
    written: list[str] = []
    mlmodel_file = str(sealed_mlmodel_path(manifest_file)) if manifest_file else None
    published: list[Mapping[str, Any]] = []

    def publish(result: SealResult) -> None:
        """The seal's files, then its report: all written before the tag is recorded, so that no tag
        outlives a run that did not publish its seal."""
        nonlocal written
        progress.finish()
        if result.equals:
            written = _write_seal(result, manifest_file, checksums_file)
        written_mlmodel = mlmodel_file if mlmodel_file in written else None
        report = finalized(
            seal_report(result, options, manifest_file, checksums_file, written_mlmodel), run_nonce
        )
        if not _write(report, report_file, junit_file):
            raise _NotPublished
        published.append(report)

    try:
        check_output_paths(
            report_file,
            junit_file,
            manifest_file=manifest_file,
            checksums_file=checksums_file,
            mlmodel_file=mlmodel_file,
            download_dir=download_dir,
        )
        # The files at the seal's paths are this run's seal, or nothing: an earlier run's seal left
        # there would pass for this one's when this one fails or refuses an incomplete model.
        _remove_earlier_seal(manifest_file, mlmodel_file, checksums_file)
        tracking, registry = resolve_server_uris(tracking_uri, registry_uri)
        if verbose:
            _log(f"sealing {model} {version_or_stage!r} on {redact(tracking)}")
        exit_code = EXIT_USAGE
        try:
            result = seal_model_version(
                model,
                version_or_stage,
                tracking_uri=tracking,
                registry_uri=registry,
                download_dir=download_dir,
                record_tag=record_tag,
                before_recording=publish,
                timeout=timeout,
                retries=retries,
                on_progress=progress,
                on_log=_log if verbose else None,
            )
            exit_code = _announce(
                published[0],
                seal_summary,
                report_file,
                junit_file,
                result.download_dir if result.download_dir_kept else None,
            )
        except _NotPublished:
            return EXIT_USAGE  # _write said why
        finally:
            # A failure, or a signal before the verdict was out: the run failed, so no seal of it stays.
            if exit_code == EXIT_USAGE:
                _remove_earlier_seal(*written)
    except VersionCheckError as exc:
        progress.finish()
        report = error_report("seal", exc, options, servers, OPTION_NAMES.get())
        return _failed(exc, finalized(report, run_nonce), report_file, junit_file)
    return exit_code


class _NotPublished(Exception):
    """The seal's report could not be written (the line saying why is out): record nothing."""


def _remove_earlier_seal(*paths: str | None) -> None:
    """Remove what is at the seal's paths, when it is a regular file (never a link or a device)."""
    for path in paths:
        if path and Path(path).is_file() and not Path(path).is_symlink():
            Path(path).unlink()


def _write_seal(result: SealResult, manifest_file: str, checksums_file: str | None) -> list[str]:
    """The manifest, the sealed MLmodel next to it (when its text gives back the sealed bytes) and
    the checksums: all written whole, or none (ReportPathError)."""
    from . import oms
    from .core import sealed_mlmodel_path
    from .report.files import write_bytes_atomically

    written: list[str] = []
    sealed_mlmodel = result.sealed_mlmodel
    for option, path, data in (
        (
            "{option:manifest_file}",
            manifest_file,
            oms.statement_json(result.files, result.subject_name).encode("utf-8"),
        ),
        (
            "{option:manifest_file}",
            str(sealed_mlmodel_path(manifest_file)) if sealed_mlmodel is not None else None,
            sealed_mlmodel or b"",
        ),
        (
            "{option:checksums_file}",
            checksums_file,
            oms.checksums_text(result.files).encode("utf-8") if checksums_file else b"",
        ),
    ):
        if not path:
            continue
        try:
            write_bytes_atomically(data, path, option)
        except (OSError, VersionCheckError) as exc:
            _remove_earlier_seal(*written)
            if isinstance(exc, VersionCheckError):
                raise
            raise ReportPathError(
                f"writing {option} {path} failed: {exc.strerror or exc}",
                fix=f"give a writable {option} path with free space.",
                what_names_options=True,
            ) from exc
        written.append(path)
    return written


def run_verify(
    *,
    model: str,
    version_or_stage: str,
    manifest_file: str | None,
    signature_file: str | None,
    public_key_file: str | None,
    expect_digest: str | None,
    recorded_tag: bool,
    strict: bool,
    download_dir: str | None,
    report_file: str | None,
    junit_file: str | None,
    tracking_uri: str | None,
    registry_uri: str | None,
    timeout: float,
    retries: int,
    verbose: bool,
    run_nonce: str | None = None,
) -> int:
    """Verify a version's registry model against its one reference; return the exit code."""
    from .core import resolve_server_uris, sealed_mlmodel_path, verify_model_version
    from .report.document import error_report, finalized, verify_report
    from .report.terminal import verify_summary

    shown_tracking, shown_registry = _shown_server(tracking_uri, registry_uri)
    options = {
        "model": model,
        "version_or_stage": version_or_stage,
        "tracking_uri": shown_tracking,
        "registry_uri": shown_registry,
        "manifest_file": manifest_file,
        "signature_file": signature_file,
        "public_key_file": public_key_file,
        "expect_digest": expect_digest,
        "recorded_tag": recorded_tag,
        "strict": strict,
        "download_dir": download_dir,
        "report_file": report_file,
        "junit_file": junit_file,
        "timeout": timeout,
        "retries": retries,
    }
    progress = Progress()
    try:
        check_output_paths(
            report_file,
            junit_file,
            download_dir=download_dir,
            inputs=[
                ("{option:manifest_file}", manifest_file),
                (
                    "the sealed MLmodel copy next to {option:manifest_file}",
                    str(sealed_mlmodel_path(manifest_file)) if manifest_file else None,
                ),
                ("{option:signature_file}", signature_file),
                (
                    "the sealed MLmodel copy next to {option:signature_file}",
                    str(sealed_mlmodel_path(signature_file)) if signature_file else None,
                ),
                ("{option:public_key_file}", public_key_file),
            ],
        )
        tracking, registry = resolve_server_uris(tracking_uri, registry_uri)
        if verbose:
            _log(f"verifying {model} {version_or_stage!r} on {redact(tracking)}")
        result = verify_model_version(
            model,
            version_or_stage,
            manifest_file=manifest_file,
            signature_file=signature_file,
            public_key_file=public_key_file,
            expect_digest=expect_digest,
            recorded_tag=recorded_tag,
            strict=strict,
            tracking_uri=tracking,
            registry_uri=registry,
            download_dir=download_dir,
            timeout=timeout,
            retries=retries,
            on_progress=progress,
            on_log=_log if verbose else None,
        )
    except VersionCheckError as exc:
        progress.finish()
        servers = {"version": (shown_tracking, shown_registry)}
        report = error_report("verify", exc, options, servers, OPTION_NAMES.get())
        return _failed(exc, finalized(report, run_nonce), report_file, junit_file)
    progress.finish()
    report = finalized(verify_report(result, options), run_nonce)
    kept = result.current.download_dir if result.current.download_dir_kept else None
    return _finished(report, verify_summary, report_file, junit_file, kept)


def _failed(
    error: VersionCheckError, report: Mapping[str, Any], report_file: str | None, junit_file: str | None
) -> int:
    """An expected failure: the error report (unless its path is the problem), one line, the code."""
    if not isinstance(error, ReportPathError):
        _write(report, report_file, junit_file)
    return failed(error)


def _finished(
    report: Mapping[str, Any],
    summarize: Callable[[Mapping[str, Any]], str],
    report_file: str | None,
    junit_file: str | None,
    kept_downloads: str | None,
) -> int:
    """A run that reached a verdict: summary on stdout, the report, the exit code of the verdict."""
    _echo(summarize(report))
    if not _write(report, report_file, junit_file):
        return EXIT_USAGE
    return _announced(report, report_file, junit_file, kept_downloads)


def _announce(
    report: Mapping[str, Any],
    summarize: Callable[[Mapping[str, Any]], str],
    report_file: str | None,
    junit_file: str | None,
    kept_downloads: str | None,
) -> int:
    """A verdict whose report is written already: the summary on stdout, the exit code."""
    _echo(summarize(report))
    return _announced(report, report_file, junit_file, kept_downloads)


def _announced(
    report: Mapping[str, Any], report_file: str | None, junit_file: str | None, kept_downloads: str | None
) -> int:
    if report_file:
        _echo(f"report: {report_file}")
    if junit_file:
        _echo(f"junit: {junit_file}")
    if kept_downloads:
        _echo(f"downloads: {kept_downloads}")
    # An audit whose versions could not all be checked (and none failed) has status error.
    return {"passed": EXIT_EQUAL, "failed": EXIT_DIFFERENT}.get(report["status"], EXIT_NOT_DONE)


def run_compare(
    *,
    config_file: str,
    download_dir: str | None,
    report_file: str | None,
    junit_file: str | None,
    compare_run_models: bool,
    compare_reg_models: bool,
    strict: bool,
    native_model: str | None,
    timeout: float,
    retries: int,
    verbose: bool,
    run_nonce: str | None = None,
) -> int:
    """Run a compare and render it; return the exit code."""
    from .config import SERVER_KEYS, load_config
    from .core import compare_model_versions, requested_roles
    from .report.document import compare_report, error_report, finalized
    from .report.terminal import compare_summary

    options: dict[str, Any] = {
        "config_file": config_file,
        "compare_run_models": compare_run_models,
        "compare_reg_models": compare_reg_models,
        "compared": requested_roles(compare_run_models, compare_reg_models),
        "strict": strict,
        "native_model": native_model,
        "download_dir": download_dir,
        "report_file": report_file,
        "junit_file": junit_file,
        "timeout": timeout,
        "retries": retries,
    }
    progress = Progress()
    servers: dict[str, tuple[str | None, str | None]] = {}
    try:
        check_output_paths(
            report_file,
            junit_file,
            download_dir=download_dir,
            inputs=[("{option:config_file}", config_file if config_file != "-" else None)],
        )
        config = load_config(config_file)
        remember_secrets(
            [found for side in config.servers for uri in (side.host, side.registry_uri or "")
             for found in secrets_in_uri(uri)]
        )  # fmt: skip
        for key, side in zip(SERVER_KEYS, config.servers, strict=True):
            servers[key] = (redact(side.host), redact(side.registry_uri) if side.registry_uri else None)
            options[key] = {
                "host": servers[key][0],
                "registry_uri": servers[key][1],
                "model": side.model,
                "version_or_stage": side.version_or_stage,
                "native_model": side.native_model,
            }
            if verbose:
                _log(f"{key}: {side.model} {side.version_or_stage!r} on {servers[key][0]}")
        result = compare_model_versions(
            config,
            compare_run_models=compare_run_models,
            compare_reg_models=compare_reg_models,
            download_dir=download_dir,
            strict=strict,
            native_model=native_model,
            timeout=timeout,
            retries=retries,
            on_progress=progress,
            on_log=_log if verbose else None,
        )
    except VersionCheckError as exc:
        progress.finish()
        report = error_report("compare", exc, options, servers, OPTION_NAMES.get())
        return _failed(exc, finalized(report, run_nonce), report_file, junit_file)
    progress.finish()
    report = finalized(compare_report(result, options), run_nonce)
    kept = result.download_dir if result.download_dir_kept else None
    return _finished(report, compare_summary, report_file, junit_file, kept)


def check_command(
    model: ModelOption,
    version_or_stage: VersionOrStageOption,
    download_dir: DownloadDirOption = None,
    report_file: ReportFileOption = None,
    junit_file: JunitFileOption = None,
    tracking_uri: TrackingUriOption = None,
    registry_uri: RegistryUriOption = None,
    strict: StrictOption = False,
    native_model: NativeModelOption = None,
    timeout: TimeoutOption = 30.0,
    retries: RetriesOption = 2,
    verbose: VerboseOption = False,
    run_nonce: RunNonceOption = None,
    version: VersionFlag = False,
) -> int:
    """Check that a model version's run model is identical to the registry's cached copy.

    Exit codes: 0 equal, 1 different, 2 wrong invocation, 3 could not check.
    """
    return run_check(
        model=model,
        version_or_stage=version_or_stage,
        download_dir=download_dir,
        report_file=report_file,
        junit_file=junit_file,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        strict=strict,
        native_model=native_model,
        timeout=timeout,
        retries=retries,
        verbose=verbose,
        run_nonce=run_nonce,
    )


def compare_command(
    config_file: ConfigFileOption,
    download_dir: DownloadDirOption = None,
    report_file: ReportFileOption = None,
    junit_file: JunitFileOption = None,
    compare_run_models: CompareRunOption = False,
    compare_reg_models: CompareRegOption = False,
    strict: StrictOption = False,
    native_model: NativeModelOption = None,
    timeout: TimeoutOption = 30.0,
    retries: RetriesOption = 2,
    verbose: VerboseOption = False,
    run_nonce: RunNonceOption = None,
    version: VersionFlag = False,
) -> int:
    """Compare two model versions, on the same or two tracking servers: the run models with each
    other and the registry models with each other.

    Exit codes: 0 equal, 1 different, 2 wrong invocation or config, 3 could not compare.
    """
    return run_compare(
        config_file=config_file,
        download_dir=download_dir,
        report_file=report_file,
        junit_file=junit_file,
        compare_run_models=compare_run_models,
        compare_reg_models=compare_reg_models,
        strict=strict,
        native_model=native_model,
        timeout=timeout,
        retries=retries,
        verbose=verbose,
        run_nonce=run_nonce,
    )


def seal_command(
    model: ModelOption,
    version_or_stage: VersionOrStageOption,
    manifest_file: ManifestFileOption,
    checksums_file: ChecksumsFileOption = None,
    record_tag: RecordTagOption = False,
    download_dir: DownloadDirOption = None,
    report_file: ReportFileOption = None,
    junit_file: JunitFileOption = None,
    tracking_uri: TrackingUriOption = None,
    registry_uri: RegistryUriOption = None,
    timeout: TimeoutOption = 30.0,
    retries: RetriesOption = 2,
    verbose: VerboseOption = False,
    run_nonce: RunNonceOption = None,
    version: VersionFlag = False,
) -> int:
    """Seal a model version: hash its registry model (what a deployment downloads) and write the
    OpenSSF Model Signing manifest of its files; print the root digest as sha256:<hex>.

    Exit codes: 0 sealed, 1 the registry model is not a complete MLflow model (nothing written),
    2 wrong invocation, 3 could not seal.
    """
    return run_seal(
        model=model,
        version_or_stage=version_or_stage,
        manifest_file=manifest_file,
        checksums_file=checksums_file,
        record_tag=record_tag,
        download_dir=download_dir,
        report_file=report_file,
        junit_file=junit_file,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        timeout=timeout,
        retries=retries,
        verbose=verbose,
        run_nonce=run_nonce,
    )


def verify_command(
    model: ModelOption,
    version_or_stage: VersionOrStageOption,
    manifest_file: ReferenceManifestOption = None,
    signature: SignatureOption = None,
    public_key: PublicKeyOption = None,
    expect_digest: ExpectDigestOption = None,
    recorded_tag: RecordedTagOption = False,
    strict: StrictOption = False,
    download_dir: DownloadDirOption = None,
    report_file: ReportFileOption = None,
    junit_file: JunitFileOption = None,
    tracking_uri: TrackingUriOption = None,
    registry_uri: RegistryUriOption = None,
    timeout: TimeoutOption = 30.0,
    retries: RetriesOption = 2,
    verbose: VerboseOption = False,
    run_nonce: RunNonceOption = None,
    version: VersionFlag = False,
) -> int:
    """Verify a model version: hash its registry model now and prove it is the one approved, against
    exactly one reference: --manifest-file, --signature with --public-key, --expect-digest or
    --recorded-tag.

    Exit codes: 0 the same files, 1 drift (every changed, missing and extra file named when the
    reference lists files) or a signature that does not verify, 2 wrong invocation or an unreadable
    or malformed reference, 3 could not verify.
    """
    return run_verify(
        model=model,
        version_or_stage=version_or_stage,
        manifest_file=manifest_file,
        signature_file=signature,
        public_key_file=public_key,
        expect_digest=expect_digest,
        recorded_tag=recorded_tag,
        strict=strict,
        download_dir=download_dir,
        report_file=report_file,
        junit_file=junit_file,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        timeout=timeout,
        retries=retries,
        verbose=verbose,
        run_nonce=run_nonce,
    )


def run_audit(
    *,
    models: Sequence[str],
    filter_expression: str | None,
    versions: str,
    shard: str | None,
    jobs: int,
    report_file: str | None,
    junit_file: str | None,
    tracking_uri: str | None,
    registry_uri: str | None,
    timeout: float,
    retries: int,
    verbose: bool,
    run_nonce: str | None = None,
) -> int:
    """Audit a registry (or one shard of it); return the exit code: 1 when any version failed, else
    3 when any could not be checked, else 0."""
    from .audit import audit_registry
    from .core import resolve_server_uris
    from .report.document import audit_report, error_report, finalized
    from .report.terminal import audit_summary

    shown_tracking, shown_registry = _shown_server(tracking_uri, registry_uri)
    options = {
        "tracking_uri": shown_tracking,
        "registry_uri": shown_registry,
        "models": list(models),
        "filter": filter_expression,
        "versions": versions,
        "shard": shard,
        "jobs": jobs,
        "report_file": report_file,
        "junit_file": junit_file,
        "timeout": timeout,
        "retries": retries,
    }

    def judged(entry: AuditEntry, done: int, planned: int) -> None:
        if verbose or entry.status != "passed":
            _log(f"[{done}/{planned}] {entry.model} version {entry.version}: {entry.status}")

    try:
        check_output_paths(report_file, junit_file)
        tracking, registry = resolve_server_uris(tracking_uri, registry_uri)
        result = audit_registry(
            tracking_uri=tracking,
            registry_uri=registry,
            models=models,
            filter_expression=filter_expression,
            versions=versions,
            shard=shard,
            jobs=jobs,
            timeout=timeout,
            retries=retries,
            on_version=judged,
            on_log=_log if verbose else None,
        )
    except VersionCheckError as exc:
        report = error_report("audit", exc, options, None, OPTION_NAMES.get())
        return _failed(exc, finalized(report, run_nonce), report_file, junit_file)
    report = finalized(audit_report(result, options, OPTION_NAMES.get()), run_nonce)
    return _finished(report, audit_summary, report_file, junit_file, None)


def run_audit_merge(
    *, reports: Sequence[str], report_file: str | None, junit_file: str | None, run_nonce: str | None = None
) -> int:
    """Merge shard reports into one audit report; return the exit code of the merged verdict."""
    from .audit import merge_audit_reports
    from .report.document import error_report, finalized
    from .report.terminal import audit_summary

    options = {"reports": list(reports), "report_file": report_file, "junit_file": junit_file}
    try:
        check_output_paths(report_file, junit_file, inputs=[("{option:reports}", path) for path in reports])
        loaded = [(path, _read_shard_report(path)) for path in reports]
        merged = merge_audit_reports(loaded, options)
    except VersionCheckError as exc:
        report = error_report("audit", exc, options, None, OPTION_NAMES.get())
        return _failed(exc, finalized(report, run_nonce), report_file, junit_file)
    return _finished(finalized(merged, run_nonce), audit_summary, report_file, junit_file, None)


# A shard report of a very large registry (a million versions) stays well below this.
SHARD_REPORT_MAX_BYTES = 1024 * 1024 * 1024


def _read_shard_report(path: str) -> dict[str, Any]:
    from .errors import AuditMergeError

    try:
        if not Path(path).is_file():
            raise AuditMergeError(
                f"the shard report {path} is not a file",
                cause="a wrong path, or the shard's artifact was not downloaded",
                fix="give the report files the shards wrote.",
            )
        if Path(path).stat().st_size > SHARD_REPORT_MAX_BYTES:
            raise AuditMergeError(
                f"the shard report {path} is larger than 1 GiB", fix="give the report files the shards wrote."
            )
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditMergeError(
            f"cannot read the shard report {path}: {getattr(exc, 'strerror', None) or exc}",
            cause="a file other than a report, or one cut short",
            fix="give the report files the shards wrote.",
        ) from exc
    if not isinstance(loaded, dict):
        raise AuditMergeError(
            f"the shard report {path} is not a JSON object", fix="give the report files the shards wrote."
        )
    return loaded


def _typer(name: str, help_text: str | None = None) -> typer.Typer:
    return typer.Typer(
        name=name,
        help=help_text,
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["--help", "-h"], "max_content_width": 100},
    )


app = _typer(
    "mlflow-version-check",
    "Prove that MLflow model versions are what they claim to be.\n\n"
    "Exit codes: 0 equal, 1 different, 2 wrong invocation, 3 could not check.",
)


@app.callback()
def _main_callback(version: VersionFlag = False) -> None:
    """Prove that MLflow model versions are what they claim to be."""


app.command("check")(check_command)
app.command("compare")(compare_command)
app.command("seal")(seal_command)
app.command("verify")(verify_command)

audit_app = typer.Typer(
    name="audit",
    add_completion=False,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["--help", "-h"], "max_content_width": 100},
)


@audit_app.callback(invoke_without_command=True)
def audit_command(
    context: typer.Context,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Audit this registered model (repeat for several). Default: every model.",
            show_default=False,
        ),
    ] = None,
    filter_expression: Annotated[
        str | None,
        typer.Option(
            "--filter",
            help="Audit the versions this registry search names (MLflow's syntax, passed through, e.g. "
            "\"name LIKE 'fraud_%'\" or \"tags.team = 'risk'\").",
            show_default=False,
        ),
    ] = None,
    versions: Annotated[
        str,
        typer.Option(
            "--versions",
            help="all: every version; aliased: versions with an alias or a stage other than None; latest: "
            "each model's newest.",
        ),
    ] = "all",
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="I/N: audit only the I-th of N stable parts of the selection (a CI matrix job); auto: "
            "GitLab's CI_NODE_INDEX/CI_NODE_TOTAL.",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", help="Versions downloaded at once.", min=1, max=64)] = 4,
    report_file: ReportFileOption = None,
    junit_file: JunitFileOption = None,
    tracking_uri: TrackingUriOption = None,
    registry_uri: RegistryUriOption = None,
    timeout: TimeoutOption = 30.0,
    retries: RetriesOption = 2,
    verbose: VerboseOption = False,
    run_nonce: RunNonceOption = None,
    version: VersionFlag = False,
) -> int | None:
    """Audit a registry: check every selected version (run model against registry copy, and against
    the root digest seal --record-tag recorded, when it has one), in one report with a JUnit test case
    per version. `audit merge` merges the reports of the shards of one audit.

    Exit codes: 0 every version passed, 1 at least one failed, 2 wrong invocation, 3 at least one
    could not be checked (none failed), or the selection could not be listed.
    """
    if context.invoked_subcommand is not None:
        return None
    return run_audit(
        models=model or [],
        filter_expression=filter_expression,
        versions=versions,
        shard=shard,
        jobs=jobs,
        report_file=report_file,
        junit_file=junit_file,
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        timeout=timeout,
        retries=retries,
        verbose=verbose,
        run_nonce=run_nonce,
    )


@audit_app.command("merge")
def audit_merge_command(
    reports: Annotated[
        list[str], typer.Argument(help="The shard reports (every shard of one audit).", show_default=False)
    ],
    report_file: ReportFileOption = None,
    junit_file: JunitFileOption = None,
    run_nonce: RunNonceOption = None,
) -> int:
    """Merge the reports of every shard of one audit into one report, with the verdict and exit code
    of an unsharded audit. Missing or duplicated shards, or shards of different selections, are
    refused (exit 2)."""
    return run_audit_merge(
        reports=reports, report_file=report_file, junit_file=junit_file, run_nonce=run_nonce
    )


app.add_typer(audit_app, name="audit")

# The seed's console scripts: the same commands as single-command programs.
check_app = _typer("check-model-version")
check_app.command()(check_command)
compare_app = _typer("compare-model-versions")
compare_app.command()(compare_command)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Interrupted`, raised once in the main thread.

    The exception unwinds through the core's cleanup (workers killed, temporary downloads and the
    private Databricks config removed) to the command, which writes the error report. Further
    signals are ignored until then, so a second Ctrl-C or a repeated SIGTERM cannot cut the cleanup
    short; SIGKILL still can (the workers then stop on their own when they see their parent gone).
    As PID 1 in a container, a process gets no default action for SIGTERM: this handler is what
    lets `docker stop` end the run within its grace period.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread (e.g. not in a notebook's worker)
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in handled}

    def handler(number: int, frame: object) -> None:
        for other in handled:
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(number, signal.Signals(number).name)

    for number in handled:
        signal.signal(number, handler)
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def run_app(
    application: typer.Typer,
    argv: Sequence[str] | None,
    prog_name: str,
    option_names: Mapping[str, str] = CLI_NAMES,
) -> int:
    """Run a Typer app as a function: usage errors become one line and exit code 2. Messages name
    options as `option_names` says (the action passes its input names)."""
    command = typer.main.get_command(application)
    arguments = list(sys.argv[1:] if argv is None else argv)
    naming = OPTION_NAMES.set(option_names)
    try:
        with interruptible():
            outcome = command.main(args=arguments, prog_name=prog_name, standalone_mode=False)
    except Interrupted as exc:  # after the verdict was rendered, or before a command started
        return failed(exc)
    except typer.TyperException as exc:
        message = exc.format_message().rstrip(".")
        fail(f"{message}. Fix: see '{prog_name} --help'.")
        return int(getattr(exc, "exit_code", EXIT_USAGE) or EXIT_USAGE)
    except typer.Abort:
        fail("aborted. Fix: rerun the command.")
        return 130
    finally:
        OPTION_NAMES.reset(naming)
    return outcome if isinstance(outcome, int) else EXIT_EQUAL


def main(argv: Sequence[str] | None = None, option_names: Mapping[str, str] = CLI_NAMES) -> int:
    """Entry point of `mlflow-version-check`."""
    return run_app(app, argv, "mlflow-version-check", option_names)


def check_model_version_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the seed-compatible `check-model-version`."""
    return run_app(check_app, argv, "check-model-version")


def compare_model_versions_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the seed-compatible `compare-model-versions`."""
    return run_app(compare_app, argv, "compare-model-versions")


def _exit_main() -> None:
    sys.exit(main())


def _exit_check_model_version() -> None:
    sys.exit(check_model_version_main())


def _exit_compare_model_versions() -> None:
    sys.exit(compare_model_versions_main())
