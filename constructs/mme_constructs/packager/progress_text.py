"""How a packaging run's progress reads: one wording for the ``mme package`` status line and the
packager Lambda's log (standard library only: the Lambda imports it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def describe_progress(status: Any) -> str:
    """``<done> / <total> MB  <rate> MB/s  <current>`` from a packaging run's progress report
    (``bytes_done``, ``bytes_total`` (0 when unknown), ``elapsed`` seconds, ``current`` stage or file)."""
    rate = status.bytes_done / status.elapsed / 1e6 if status.elapsed > 0 else 0.0
    total = f" / {status.bytes_total / 1e6:,.1f}" if status.bytes_total else ""
    return f"{status.bytes_done / 1e6:,.1f}{total} MB  {rate:6.1f} MB/s  {status.current}"


def every_n_bytes(report: Callable[[Any], None], step_bytes: int,
                  always: tuple[str, ...] = ("uploading", "done")) -> Callable[[Any], None]:
    """A progress callback that passes on one report per ``step_bytes`` of data (and every report
    whose ``current`` is in ``always``), for a log that should not grow with every file."""
    next_at = 0

    def progress(status: Any) -> None:
        nonlocal next_at
        if status.bytes_done >= next_at or status.current in always:
            next_at = status.bytes_done + step_bytes
            report(status)

    return progress
