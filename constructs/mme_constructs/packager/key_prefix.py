"""The key prefix under which a bucket holds model archives: one rule for every place that takes one.

The constructs' ``model_prefix``, the stack's ``modelPrefix`` context key, the packager's S3
destination (the custom resource's ``Prefix``, ``mme package --out s3://<bucket>/<prefix>/``)
all apply :func:`checked_key_prefix`. A prefix is written without a leading ``/`` and with one
trailing ``/`` (``'/models'`` -> ``'models/'``), and it must be one or more segments of ASCII
letters, digits, ``.``, ``_`` and ``-``, joined by single slashes, none of them ``.`` or ``..``:

* not empty: the endpoint's ``ModelDataUrl`` is ``s3://<bucket>/<prefix>`` and every grant of the
  model store is on ``<bucket>/<prefix>*``; an empty prefix would make both the whole bucket;
* no ``*`` or ``?``: they are wildcards in IAM resource ARNs and ``s3:prefix`` conditions, so a grant
  on the prefix would reach other keys;
* only characters S3 lists as safe in key names and that need no escaping in a URL: no spaces,
  ``%``, ``+``, ``#``, non-ASCII... in ``ModelDataUrl`` or a policy;
* no empty, ``.`` or ``..`` segments (``a//b``, ``a/../b``): HTTP clients and the S3 console
  normalise those paths, so the key written would not be the key read.

Standard library only: the packager Lambda bundles this package.
"""

from __future__ import annotations

import re

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
EXAMPLE = "models/"


def normalize_key_prefix(prefix: str) -> str:
    """``'/models'`` -> ``'models/'``, ``''`` or ``'/'`` -> ``''``; no checks (see :func:`checked_key_prefix`)."""
    stripped = prefix.strip("/")
    return stripped + "/" if stripped else ""


def key_prefix_error(prefix: str) -> str | None:
    """Why ``prefix`` is not a key prefix for model archives, or None when it is one."""
    stripped = prefix.strip("/")
    if not stripped:
        return f"{prefix!r} is empty; give a plain S3 key prefix like {EXAMPLE!r} (the bucket root is not one)"
    for segment in stripped.split("/"):
        if not _SEGMENT.match(segment) or segment in (".", ".."):
            shown = f"segment {segment!r}" if segment else "an empty segment ('//')"
            return (f"{prefix!r} is not a plain S3 key prefix like {EXAMPLE!r}: {shown} (use letters, digits, "
                    "'.', '_' and '-' between single '/')")
    return None


def checked_key_prefix(prefix: str, name: str) -> str:
    """``prefix`` normalised, or :class:`ValueError` with a one-line message that starts with ``name``."""
    error = key_prefix_error(prefix)
    if error:
        raise ValueError(f"{name}: {error}")
    return normalize_key_prefix(prefix)
