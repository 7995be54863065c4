"""Writing the report files safely: atomically, and never over a symlink, device, FIFO or folder.

The CLI writes the JSON report and the JUnit XML through these; the action its report of wrong inputs.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ReportPathError


def write_report(
    report: Mapping[str, Any], path: str | os.PathLike[str], option: str = "--report-file"
) -> Path:
    """Write the JSON report atomically (see write_text_atomically).

    JSON keeps every name exactly: control characters and the `\\xNN` bytes of a file name that is
    not UTF-8 are escaped by JSON itself (ensure_ascii), so the file is always valid UTF-8.
    """
    return write_text_atomically(json.dumps(report, indent=2, sort_keys=False) + "\n", path, option)


def refuse_special_target(option: str, path: Path) -> None:
    """An existing target that is not a regular file is refused (ReportPathError), never replaced.

    The atomic write renames a new file over the target: as root that would turn /dev/null into a
    regular file, and a FIFO or socket that another program reads would be silently swapped out.
    A symlink is refused as well (neither followed nor replaced): the report would otherwise land
    wherever the link points, or a link someone placed on purpose would be lost.
    """
    try:
        info = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there (yet): whether it can be written is the caller's check
    except OSError as exc:
        raise ReportPathError(
            f"{option} {path} cannot be inspected: {exc.strerror or exc}",
            fix="give a path in a directory you can read and write.",
            what_names_options=True,
        ) from exc
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        raise ReportPathError(
            f"{option} {path} is a symlink (to {os.readlink(path)}); it is neither followed nor replaced",
            fix="give the path of a regular file (or of a file that does not exist yet).",
            what_names_options=True,
        )
    if stat.S_ISDIR(mode):
        suffix = "xml" if "junit" in option else "json"
        raise ReportPathError(
            f"{option} {path} is a directory",
            fix=f"give a file path, e.g. {path}/report.{suffix}.",
            what_names_options=True,
        )
    if not stat.S_ISREG(mode):
        kind = (
            "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode)
            else "a FIFO" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file"
        )  # fmt: skip
        raise ReportPathError(
            f"{option} {path} is {kind}, not a regular file; it is never replaced",
            fix="give the path of a regular file (or of a file that does not exist yet).",
            what_names_options=True,
        )


def write_text_atomically(text: str, path: str | os.PathLike[str], option: str = "the target") -> Path:
    """`text` as UTF-8 at `path`, written as write_bytes_atomically writes."""
    return write_bytes_atomically(text.encode("utf-8"), path, option)


def write_bytes_atomically(data: bytes, path: str | os.PathLike[str], option: str = "the target") -> Path:
    """Write a temporary file in the same directory, then rename it over the target.

    A crash or a full disk therefore never leaves half a file at `path`. A target that exists and is
    not a regular file is refused (refuse_special_target), checked again just before the rename.
    """
    target = Path(path).expanduser()
    refuse_special_target(option, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    replaced = False
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        refuse_special_target(option, target)  # it may have been replaced while we wrote
        os.replace(temporary, target)
        replaced = True
    finally:
        if not replaced:  # whatever stopped the write, the half-written file goes
            Path(temporary).unlink(missing_ok=True)
    return target
