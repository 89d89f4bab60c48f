"""Where this checkout's files are: the repository root and ``model_sources/``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def model_sources_dir() -> Path:
    """``model_sources/`` of this checkout (``$MME_MODEL_SOURCES`` overrides).

    Raises ``FileNotFoundError`` with a one-line message when the folder (with its ``common/``)
    is not there, e.g. when ``mme`` was installed without the repository.
    """
    path = Path(os.environ.get("MME_MODEL_SOURCES") or REPO_ROOT / "model_sources")
    if not (path / "common").is_dir():
        raise FileNotFoundError(f"model sources not found at {path}: run from a checkout of the project "
                                "or set MME_MODEL_SOURCES")
    return path
