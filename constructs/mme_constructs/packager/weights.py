"""The weight files of a weights spec, planned before anything is downloaded.

:func:`resolve_weights` turns a :class:`~.specs.WeightsSpec` into an ordered list of
:class:`~.weight_stream.WeightFile` (path under ``weights/``, size when known, expected
digests, an opener): it lists the Hub revision or the S3 prefix when needed.
"""

from __future__ import annotations

from typing import Callable

from .download_retry import DownloadRetryPolicy
from .errors import SourceError, SpecError
from .http_source import display_url, http_json, http_opener
from .hub import hf_listing_url, hf_resolve_url, select_hf_files
from .local_source import list_local_weights, local_opener
from .bucket_source import list_s3_weights, s3_opener
from .specs import FileEntry, WeightsSpec, safe_relative_path
from .time_budget import UNLIMITED, Budget
from .weight_stream import WeightFile


def resolve_weights(spec: WeightsSpec, *, budget: Budget = UNLIMITED,
                    retry: DownloadRetryPolicy = DownloadRetryPolicy(),
                    token_provider: Callable[[], str | None] | None = None, s3=None,
                    s3_listing: list[dict] | None = None,
                    local_listing: list[dict] | None = None) -> list[WeightFile]:
    """Plan the weight files of ``spec`` (paths relative to ``weights/``), sorted by path.

    Lists the Hub revision (Hub API) or the S3 prefix when needed; downloads nothing.
    """
    if spec.kind == "none":
        return []
    if spec.kind == "url":
        return [_url_weight_file(f) for f in sorted(spec.files, key=lambda f: f.path)]
    if spec.kind == "huggingface":
        return _hub_weight_files(spec, budget, retry, token_provider)
    if spec.kind == "s3":
        if s3 is None:
            raise SpecError("an s3 weights spec needs an S3 client")
        listing = s3_listing if s3_listing is not None else list_s3_weights(s3, spec)
        return [_s3_weight_file(s3, spec, o) for o in listing]
    if spec.kind == "local":
        listing = local_listing if local_listing is not None else list_local_weights(spec.local_path)
        return [WeightFile(path=f["path"], opener=local_opener(f["full"]), label=f"weights/{f['path']} ({f['full']})",
                           size=f["size"], sha256=f.get("sha256")) for f in listing]
    raise SpecError(f"unsupported weights kind {spec.kind!r}")


def _url_weight_file(entry: FileEntry) -> WeightFile:
    label = f"weights/{entry.path} ({display_url(entry.url)})"
    return WeightFile(path=entry.path, opener=http_opener(entry.url, label), label=label, size=entry.size,
                      sha256=entry.sha256, md5=entry.md5)


def _s3_weight_file(s3, spec: WeightsSpec, obj: dict) -> WeightFile:  # noqa: ANN001
    label = f"weights/{obj['path']} (s3://{spec.s3_bucket}/{obj['key']})"
    return WeightFile(path=obj["path"], opener=s3_opener(s3, spec.s3_bucket, obj["key"], obj.get("etag"), label),
                      label=label, size=obj["size"], sha256=spec.sha256 if not spec.s3_is_prefix else None)


def _hub_weight_files(spec: WeightsSpec, budget: Budget, retry: DownloadRetryPolicy,
                      token_provider: Callable[[], str | None] | None) -> list[WeightFile]:
    """The files the spec lists, or else the Hub's listing of the pinned revision filtered by its patterns."""
    if spec.files:
        planned = [(e.path, e.size, e.sha256, None) for e in spec.files]
    else:
        token = token_provider() if token_provider else None
        listing = http_json(hf_listing_url(spec), budget=budget, retry=retry, token=token,
                            label=f"{spec.repo_id}@{spec.revision[:12]} listing")
        sha = listing.get("sha")
        if sha and sha != spec.revision:
            raise SourceError(f"{spec.repo_id}: the Hub answered for commit {sha}, not the pinned {spec.revision}")
        siblings = listing.get("siblings")
        if not isinstance(siblings, list):
            raise SourceError(f"{spec.repo_id}@{spec.revision[:12]}: the listing has no 'siblings'")
        planned = []
        for sib in select_hf_files(spec, siblings):
            lfs = sib.get("lfs") or {}
            planned.append((sib["rfilename"], sib.get("size", lfs.get("size")), lfs.get("sha256"),
                            None if lfs else sib.get("blobId")))
    out = []
    for path, size, sha256, blob in sorted(planned):
        safe_relative_path(path, f"{spec.repo_id} file")
        label = f"weights/{path} ({spec.repo_id}@{spec.revision[:12]})"
        out.append(WeightFile(path=path, opener=http_opener(hf_resolve_url(spec, path), label, token_provider),
                              label=label, size=size, sha256=sha256, git_blob_sha1=blob))
    return out
