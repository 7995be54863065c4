"""GitHub Actions I/O in one small module: workflow commands (masks, annotations), outputs, job summary.

github-action-utils was considered (DESIGN.md) and not used: it writes outputs with a fixed
delimiter (`__ENV_DELIMITER__`) and percent-escapes the values it writes to the output file, which
the runner does not decode. Here every output gets a fresh random delimiter that is checked against
the name and value, and workflow-command data is escaped as the runner's ActionCommand expects.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterable, Mapping
from typing import TextIO


def on_github(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    """Escape a workflow command's message: a value can never end the line or the command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (title=...)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, stream: TextIO | None = None, **properties: str) -> None:
    rendered = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    out = stream or sys.stdout
    out.write(f"::{name}{' ' + rendered if rendered else ''}::{escape_data(message)}\n")
    out.flush()


def add_masks(values: Iterable[str], stream: TextIO | None = None) -> None:
    """Mask each secret (and each line of a multi-line one) before anything else is printed."""
    masked: set[str] = set()
    for value in values:
        for part in (value, *value.splitlines()):
            if part.strip() and part.strip() not in masked:
                masked.add(part.strip())
                command("add-mask", part.strip(), stream)


def write_outputs(path: str, outputs: Mapping[str, str]) -> None:
    """Append outputs in the runner's file-command format, each with its own random delimiter."""
    with open(path, "a", encoding="utf-8") as stream:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            if delimiter in name or delimiter in value or "\n" in name or "\r" in name:
                raise ValueError(f"output {name!r} cannot be written safely")
            stream.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def parse_outputs(text: str) -> dict[str, str]:
    """Read a GITHUB_OUTPUT file as the runner does (name=value and name<<delimiter forms)."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if heredoc > 0 and (equals < 0 or heredoc < equals):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            value_lines = []
            while index < len(lines) and lines[index] != delimiter:
                value_lines.append(lines[index])
                index += 1
            if index >= len(lines):
                raise ValueError(f"output {name!r}: delimiter {delimiter!r} never closes")
            index += 1
            outputs[name] = "\n".join(value_lines)
        elif equals > 0:
            outputs[line[:equals]] = line[equals + 1 :]
        else:
            raise ValueError(f"invalid output line {line!r}")
    return outputs


def append_summary(path: str, markdown: str) -> None:
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(markdown.rstrip("\n") + "\n")
