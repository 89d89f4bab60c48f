"""What every benchmark writes: its JSON results, its marked section of ``docs/performance.md``,
and the pieces of text all sections share (number formats, the machine's load average).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DOCS = REPO / "docs" / "performance.md"
NEW_DOCS_HEAD = "# Performance\n\n"


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (the results files' layout), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def write_section(docs: Path, start: str, end: str, body: str) -> Path:
    """Put ``body`` between the ``start`` and ``end`` markers of ``docs``: replaced where the
    markers are, appended where they are not, a new file where there is none; the rest is kept."""
    block = f"{start}\n{body.rstrip()}\n{end}"
    docs = Path(docs)
    if docs.exists():
        text = docs.read_text(encoding="utf-8")
        i, j = text.find(start), text.find(end)
        if i != -1 and j > i:
            text = text[:i] + block + text[j + len(end):]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        docs.parent.mkdir(parents=True, exist_ok=True)
        text = NEW_DOCS_HEAD + block + "\n"
    docs.write_text(text, encoding="utf-8")
    return docs


def number(value: Any, fmt: str = "{:,.1f}", none: str = "–") -> str:
    """``value`` formatted, or ``none`` for a missing or NaN value."""
    if value is None or (isinstance(value, float) and value != value):
        return none
    return fmt.format(value)


def load_average(device: dict) -> str:
    """``, 1-min load average A at the start and B at the end`` (the parts the run recorded)."""
    start, end = device.get("load_average_start"), device.get("load_average_end")
    text = f", 1-min load average {start[0]:.1f} at the start" if start else ""
    return text + (f" and {end[0]:.1f} at the end" if end else "")
