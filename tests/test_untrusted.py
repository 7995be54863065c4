"""Untrusted text: control characters escaped, no workflow command, inert Markdown and XML."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlflow_version_check.untrusted import escape_controls, markdown, safe_line, safe_text, xml_text
from tests.runner_commands import RunnerLog

# Strings a model, a server or a config could hold, each of which a runner would act on if printed raw.
FORGERIES = [
    pytest.param("::add-mask::word", id="mask-a-word"),
    pytest.param("x\n::stop-commands::tok", id="newline-then-stop-commands"),
    pytest.param("  \t::error title=forged::message", id="indented-command"),
    pytest.param("x\r\n::set-output name=passed::true", id="crlf-then-set-output"),
    pytest.param("name ##[add-mask]word", id="legacy-syntax-mid-line"),
    pytest.param("\u2028::warning::x", id="line-separator-indent"),
    pytest.param("x\r::add-mask::word", id="carriage-return-then-command"),
    pytest.param("\u00a0::error::nbsp-indented", id="unicode-whitespace-indent"),
    pytest.param("##[error]legacy at the start", id="legacy-syntax-start"),
]
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@pytest.mark.parametrize("text", FORGERIES)
def test_the_runner_double_sees_each_forgery_raw(text: str) -> None:
    """The oracle works: printed raw, each string is a command the runner would run."""
    assert RunnerLog().feed(text).processed


@pytest.mark.parametrize("text", FORGERIES)
def test_safe_text_is_never_a_command(text: str) -> None:
    """After safe_text / safe_line no line is a workflow command, and no control character is raw."""
    assert RunnerLog().feed(safe_text(text)).processed == []
    assert RunnerLog().feed(safe_line(text)).processed == []
    assert RAW_CONTROL.search(safe_line(text)) is None
    assert "\n" not in safe_line(text)


def test_controls_are_shown_escaped() -> None:
    """C0, DEL, C1, separators, bidi overrides and undecodable bytes are visible escapes."""
    assert escape_controls("a\x1b[31mb") == "a\\x1b[31mb"
    assert escape_controls("tab\there\nnl\x7f\x85") == "tab\\x09here\\x0anl\\x7f\\x85"
    assert escape_controls("l\u2028p\u2029r\u202eo") == "l\\u2028p\\u2029r\\u202eo"
    assert escape_controls("bad\udcffname") == "bad\\xffname"  # a byte the file system gave
    assert escape_controls("plain ünïcödé 日本") == "plain ünïcödé 日本"


@given(st.text())
def test_any_text_becomes_a_safe_line(text: str) -> None:
    """Whatever the text, the safe line is one line, no command, no raw control, encodable as UTF-8."""
    line = safe_line(text)
    assert RunnerLog().feed(line).processed == []
    assert RAW_CONTROL.search(line) is None
    line.encode("utf-8")


@given(st.text())
def test_any_text_is_well_formed_xml(text: str) -> None:
    """JUnit text from anything parses as XML 1.0 and reads back as the escaped text."""
    element = ElementTree.Element("failure", message=xml_text(text))
    element.text = xml_text(text)
    parsed = ElementTree.fromstring(ElementTree.tostring(element, encoding="unicode"))  # noqa: S314
    assert (parsed.text or "") == xml_text(text)
    assert parsed.get("message") == xml_text(text)


@pytest.mark.parametrize(
    ("text", "absent"),
    [
        pytest.param("@octocat please look", "@octocat", id="mention"),
        pytest.param("see www.evil.example", "www.evil", id="www-autolink"),
        pytest.param("see https://evil.example/x", "https://", id="url-autolink"),
        pytest.param("<img src=x onerror=alert(1)>", "<img", id="html"),
        pytest.param("a|b|c", "a|b", id="pipe"),
        pytest.param("[click](https://evil.example)", "[click](", id="link"),
        pytest.param("![i](x.png)", "![", id="image"),
        pytest.param("#123 and GH-1", "#123", id="reference"),
        pytest.param("`code` **bold**", "`code`", id="code-and-emphasis"),
        pytest.param("line\none", "\n", id="line-break"),
    ],
)
def test_markdown_neutralizes(text: str, absent: str) -> None:
    """Summary text: no mention, autolink, HTML, table pipe, link, reference, code span or line break."""
    assert absent not in markdown(text)


def test_markdown_keeps_words_readable() -> None:
    """Neutralized, the words are still there for a reader."""
    shown = markdown("model.pkl changed by @octocat")
    assert "model.pkl" in shown and "octocat" in shown
