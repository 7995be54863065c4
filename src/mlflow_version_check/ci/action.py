"""The CI adapter behind entrypoint.py: inputs -> credentials -> CLI call -> outputs, summary, artifact.

Inputs come as the runner passes them, `INPUT_<NAME>` with hyphens kept (`INPUT_VERSION-OR-STAGE`);
other CI systems, whose variable names cannot hold hyphens, use `INPUT_VERSION_OR_STAGE` or
`MVC_VERSION_OR_STAGE`. Every secret is masked before anything is printed; credentials are written
only to a private temporary HOME that is removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import databricks
from ..errors import (
    ACTION_NAMES,
    EXIT_DIFFERENT,
    EXIT_EQUAL,
    Interrupted,
    UsageProblem,
    exit_code_of,
)
from ..pool import PRIVATE_PATHS
from ..redact import config_secrets, redact, remember_secrets, secret_forms, secrets_in_uri
from ..report.sections import AUDIT_SECTION, CHECK_SECTION, SEAL_SECTION, SECTION_LABELS, VERIFY_SECTION
from ..untrusted import escape_controls, safe_line
from . import workflow_commands
from .artifact_upload import Sleep

DEFAULTS: dict[str, str] = {
    "command": "check",
    "model": "",
    "version-or-stage": "",
    "config-file": "",
    "tracking-uri": "",
    "registry-uri": "",
    "databricks-host": "",
    "databricks-token": "",
    "databricks-client-id": "",
    "databricks-client-secret": "",
    "databricks-config": "",
    "mlflow-tracking-token": "",
    "strict": "false",
    "native-model": "",
    "manifest-file": "",
    "checksums-file": "",
    "record-tag": "false",
    "signature-file": "",
    "public-key": "",
    "expect-digest": "",
    "recorded-tag": "false",
    "download-dir": "",
    "models": "",
    "filter": "",
    "versions": "all",
    "shard": "",
    "jobs": "",
    "reports": "",
    "report-file": "mlflow-version-check-report.json",
    "junit-file": "",
    "artifact-name": "mlflow-version-check-report",
    "upload-artifact": "true",
    "fail-on-difference": "true",
}
COMMANDS = ("check", "compare", "seal", "verify", "audit", "audit-merge")
# The commands whose report is an audit's (System.command "audit", the Audit section).
AUDIT_COMMANDS = ("audit", "audit-merge")
# The commands that read one model version, and those that talk to a server (audit-merge reads files).
ONE_VERSION = ("check", "seal", "verify")
ON_A_SERVER = ("check", "compare", "seal", "verify", "audit")
CREDENTIAL_INPUTS = (
    "databricks-host",
    "databricks-token",
    "databricks-client-id",
    "databricks-client-secret",
    "databricks-config",
    "mlflow-tracking-token",
)
# Where seal writes its manifest when the manifest-file input is empty (for verify it is the reference).
DEFAULT_MANIFEST = "mlflow-version-check-manifest.json"
# The copy of the sealed MLmodel that seal writes beside its manifest, at `<manifest-file>.MLmodel`.
MLMODEL_SUFFIX = ".MLmodel"
# The ways to name verify's reference: exactly one is given (the two signature inputs are one way).
VERIFY_REFERENCES = ("manifest-file", "signature-file", "expect-digest", "recorded-tag")
# Inputs that only some commands read. Given to another command, each would be silently ignored
# while the workflow's author believes it took effect (a digest "checked", a tag "recorded"): refused.
ONLY_FOR: dict[str, tuple[str, ...]] = {
    "model": ONE_VERSION,
    "version-or-stage": ONE_VERSION,
    "config-file": ("compare",),
    "tracking-uri": (*ONE_VERSION, "audit"),
    "registry-uri": (*ONE_VERSION, "audit"),
    # Credentials go only to the steps that talk to a server.
    **dict.fromkeys(CREDENTIAL_INPUTS, ON_A_SERVER),
    # seal reads every byte whatever strict says (it changes nothing there), audit judges as check does.
    "strict": ("check", "compare", "seal", "verify"),
    "download-dir": ("check", "compare", "seal", "verify"),
    "manifest-file": ("seal", "verify"),
    "checksums-file": ("seal",),
    "record-tag": ("seal",),
    "signature-file": ("verify",),
    "public-key": ("verify",),
    "expect-digest": ("verify",),
    "recorded-tag": ("verify",),
    "native-model": ("check", "compare"),
    "models": ("audit",),
    "filter": ("audit",),
    "versions": ("audit",),
    "shard": ("audit",),
    "jobs": ("audit",),
    "reports": ("audit-merge",),
}
# What the author of a step more likely meant by an input of another command (else: a wrong command).
MEANT: dict[tuple[str, str], str] = {
    ("audit", "model"): "audit takes its model names in the models input (one a line, or comma-separated)",
    ("audit", "version-or-stage"): "audit takes all, aliased or latest in the versions input",
}
# An ::error:: annotation per version that did not pass, at most this many: the runner shows 10 error
# annotations of a step, so the 10th says how many more the report holds.
AUDIT_ANNOTATIONS = 10
PEM_START = "-----BEGIN"
_ROOT_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
SECRET_INPUTS = ("databricks-token", "databricks-client-secret", "mlflow-tracking-token", "databricks-config")
# Variables through which databricks-sdk silently overrides a profile's values (it reads env first),
# and the config file the action itself provides.
AMBIENT_DATABRICKS = (*databricks.CREDENTIAL_VARIABLES, "DATABRICKS_CONFIG_FILE")


class ActionInputError(UsageProblem):
    """An input is missing or has a value that cannot work (exit 2)."""


def read_inputs(environ: Mapping[str, str]) -> dict[str, str]:
    """Each input from INPUT_<NAME> (hyphens kept), INPUT_<NAME_> or MVC_<NAME_>, else its default."""
    values: dict[str, str] = {}
    for name, default in DEFAULTS.items():
        upper = name.upper()
        underscored = upper.replace("-", "_")
        for key in (f"INPUT_{upper}", f"INPUT_{underscored}", f"MVC_{underscored}"):
            value = environ.get(key, "")
            if value.strip():
                values[name] = value if name == "databricks-config" else value.strip()
                break
        else:
            values[name] = default
    return values


def secrets_of(inputs: Mapping[str, str]) -> list[str]:
    """Every secret value: the secret inputs, every secret of databricks-config (`key = value` or
    `key: value`, as databricks-sdk's configparser reads it) and credentials in the URI inputs."""
    found = [inputs[name] for name in SECRET_INPUTS if inputs.get(name, "").strip()]
    found += config_secrets(inputs.get("databricks-config", ""))
    for name in ("tracking-uri", "registry-uri"):
        found += secrets_in_uri(inputs.get(name, ""))
    if holds_private_key(inputs.get("public-key", "")):
        # The wrong secret pasted into public-key: it is refused, and never shown, line by line.
        value = inputs["public-key"]
        found += [value.strip()] + [line.strip() for line in value.splitlines() if len(line.strip()) >= 8]
    return found


def holds_private_key(value: str) -> bool:
    return "PRIVATE KEY" in value


def shown_input(name: str, value: str) -> str:
    """An input as an error report shows it: PEM text by its shape only (it may be a private key)."""
    if name == "public-key" and (is_pem_text(value) or holds_private_key(value)):
        return f"<PEM text, {len(value.strip().splitlines())} lines>"
    return redact(value)


def boolean(inputs: Mapping[str, str], name: str) -> bool:
    value = inputs[name].strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise ActionInputError(
        f"input {name} is {inputs[name]!r}, not true or false. Fix: set it to true or false."
    )


def _uses_named_profile(inputs: Mapping[str, str]) -> bool:
    uris = [inputs["tracking-uri"], inputs["registry-uri"]]
    config_file = inputs["config-file"]
    if inputs["command"] == "compare" and config_file and config_file != "-" and Path(config_file).is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            uris.append(Path(config_file).read_text(encoding="utf-8"))
    return bool(inputs["databricks-config"].strip()) or any("databricks://" in uri for uri in uris)


def refuse_ambient_overrides(inputs: Mapping[str, str], environ: Mapping[str, str]) -> None:
    """Refuse when DATABRICKS_* in the environment would silently replace the configured credentials."""
    wants_credentials = _uses_named_profile(inputs) or bool(inputs["databricks-host"])
    ambient = [name for name in AMBIENT_DATABRICKS if environ.get(name)]
    if wants_credentials and ambient:
        raise ActionInputError(
            f"{', '.join(ambient)} set in the environment would silently override the credentials of the "
            "databricks-* inputs or profiles (databricks-sdk reads the environment first). Fix: remove "
            "them from the step's env and pass databricks-host/-token or databricks-config instead."
        )


def refuse_what_the_environment_undoes(inputs: Mapping[str, str], environ: Mapping[str, str]) -> None:
    """Refuse inputs whose effect the step's environment would silently change or void."""
    refuse_ambient_overrides(inputs, environ)
    refuse_auto_shard_without_gitlab(inputs, environ)


def refuse_auto_shard_without_gitlab(inputs: Mapping[str, str], environ: Mapping[str, str]) -> None:
    """Refuse `shard: auto` on GitHub, where GitLab's CI_NODE_INDEX/CI_NODE_TOTAL are never set: the
    CLI would audit the whole selection in every matrix job (auto without them means unsharded)."""
    gitlab = environ.get("CI_NODE_INDEX") or environ.get("CI_NODE_TOTAL")
    if inputs["shard"].strip().lower() == "auto" and workflow_commands.on_github(environ) and not gitlab:
        raise ActionInputError(
            "input shard is auto, which reads GitLab's CI_NODE_INDEX and CI_NODE_TOTAL, and neither is "
            "set here: every matrix job would audit the whole selection. Fix: give I/N, e.g. shard: "
            "${{ matrix.shard }}/4 with matrix shard: [1, 2, 3, 4]."
        )


@contextlib.contextmanager
def private_credentials(
    inputs: Mapping[str, str], environ: MutableMapping[str, str]
) -> Iterator[Path | None]:
    """Write the Databricks credentials to a private temporary HOME (0700, file 0600), removed after."""
    host = inputs["databricks-host"]
    profiles = inputs["databricks-config"]
    mlflow_token = inputs["mlflow-tracking-token"]
    saved = {key: environ.get(key) for key in ("HOME", "DATABRICKS_CONFIG_FILE", "MLFLOW_TRACKING_TOKEN")}
    home: Path | None = None
    try:
        if mlflow_token:
            environ["MLFLOW_TRACKING_TOKEN"] = mlflow_token
        if host or profiles.strip():
            home = Path(tempfile.mkdtemp(prefix="mvc-home-"))
            home.chmod(stat.S_IRWXU)
            lines: list[str] = []
            if host:
                lines.append("[DEFAULT]")
                lines.append(f"host = {host}")
                for key, name in (
                    ("token", "databricks-token"),
                    ("client_id", "databricks-client-id"),
                    ("client_secret", "databricks-client-secret"),
                ):
                    if inputs[name]:
                        lines.append(f"{key} = {inputs[name]}")
                lines.append("")
            config = home / ".databrickscfg"
            descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                stream.write("\n".join(lines) + ("\n" + profiles.strip() + "\n" if profiles.strip() else ""))
            environ["HOME"] = str(home)
            environ["DATABRICKS_CONFIG_FILE"] = str(config)
            # Removed by a worker if this process is killed before its `finally` (pool.py).
            PRIVATE_PATHS.append(str(home))
        yield home
    finally:
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
            PRIVATE_PATHS.remove(str(home))
        for key, value in saved.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value


def _outside_workspace(value: str, workspace: Path) -> Path | None:
    """Where a path input that names a place in the workspace really leads, when that is outside it.

    Relative paths are in the workspace; so is an absolute one below it (`${{ github.workspace }}/x`).
    An absolute path elsewhere is taken as the workflow's author wrote it.
    """
    if not value:
        return None
    given = Path(value)
    if given.is_absolute() and not (given == workspace or workspace in given.parents):
        return None
    resolved = (workspace / given).resolve()
    root = workspace.resolve()
    return None if resolved == root or root in resolved.parents else resolved


def refuse_escape_from_workspace(name: str, value: str, workspace: Path) -> None:
    """A report-file, junit-file or download-dir in the workspace must stay inside it.

    The workspace is the checked-out repository: a symlinked folder committed there (`reports ->
    /github/file_commands`, say) would otherwise send the files this step writes somewhere else.
    """
    if (resolved := _outside_workspace(value, workspace)) is not None:
        raise ActionInputError(
            f"input {name} {value!r} leads outside the workspace (to {resolved}) through a symlink. "
            f"Likely cause: a symlinked folder in the repository. Fix: give {name} a path inside the "
            "workspace without symlinks, or an absolute path."
        )


def command_of(inputs: Mapping[str, str]) -> str:
    """The command input, checked: check, compare, seal, verify, audit or audit-merge."""
    command = inputs["command"].strip().lower()
    if command not in COMMANDS:
        raise ActionInputError(
            f"input command is {inputs['command']!r}. Fix: use check, compare, seal or verify (one "
            "version), audit (many versions of a registry) or audit-merge (the reports of an audit's shards)."
        )
    return command


def in_workspace(value: str, workspace: Path) -> Path:
    """A path input as the CLI gets it: relative paths are in the workspace."""
    path = Path(value)
    return path if path.is_absolute() else workspace / path


def manifest_input(inputs: Mapping[str, str]) -> str:
    """The manifest-file input, with seal's default when it is empty."""
    if inputs["command"].strip().lower() == "seal" and not inputs["manifest-file"]:
        return DEFAULT_MANIFEST
    return inputs["manifest-file"]


def is_pem_text(value: str) -> bool:
    """Whether the public-key input is the key itself (PEM text, e.g. from a secret), not a path."""
    return value.lstrip().startswith(PEM_START)


def refuse_inputs_of_other_commands(inputs: Mapping[str, str], command: str) -> None:
    """Refuse an input the command would ignore where ignoring it could mislead (see ONLY_FOR)."""
    for name, commands in ONLY_FOR.items():
        if command in commands or inputs[name] == DEFAULTS[name]:
            continue
        if DEFAULTS[name] == "false" and not boolean(inputs, name):
            continue  # an explicit "false" asks for nothing
        users = commands[0] if len(commands) == 1 else f"{', '.join(commands[:-1])} and {commands[-1]}"
        cause = MEANT.get((command, name), "an input meant for another step, or the wrong command")
        raise ActionInputError(
            f"input {name} does not apply to command {command}: it is read only by {users}. Likely "
            f"cause: {cause}. Fix: remove {name} from this step, or set command to {commands[0]}."
        )


def verify_reference(inputs: Mapping[str, str]) -> str:
    """verify's one reference input (the signature-file names signature-file with public-key)."""
    given = [
        name
        for name in VERIFY_REFERENCES
        if (boolean(inputs, name) if DEFAULTS[name] == "false" else bool(inputs[name]))
    ]
    fix = (
        "Fix: give exactly one of manifest-file (the manifest seal wrote), signature-file with "
        "public-key (a model_signing bundle and its key), expect-digest (sha256:<hex> as seal gave it) "
        "or recorded-tag: true."
    )
    if inputs["public-key"] and "signature-file" not in given:
        raise ActionInputError(
            "command verify has public-key but no signature-file, and a key checks nothing alone. "
            f"Likely cause: the signature bundle's input was left out. {fix}"
        )
    if not given:
        raise ActionInputError(
            "command verify needs a reference to verify against, and none was given. Likely cause: "
            f"the reference input is missing or empty (an unset secret or variable is empty). {fix}"
        )
    if len(given) > 1:
        raise ActionInputError(
            f"command verify got {len(given)} references ({', '.join(given)}); it verifies against one. "
            f"Likely cause: inputs of two verify steps in one. {fix}"
        )
    if given == ["signature-file"] and not inputs["public-key"]:
        raise ActionInputError(
            "command verify has signature-file but no public-key to check the signature with. Likely "
            "cause: the key's input was left out, or its secret or variable is empty. Fix: set "
            "public-key to the path of the PEM public key in the workspace, or to the PEM text itself."
        )
    return given[0]


def workspace_paths(inputs: Mapping[str, str], workspace: Path) -> dict[str, str]:
    """Each path input that this run reads or writes in the workspace, by input name (checked for
    symlinks out of the workspace); `<manifest-file>.MLmodel`, which seal writes too, is checked
    under manifest-file."""
    paths = {name: inputs[name] for name in ("report-file", "junit-file", "download-dir")}
    if manifest := manifest_input(inputs):
        paths["manifest-file"] = manifest
    for name in ("checksums-file", "signature-file"):
        paths[name] = inputs[name]
    if not is_pem_text(inputs["public-key"]):
        paths["public-key"] = inputs["public-key"]
    return paths


def refuse_escapes(inputs: Mapping[str, str], workspace: Path) -> None:
    """Every path input must stay inside the workspace (refuse_escape_from_workspace)."""
    for name, value in workspace_paths(inputs, workspace).items():
        refuse_escape_from_workspace(name, value, workspace)
        if name == "manifest-file" and inputs["command"].strip().lower() == "seal":
            refuse_escape_from_workspace(name, value + MLMODEL_SUFFIX, workspace)


def cli_arguments(
    inputs: Mapping[str, str],
    report_file: Path,
    junit_file: Path | None = None,
    run_nonce: str = "",
    *,
    workspace: Path | None = None,
    public_key_file: str | None = None,
) -> list[str]:
    """The CLI invocation that the inputs describe. Path inputs of seal and verify are taken in
    `workspace` (default: the current directory); `public_key_file` is where the public-key input's
    PEM text was written (when it is text, not a path)."""
    command = command_of(inputs)
    refuse_inputs_of_other_commands(inputs, command)
    place = workspace or Path.cwd()
    if command == "audit":
        arguments = ["audit", *_audit_arguments(inputs)]
    elif command == "audit-merge":
        own = [report_file, *([junit_file] if junit_file is not None else [])]
        arguments = ["audit", "merge", *(str(path) for path in shard_reports(inputs["reports"], place, own))]
    else:
        arguments = [command, *_what_arguments(command, inputs)]
    if command == "seal":
        arguments += ["--manifest-file", str(in_workspace(manifest_input(inputs), place))]
        if inputs["checksums-file"]:
            arguments += ["--checksums-file", str(in_workspace(inputs["checksums-file"], place))]
        if boolean(inputs, "record-tag"):
            arguments.append("--record-tag")
    elif command == "verify":
        arguments += _reference_arguments(inputs, place, public_key_file)
    # strict means bytes only; a seal records bytes whatever it is, so there it changes nothing.
    if command != "seal" and boolean(inputs, "strict"):
        arguments.append("--strict")
    for name in ("native-model", "download-dir"):
        if inputs[name]:
            arguments += [f"--{name}", inputs[name]]
    if junit_file is not None:
        arguments += ["--junit-file", str(junit_file)]
    if run_nonce:
        arguments += ["--run-nonce", run_nonce]
    return [*arguments, "--report-file", str(report_file)]


def _what_arguments(command: str, inputs: Mapping[str, str]) -> list[str]:
    """What the command works on: compare's config file, or the other commands' version and server."""
    if command == "compare":
        if not inputs["config-file"]:
            raise ActionInputError(
                "command compare needs the config-file input. Fix: set config-file: config.yaml."
            )
        return ["--config-file", inputs["config-file"]]
    if not inputs["model"] or not inputs["version-or-stage"]:
        raise ActionInputError(
            f"command {command} needs the model and version-or-stage inputs. Fix: set both (e.g. "
            "model: Sklearn_Wine, version-or-stage: production)."
        )
    arguments = ["--model", inputs["model"], "--version-or-stage", inputs["version-or-stage"]]
    for name in ("tracking-uri", "registry-uri"):
        if inputs[name]:
            arguments += [f"--{name}", inputs[name]]
    return arguments


def _audit_arguments(inputs: Mapping[str, str]) -> list[str]:
    """audit's selection, shard, concurrency and server as CLI options."""
    arguments: list[str] = []
    if inputs["models"]:
        names = model_names(inputs["models"])
        if not names:
            raise ActionInputError(
                f"input models is {inputs['models']!r}, which names no model. Fix: give the registered "
                "model names one a line (or comma-separated), or leave models out to audit every model."
            )
        for name in names:
            arguments.append(f"--model={name}")
    if inputs["filter"]:
        arguments.append(f"--filter={inputs['filter']}")
    arguments.append(f"--versions={inputs['versions']}")
    if inputs["shard"]:
        arguments.append(f"--shard={inputs['shard']}")
    if inputs["jobs"]:
        arguments.append(f"--jobs={jobs_input(inputs['jobs'])}")
    for name in ("tracking-uri", "registry-uri"):
        if inputs[name]:
            arguments.append(f"--{name}={inputs[name]}")
    return arguments


def model_names(value: str) -> list[str]:
    """The models input: names one a line or separated by commas (a name cannot hold a comma here),
    each stripped, without repeats."""
    names = (part.strip() for line in value.splitlines() for part in line.split(","))
    return list(dict.fromkeys(name for name in names if name))


def jobs_input(value: str) -> int:
    """The jobs input, checked here so that its message names the input (the CLI's range check
    would name --jobs and write no report)."""
    from ..audit import MAX_JOBS

    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_JOBS:
        raise ActionInputError(
            f"input jobs is {value!r}, not a whole number from 1 to {MAX_JOBS}. Fix: give the number "
            "of versions to download at once (e.g. 4), or leave jobs out."
        )
    return int(value)


def shard_reports(value: str, workspace: Path, own: list[Path]) -> list[Path]:
    """audit-merge's shard reports: the regular files that the reports input's globs (one a line,
    relative to the workspace) name in the workspace, sorted, each once; never this step's own
    report-file or junit-file (a glob such as `**/*.json` would otherwise merge an earlier merge).

    A glob cannot leave the workspace: `..` and absolute paths elsewhere are refused, and so is a
    match whose real path (through a symlinked folder or file of the repository) is outside it.
    A glob that names no file is refused: it means a shard's report was not downloaded there.
    """
    patterns = [line.strip() for line in value.splitlines() if line.strip()]
    if not patterns:
        raise ActionInputError(
            "command audit-merge needs the reports input. Fix: set reports to a glob of the shard "
            "reports the download step put in the workspace, e.g. reports: shards/*.json."
        )
    root = workspace.resolve()
    skipped = {path.resolve() for path in own}
    found: dict[Path, Path] = {}
    for pattern in patterns:
        relative = _glob_in_workspace(pattern, workspace)
        matched, own_matched = [], False
        for match in sorted(workspace.glob(relative)):
            real = match.resolve()
            if real != root and root not in real.parents:
                raise ActionInputError(
                    f"input reports {pattern!r} matches {match.relative_to(workspace)}, which leads "
                    f"outside the workspace (to {real}) through a symlink. Likely cause: a symlinked "
                    "folder or file in the repository. Fix: give a glob of the report files the "
                    "download step wrote in the workspace."
                )
            if real in skipped:
                own_matched = True
            elif _regular_file(real):
                matched.append(match)
        if not matched:
            also = (
                " but this step's own report-file or junit-file, which is never merged" if own_matched else ""
            )
            raise ActionInputError(
                f"input reports {pattern!r} matches no file in the workspace{also}. Likely cause: the "
                "shards' reports were not downloaded there (actions/download-artifact's pattern and "
                "path), or every shard failed before it wrote one. Fix: download the shard reports into "
                "the folder the glob names (e.g. path: shards and reports: shards/*.json)."
            )
        for match in matched:
            found.setdefault(match.resolve(), match)
    return sorted(found.values())


def _glob_in_workspace(pattern: str, workspace: Path) -> str:
    """The reports glob relative to the workspace; refused when it could name files outside it."""
    given = Path(pattern)
    if given.is_absolute():
        if not (workspace == given or workspace in given.parents):
            raise ActionInputError(
                f"input reports {pattern!r} is outside the workspace. Likely cause: a path on the "
                "runner rather than in the workspace. Fix: download the shard reports into the "
                "workspace and give a glob relative to it, e.g. shards/*.json."
            )
        given = given.relative_to(workspace)
    if ".." in given.parts or str(given) == ".":
        raise ActionInputError(
            f"input reports {pattern!r} does not name files below the workspace (no '..' in the "
            "glob). Fix: give a glob relative to the workspace, e.g. shards/*.json."
        )
    return str(given)


def _reference_arguments(
    inputs: Mapping[str, str], workspace: Path, public_key_file: str | None
) -> list[str]:
    """verify's reference as CLI options (exactly one, verify_reference)."""
    reference = verify_reference(inputs)
    if reference == "manifest-file":
        return ["--manifest-file", str(in_workspace(inputs["manifest-file"], workspace))]
    if reference == "signature-file":
        key = public_key_file or str(in_workspace(inputs["public-key"], workspace))
        return ["--signature", str(in_workspace(inputs["signature-file"], workspace)), "--public-key", key]
    if reference == "expect-digest":
        return ["--expect-digest", inputs["expect-digest"]]
    return ["--recorded-tag"]


@contextlib.contextmanager
def public_key_file(value: str) -> Iterator[str | None]:
    """The public-key input's PEM text in a private temporary file (0600 in a 0700 directory),
    removed after; None when the input is a path (or empty). The key is public: the file is
    private so that nobody can swap it for another between its writing and its reading.
    A private key given by mistake is refused (ActionInputError), never written."""
    if holds_private_key(value):
        raise ActionInputError(
            "the public-key input holds a private key. Likely cause: the signing key's secret was "
            "given instead of its public half. Fix: give the public key (PEM 'BEGIN PUBLIC KEY'), "
            "and treat the private key as exposed to this job: rotate it."
        )
    if not is_pem_text(value):
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="mvc-key-"))
    PRIVATE_PATHS.append(str(directory))
    try:
        directory.chmod(stat.S_IRWXU)
        key = directory / "public-key.pem"
        descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(value.strip() + "\n")
        yield str(key)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        PRIVATE_PATHS.remove(str(directory))


