"""Weight files from the Hugging Face Hub: the download and listing URLs of a pinned revision,
and the allow/ignore pattern selection over the listing.
"""

from __future__ import annotations

import fnmatch
from typing import Iterable
from urllib.parse import quote

from .errors import SpecError
from .specs import WeightsSpec


def hf_resolve_url(spec: WeightsSpec, path: str) -> str:
    """The Hub's download URL of one file at the pinned revision."""
    return f"{spec.base_url}/{spec.repo_id}/resolve/{spec.revision}/{quote(path)}"


def hf_listing_url(spec: WeightsSpec) -> str:
    """The Hub API URL listing the files (with sizes and hashes) at the pinned revision."""
    return f"{spec.base_url}/api/models/{spec.repo_id}/revision/{spec.revision}?blobs=true"


def _matches(path: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith("/"):
            pattern += "*"
        if fnmatch.fnmatchcase(path, pattern):
            return True
    return False


def select_hf_files(spec: WeightsSpec, siblings: list[dict]) -> list[dict]:
    """Apply allow/ignore patterns to the Hub listing; every allow pattern must match a file."""
    chosen = []
    for sib in siblings:
        path = sib.get("rfilename")
        if not isinstance(path, str):
            continue
        if _matches(path, spec.allow_patterns) and not _matches(path, spec.ignore_patterns):
            chosen.append(sib)
    for pattern in spec.allow_patterns:
        if not any(_matches(s["rfilename"], [pattern]) for s in chosen):
            raise SpecError(f"allow pattern {pattern!r} matches no file of {spec.repo_id}@{spec.revision[:12]}")
    return sorted(chosen, key=lambda s: s["rfilename"])

