"""Small helpers shared by the constructs."""

from __future__ import annotations


def normalize_prefix(prefix: str) -> str:
    """``'/models'`` -> ``'models/'``; rejects empty prefixes and wildcard/space characters."""
    stripped = prefix.strip("/")
    if not stripped or any(c in stripped for c in "*?\\ "):
        raise ValueError(f"model_prefix must be a plain S3 key prefix like 'models/', got {prefix!r}")
    return stripped + "/"