def outputs_of(
    report: Mapping[str, Any] | None,
    exit_code: int,
    report_path: str,
    artifact_id: str,
    *,
    command: str = "check",
    manifest_path: str = "",
) -> dict[str, str]:
    """The step's outputs; seal and verify also get root-digest and manifest-path, audit and
    audit-merge failed-count and error-count."""

    def flag(value: Any) -> str:
        return "" if value is None else str(bool(value)).lower()

    summary = (report or {}).get("Comparison_Summary") or {}
    # Passed only with this run's own report saying so: an exit code alone is no verdict.
    passed = exit_code == EXIT_EQUAL and report is not None and report.get("status") == "passed"
    outputs = {
        "passed": flag(passed),
        "equals": flag((report or {}).get("equals")),
        "run-model-equals": flag(summary.get("run_model")),
        "reg-model-equals": flag(summary.get("reg_model")),
        "report-path": report_path,
        "artifact-id": artifact_id,
    }
    if command in ("seal", "verify"):
        outputs["root-digest"] = root_digest_of(report, command)
        outputs["manifest-path"] = manifest_path
    if command in AUDIT_COMMANDS:
        counts = ((report or {}).get(AUDIT_SECTION) or {}).get("summary") or {}
        outputs["failed-count"] = str(counts.get("failed", ""))
        outputs["error-count"] = str(counts.get("error", ""))
    return outputs


