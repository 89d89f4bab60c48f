"""Helpers of the stack tests, imported by name (``from conftest import ...`` would pick whichever
folder's conftest pytest loaded last when several test folders run together)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
