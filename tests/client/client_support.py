"""Helpers shared by the client/CLI tests (a uniquely named module: ``conftest`` is ambiguous
when several test folders have one)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil


def sample_photo(name: str) -> Path:
    """A photograph bundled with scikit-image (no download): chelsea.png, coffee.png, astronaut.png."""
    import skimage.data

    path = Path(skimage.data.__file__).parent / name
    assert path.is_file(), f"{path} is not bundled with this scikit-image"
    return path


def processes_mentioning(text: str) -> list[psutil.Process]:
    """Live processes whose command line mentions ``text`` (e.g. a state dir)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(text in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def session_processes(pgid: int) -> list[psutil.Process]:
    """Live processes of process group ``pgid``."""
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                found.append(proc)
        except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
            continue
    return found