def root_digest_of(report: Mapping[str, Any] | None, command: str) -> str:
    """seal: the root digest sealed (empty when nothing was); verify: the registry model's now."""
    if report is None or report.get("status") == "error":
        return ""
    section = report.get(SEAL_SECTION if command == "seal" else VERIFY_SECTION) or {}
    if command == "seal" and not section.get("equals"):
        return ""  # an incomplete model: its digest was computed, but nothing was sealed
    digest = section.get("root_digest")
    return digest if isinstance(digest, str) and _ROOT_DIGEST.fullmatch(digest) else ""


def seal_files(report: Mapping[str, Any] | None, manifest: Path, checksums: Path | None) -> list[Path]:
    """The files of this run's seal that its report names, each a regular file at a path this run
    asked for: the manifest, its MLmodel copy and the checksums (an earlier run's are never among
    them: the CLI removes what is at the seal's paths before it seals, and the report is this run's)."""
    section = (report or {}).get(SEAL_SECTION) or {}
    if report is None or not section.get("equals"):
        return []
    asked = [
        manifest,
        manifest.with_name(manifest.name + MLMODEL_SUFFIX),
        *([checksums] if checksums else []),
    ]
    named = {
        os.path.abspath(value)
        for key in ("manifest_file", "mlmodel_file", "checksums_file")
        if isinstance(value := section.get(key), str) and value
    }
    return [path for path in asked if os.path.abspath(path) in named and _regular_file(path)]


