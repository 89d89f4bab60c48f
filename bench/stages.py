"""Per-stage timing of a request inside a handler, by wrapping the handler's own steps.

``StageTimer(handler, ["parse", "decode", ...])`` replaces each named step for the duration of a
``with`` block: a method of the handler instance, or else a function of the handler's module
(e.g. ``dilate``, ``encode_png``, which the handler calls by their module-level names); a step the
handler does not have (another version's handler) is left out. Times are
exclusive: a step called inside another (PNG encoding inside ``encode``) is taken out of its
caller, so the steps and ``other`` (whatever the request spent outside them: the body's JSON, the
response's, the batch driver) add up to the request's wall time.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class StageTimer:
    """Wrap ``names`` on ``handler`` (see the module docstring); read :meth:`take` per request."""

    def __init__(self, handler: Any, names: list[str]):
        self.handler = handler
        self.names = list(names)
        self.module = sys.modules[type(handler).__module__]
        self._stack: list[list] = []
        self._times: dict[str, float] = {}
        self._restore: list = []

    def _owner(self, name: str):
        if any(name in vars(cls) for cls in type(self.handler).__mro__):
            return self.handler
        if callable(getattr(self.module, name, None)):
            return self.module
        return None

    def _wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            frame = [name, time.perf_counter(), 0.0]  # name, start, time spent in nested steps
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                elapsed = time.perf_counter() - frame[1]
                self._times[name] = self._times.get(name, 0.0) + elapsed - frame[2]
                if self._stack:
                    self._stack[-1][2] += elapsed
        return timed

    def __enter__(self) -> "StageTimer":
        for name in list(self.names):
            owner = self._owner(name)
            if owner is None:
                self.names.remove(name)
                continue
            original = getattr(owner, name)
            if owner is self.handler:
                setattr(owner, name, self._wrap(name, original))
                self._restore.append((owner, name, None))
            else:
                setattr(owner, name, self._wrap(name, original))
                self._restore.append((owner, name, original))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._restore):
            if original is None:
                delattr(owner, name)  # the instance attribute: the class's method shows again
            else:
                setattr(owner, name, original)
        self._restore.clear()

    def take(self) -> dict[str, float]:
        """Milliseconds per step since the last call (0 for steps not run)."""
        out = {name: self._times.get(name, 0.0) * 1000.0 for name in self.names}
        self._times.clear()
        return out
