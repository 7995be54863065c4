"""Manifests of model trees: relative path -> size and SHA-256, hashed in bounded memory."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

HASH_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class FileEntry:
    """One file of a model tree."""

    size: int
    sha256: str

    def to_json(self) -> dict[str, object]:
        return {"size": self.size, "sha256": self.sha256}


Manifest = Mapping[str, FileEntry]
"""Posix path relative to the model root -> entry."""


def hash_file(path: str | os.PathLike[str]) -> FileEntry:
    """Stream a file through SHA-256 in fixed-size chunks, whatever its size."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(HASH_CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as stream:
        while read := stream.readinto(buffer):
            digest.update(view[:read])
            size += read
    return FileEntry(size=size, sha256=digest.hexdigest())


def manifest_of_directory(root: str | os.PathLike[str]) -> dict[str, FileEntry]:
    """Hash every regular file below root; symlinks and special files are refused, not followed."""
    root_path = Path(root)
    entries: dict[str, FileEntry] = {}
    for directory, subdirectories, files in os.walk(root_path):
        subdirectories.sort()
        for name in sorted(files) + [d for d in subdirectories if (Path(directory) / d).is_symlink()]:
            full = Path(directory) / name
            relative = full.relative_to(root_path).as_posix()
            if full.is_symlink() or not full.is_file():
                raise ValueError(f"{relative} is not a regular file")
            entries[relative] = hash_file(full)
    return entries


def tree_digest(entries: Iterable[tuple[str, FileEntry]]) -> str:
    """SHA-256 over sorted `path NUL sha256 LF` lines: covers names as well as contents."""
    digest = hashlib.sha256()
    for path, entry in sorted(entries):
        digest.update(f"{path}\0{entry.sha256}\n".encode())
    return digest.hexdigest()


def total_bytes(manifest: Manifest) -> int:
    return sum(entry.size for entry in manifest.values())
