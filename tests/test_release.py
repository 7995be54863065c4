"""The release rewrite of action.yml (scripts/release/pin_action_image.py), offline: the pinned action
keeps every input and output, names a digest and never a tag, and passes the action schema and
actionlint; whatever it cannot pin is refused with one line. Also the release workflow's shape."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRIPT = ROOT / "scripts" / "release" / "pin_action_image.py"
ACTION = (ROOT / "action.yml").read_text(encoding="utf-8")
RELEASE_WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"

NAME = "ghcr.io/example-owner/mlflow-version-check"
DIGEST = "sha256:" + hashlib.sha256(b"a manifest list").hexdigest()
PINNED_IMAGE = f"docker://{NAME}@{DIGEST}"
PINNED_VALUE = re.compile(r"docker://[a-z0-9.:/_-]+@sha256:[0-9a-f]{64}")


pin_action_image = load_script(SCRIPT)


def pinned_copy(tmp_path: Path, text: str = ACTION, *arguments: str) -> Path:
    """Write text as tmp_path/action.yml and pin it with the script's main(); return the file."""
    action = tmp_path / "action.yml"
    action.write_bytes(text.encode("utf-8"))
    code = pin_action_image.main([*(arguments or (f"{NAME}@{DIGEST}",)), "--action-file", str(action)])
    assert code == 0
    return action


def without_image(document: dict[str, Any]) -> dict[str, Any]:
    runs = {key: value for key, value in document["runs"].items() if key != "image"}
    return {**document, "runs": runs}