def annotate(report: Mapping[str, Any] | None, report_path: str = "") -> None:
    """::error:: annotations for an error or for each difference (the runner shows the first few);
    for an audit, one per version that did not pass, at most AUDIT_ANNOTATIONS."""
    if not report:
        return
    if audit := report.get(AUDIT_SECTION):
        _annotate_audit(audit, report_path)
        return
    if report.get("status") == "error" and report.get("error"):
        _annotate_error(report["error"]["message"])
        return
    for key, label in SECTION_LABELS.items():
        section = report.get(key) or {}
        for difference in section.get("differences", [])[:10]:
            if key == VERIFY_SECTION:
                _annotate_error(f"drift from the reference: {difference['path']} ({difference['kind']})")
            else:
                _annotate_error(f"{label} differ: {difference['path']} ({difference['kind']})")
        integrity = (
            section.get("integrity") if key == CHECK_SECTION and section.get("same_location") else None
        )
        if key == SEAL_SECTION and section and not section.get("equals"):
            integrity = (section.get("reg_model") or {}).get("integrity")
        for problem in (integrity or {}).get("problems", []):
            suffix = " (not sealed)" if key == SEAL_SECTION else ""
            _annotate_error(f"model incomplete: {problem}{suffix}")
    _annotate_drift_without_names(report.get(VERIFY_SECTION) or {})


