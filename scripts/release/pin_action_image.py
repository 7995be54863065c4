"""Pin action.yml to a prebuilt image by digest, for a release commit.

On main, `runs.image: Dockerfile` makes every workflow run build the image (so the tests build what
they test). The release workflow runs this script on the release commit, which then says
`image: docker://<name>@sha256:<digest>`: `uses: <owner>/mlflow-version-check@v1` pulls the image
that was built, pushed and attested once, and no tag that someone could move decides what runs.

    python3 scripts/release/pin_action_image.py ghcr.io/<owner>/mlflow-version-check@sha256:<64 hex>
    python3 scripts/release/pin_action_image.py ghcr.io/<owner>/mlflow-version-check --digest sha256:<64 hex>

Only the one `image:` line of the `runs:` block changes; comments, inputs and outputs keep every byte
(a line edit, not a YAML dump, which would drop comments and reflow the descriptions).
Exit codes: 0 pinned; 2 refused, with one line on stderr (what, likely cause, fix), nothing written.
Standard library only: the release job runs it with the runner's own python3.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

EXIT_REFUSED = 2

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# The name grammar of distribution/reference (what `docker pull` accepts), without IPv6 hosts: an
# optional registry host (with a port) and lower-case path components.
HOST_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
HOST = rf"{HOST_LABEL}(?:\.{HOST_LABEL})*(?::[0-9]+)?"
PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
NAME = re.compile(rf"(?:{HOST}/)?{PATH_COMPONENT}(?:/{PATH_COMPONENT})*")

RUNS_BLOCK = re.compile(r"runs:[ \t]*(?:#.*)?\r?")
SOURCE_IMAGE = re.compile(r"""(?:Dockerfile|'Dockerfile'|"Dockerfile")""")


class PinRefused(Exception):
    """An image reference or an action.yml that this script will not pin; the message is one line."""


@dataclass(frozen=True)
class PinnedImage:
    """An image named by its registry path and content digest, never by a tag."""

    name: str
    digest: str

    @property
    def action_image(self) -> str:
        """The value of runs.image that makes the runner pull exactly this image."""
        return f"docker://{self.name}@{self.digest}"


def parse_image(reference: str, digest: str | None = None) -> PinnedImage:
    """Split `name@sha256:<hex>` (or a bare name plus `digest`) and refuse anything a tag could move."""
    if "@" in reference:
        if digest is not None:
            raise PinRefused(
                f"the digest is given twice ({reference!r} and --digest {digest!r}). Likely cause: the "
                "reference already ends in @sha256:... Fix: pass either name@sha256:<hex> or the name "
                "with --digest"
            )
        name, digest = reference.split("@", 1)
    else:
        name = reference
    if name.startswith("docker://"):
        raise PinRefused(
            f"image name {name!r} starts with docker://. Likely cause: the action.yml value was passed. "
            f"Fix: pass the registry name alone, e.g. {name.removeprefix('docker://')}"
        )
    last_component = name.rsplit("/", 1)[-1]
    if ":" in last_component:
        bare = name[: len(name) - len(last_component)] + last_component.split(":", 1)[0]
        raise PinRefused(
            f"image {name!r} names a tag ({last_component.split(':', 1)[1]!r}), and a tag can be moved "
            f"to another image. Likely cause: the pushed tag was passed instead of its digest. Fix: pass "
            f"the digest alone, {bare}@sha256:<64 hex> (docker buildx imagetools inspect prints it)"
        )
    if not NAME.fullmatch(name):
        raise PinRefused(
            f"{name!r} is not an image name. Likely cause: upper-case letters or characters a registry "
            "path cannot hold. Fix: pass registry/owner/name in lower case, e.g. "
            "ghcr.io/<owner>/mlflow-version-check"
        )
    if digest is None:
        raise PinRefused(
            f"no digest for {name}. Likely cause: only the name was passed. Fix: pass "
            f"{name}@sha256:<64 hex> or --digest sha256:<64 hex>; a release never pins a tag"
        )
    if not DIGEST.fullmatch(digest):
        raise PinRefused(
            f"digest {digest!r} is not sha256:<64 lower-case hex>. Likely cause: a truncated, "
            "upper-case or non-sha256 digest, or a tag after the @. Fix: pass the manifest list digest "
            "the registry reported for the push"
        )
    return PinnedImage(name=name, digest=digest)


def pin(action_text: str, image: PinnedImage) -> str:
    """Return action_text with its one `runs.image: Dockerfile` line pointing at image; every other
    line, and the rest of that line (spacing, comment, line ending), stays as it was."""
    # Split on \n alone: str.splitlines would also split inside a description at \x0c or U+2028.
    lines = action_text.split("\n")
    runs_lines = [index for index, line in enumerate(lines) if line.startswith("runs:")]
    if len(runs_lines) != 1 or not RUNS_BLOCK.fullmatch(lines[runs_lines[0]]):
        raise PinRefused(
            f"action.yml has {len(runs_lines)} top-level runs: lines, or its runs: is not a block "
            "mapping. Likely cause: a different or hand-edited action.yml. Fix: run on the repository's "
            "action.yml, whose runs: block holds using: docker and image: Dockerfile"
        )
    block_start = runs_lines[0] + 1
    block_end = block_start
    while block_end < len(lines) and (
        lines[block_end][:1] in (" ", "\t", "#") or not lines[block_end].strip()
    ):
        block_end += 1
    entries = [line for line in lines[block_start:block_end] if line.strip() and line.lstrip()[0] != "#"]
    indent = entries[0][: len(entries[0]) - len(entries[0].lstrip(" "))] if entries else ""
    # The key at the block's own indentation (a nested `image:` is some other mapping's), its value,
    # and what follows the value: spacing, a comment, the line ending.
    image_key = re.compile(
        rf"(?P<key>{indent}image[ \t]*:[ \t]*)(?P<value>[^#\r]*?)(?P<rest>[ \t]*(?:#.*)?\r?)"
    )
    found = [
        (index, match)
        for index in range(block_start, block_end)
        if indent and (match := image_key.fullmatch(lines[index]))
    ]
    if len(found) != 1:
        raise PinRefused(
            f"the runs: block of action.yml has {len(found)} image: lines, not exactly one. Likely "
            "cause: not a Docker action, or a duplicated key. Fix: run on the repository's action.yml "
            "(runs: using: docker, image: Dockerfile)"
        )
    index, match = found[0]
    if not SOURCE_IMAGE.fullmatch(match["value"]):
        raise PinRefused(
            f"runs.image of action.yml is {match['value']!r}, not Dockerfile. Likely cause: this is "
            "already a release commit, pinned before. Fix: pin the source commit's action.yml (image: "
            "Dockerfile), never a pinned one"
        )
    lines[index] = f"{match['key']}{image.action_image}{match['rest']}"
    return "\n".join(lines)


class _Arguments(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise PinRefused(f"{message}. Fix: see --help for the usage")


def _parser() -> argparse.ArgumentParser:
    parser = _Arguments(
        prog="pin_action_image.py",
        description="Rewrite action.yml's runs.image from Dockerfile to docker://<name>@sha256:<digest>.",
    )
    parser.add_argument("image", help="name@sha256:<64 hex>, or the name alone with --digest")
    parser.add_argument("--digest", help="sha256:<64 hex>, when image is the name alone")
    parser.add_argument("--action-file", type=Path, default=Path("action.yml"), help="default: action.yml")
    return parser


def _refuse_unless_parsed_as_pinned(pinned: str, image: PinnedImage) -> None:
    """A YAML parser must read the new image as runs.image: the line edit could otherwise have hit a
    look-alike line inside a string while the real key (quoted, say) kept Dockerfile. PyYAML is on
    GitHub's Ubuntu runners and in the project's venv; where it is missing the release must not go on."""
    try:
        import yaml
    except ImportError:
        raise PinRefused(
            "cannot check the pinned action.yml: PyYAML is not installed. Likely cause: a Python "
            "without it. Fix: install PyYAML (pip install pyyaml) and run again"
        ) from None
    try:
        runs = yaml.safe_load(pinned).get("runs", {})
        parsed_image = runs.get("image") if isinstance(runs, dict) else None
    except (yaml.YAMLError, AttributeError):
        parsed_image = None
    if parsed_image != image.action_image:
        raise PinRefused(
            f"after the edit, action.yml's runs.image reads {parsed_image!r}, not the pinned image. "
            "Likely cause: an unusual action.yml (a quoted key, or a look-alike line in a string). "
            "Fix: write runs: / image: Dockerfile as plain block YAML"
        )


def main(argv: list[str] | None = None) -> int:
    """Pin the action file in place; print the new runs.image, or one error line on stderr."""
    try:
        arguments = _parser().parse_args(argv)
        image = parse_image(arguments.image, arguments.digest)
        path: Path = arguments.action_file
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise PinRefused(
                f"cannot read {path}: {error.__class__.__name__}. Likely cause: a wrong --action-file "
                "or working directory. Fix: run from the repository root or pass --action-file"
            ) from None
        pinned = pin(text, image)
        _refuse_unless_parsed_as_pinned(pinned, image)
        path.write_bytes(pinned.encode("utf-8"))
    except PinRefused as refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"pinned {path}: runs.image is {image.action_image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
