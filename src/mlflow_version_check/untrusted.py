"""Text that a model, a server or a config supplied, made safe for each place it is shown.

Names, versions, aliases, file names, MLmodel keys and values and server error bodies are untrusted
(DESIGN.md, "Untrusted text and secrets"). On a GitHub runner every line of stdout and stderr is
parsed for workflow commands: a line whose text after leading whitespace starts with `::`
(`::add-mask::word`, `::stop-commands::token`), and, in the runner's older syntax, `##[command]`
anywhere in a line (actions/runner ActionCommand.TryParse uses IndexOf). So:

- `escape_controls` shows every control character visibly escaped (`\\x1b`, `\\u2028`): C0, DEL, C1,
  the line and paragraph separators, the bidirectional overrides that reorder what a reader sees,
  lone surrogates (an undecodable file name) and the two non-characters XML forbids;
- `safe_line` / `safe_text` are the last step before a stream: controls escaped, `##[` broken up,
  and a line that would start with `::` gets its first colon escaped. Only ci/workflow_commands.py writes real
  workflow commands, and it does not go through here;
- `markdown` neutralizes a value for the job summary (pipes, HTML, links, @mentions, references);
- `xml_text` keeps JUnit well-formed.

The JSON report is the one place that keeps such text as it is: JSON escapes it losslessly.
"""

from __future__ import annotations

import re

# C0 (tab and newline included: a value is one line), DEL, C1, the line/paragraph separators, the
# bidirectional embeddings, overrides and isolates, lone surrogates, U+FFFE and U+FFFF.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
_LEGACY_COMMAND = "##["
_COMMAND_START = "::"


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped_surrogate(code: int) -> str:
    # Undecodable bytes of a file name arrive as U+DC80..U+DCFF (surrogateescape): show the byte.
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def escape_surrogates(text: str) -> str:
    """Lone surrogates as text: each undecodable byte of a file name (U+DC80..U+DCFF, from
    surrogateescape) as the four characters `\\xNN`, any other lone surrogate as `\\uNNNN`.

    The worker's manifest keys use this form (lossless: a listed name with a backslash is refused),
    so a name that is not UTF-8 can be written, compared and reported like any other.
    """
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(lambda m: _escaped_surrogate(ord(m.group())), text)


def escape_controls(text: str) -> str:
    """Show control, separator, bidi and surrogate characters as visible escapes; never raw."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(
        lambda m: _escaped_surrogate(ord(m.group())) if 0xD800 <= ord(m.group()) <= 0xDFFF else _escaped(m),
        text,
    )


def safe_line(text: str) -> str:
    """One output line that no CI runner can read as a workflow command."""
    line = escape_controls(text)
    if _LEGACY_COMMAND in line:
        line = line.replace(_LEGACY_COMMAND, "##\\[")
    stripped = line.lstrip()
    if stripped.startswith(_COMMAND_START):
        indent = line[: len(line) - len(stripped)]
        line = f"{indent}\\x3a{stripped[1:]}"
    return line


def safe_text(text: str) -> str:
    """Several lines (the program's own line breaks), each made a safe line."""
    return "\n".join(safe_line(line) for line in text.split("\n"))


# Markdown in a GitHub job summary: table pipes, inline HTML and entities, links and images (their
# brackets), code spans, bold, @mentions (which notify people) and #references are shown as text.
# Intraword underscores and parentheses are left alone: they only format, and names are full of them.
_MARKDOWN_SPECIAL = {
    "\\": "\\\\",
    "|": "\\|",
    "`": "\\`",
    "*": "\\*",
    "[": "\\[",
    "]": "\\]",
    "<": "&lt;",
    ">": "&gt;",
    "&": "&amp;",
    "@": "@\u200b",  # a zero-width space after @ keeps the text but not the mention
    "#": "&#35;",
}
_MARKDOWN = re.compile("|".join(re.escape(key) for key in _MARKDOWN_SPECIAL))
# Autolinks: GitHub links bare URLs and www. names; a zero-width space after the scheme's colon or
# after "www" leaves them readable but not links.
_AUTOLINK = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*):(?=//)|\b(www)(?=\.)")


def markdown(value: object) -> str:
    """A value as inert text for a Markdown table cell or line of the job summary."""
    text = " ".join(escape_controls(str(value)).split())
    text = _MARKDOWN.sub(lambda m: _MARKDOWN_SPECIAL[m.group()], text)
    text = _AUTOLINK.sub(lambda m: (m.group(1) + ":\u200b") if m.group(1) else (m.group(2) + "\u200b"), text)
    return safe_line(text)


def xml_text(value: object) -> str:
    """Text for a JUnit attribute or element: controls escaped (XML 1.0 forbids most), lines safe."""
    return safe_text(str(value))