def _annotate_audit(audit: Mapping[str, Any], report_path: str) -> None:
    """The audited versions that did not pass, failed ones first; past the cap, one line that says
    how many more the report holds (a registry can have thousands)."""
    from ..report.terminal import audit_reason

    unhealthy = sorted(
        (item for item in audit["versions"] if item["status"] != "passed"),
        key=lambda item: item["status"] != "failed",
    )
    shown = unhealthy if len(unhealthy) <= AUDIT_ANNOTATIONS else unhealthy[: AUDIT_ANNOTATIONS - 1]
    for item in shown:
        verdict = "failed" if item["status"] == "failed" else "could not be checked"
        _annotate_error(
            redact(f"audit: {item['model']} version {item['version']} {verdict}: {audit_reason(item)}")
        )
    rest = unhealthy[len(shown) :]
    if rest:
        failed = sum(item["status"] == "failed" for item in rest)
        where = f"the report {report_path}" if report_path else "the report"
        _annotate_error(
            f"audit: {len(rest)} more versions did not pass ({failed} failed, {len(rest) - failed} "
            f"could not be checked): {where} lists every one (Audit.versions)"
        )


def _annotate_drift_without_names(verification: Mapping[str, Any]) -> None:
    """A verify that failed: its problem (a signature that does not verify), and, when no file is
    named (a root digest names none), the two digests, for a failure must never be silent."""
    if not verification or verification.get("equals") is not False:
        return
    if problem := verification.get("problem"):
        _annotate_error(f"verify failed: {problem}")
    if verification.get("differences") or problem:
        return
    expected = (verification.get("reference") or {}).get("root_digest")
    found = verification.get("root_digest")
    if expected and found and expected != found:
        _annotate_error(f"drift from the reference: the root digest is {found}, not {expected}")
    else:
        _annotate_error("verify failed: the model does not match its reference (see the report)")