def run_tool(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_main_action_builds_its_dockerfile() -> None:
    """main keeps `image: Dockerfile`, so the tests build what they test; releases pin it."""
    assert yaml.safe_load(ACTION)["runs"] == {"using": "docker", "image": "Dockerfile"}


def test_pinned_action_keeps_every_input_and_output(tmp_path: Path) -> None:
    """Parsed, the pinned action.yml equals the original except runs.image; as bytes, one line differs."""
    pinned_text = pinned_copy(tmp_path).read_text(encoding="utf-8")
    original, pinned = yaml.safe_load(ACTION), yaml.safe_load(pinned_text)
    assert pinned["runs"]["image"] == PINNED_IMAGE
    assert without_image(pinned) == without_image(original)
    assert len(pinned["inputs"]) == len(original["inputs"]) > 30 and len(pinned["outputs"]) >= 10
    changed = [
        (before, after)
        for before, after in zip(ACTION.split("\n"), pinned_text.split("\n"), strict=True)
        if before != after
    ]
    assert changed == [("  image: Dockerfile", f"  image: {PINNED_IMAGE}")]


def test_pin_names_a_digest_never_a_tag(tmp_path: Path) -> None:
    """The pinned runs.image is docker://name@sha256:<64 hex>, with no tag before the @."""
    image = yaml.safe_load(pinned_copy(tmp_path).read_text())["runs"]["image"]
    assert PINNED_VALUE.fullmatch(image), image
    name = image.removeprefix("docker://").split("@")[0]
    assert ":" not in name.rsplit("/", 1)[-1], "a tag in the name"


def test_name_and_digest_given_apart_pin_the_same(tmp_path: Path) -> None:
    """`NAME --digest sha256:...` gives the same file as `NAME@sha256:...`."""
    (tmp_path / "together").mkdir()
    (tmp_path / "apart").mkdir()
    together = pinned_copy(tmp_path / "together").read_bytes()
    apart = pinned_copy(tmp_path / "apart", ACTION, NAME, "--digest", DIGEST).read_bytes()
    assert together == apart


def test_comment_spacing_and_line_endings_survive(tmp_path: Path) -> None:
    """A comment after the image, CRLF line endings, a nested image: key and a quoted value stay put."""
    text = (
        "# top comment\r\nname: x\r\ndescription: y\r\ninputs:\r\n  image:\r\n    description: an input\r\n"
        'runs:\r\n  using: docker\r\n  image:   "Dockerfile"   # built on each run\r\n'
        "  env:\r\n    image: nested\r\n"
    )
    pinned = pinned_copy(tmp_path, text).read_bytes().decode("utf-8")
    assert pinned == text.replace('"Dockerfile"', PINNED_IMAGE)
    assert yaml.safe_load(pinned)["inputs"] == {"image": {"description": "an input"}}


def test_pinned_action_passes_the_action_schema(tmp_path: Path) -> None:
    """check-jsonschema's GitHub action schema accepts the pinned file, and rejects a misplaced rewrite."""
    schema = (str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-actions")
    action = pinned_copy(tmp_path)
    checked = run_tool(*schema, str(action))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The same line written at the wrong indentation (a top-level key): the schema must catch it.
    broken = tmp_path / "broken.yml"
    broken.write_text(action.read_text().replace(f"  image: {PINNED_IMAGE}", f"image: {PINNED_IMAGE}"))
    caught = run_tool(*schema, str(broken))
    assert caught.returncode != 0 and "'image' was unexpected" in caught.stdout, caught.stdout


def lint_repository(tmp_path: Path, action_text: str) -> subprocess.CompletedProcess[str]:
    """actionlint a throwaway repository whose workflow runs `uses: ./` with every input of main's
    action.yml and reads every output, against action_text as the repository's action.yml."""
    original = yaml.safe_load(ACTION)
    repository = tmp_path / "repository"
    (repository / ".github" / "workflows").mkdir(parents=True)
    # actionlint reads a local action only inside a repository (it looks for .git to find `./`).
    subprocess.run(["git", "init", "--quiet", str(repository)], check=True)
    (repository / "action.yml").write_text(action_text, encoding="utf-8")
    step_inputs = {name: "x" for name in original["inputs"]}
    read_outputs = {
        f"OUTPUT_{index}": f"${{{{ steps.pinned.outputs.{name} }}}}"
        for index, name in enumerate(original["outputs"])
    }
    workflow = {
        "name": "use-pinned",
        "on": "push",
        "permissions": {},
        "jobs": {
            "use": {
                "runs-on": "ubuntu-latest",
                "steps": [
                    {"id": "pinned", "uses": "./", "with": step_inputs},
                    {"run": "env | grep '^OUTPUT_'", "env": read_outputs},
                ],
            }
        },
    }
    (repository / ".github" / "workflows" / "use.yml").write_text(yaml.safe_dump(workflow, sort_keys=False))
    return run_tool(str(BIN / "actionlint"), "-no-color", cwd=repository)


def test_pinned_action_passes_actionlint_with_every_input_and_output(tmp_path: Path) -> None:
    """actionlint checks the pinned action as `uses: ./`: every input accepted, every output known,
    and the docker:// image needs no Dockerfile in the repository."""
    linted = lint_repository(tmp_path, pinned_copy(tmp_path).read_text())
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize(
    ("damage", "complaint"),
    [
        pytest.param(
            lambda text: re.sub(r"\n  expect-digest:\n(    .*\n)+", "\n", text, count=1),
            'input "expect-digest" is not defined in action',
            id="lost-input",
        ),
        pytest.param(
            lambda text: re.sub(r"\n  root-digest:\n(    .*\n)+", "\n", text, count=1),
            'property "root-digest" is not defined',
            id="lost-output",
        ),
        pytest.param(
            lambda text: text.replace(f"image: {PINNED_IMAGE}", "image: Dockerfile"),
            'file "Dockerfile" does not exist',
            id="rewrite-not-applied",
        ),
    ],
)
def test_actionlint_catches_a_broken_rewrite(tmp_path: Path, damage: Any, complaint: str) -> None:
    """The lint above can fail: a rewrite that loses an input or an output, or that left the image to a
    Dockerfile the repository does not hold, is reported."""
    pinned = pinned_copy(tmp_path).read_text()
    broken = damage(pinned)
    assert broken != pinned
    linted = lint_repository(tmp_path, broken)
    assert linted.returncode != 0 and complaint in linted.stdout, linted.stdout + linted.stderr


HEX = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        pytest.param([f"{NAME}:1"], "names a tag", id="mutable-major-tag"),
        pytest.param([f"{NAME}:latest"], "names a tag", id="mutable-latest-tag"),
        pytest.param([f"{NAME}:1.2.3@sha256:{HEX}"], "names a tag", id="name-with-tag-and-digest"),
        pytest.param([NAME, "--digest", "1.2.3"], "is not sha256:<64 lower-case hex>", id="tag-as-digest"),
        pytest.param([NAME], "no digest", id="no-digest"),
        pytest.param([f"{NAME}@sha256:{HEX[:63]}"], "is not sha256:<64", id="digest-63-hex"),
        pytest.param([f"{NAME}@sha256:{HEX}0"], "is not sha256:<64", id="digest-65-hex"),
        pytest.param([f"{NAME}@sha256:{HEX.upper()}"], "is not sha256:<64", id="digest-upper-case"),
        pytest.param([f"{NAME}@sha512:{HEX}{HEX}"], "is not sha256:<64", id="digest-sha512"),
        pytest.param([f"{NAME}@{HEX}"], "is not sha256:<64", id="digest-without-algorithm"),
        pytest.param([f"{NAME}@sha256:{HEX}", "--digest", f"sha256:{HEX}"], "given twice", id="digest-twice"),
        pytest.param([f"docker://{NAME}@sha256:{HEX}"], "starts with docker://", id="docker-scheme"),
        pytest.param([f"ghcr.io/Owner/n@sha256:{HEX}"], "is not an image name", id="upper-case-path"),
        pytest.param([f"ghcr.io/o/n\n@sha256:{HEX}"], "is not an image name", id="line-break-in-name"),
        pytest.param([], "arguments are required", id="no-arguments"),
    ],
)
def test_bad_references_are_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], reason: str
) -> None:
    """A tag, a malformed digest or name: exit 2, one `error:` line naming what and how to fix it,
    action.yml untouched."""
    action = tmp_path / "action.yml"
    action.write_text(ACTION)
    assert pin_action_image.main([*arguments, "--action-file", str(action)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith("error: "), captured.err
    assert reason in captured.err and "Fix:" in captured.err, captured.err
    assert action.read_text() == ACTION


PINNED_ALREADY = ACTION.replace("  image: Dockerfile", f"  image: {PINNED_IMAGE}")
NODE_ACTION = ACTION.replace("  using: docker\n  image: Dockerfile\n", "  using: node20\n  main: a.js\n")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(PINNED_ALREADY, "not Dockerfile", id="already-pinned"),
        pytest.param(ACTION.replace("image: Dockerfile", "image: other/Dockerfile"), "not Dockerfile",
                     id="other-dockerfile"),
        pytest.param(ACTION.replace("image: Dockerfile", "image: docker://alpine:3"), "not Dockerfile",
                     id="tag-pinned"),
        pytest.param(ACTION + "  image: Dockerfile\n", "2 image: lines", id="image-twice"),
        pytest.param(ACTION.replace("  image: Dockerfile\n", ""), "0 image: lines", id="no-image"),
        pytest.param(NODE_ACTION,
                     "0 image: lines", id="node-action"),
        pytest.param(ACTION.replace("runs:\n  using: docker\n  image: Dockerfile",
                                    "runs: {using: docker, image: Dockerfile}"),
                     "not a block mapping", id="flow-mapping"),
        pytest.param(ACTION.replace("runs:\n", ""), "0 top-level runs", id="no-runs"),
        pytest.param(ACTION + "runs:\n  using: docker\n", "2 top-level runs", id="runs-twice"),
        pytest.param(  # red team: the real key quoted, a look-alike line inside a quoted string
            'name: demo\ndescription: |\n  image: Dockerfile\nruns:\n  using: docker\n  "image": Dockerfile\n'
            '  env:\n    NOTE: "first line\n  image: Dockerfile #"\n',
            "runs.image reads 'Dockerfile'", id="look-alike-line-in-a-string"),
    ],
)  # fmt: skip
def test_action_files_that_cannot_be_pinned_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, reason: str
) -> None:
    """Only an action.yml with exactly one `runs.image: Dockerfile` line is pinned; any other is
    refused with one line and left as it was."""
    assert text != ACTION
    action = tmp_path / "action.yml"
    action.write_text(text)
    assert pin_action_image.main([f"{NAME}@{DIGEST}", "--action-file", str(action)]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and reason in error and "Fix:" in error, error
    assert action.read_text() == text


def test_the_script_runs_as_the_release_job_runs_it(tmp_path: Path) -> None:
    """`python3 scripts/release/pin_action_image.py` in the checkout pins ./action.yml; a tag is refused
    with one line on stderr and exit 2, no traceback."""
    (tmp_path / "action.yml").write_text(ACTION)
    refused = run_tool(sys.executable, str(SCRIPT), f"{NAME}:1", cwd=tmp_path)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "Traceback" not in refused.stderr and (tmp_path / "action.yml").read_text() == ACTION
    pinned = run_tool(sys.executable, str(SCRIPT), f"{NAME}@{DIGEST}", cwd=tmp_path)
    assert pinned.returncode == 0, pinned.stderr
    assert pinned.stdout.strip() == f"pinned action.yml: runs.image is {PINNED_IMAGE}"
    assert yaml.safe_load((tmp_path / "action.yml").read_text())["runs"]["image"] == PINNED_IMAGE


def test_release_workflow_pins_attests_and_limits_write_access() -> None:
    """release.yml pins third-party actions by commit, attests the pushed digest into the registry,
    runs the rewrite on the digest, and grants contents: write to the publishing job alone."""
    workflow = yaml.safe_load(RELEASE_WORKFLOW.read_text())
    assert workflow["permissions"] == {"contents": "read"}
    jobs: dict[str, Any] = workflow["jobs"]
    steps = [step for job in jobs.values() for step in job["steps"]]
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    attest = next(
        step for step in steps if step.get("uses", "").startswith("actions/attest-build-provenance")
    )
    assert attest["with"]["push-to-registry"] is True
    assert "digest" in attest["with"]["subject-digest"] and "image" in attest["with"]["subject-name"]
    writers = [name for name, job in jobs.items() if job.get("permissions", {}).get("contents") == "write"]
    assert len(writers) == 1
    publish = jobs[writers[0]]
    assert not {"packages", "id-token", "attestations"} & set(publish["permissions"])
    assert any("scripts/release/pin_action_image.py" in step.get("run", "") for step in publish["steps"])
