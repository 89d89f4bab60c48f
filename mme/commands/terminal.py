"""What a slow ``mme`` command shows on a terminal (stderr): one status line rewritten in place.

Written by hand on purpose: ``rich.progress`` and ``tqdm`` draw the same lines, but neither is a
dependency of the client (boto3, PyYAML, Pillow, NumPy), and what is needed here is one line
rewritten with ``\\r`` + erase-to-end-of-line (ANSI ``ESC [ K``) and a spinner thread.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import TextIO

_REWRITE = "\r\x1b[K"  # back to column 0, erase to the end of the line


class StatusLine:
    """One line of ``stream`` that :meth:`show` rewrites in place; :meth:`clear` erases it and
    :meth:`end` keeps its last text and moves on to the next line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def show(self, text: str) -> None:
        self.stream.write(_REWRITE + text)
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write(_REWRITE)
            self.stream.flush()
            self.shown = False

    def end(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


class StepSpinner:
    """A spinner with the elapsed time on stderr while a slow step runs (only on a terminal), then
    ``<label>: done in Ns``; :meth:`note` prints a message above it (always on a terminal,
    otherwise only when ``verbose``)."""

    FRAMES = "|/-\\"

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None, verbose: bool = False):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.verbose = verbose
        self._line = StatusLine(self.stream)
        self._label = ""
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def note(self, message: str) -> None:
        """Print one line of information (above the running step on a terminal)."""
        if not (self.enabled or self.verbose):
            return
        with self._lock:
            self._line.clear()
            self.stream.write(message + "\n")
            self.stream.flush()

    def _spin(self) -> None:
        frame = 0
        while not self._stop.wait(0.1):
            with self._lock:
                elapsed = time.monotonic() - self._started
                self._line.show(f"{self.FRAMES[frame % 4]} {self._label} {elapsed:5.1f}s")
            frame += 1

    @contextlib.contextmanager
    def step(self, label: str):
        """Context manager around one slow step: spinner + elapsed time, then ``label: done in Ns``."""
        self._label, self._started = label, time.monotonic()
        if self.enabled:
            self._stop.clear()
            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()
        try:
            yield self
        finally:
            elapsed = time.monotonic() - self._started
            if self._thread is not None:
                self._stop.set()
                self._thread.join()
                with self._lock:
                    self._line.clear()
                self._thread = None
        self.note(f"{label}: done in {elapsed:.1f}s")