def _annotate_error(text: str) -> None:
    """An ::error:: annotation of this action; the text (names, paths, messages) shows control
    characters escaped: it comes from models and servers."""
    workflow_commands.command("error", escape_controls(text), title="mlflow-version-check")


def chown_like_workspace(paths: list[Path], workspace: Path) -> None:
    """Give what this container wrote in the workspace to the workspace's owner (not root)."""
    try:
        owner = workspace.stat()
    except OSError:
        return
    if os.geteuid() != 0:
        return
    for path in paths:
        with contextlib.suppress(OSError):
            resolved = path.resolve()
            if workspace.resolve() not in (resolved, *resolved.parents):
                continue
            targets = [resolved, *[p for p in resolved.parents if workspace.resolve() in p.parents]]
            if resolved.is_dir():
                targets += list(resolved.rglob("*"))
            for target in targets:
                os.chown(target, owner.st_uid, owner.st_gid, follow_symlinks=False)


def archive_names(files: list[Path]) -> dict[str, Path]:
    """Each file under its own name in the artifact, or, when two share a name (reports/r.json and
    seal/r.json), under its path from the files' common folder, so that neither replaces the other."""
    present = [path for path in files if path.is_file()]
    names = [path.name for path in present]
    if len(set(names)) == len(names):
        return dict(zip(names, present, strict=True))
    common = os.path.commonpath([os.path.abspath(path) for path in present])
    return {os.path.relpath(os.path.abspath(path), common): path for path in present}


