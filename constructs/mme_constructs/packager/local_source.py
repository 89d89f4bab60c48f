"""Weight files in a local folder (the ``mme package`` CLI and local mode)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import SourceError
from .sources import EXCLUDED_DIR_NAMES
from .time_budget import Budget
from .weight_stream import CHUNK, Opener


def list_local_weights(directory: str | os.PathLike) -> list[dict]:
    """Files under a local weights folder as ``{path, size, full}``, sorted (hidden files skipped)."""
    root = Path(directory)
    if not root.is_dir():
        raise SourceError(f"weights folder {root} does not exist")
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in EXCLUDED_DIR_NAMES)
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if name.startswith(".") or not full.is_file():
                continue
            files.append({"path": rel, "size": full.stat().st_size, "full": str(full)})
    if not files:
        raise SourceError(f"weights folder {root} is empty")
    return sorted(files, key=lambda f: f["path"])


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a local file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def local_opener(full: str) -> Opener:
    def opener(offset: int, budget: Budget):
        try:
            fh = open(full, "rb")  # noqa: SIM115 - closed by the stream
        except OSError as err:
            raise SourceError(f"cannot read {full}: {err.strerror}") from None
        fh.seek(offset)
        return fh, os.fstat(fh.fileno()).st_size

    return opener

