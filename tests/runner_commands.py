"""A TEST DOUBLE of the GitHub runner's workflow-command parser, to assert what a log would trigger.

It follows actions/runner (src/Runner.Common/ActionCommand.cs, src/Runner.Worker/ActionCommandManager.cs):
a line is a command when, after leading whitespace, it starts with `::name ...::data` (V2), or when
it contains `##[name ...]data` anywhere (the older syntax, still parsed), and `name` is a registered
command. `::stop-commands::T` stops processing until a line is the command `T`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REGISTERED = {
    "add-mask", "add-matcher", "add-path", "debug", "echo", "endgroup", "error", "group", "notice",
    "remove-matcher", "save-state", "set-env", "set-output", "stop-commands", "warning",
}  # fmt: skip


@dataclass(frozen=True)
class Command:
    name: str
    properties: dict[str, str]
    data: str


def _unescape(text: str, property_value: bool) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")]
    if property_value:
        pairs += [("%3A", ":"), ("%2C", ",")]
    for escaped, plain in [*pairs, ("%25", "%")]:
        text = text.replace(escaped, plain)
    return text


def _parse_v2(line: str, registered: set[str]) -> Command | None:
    message = line.lstrip()
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    name, _, rest = info.partition(" ")
    if name.lower() not in registered:
        return None
    properties = {}
    for item in rest.strip().split(","):
        key, sep, value = item.partition("=")
        if sep and key and value:
            properties[key] = _unescape(value, True)
    return Command(name.lower(), properties, _unescape(message[end + 2 :], False))


def _parse_v1(line: str, registered: set[str]) -> Command | None:
    start = line.find("##[")
    if start < 0:
        return None
    close = line.find("]", start)
    if close < 0:
        return None
    info = line[start + 3 : close]
    name, _, rest = info.partition(" ")
    if name.lower() not in registered:
        return None
    properties = {}
    for item in rest.split(";"):
        key, sep, value = item.partition("=")
        if sep and key and value:
            properties[key] = value
    return Command(name.lower(), properties, line[close + 1 :])


@dataclass
class RunnerLog:
    """Feeds lines through the parser; `processed` lists the commands the runner would run."""

    processed: list[Command] = field(default_factory=list)
    stop_token: str | None = None

    def feed(self, text: str) -> RunnerLog:
        # The runner reads process output as .NET does: lines end at \r\n, \r or \n.
        for line in re.split(r"\r\n|\r|\n", text):
            registered = REGISTERED | ({self.stop_token.lower()} if self.stop_token else set())
            command = _parse_v2(line, registered) or _parse_v1(line, registered)
            if command is None:
                continue
            if self.stop_token is not None:
                if command.name == self.stop_token.lower():
                    self.processed.append(command)
                    self.stop_token = None
                continue
            if command.name == "stop-commands":
                self.stop_token = command.data
            self.processed.append(command)
        return self


def action_commands(stdout: str, stderr: str) -> list[Command]:
    """The commands a runner would run for the action's log, the stop-commands fence included."""
    return RunnerLog().feed(stdout).feed(stderr).processed


def assert_only_own_commands(stdout: str, stderr: str, forged_words: tuple[str, ...] = ()) -> None:
    """The action's log runs only what the action wrote: masks first, then its stop-commands fence
    (opened and closed by the action, with a 32-hex token), then its annotations."""
    commands = action_commands(stdout, stderr)
    names = [command.name for command in commands]
    fence = names.index("stop-commands")
    assert all(name == "add-mask" for name in names[:fence]), names
    token = commands[fence].data
    assert re.fullmatch(r"[0-9a-f]{32}", token), token
    assert names[fence + 1] == token, names  # the fence is closed by the action, nobody else
    for command in commands[fence + 2 :]:
        assert command.name in ("error", "warning"), command
        assert command.properties.get("title") == "mlflow-version-check", command
        assert re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", command.data) is None, command
    for command in commands:
        # A forged command carries the attacker's word as its name or first in its data; the
        # action's own annotations may quote hostile text, but only escaped and after its own words.
        assert not any(word in command.name or command.data.startswith(word) for word in forged_words), (
            command
        )