def upload(
    files: list[Path], name: str, environ: Mapping[str, str], sleep: Sleep = time.sleep
) -> tuple[str, str | None]:
    """Upload the report (with the JUnit XML and a seal's files) as one artifact; return (artifact id,
    problem). Never raises. `sleep` waits between retries (tests pass one that does not)."""
    from .artifact_upload import ArtifactUploadClient, ArtifactUploadError, zip_files

    token, results_url = environ.get("ACTIONS_RUNTIME_TOKEN", ""), environ.get("ACTIONS_RESULTS_URL", "")
    if not token or not results_url:
        return "", "skipped: no ACTIONS_RUNTIME_TOKEN / ACTIONS_RESULTS_URL (not on a GitHub runner)"
    try:
        client = ArtifactUploadClient(results_url, token, sleep=sleep)
        uploaded = client.upload(name, zip_files(archive_names(files)))
    except (ArtifactUploadError, OSError) as exc:
        return "", f"failed: {exc}"
    return uploaded.artifact_id, None


def main(environ: MutableMapping[str, str] | None = None, *, upload_sleep: Sleep = time.sleep) -> int:
    """Run the action; return the process exit code. `upload_sleep` waits between the artifact
    upload's retries (a test passes one that returns at once)."""
    from ..cli import interruptible

    env = os.environ if environ is None else environ
    try:
        with interruptible():
            return _run(env, upload_sleep)
    except Interrupted as exc:  # outside the CLI's own run (which reports it itself)
        sys.stderr.write(f"error: {safe_line(redact(exc.render(ACTION_NAMES)))}\n")
        return exit_code_of(exc)


def _run(env: MutableMapping[str, str], upload_sleep: Sleep) -> int:
    # Holds what lasts for the run only: the public-key input's PEM text in a private file.
    with contextlib.ExitStack() as for_the_run:
        return _run_with(env, upload_sleep, for_the_run)


def _run_with(env: MutableMapping[str, str], upload_sleep: Sleep, for_the_run: contextlib.ExitStack) -> int:
    inputs = read_inputs(env)
    on_github = workflow_commands.on_github(env)
    known = secrets_of(inputs)
    remember_secrets(known)  # removed by value from every message, report and summary from here on
    if on_github:
        # Before anything else is printed: a secret must never reach the log unmasked, nor its
        # percent-encoded or base64 forms (a server may echo an Authorization header back).
        # (A multi-line value, the databricks-config text, is masked line by line; its own secrets
        # are among `known` one by one, with their forms.)
        workflow_commands.add_masks(
            dict.fromkeys(
                form for secret in known for form in ([secret] if "\n" in secret else secret_forms(secret))
            )
        )
    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
    report_file = Path(inputs["report-file"])
    if not report_file.is_absolute():
        report_file = workspace / report_file
    junit_file = workspace / inputs["junit-file"] if inputs["junit-file"] else None
    # Written into this run's report and JUnit file: a file without it is an earlier run's.
    run_nonce = secrets.token_hex(16)
    command = inputs["command"].strip().lower()
    try:
        refuse_escapes(inputs, workspace)
        fail_on_difference = boolean(inputs, "fail-on-difference")
        upload_artifact = boolean(inputs, "upload-artifact")
        key_file = for_the_run.enter_context(public_key_file(inputs["public-key"]))
        arguments = cli_arguments(
            inputs, report_file, junit_file, run_nonce, workspace=workspace, public_key_file=key_file
        )
        refuse_what_the_environment_undoes(inputs, env)
    except ActionInputError as exc:
        sys.stderr.write(f"error: {safe_line(redact(exc.message))}\n")
        if on_github:
            _annotate_error(redact(exc.message))
        report_escapes = _outside_workspace(inputs["report-file"], workspace) is not None
        written = not report_escapes and _write_input_error_report(exc, inputs, report_file, run_nonce)
        shown = _relative(report_file, workspace) if written else ""
        _finish_outputs(env, outputs_of(None, exit_code_of(exc), shown, "", command=command))
        return exit_code_of(exc)

    from ..cli import main as cli_main

    def run_cli(arguments: list[str]) -> int:
        # Its messages name this action's inputs ("the tracking-uri input"), not the CLI's flags.
        return cli_main(arguments, option_names=ACTION_NAMES)

    with private_credentials(inputs, env):
        exit_code = run_fenced(run_cli, arguments) if on_github else run_cli(arguments)
    report = own_report(report_file, run_nonce)
    results = [report_file]
    if junit_file is not None and junit_is_own(junit_file, run_nonce):
        results.append(junit_file)
    manifest_path = ""
    if command == "seal":
        manifest = in_workspace(manifest_input(inputs), workspace)
        checksums = in_workspace(inputs["checksums-file"], workspace) if inputs["checksums-file"] else None
        sealed = seal_files(report, manifest, checksums)
        results += sealed
        manifest_path = _relative(manifest, workspace) if manifest in sealed else ""
    shown = _relative(report_file, workspace)
    published = StepResult(report, exit_code, results, shown, command, manifest_path)
    _publish(env, inputs, published, upload_artifact, upload_sleep)
    download_dir = [Path(inputs["download-dir"])] if inputs["download-dir"] else []
    chown_like_workspace([*results, *download_dir], workspace)
    if exit_code == EXIT_DIFFERENT and report is not None and not fail_on_difference:
        print("fail-on-difference is false: the difference is reported, the step passes (passed=false)")
        return EXIT_EQUAL
    return exit_code


