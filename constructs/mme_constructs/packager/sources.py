"""The model source files of a package: the handler code and configs (``model_sources/<name>``
merged with ``model_sources/common``), read from folders (CLI) or from CDK asset zips (Lambda).
Small: held in memory, digested file by file.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .errors import SourceError
from .specs import safe_relative_path

MAX_SOURCE_BYTES = 256 << 20
EXCLUDED_DIR_NAMES = frozenset({"__pycache__", "__MACOSX"})
EXCLUDED_FILE_NAMES = frozenset({"weights.yaml", ".DS_Store"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
SOURCE_EXCLUDE_GLOBS = ("__pycache__", "__MACOSX", "*.pyc", "*.pyo", ".*", "weights.yaml")
"""The same exclusions as glob patterns, for the CDK asset of a model source folder."""


def is_excluded(rel_path: str) -> bool:
    """True for files that never go into an archive (caches, hidden files, the weights spec)."""
    parts = rel_path.split("/")
    if any(p in EXCLUDED_DIR_NAMES or p.startswith(".") for p in parts[:-1]):
        return True
    name = parts[-1]
    return name.startswith(".") or name in EXCLUDED_FILE_NAMES or name.endswith(EXCLUDED_SUFFIXES)


@dataclass(frozen=True)
class SourceFile:
    """One source file: its archive path (relative to the archive root) and bytes."""

    path: str
    data: bytes
    origin: str

    @property
    def sha256(self) -> str:
        """Hex sha256 of the bytes."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class SourceTree:
    """Merged model source files; the same path in two inputs is an error."""

    files: dict[str, SourceFile] = field(default_factory=dict)
    total_bytes: int = 0

    def add(self, path: str, data: bytes, origin: str) -> None:
        """Add one file (validated path, duplicate and size checks)."""
        safe_relative_path(path, f"source file in {origin}")
        if path in self.files:
            raise SourceError(f"source file {path!r} is in both {self.files[path].origin} and {origin}")
        self.total_bytes += len(data)
        if self.total_bytes > MAX_SOURCE_BYTES:
            raise SourceError(f"model sources exceed {MAX_SOURCE_BYTES >> 20} MiB; weights belong in the weights spec")
        self.files[path] = SourceFile(path, data, origin)

    def add_dir(self, directory: str | os.PathLike) -> None:
        """Add every file under ``directory`` (relative paths kept), minus the excluded ones."""
        root = Path(directory)
        if not root.is_dir():
            raise SourceError(f"model source folder {root} does not exist")
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIR_NAMES and not d.startswith("."))
            for name in sorted(filenames):
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                if is_excluded(rel) or not full.is_file():
                    continue
                self.add(rel, full.read_bytes(), str(root))

    def add_zip(self, data: bytes, origin: str) -> None:
        """Add every file of a zip (a CDK folder asset), minus the excluded ones."""
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise SourceError(f"{origin} is not a zip file") from None
        with archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                rel = info.filename[2:] if info.filename.startswith("./") else info.filename
                if is_excluded(rel):
                    continue
                self.add(rel, archive.read(info), origin)

    def identity(self) -> list[dict]:
        """Path, size and sha256 of every file, sorted: the sources' part of the input digest."""
        return [{"path": p, "size": len(f.data), "sha256": f.sha256} for p, f in sorted(self.files.items())]

    @classmethod
    def from_dirs(cls, directories: Iterable[str | os.PathLike]) -> "SourceTree":
        """Merge several folders (e.g. ``model_sources/sam`` and ``model_sources/common``)."""
        tree = cls()
        for directory in directories:
            tree.add_dir(directory)
        return tree

