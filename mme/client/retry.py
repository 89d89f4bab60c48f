"""Retry policy of the SageMaker backend: exponential backoff with full jitter.

Three kinds of failure are retried, each with its own budget (counted separately: a model that
was loading and then got throttled has used none of its throttling budget while loading):

``throttled``
    ``ThrottlingException`` and friends (HTTP 429 that is not ``ModelNotReadyException``): up to
    ``max_attempts`` throttled calls.
``model_loading``
    ``ModelNotReadyException``: a multi-model endpoint is still downloading/loading the target
    model. SageMaker answers within 60 s and keeps loading for up to 360 s, so the client keeps
    retrying until ``model_loading_timeout`` seconds after the first call (default 420 s).
``unavailable``
    5xx from SageMaker (``ServiceUnavailable``, ``InternalFailure``,
    ``InternalDependencyException``), connection errors and timeouts, and the model container's
    503 (no worker free) or 507 (out of GPU memory: SageMaker unloads cold models and the retry
    can succeed): up to ``max_attempts`` such failed calls.

Delay before retry ``n`` (1-based) is ``uniform(0, min(max_delay, base_delay * 2 ** (n - 1)))``
("full jitter": clients that failed together do not retry together).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

THROTTLED = "throttled"
MODEL_LOADING = "model_loading"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; see the module docstring for what is retried."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 20.0
    model_loading_timeout: float = 420.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.model_loading_timeout < 0:
            raise ValueError("delays and timeouts must be >= 0")

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 = the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, retry_number - 1)))
        return self.rng.uniform(0.0, ceiling)

    def should_retry(self, kind: str, attempts: int, elapsed: float, next_delay: float) -> bool:
        """Whether to retry after ``attempts`` calls failed with ``kind`` (``elapsed`` seconds since
        the first call)."""
        if kind == MODEL_LOADING:
            return elapsed + next_delay <= self.model_loading_timeout
        if kind in (THROTTLED, UNAVAILABLE):
            return attempts < self.max_attempts
        return False
