"""Retrying transient failures while reading weights: the backoff policy and the signal to retry."""

from __future__ import annotations

from dataclasses import dataclass


class RetryableError(Exception):
    """A transient failure: the open may be retried, a dropped stream reopened at its current offset."""


@dataclass(frozen=True)
class DownloadRetryPolicy:
    """How often to retry an open or to resume a dropped stream (consecutive failures)."""

    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 4.0

    def delay(self, failure: int) -> float:
        """Backoff before retry number ``failure`` (1-based)."""
        return min(self.max_delay, self.base_delay * (2 ** (failure - 1)))
