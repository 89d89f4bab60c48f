"""The cost planner's one error type."""

from __future__ import annotations


class CostError(ValueError):
    """A planning input that cannot work (model larger than a GPU, unknown price...); one line."""
