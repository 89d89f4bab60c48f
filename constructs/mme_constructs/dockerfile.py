"""What synth reads from a Dockerfile without building it (plain data, stdlib only)."""

from __future__ import annotations

import re
from pathlib import Path

_BASE_ARG = re.compile(r"^ARG BASE_IMAGE=(\S+)\s*$", re.M)


def dockerfile_base_image(dockerfile: Path) -> str | None:
    """The default of a Dockerfile's ``ARG BASE_IMAGE=<reference>``; ``None`` where it declares none
    (or cannot be read)."""
    try:
        match = _BASE_ARG.search(Path(dockerfile).read_text(encoding="utf-8"))
    except OSError:
        return None
    return match[1] if match else None