@dataclass(frozen=True)
class StepResult:
    """What a run that reached the CLI leaves for the step to publish: its own report (None: it
    wrote none), its exit code, the files to upload (the report first), where the report and a
    seal's manifest are (relative to the workspace, empty when not written) and the command."""

    report: dict[str, Any] | None
    exit_code: int
    files: list[Path]
    report_path: str
    command: str
    manifest_path: str


def _publish(
    env: Mapping[str, str],
    inputs: Mapping[str, str],
    run: StepResult,
    upload_artifact: bool,
    upload_sleep: Sleep = time.sleep,
) -> None:
    """Artifact, annotations, job summary and outputs of a run."""
    report, shown_path = run.report, run.report_path
    artifact_id: str = ""
    problem: str | None = "disabled (upload-artifact: false)"
    if upload_artifact:
        problem = "skipped: this run wrote no report"
        if report is not None:
            artifact_id, problem = upload(run.files, inputs["artifact-name"], env, upload_sleep)
    if problem and upload_artifact:
        if problem.startswith("skipped"):
            print(f"artifact upload {problem}")
        else:
            # Upload problems never change the verdict; they are warnings.
            workflow_commands.command("warning", f"artifact upload {problem}", title="mlflow-version-check")
    if workflow_commands.on_github(env):
        annotate(report, shown_path)
        if summary_path := env.get("GITHUB_STEP_SUMMARY"):
            from ..report.markdown import markdown_summary

            workflow_commands.append_summary(
                summary_path, markdown_summary(report, shown_path, artifact_id, problem)
            )
    outputs = outputs_of(
        report,
        run.exit_code,
        shown_path if report else "",
        artifact_id,
        command=run.command,
        manifest_path=run.manifest_path,
    )
    _finish_outputs(env, outputs)


def run_fenced(run: Callable[[list[str]], int], arguments: list[str]) -> int:
    """Run the CLI between `::stop-commands::<token>` and `::<token>::`, its stderr into stdout.

    While stopped, the runner processes no workflow command but the resume token, which nobody
    else knows: nothing the CLI prints (model names, file names, server errors) can act as a
    command, on top of the CLI's own neutralized output. Both streams go to stdout for the run:
    the runner reads stdout and stderr through separate pipes, so a line on stderr could be
    processed before the fence opened or after it closed.
    """
    token = secrets.token_hex(16)
    sys.stderr.flush()
    print(f"::stop-commands::{token}", flush=True)
    try:
        with contextlib.redirect_stderr(sys.stdout):
            return run(arguments)
    finally:
        sys.stdout.flush()
        print(f"::{token}::", flush=True)


def own_report(path: Path, run_nonce: str) -> dict[str, Any] | None:
    """The report at path if this run wrote it (its System.run_nonce), else None."""
    report = _load(path)
    if report is None or not isinstance(report.get("System"), dict):
        return None
    return report if report["System"].get("run_nonce") == run_nonce else None


def junit_is_own(path: Path, run_nonce: str) -> bool:
    """Whether the JUnit file at path carries this run's nonce (the suite property report/junit.py writes)."""
    if not _regular_file(path):
        return False
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return f'<property name="run_nonce" value="{run_nonce}"' in text


def _write_input_error_report(
    error: ActionInputError, inputs: Mapping[str, str], path: Path, run_nonce: str
) -> bool:
    """The error report of wrong inputs, so a later step that reads the report finds why (no secrets)."""
    from ..errors import ReportPathError
    from ..report.document import error_report, finalized
    from ..report.files import write_report

    given = inputs["command"].strip().lower()
    command = "audit" if given in AUDIT_COMMANDS else given if given in COMMANDS else "check"
    shown = {name: shown_input(name, value) for name, value in inputs.items() if name not in SECRET_INPUTS}
    report = finalized(error_report(command, error, {"inputs": shown}), run_nonce)
    try:
        write_report(report, path, "report-file")
    except (OSError, ReportPathError):
        return False  # the report path itself may be the wrong input; the line above says why
    return True


def _finish_outputs(env: Mapping[str, str], outputs: dict[str, str]) -> None:
    outputs = {name: redact(value) for name, value in outputs.items()}
    if path := env.get("GITHUB_OUTPUT"):
        workflow_commands.write_outputs(path, outputs)
    else:
        for name, value in outputs.items():
            print(f"output {name}={value}")


def _regular_file(path: Path) -> bool:
    """A regular file, not a link, FIFO or device (reading a FIFO would block the step)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _load(path: Path) -> dict[str, Any] | None:
    if not _regular_file(path):
        return None
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _relative(path: Path, workspace: Path) -> str:
    try:
        return str(path.resolve().relative_to(workspace.resolve()))
    except ValueError:
        return str(path)
