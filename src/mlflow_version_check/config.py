"""The compare configuration (`config.yaml`): read, validate, and say exactly what is wrong.

tracking_server_1:
  host: databricks://test_env        # tracking URI
  registry_uri: databricks://test_env  # optional
  model: Sklearn_Wine
  version_or_stage: staging
  native_model: model.pkl            # optional: a relative path, or auto
tracking_server_2:
  ...
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

SERVER_KEYS = ("tracking_server_1", "tracking_server_2")
REQUIRED_KEYS = ("host", "model", "version_or_stage")
OPTIONAL_KEYS = ("registry_uri", "native_model")
# Tracking/registry URI schemes MLflow itself understands (plus SQLAlchemy driver suffixes).
_SCHEME = re.compile(
    r"^(https?|databricks|databricks-uc|uc|file|sqlite|postgresql|mysql|mssql)(\+[a-z0-9]+)?$"
)


@dataclass(frozen=True)
class ServerConfig:
    """One side of a compare: a tracking server and a model version on it."""

    host: str
    model: str
    version_or_stage: str
    registry_uri: str | None = None
    native_model: str | None = None


@dataclass(frozen=True)
class CompareConfig:
    """Both sides of a compare, and where the configuration came from (for messages)."""

    tracking_server_1: ServerConfig
    tracking_server_2: ServerConfig
    source: str = "<config>"

    @property
    def servers(self) -> tuple[ServerConfig, ServerConfig]:
        return self.tracking_server_1, self.tracking_server_2


def _suggest(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fail(source: str, where: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"{source}: {where}: {problem}", fix=fix)


def uri_problem(value: str) -> str | None:
    if value == "databricks" or value.startswith("/"):
        return None
    scheme, separator, _ = value.partition(":")
    if not separator or not _SCHEME.match(scheme):
        return f"'{value}' is not a tracking URI MLflow understands"
    return None


def _string(source: str, where: str, value: Any, *, uri: bool = False, allow_int: bool = False) -> str:
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        kind = (
            "a list"
            if isinstance(value, list)
            else "a mapping"
            if isinstance(value, dict)
            else type(value).__name__
        )
        if value is None:
            kind = "empty"
        raise _fail(
            source,
            where,
            f"must be a text value, not {kind}",
            "write a single value, e.g. `model: Sklearn_Wine`",
        )
    if not value.strip():
        raise _fail(source, where, "is empty", "give a value or remove the key if it is optional")
    if uri and (problem := uri_problem(value.strip())):
        raise _fail(
            source,
            where,
            problem,
            "use http(s)://host:port, databricks, databricks://<profile>, file:/path or sqlite:///path",
        )
    return value.strip()


def _server(source: str, key: str, data: Any) -> ServerConfig:
    if not isinstance(data, dict):
        raise _fail(
            source,
            key,
            "must be a mapping with host, model and version_or_stage",
            f"indent the keys under `{key}:`",
        )
    allowed = REQUIRED_KEYS + OPTIONAL_KEYS
    for name in data:
        if name not in allowed:
            raise _fail(
                source,
                f"{key}.{name}",
                f"unknown key{_suggest(str(name), allowed)}",
                f"use only {', '.join(allowed)}",
            )
    for name in REQUIRED_KEYS:
        if name not in data:
            raise _fail(source, f"{key}.{name}", "is missing", f"add `{name}:` under `{key}:`")
    optional = {
        name: _string(source, f"{key}.{name}", data[name], uri=name == "registry_uri")
        for name in OPTIONAL_KEYS
        if name in data and data[name] is not None
    }
    return ServerConfig(
        host=_string(source, f"{key}.host", data["host"], uri=True),
        model=_string(source, f"{key}.model", data["model"]),
        version_or_stage=_string(source, f"{key}.version_or_stage", data["version_or_stage"], allow_int=True),
        registry_uri=optional.get("registry_uri"),
        native_model=optional.get("native_model"),
    )


def parse_config(text: str, source: str = "<config>") -> CompareConfig:
    """Validate the text of a config file; raise ConfigError naming the file, the key and the fix."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = " ".join(str(exc.problem or exc.context or "cannot be parsed").split())
        context = exc.context_mark
        if exc.context and context is not None and (mark is None or context.line != mark.line):
            # "[unclosed" is only noticed at the end of the file: also say where it began.
            problem += f" ({exc.context} that starts at line {context.line + 1}, column {context.column + 1})"
        raise _fail(source, where, f"invalid YAML: {problem}", "correct the YAML syntax there") from exc
    except yaml.YAMLError as exc:
        raise _fail(source, "YAML", f"invalid YAML: {exc}", "correct the YAML syntax") from exc
    return validate_config(data, source)


def validate_config(data: Any, source: str = "<config>") -> CompareConfig:
    """Validate loaded configuration data (the Python API also accepts a dict)."""
    if data is None:
        raise _fail(source, "file", "is empty", "write tracking_server_1 and tracking_server_2 sections")
    if not isinstance(data, dict):
        raise _fail(
            source,
            "top level",
            "must be a mapping",
            "write tracking_server_1: and tracking_server_2: sections",
        )
    for name in data:
        if name not in SERVER_KEYS:
            raise _fail(
                source,
                str(name),
                f"unknown key{_suggest(str(name), SERVER_KEYS)}",
                "use tracking_server_1 and tracking_server_2",
            )
    for name in SERVER_KEYS:
        if name not in data:
            raise _fail(
                source, name, "is missing", f"add a `{name}:` section with host, model and version_or_stage"
            )
    return CompareConfig(
        tracking_server_1=_server(source, "tracking_server_1", data["tracking_server_1"]),
        tracking_server_2=_server(source, "tracking_server_2", data["tracking_server_2"]),
        source=source,
    )


def load_config(path: str) -> CompareConfig:
    """Read a config file, or standard input for `-`."""
    if path == "-":
        return parse_config(sys.stdin.read(), "<stdin>")
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except IsADirectoryError as exc:
        raise ConfigError(f"{file}: is a directory", fix="give the path of the config.yaml file.") from exc
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{file}: no such file", fix="check {option:config_file} (use - for standard input)."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: is not UTF-8 text", fix="save the config as UTF-8 YAML.") from exc
    except OSError as exc:
        raise ConfigError(
            f"{file}: cannot be read ({exc.strerror})", fix="check the path and permissions."
        ) from exc
    return parse_config(text, str(file))
