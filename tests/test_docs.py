"""The README cannot fall behind the code: every option of every command is documented there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_command

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize(
    ("program", "args"),
    [
        pytest.param("check-model-version", ["--help"], id="check-model-version"),
        pytest.param("compare-model-versions", ["--help"], id="compare-model-versions"),
        pytest.param("mlflow-version-check", ["check", "--help"], id="check"),
        pytest.param("mlflow-version-check", ["compare", "--help"], id="compare"),
    ],
)
def test_every_option_is_in_the_readme(program: str, args: list[str]) -> None:
    """Each option that --help lists appears in the README's command line reference."""
    run = run_command(program, *args)
    options = set(re.findall(r"^\s+(--[a-z][a-z-]+)", run.stdout, re.MULTILINE)) - {"--help"}
    assert options, run.stdout
    missing = sorted(option for option in options if f"`{option}`" not in README)
    assert missing == [], f"{program} {' '.join(args)}: not in README.md: {missing}"


def test_readme_names_the_two_commands_first() -> None:
    """The README starts with the pitch and then `make demo` and `make test`."""
    head = README.split("## ", 1)[0]
    assert "make demo" in head and "make test" in head
    assert head.index("make demo") < head.index("make test")
