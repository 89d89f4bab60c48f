"""The time budget of a packaging run: a deadline that every download and upload step checks.

The Lambda gets its remaining time minus a safety margin; the CLI runs unlimited.
"""

from __future__ import annotations

import time
from typing import Callable

from .errors import BudgetExceeded


class Budget:
    """A deadline on the monotonic clock; ``None`` means unlimited (CLI)."""

    def __init__(self, seconds: float | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.total = seconds
        self.deadline = None if seconds is None else clock() + seconds

    def left(self) -> float:
        """Seconds left (``inf`` when unlimited)."""
        return float("inf") if self.deadline is None else self.deadline - self._clock()

    def check(self, doing: str) -> None:
        """Raise :class:`BudgetExceeded` when the deadline has passed."""
        if self.left() <= 0:
            raise BudgetExceeded(
                f"time budget of {self.total:.0f} s used up while {doing}; stopped before the Lambda time limit "
                "(stage large weights in S3 next to the bucket, or build the archive with `mme package` and "
                "upload it)"
            )

    def io_timeout(self, default: float = 30.0) -> float:
        """A socket timeout that cannot carry a blocked read far past the deadline."""
        left = self.left()
        return max(1.0, min(default, left)) if left != float("inf") else default

    def sleep(self, seconds: float, doing: str) -> None:
        """Sleep for a retry backoff, unless that would cross the deadline."""
        if seconds >= self.left():
            self.check(doing)
            raise BudgetExceeded(f"time budget used up while {doing} (no time left to retry)")
        time.sleep(seconds)


UNLIMITED = Budget(None)
