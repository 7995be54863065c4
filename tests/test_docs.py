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
        pytest.param("mlflow-version-check", ["seal", "--help"], id="seal"),
        pytest.param("mlflow-version-check", ["verify", "--help"], id="verify"),
        pytest.param("mlflow-version-check", ["audit", "--help"], id="audit"),
        pytest.param("mlflow-version-check", ["audit", "merge", "--help"], id="audit-merge"),
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


def test_every_action_input_and_output_is_in_the_readme() -> None:
    """action.yml's inputs and outputs each have a row in the README's tables."""
    import yaml

    action = yaml.safe_load((Path(__file__).resolve().parent.parent / "action.yml").read_text())
    for kind in ("inputs", "outputs"):
        missing = [name for name in action[kind] if f"| `{name}` |" not in README]
        assert missing == [], f"{kind} not in README.md: {missing}"
        for name, spec in action[kind].items():
            assert spec.get("description"), f"{kind} {name} has no description"


def test_action_inputs_match_the_entrypoint() -> None:
    """Every input of action.yml is read by the entrypoint with the same default, and no other."""
    import yaml

    from mlflow_version_check.ci.action import DEFAULTS

    action = yaml.safe_load((Path(__file__).resolve().parent.parent / "action.yml").read_text())
    assert {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()} == DEFAULTS


def test_the_module_map_names_every_module() -> None:
    """README's "How it works" table names every module and package of the source tree."""
    section = README.split("## How it works", 1)[1].split("\n## ", 1)[0]
    package = Path(__file__).resolve().parent.parent / "src" / "mlflow_version_check"
    names = {path.name for path in package.glob("*.py") if path.name != "__main__.py"}
    names |= {f"{path.name}/" for path in package.iterdir() if (path / "__init__.py").is_file()}
    missing = sorted(name for name in names if f"`{name}`" not in section)
    assert missing == [], f"not in README's module map: {missing}"
