"""Named errors of mlflow-version-check.

Each error carries the exit code of DESIGN.md and a one-line message that says what failed, the likely
cause and the fix. The CLI turns them into that line and the exit code in exactly one place.
"""

from __future__ import annotations

from typing import Any

EXIT_EQUAL = 0
EXIT_DIFFERENT = 1
EXIT_USAGE = 2
EXIT_NOT_DONE = 3


class VersionCheckError(Exception):
    """Base of every expected failure; never raised itself."""

    exit_code = EXIT_NOT_DONE

    def __init__(self, message: str, *, partial: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # What was learnt before the failure (e.g. the resolved version), so the report can keep it.
        self.partial: dict[str, Any] = dict(partial or {})

    @property
    def type_name(self) -> str:
        return type(self).__name__


class UsageProblem(VersionCheckError):
    """The invocation is wrong: an option, a config file or an input."""

    exit_code = EXIT_USAGE


class InvalidOption(UsageProblem):
    """A command-line option or API argument has a value that cannot work."""


class ConfigError(UsageProblem):
    """A config file cannot be read or does not validate."""


class ReportPathError(UsageProblem):
    """The report file cannot be written where it was asked for."""


class NativeModelNotFound(UsageProblem):
    """The native model path given is in neither downloaded model."""


class OperationFailed(VersionCheckError):
    """The check could not be done (server, credentials, registry, storage)."""

    exit_code = EXIT_NOT_DONE


class ServerUnreachable(OperationFailed):
    """No answer from the tracking or registry server."""


class AuthenticationFailed(OperationFailed):
    """The server refused the credentials (401) or the permission (403)."""


class ModelNotFound(OperationFailed):
    """The registered model does not exist."""


class ModelVersionNotFound(OperationFailed):
    """The version, or a version in the stage asked for, does not exist."""


class AliasNotFound(OperationFailed):
    """The registered model has no such alias."""


class StagesUnsupported(OperationFailed):
    """The registry does not support stages (Unity Catalog)."""


class ModelVersionNotReady(OperationFailed):
    """The model version is not in status READY (still registering, or failed)."""


class ArtifactNotFound(OperationFailed):
    """The model's artifact location holds no files."""


class ArtifactDownloadError(OperationFailed):
    """Listing or downloading the model's files failed."""


class UnsafeArtifactPath(OperationFailed):
    """An artifact listing named a path outside the model, or a remote server named a local file."""


class RegistryError(OperationFailed):
    """The server answered a registry call with an unexpected error."""


class WorkerCrashed(OperationFailed):
    """The worker process ended without an answer: an internal error of this tool."""


class Interrupted(OperationFailed):
    """The run was stopped by a signal (SIGINT, SIGTERM) before it reached a verdict."""

    def __init__(self, signal_number: int, signal_name: str) -> None:
        super().__init__(
            f"interrupted by {signal_name} before a verdict: workers stopped, temporary downloads and "
            "credential copies removed. Likely cause: the job was cancelled or timed out, or Ctrl-C. "
            "Fix: rerun the check."
        )
        # The shell's convention, 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
        self.exit_code = 128 + signal_number


ERRORS_BY_NAME: dict[str, type[VersionCheckError]] = {
    cls.__name__: cls
    for cls in (
        InvalidOption,
        ConfigError,
        ReportPathError,
        NativeModelNotFound,
        ServerUnreachable,
        AuthenticationFailed,
        ModelNotFound,
        ModelVersionNotFound,
        AliasNotFound,
        StagesUnsupported,
        ModelVersionNotReady,
        ArtifactNotFound,
        ArtifactDownloadError,
        UnsafeArtifactPath,
        RegistryError,
        WorkerCrashed,
    )
}
# Interrupted is raised in the parent only (a signal handler); a worker never reports it.
