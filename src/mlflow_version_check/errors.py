"""Named errors of mlflow-version-check, with their fields and exit codes.

Each error carries its message as data: `what` failed, the `cause` it likely has and the `fix`, and
`server` (which server, for messages that name one). A front end renders them as one line,
"<what>. Likely cause: <cause>. Fix: <fix>" (the last field ends its sentence as written), with its
own names for the options a message mentions: the text writes an option as `{option:<parameter>}`
(the Python API's parameter name) and `render` puts in `--tracking-uri` for the CLI, the
`tracking-uri` input for the action, `tracking_uri` for the API (str() of an error).
`exit_code_of` is the one mapping from an error to the process exit code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol import RegistryVersion

EXIT_EQUAL = 0
EXIT_DIFFERENT = 1
EXIT_USAGE = 2
EXIT_NOT_DONE = 3

_OPTION = re.compile(r"\{option:([a-z_]+)\}")

# How each front end names the options a message can mention (by the API's parameter name).
API_NAMES: Mapping[str, str] = {}  # the parameter name itself
# Every option a message can name, by its Python API parameter name.
OPTIONS = (
    "tracking_uri",
    "registry_uri",
    "model",
    "version_or_stage",
    "config_file",
    "timeout",
    "retries",
    "download_dir",
    "native_model",
    "report_file",
    "junit_file",
    "verbose",
    "manifest_file",
    "checksums_file",
    "expect_digest",
    "signature_file",
    "public_key_file",
    "recorded_tag",
    "record_tag",
    "models",
    "shard",
    "jobs",
    "filter",
    "versions",
    "reports",
)
# Options whose CLI name is not their parameter's (the and model_signing's spelling).
CLI_SPELLING = {
    "signature_file": "--signature",
    "public_key_file": "--public-key",
    "models": "--model",
    "reports": "a REPORT argument",
}
CLI_NAMES: Mapping[str, str] = {
    name: CLI_SPELLING.get(name, "--" + name.replace("_", "-")) for name in OPTIONS
}
# The action's inputs; the options it has no input for keep their CLI names (the action cannot set
# them, but the message still says what would help where the tool runs as a CLI).
ACTION_WITHOUT_INPUT = frozenset({"timeout", "retries", "verbose"})
ACTION_SPELLING = {"public_key_file": "public-key"}
ACTION_NAMES: Mapping[str, str] = {
    name: CLI_NAMES[name]
    if name in ACTION_WITHOUT_INPUT
    else f"the {ACTION_SPELLING.get(name, name.replace('_', '-'))} input"
    for name in OPTIONS
}


def render_options(text: str, names: Mapping[str, str]) -> str:
    """`text` with each `{option:<parameter>}` named as `names` says (else by the parameter)."""
    return _OPTION.sub(lambda match: names.get(match[1], match[1]), text)


class VersionCheckError(Exception):
    """Base of every expected failure; never raised itself."""

    exit_code = EXIT_NOT_DONE

    def __init__(
        self,
        what: str,
        *,
        cause: str | None = None,
        fix: str | None = None,
        server: str | None = None,
        what_names_options: bool = False,
    ) -> None:
        self.what, self.cause, self.fix, self.server = what, cause, fix, server
        # Placeholders are rendered in `cause` and `fix` (this tool's own text), and in `what` only
        # when its author says so: a `what` usually quotes a server's answer, a model or file name,
        # and such text must be shown as it is, whatever it holds.
        self.what_names_options = what_names_options
        # The versions resolved before the failure, by version key, so that the report keeps them.
        self.resolved: dict[str, RegistryVersion] = {}
        super().__init__(self.render(API_NAMES))

    def render(self, names: Mapping[str, str]) -> str:
        """The one line: what, likely cause, fix, with options named as the front end names them."""
        line = render_options(self.what, names) if self.what_names_options else self.what
        if self.cause:
            line += f". Likely cause: {render_options(self.cause, names)}"
        if self.fix:
            line += f". Fix: {render_options(self.fix, names)}"
        return line

    @property
    def message(self) -> str:
        """The line as the Python API names options (what str() of the error says)."""
        return self.render(API_NAMES)

    @property
    def type_name(self) -> str:
        return type(self).__name__

    def fields(self) -> dict[str, str | None]:
        """The message as data (protocol.Failure carries it from a worker to the parent)."""
        return {
            "what": self.what,
            "cause": self.cause,
            "fix": self.fix,
            "server": self.server,
            "what_names_options": "yes" if self.what_names_options else None,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str | None], prefix: str = "") -> VersionCheckError:
        return cls(
            prefix + (fields.get("what") or ""),
            cause=fields.get("cause"),
            fix=fields.get("fix"),
            server=fields.get("server"),
            what_names_options=fields.get("what_names_options") == "yes",
        )


def exit_code_of(error: VersionCheckError) -> int:
    """The process exit code of a failure (DESIGN.md): 2 usage, 3 not done, 128+N a signal."""
    return error.exit_code


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
            "credential copies removed",
            cause="the job was cancelled or timed out, or Ctrl-C",
            fix="rerun the command.",
        )
        # The shell's convention, 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
        self.exit_code = 128 + signal_number


class ManifestError(UsageProblem):
    """An OMS statement, signature bundle, public key or expected digest is unreadable or malformed."""


class SignatureMismatch(VersionCheckError):
    """An OMS signature bundle does not verify with the public key given: a verdict, not a usage error."""

    exit_code = EXIT_DIFFERENT


class AuditMergeError(UsageProblem):
    """Shard reports that cannot be merged: missing, duplicated, of other selections, or unreadable."""


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
        ManifestError,
        SignatureMismatch,
        AuditMergeError,
    )
}
# Interrupted is raised in the parent only (a signal handler); a worker never reports it.
