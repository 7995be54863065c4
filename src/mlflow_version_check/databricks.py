"""Databricks tracking URIs: which profile, which registry, and whose credentials a worker gets.

A worker serves one server (DESIGN.md), so a `databricks://<profile>` server's worker runs with
DATABRICKS_CONFIG_PROFILE=<profile>: the code paths that build a WorkspaceClient with default
credentials (run and logged-model downloads) then reach that workspace and no other.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import InvalidOption
from .redact import databricks_config_path, read_regular_file

# A name no .databrickscfg section can have ("]" ends a section header).
_NO_DEFAULT_SECTION = "]no default section["
# databricks-sdk's section of settings (`default_profile`), not a profile.
_SETTINGS_SECTION = "__settings__"

# Variables that databricks-sdk reads before a profile's own values (it loads the environment first).
CREDENTIAL_VARIABLES = (
    "DATABRICKS_HOST",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_USERNAME",
    "DATABRICKS_PASSWORD",
    "DATABRICKS_AZURE_CLIENT_SECRET",
    "DATABRICKS_CONFIG_PROFILE",
)


def uses_databricks(uri: str | None) -> bool:
    return bool(uri) and (uri in ("databricks", "databricks-uc") or profile_of(uri) is not None)


def profile_of(uri: str | None) -> str | None:
    """`databricks://prod_env` -> prod_env (`databricks://prof:prefix` -> prof); else None."""
    if not uri:
        return None
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("databricks", "databricks-uc") or not parsed.netloc:
        return None
    return parsed.netloc.split(":", 1)[0] or None


def default_registry(tracking_uri: str, model: str) -> str | None:
    """The registry a Databricks tracking URI means when none is given.

    MLflow 3 defaults `databricks://p` to Unity Catalog, where the original tool (and every
    two-level model name such as `Sklearn_Wine`) meant the workspace registry. The rule, recorded in
    the report as the registry URI: a three-level name `catalog.schema.model` is Unity Catalog,
    anything else the workspace registry.
    """
    parsed = urllib.parse.urlparse(tracking_uri)
    if tracking_uri != "databricks" and parsed.scheme != "databricks":
        return None
    suffix = tracking_uri[len("databricks") :]  # "" or "://profile"
    return f"databricks-uc{suffix}" if len(model.split(".")) == 3 else f"databricks{suffix}"


def worker_environment(
    tracking_uri: str, registry_uri: str | None, environ: Mapping[str, str]
) -> dict[str, str]:
    """Extra variables for a Databricks server's worker; refuse ambient overrides of a profile."""
    profiles = {p for p in (profile_of(tracking_uri), profile_of(registry_uri)) if p}
    if len(profiles) > 1:
        raise InvalidOption(
            f"tracking and registry URIs name two profiles ({', '.join(sorted(profiles))})",
            fix="use one profile per server (the registry of a workspace is reached with its own profile).",
        )
    if not profiles:
        return {}
    ambient = [name for name in CREDENTIAL_VARIABLES if environ.get(name)]
    if ambient:
        raise InvalidOption(
            f"{', '.join(ambient)} set in the environment would silently override profile "
            f"'{next(iter(profiles))}' (databricks-sdk reads the environment first)",
            fix="unset them, or use the tracking URI `databricks` to work with the environment's "
            "credentials.",
        )
    return {"DATABRICKS_CONFIG_PROFILE": next(iter(profiles))}


@contextlib.contextmanager
def bounded_config(timeout_seconds: float, environ: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """A private copy of the user's .databrickscfg whose profiles give up after `timeout_seconds`.

    databricks-sdk probes a host while it builds a client and retries with the profile's
    `retry_timeout_seconds`, 300 s unless set: a dead workspace would hang the check for minutes.
    Neither that nor `http_timeout_seconds` can be set from the environment, so the worker reads a
    copy (0600, in a private directory removed afterwards) where every profile that does not set
    them gets `http_timeout_seconds` = the per-request timeout and a retry budget of a sixth of it
    (several clients probe in turn). Yields the variables that point the worker at it.
    """
    source = Path(databricks_config_path(environ))
    # databricks-sdk reads `ConfigParser()._sections`: a profile gets none of [DEFAULT]'s keys. Read
    # with a default section that cannot occur, so that [DEFAULT] is a section like the others and
    # each profile shows only its own keys; each one that lacks a limit gets it.
    parser = configparser.ConfigParser(interpolation=None, default_section=_NO_DEFAULT_SECTION)
    try:
        parser.read_string(_config_text(source), str(source))
    except configparser.Error as exc:
        raise InvalidOption(
            f"{source}: cannot be parsed as a Databricks config ({exc.message.splitlines()[0]})",
            fix="correct the file (sections like [prod_env] with host and token lines).",
        ) from exc
    limits = {
        "retry_timeout_seconds": str(max(1, round(timeout_seconds / 6))),
        "http_timeout_seconds": str(max(1, round(timeout_seconds))),
    }
    if not parser.has_section(configparser.DEFAULTSECT):
        parser.add_section(configparser.DEFAULTSECT)  # for `databricks` with DATABRICKS_HOST
    for section in parser.sections():
        if section == _SETTINGS_SECTION:
            continue  # not a profile: the SDK reads only `default_profile` there
        for key, value in limits.items():
            if not parser.has_option(section, key):
                parser.set(section, key, value)
    directory = Path(tempfile.mkdtemp(prefix="mvc-databricks-"))
    try:
        directory.chmod(0o700)
        target = directory / "databrickscfg"
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            parser.write(stream)
        yield {"DATABRICKS_CONFIG_FILE": str(target)}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _config_text(path: Path) -> str:
    """The config file's text ("" when there is none); refuse one that is not a regular file."""
    path = path.expanduser()
    if not path.exists() and not path.is_symlink():
        return ""
    data = read_regular_file(path, 1024 * 1024)
    if data is None:
        raise InvalidOption(
            f"{path} is not a readable regular file (a FIFO, device or directory?), so no Databricks "
            "profile can be read from it",
            fix="point DATABRICKS_CONFIG_FILE (or ~/.databrickscfg) at a regular .databrickscfg file.",
        )
    return data.decode("utf-8", errors="replace")


def host_of(tracking_uri: str, environ: Mapping[str, str]) -> str | None:
    """The workspace URL a Databricks tracking URI reaches (profile host, else DATABRICKS_HOST)."""
    profile = profile_of(tracking_uri)
    config_file = databricks_config_path(environ)
    parser = configparser.ConfigParser(interpolation=None)
    with contextlib.suppress(configparser.Error):
        parser.read_string(_config_text(Path(config_file)), config_file)
    if profile is None:
        return environ.get("DATABRICKS_HOST") or parser.defaults().get("host")
    if not parser.has_section(profile):
        raise InvalidOption(
            f"profile '{profile}' of {tracking_uri} is not in {config_file}",
            fix=f"add a [{profile}] section with host and token (or client_id and client_secret), or "
            "correct the URI.",
            server=tracking_uri,
        )
    return parser.get(profile, "host", fallback=None)
