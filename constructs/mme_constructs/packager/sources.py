"""Inputs of a package: the model source files, and streaming readers for the weight files.

* :class:`SourceTree`: the handler code and configs (``model_sources/<name>`` merged with
  ``model_sources/common``), read from folders (CLI) or from CDK asset zips (Lambda). Small:
  held in memory, digested file by file.
* :func:`resolve_weights`: turns a :class:`~.specs.WeightsSpec` into an ordered list of
  :class:`WeightFile` (path under ``weights/``, size when known, expected digests, an opener).
* :class:`WeightStream`: a file being read, with digests computed while streaming, resumption
  of dropped HTTP/S3 streams with ``Range`` requests (retries where safe: a resumed stream
  continues at the same byte and everything is verified at the end), and the time budget
  checked on every chunk.

Standard library + boto3 only.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
import io
import json
import logging
import os
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Protocol
from urllib.parse import quote, urlparse, urlunparse

from . import PACKAGER_FORMAT
from .errors import BudgetExceeded, DigestMismatch, SourceError, SpecError, s3_error
from .specs import FileEntry, WeightsSpec, safe_relative_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = f"{PACKAGER_FORMAT} (python urllib)"
MAX_SOURCE_BYTES = 256 << 20
EXCLUDED_DIR_NAMES = frozenset({"__pycache__", "__MACOSX"})
EXCLUDED_FILE_NAMES = frozenset({"weights.yaml", ".DS_Store"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
SOURCE_EXCLUDE_GLOBS = ("__pycache__", "__MACOSX", "*.pyc", "*.pyo", ".*", "weights.yaml")
"""The same exclusions as glob patterns, for the CDK asset of a model source folder."""


# ---------------------------------------------------------------------------------------------
# time budget
# ---------------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class RetryPolicy:
    """How often to retry an open or to resume a dropped stream (consecutive failures)."""

    attempts: int = 5
    base_delay: float = 0.25
    max_delay: float = 4.0

    def delay(self, failure: int) -> float:
        """Backoff before retry number ``failure`` (1-based)."""
        return min(self.max_delay, self.base_delay * (2 ** (failure - 1)))


# ---------------------------------------------------------------------------------------------
# model source files
# ---------------------------------------------------------------------------------------------
def is_excluded(rel_path: str) -> bool:
    """True for files that never go into an archive (caches, hidden files, the weights spec)."""
    parts = rel_path.split("/")
    if any(p in EXCLUDED_DIR_NAMES or p.startswith(".") for p in parts[:-1]):
        return True
    name = parts[-1]
    return name.startswith(".") or name in EXCLUDED_FILE_NAMES or name.endswith(EXCLUDED_SUFFIXES)


@dataclass(frozen=True)
class SourceFile:
    """One source file: its archive path (relative to the archive root) and bytes."""

    path: str
    data: bytes
    origin: str

    @property
    def sha256(self) -> str:
        """Hex sha256 of the bytes."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class SourceTree:
    """Merged model source files; the same path in two inputs is an error."""

    files: dict[str, SourceFile] = field(default_factory=dict)
    total_bytes: int = 0

    def add(self, path: str, data: bytes, origin: str) -> None:
        """Add one file (validated path, duplicate and size checks)."""
        safe_relative_path(path, f"source file in {origin}")
        if path in self.files:
            raise SourceError(f"source file {path!r} is in both {self.files[path].origin} and {origin}")
        self.total_bytes += len(data)
        if self.total_bytes > MAX_SOURCE_BYTES:
            raise SourceError(f"model sources exceed {MAX_SOURCE_BYTES >> 20} MiB; weights belong in the weights spec")
        self.files[path] = SourceFile(path, data, origin)

    def add_dir(self, directory: str | os.PathLike) -> None:
        """Add every file under ``directory`` (relative paths kept), minus the excluded ones."""
        root = Path(directory)
        if not root.is_dir():
            raise SourceError(f"model source folder {root} does not exist")
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIR_NAMES and not d.startswith("."))
            for name in sorted(filenames):
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                if is_excluded(rel) or not full.is_file():
                    continue
                self.add(rel, full.read_bytes(), str(root))

    def add_zip(self, data: bytes, origin: str) -> None:
        """Add every file of a zip (a CDK folder asset), minus the excluded ones."""
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            raise SourceError(f"{origin} is not a zip file") from None
        with archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                rel = info.filename[2:] if info.filename.startswith("./") else info.filename
                if is_excluded(rel):
                    continue
                self.add(rel, archive.read(info), origin)

    def identity(self) -> list[dict]:
        """Path, size and sha256 of every file, sorted: the sources' part of the input digest."""
        return [{"path": p, "size": len(f.data), "sha256": f.sha256} for p, f in sorted(self.files.items())]

    @classmethod
    def from_dirs(cls, directories: Iterable[str | os.PathLike]) -> "SourceTree":
        """Merge several folders (e.g. ``model_sources/sam`` and ``model_sources/common``)."""
        tree = cls()
        for directory in directories:
            tree.add_dir(directory)
        return tree


# ---------------------------------------------------------------------------------------------
# streams
# ---------------------------------------------------------------------------------------------
class RawStream(Protocol):
    """What an opener returns: something with ``read(n)`` and ``close()``."""

    def read(self, n: int) -> bytes: ...  # noqa: D102

    def close(self) -> None: ...  # noqa: D102


Opener = Callable[[int, Budget], "tuple[RawStream, int]"]
"""``opener(offset, budget) -> (stream positioned at offset, total size)``."""


class _Resumable(Exception):
    """A transient failure: the stream may be reopened at the current offset."""


class _GitBlobHasher:
    """sha1 of ``b"blob <size>\\0" + content``: the git blob id the Hub lists for non-LFS files."""

    def __init__(self, size: int) -> None:
        self._h = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)

    def update(self, data: bytes) -> None:  # noqa: D102
        self._h.update(data)

    def hexdigest(self) -> str:  # noqa: D102
        return self._h.hexdigest()


class WeightStream:
    """A weight file being read: size known up front, digests verified at the end.

    Dropped connections and read timeouts are resumed at the current offset (``Range``) up to
    ``retry.attempts`` consecutive failures without progress; an open that fails for good, a
    resume the server cannot serve, or a digest/size mismatch raises with a one-line reason.
    """

    def __init__(self, item: "WeightFile", budget: Budget, retry: RetryPolicy) -> None:
        self.item = item
        self.budget = budget
        self.retry = retry
        self.offset = 0
        self._raw, size = self._open_with_retries(0)
        if item.size is not None and size != item.size:
            self._raw.close()
            raise DigestMismatch(f"{item.label}: the server sends {size} bytes, the listing/spec says {item.size}")
        self.size = size
        self._hashers: dict[str, object] = {"sha256": hashlib.sha256()}
        if item.md5:
            self._hashers["md5"] = hashlib.md5(usedforsecurity=False)
        if item.git_blob_sha1:
            self._hashers["git"] = _GitBlobHasher(size)

    def _open_with_retries(self, offset: int) -> tuple[RawStream, int]:
        failures = 0
        while True:
            self.budget.check(f"opening {self.item.label}")
            try:
                return self.item.opener(offset, self.budget)
            except _Resumable as err:
                failures += 1
                if failures >= self.retry.attempts:
                    raise SourceError(f"{self.item.label}: {err} (gave up after {failures} attempts)") from None
                log.warning("%s: %s; retry %d", self.item.label, err, failures)
                self.budget.sleep(self.retry.delay(failures), f"retrying {self.item.label}")

    def read(self, n: int = CHUNK) -> bytes:
        """Up to ``n`` bytes; ``b""`` only once the whole file has been read."""
        want = min(n, self.size - self.offset)
        if want <= 0:
            return b""
        failures = 0
        while True:
            self.budget.check(f"downloading {self.item.label}")
            try:
                data = self._raw.read(want)
                if not data:
                    raise _Resumable(f"connection closed at byte {self.offset} of {self.size}")
                break
            except (_Resumable, OSError, http.client.HTTPException) as err:
                failures += 1
                reason = err if isinstance(err, _Resumable) else f"{type(err).__name__} at byte {self.offset}"
                if failures >= self.retry.attempts:
                    raise SourceError(f"{self.item.label}: {reason} (no progress after {failures} attempts)") from None
                log.warning("%s: %s; resuming at byte %d (attempt %d)", self.item.label, reason, self.offset, failures)
                try:
                    self._raw.close()
                except Exception:  # noqa: BLE001 - the old connection is gone anyway
                    pass
                self.budget.sleep(self.retry.delay(failures), f"resuming {self.item.label}")
                self._raw, size = self._open_with_retries(self.offset)
                if size != self.size:
                    raise SourceError(f"{self.item.label}: size changed from {self.size} to {size} while resuming")
        for h in self._hashers.values():
            h.update(data)
        self.offset += len(data)
        return data

    def verify(self) -> str:
        """Check the digests once everything was read; return the sha256."""
        if self.offset != self.size:
            raise SourceError(f"{self.item.label}: read {self.offset} of {self.size} bytes")
        sha = self._hashers["sha256"].hexdigest()
        if self.item.sha256 and sha != self.item.sha256:
            raise DigestMismatch(f"{self.item.label}: sha256 {sha} does not match the expected {self.item.sha256}")
        if "md5" in self._hashers and self._hashers["md5"].hexdigest() != self.item.md5:
            raise DigestMismatch(f"{self.item.label}: md5 {self._hashers['md5'].hexdigest()} does not match "
                                 f"the expected {self.item.md5}")
        if "git" in self._hashers and self._hashers["git"].hexdigest() != self.item.git_blob_sha1:
            raise DigestMismatch(f"{self.item.label}: git blob id {self._hashers['git'].hexdigest()} does not "
                                 f"match the listed {self.item.git_blob_sha1}")
        return sha

    def close(self) -> None:
        """Close the underlying connection."""
        try:
            self._raw.close()
        except Exception:  # noqa: BLE001
            pass


@dataclass(frozen=True)
class WeightFile:
    """A planned weight file: ``path`` under ``weights/``, what is expected, how to open it."""

    path: str
    opener: Opener = field(compare=False, repr=False)
    label: str = ""
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    git_blob_sha1: str | None = None

    def open(self, budget: Budget = UNLIMITED, retry: RetryPolicy = RetryPolicy()) -> WeightStream:
        """Start reading (raises :class:`SourceError` when it cannot be opened)."""
        return WeightStream(self, budget, retry)


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------
def display_url(url: str) -> str:
    """The URL without query and fragment (signed CDN URLs carry credentials there)."""
    p = urlparse(url)
    return urlunparse((p.scheme, p.netloc, p.path, "", "", ""))


class _RedirectKeepingSameHostAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects; keep ``Authorization`` only to the same host, never downgrade to http."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102, ANN001
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is None:
            return None
        old, nxt = urlparse(req.full_url), urlparse(new.full_url)
        if old.scheme == "https" and nxt.scheme != "https":
            raise SourceError(f"refusing a redirect from https to {nxt.scheme}: {display_url(new.full_url)}")
        auth = req.unredirected_hdrs.get("Authorization")
        if auth and nxt.netloc == old.netloc:
            new.add_unredirected_header("Authorization", auth)
        return new


_HTTP = urllib.request.build_opener(_RedirectKeepingSameHostAuth())
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def http_open(url: str, *, budget: Budget, token: str | None = None, offset: int = 0,
              if_range: str | None = None, accept: str | None = None):
    """GET ``url`` (redirects followed); transient failures raise :class:`_Resumable`."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if accept:
        req.add_header("Accept", accept)
    if token:
        req.add_unredirected_header("Authorization", f"Bearer {token}")
    if offset:
        req.add_header("Range", f"bytes={offset}-")
        if if_range:
            req.add_header("If-Range", if_range)
    try:
        return _HTTP.open(req, timeout=budget.io_timeout())
    except urllib.error.HTTPError as err:
        err.close()
        where = display_url(url)
        if err.code in _RETRYABLE_STATUS:
            raise _Resumable(f"HTTP {err.code} {err.reason} from {where}") from None
        hint = ""
        if err.code in (401, 403):
            hint = " (gated or private? give the spec a token_secret_arn)" if "/resolve/" in url or "/api/" in url else ""
        raise SourceError(f"HTTP {err.code} {err.reason} for {where}{hint}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, SourceError):
            raise err.reason from None
        raise _Resumable(f"cannot reach {display_url(url)}: {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:
        raise _Resumable(f"{type(err).__name__} from {display_url(url)}: {err}") from None


def _http_opener(url: str, label: str, token_provider: Callable[[], str | None] | None = None) -> Opener:
    state: dict[str, str] = {}

    def opener(offset: int, budget: Budget):
        token = token_provider() if token_provider else None
        resp = http_open(url, budget=budget, token=token, offset=offset, if_range=state.get("validator"))
        try:
            if offset == 0:
                if resp.status != 200:
                    raise SourceError(f"{label}: unexpected HTTP {resp.status}")
                length = resp.headers.get("Content-Length")
                if length is None:
                    raise SourceError(f"{label}: the server sent no Content-Length (needed to stream into the tar)")
                etag = resp.headers.get("ETag")
                if etag and not etag.startswith("W/"):
                    state["validator"] = etag
                return resp, int(length)
            if resp.status != 206:
                raise SourceError(f"{label}: connection dropped at byte {offset} and the server cannot resume "
                                  f"(HTTP {resp.status} to a Range request)")
            content_range = resp.headers.get("Content-Range", "")
            try:
                unit_range, total = content_range.split(" ", 1)[1].split("/")
                start = int(unit_range.split("-")[0])
                total_size = int(total)
            except (IndexError, ValueError):
                raise SourceError(f"{label}: bad Content-Range {content_range!r} when resuming") from None
            if start != offset:
                raise SourceError(f"{label}: asked to resume at {offset}, the server resumed at {start}")
            return resp, total_size
        except Exception:
            resp.close()
            raise

    return opener


def _http_json(url: str, *, budget: Budget, retry: RetryPolicy, token: str | None, label: str) -> dict:
    failures = 0
    while True:
        budget.check(f"listing {label}")
        try:
            resp = http_open(url, budget=budget, token=token, accept="application/json")
            with resp:
                return json.loads(resp.read(64 << 20))
        except _Resumable as err:
            failures += 1
            if failures >= retry.attempts:
                raise SourceError(f"{label}: {err} (gave up after {failures} attempts)") from None
            budget.sleep(retry.delay(failures), f"listing {label}")
        except json.JSONDecodeError:
            raise SourceError(f"{label}: the listing is not JSON") from None


# ---------------------------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------------------------
def _s3_opener(s3, bucket: str, key: str, etag: str | None, label: str) -> Opener:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    def opener(offset: int, budget: Budget):
        args = {"Bucket": bucket, "Key": key}
        if offset:
            args["Range"] = f"bytes={offset}-"
        if etag:
            args["IfMatch"] = etag
        try:
            resp = s3.get_object(**args)
        except ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500 or status == 429:
                raise _Resumable(f"S3 {s3_error(err)}") from None
            raise SourceError(f"{label}: S3 {s3_error(err)}") from None
        except BotoCoreError as err:
            raise _Resumable(f"S3 {type(err).__name__}") from None
        total = resp["ContentLength"] + offset
        if offset:
            content_range = resp.get("ContentRange", "")
            if "/" in content_range:
                total = int(content_range.rsplit("/", 1)[1])
        return _BotoBody(resp["Body"]), total

    return opener


class _BotoBody:
    """Botocore streaming body with its errors mapped onto resumable ones."""

    def __init__(self, body) -> None:  # noqa: ANN001
        self._body = body

    def read(self, n: int) -> bytes:  # noqa: D102
        from botocore.exceptions import BotoCoreError  # noqa: PLC0415

        try:
            return self._body.read(n)
        except BotoCoreError as err:
            raise _Resumable(f"S3 read failed: {type(err).__name__}") from None

    def close(self) -> None:  # noqa: D102
        self._body.close()


def list_s3_weights(s3, spec: WeightsSpec) -> list[dict]:
    """Objects of an ``s3`` spec as ``{key, path, size, etag}``, sorted by path."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    bucket, key = spec.s3_bucket, spec.s3_key
    try:
        if not spec.s3_is_prefix:
            head = s3.head_object(Bucket=bucket, Key=key)
            path = spec.path or PurePosixPath(key).name
            return [{"key": key, "path": path, "size": head["ContentLength"], "etag": head.get("ETag")}]
        objects = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(key):]
                if not rel or rel.endswith("/"):
                    continue  # folder markers
                safe_relative_path(rel, f"object {obj['Key']}")
                objects.append({"key": obj["Key"], "path": rel, "size": obj["Size"], "etag": obj.get("ETag")})
    except ClientError as err:
        raise SourceError(f"weights at {spec.s3_uri}: S3 {s3_error(err)}") from None
    if not objects:
        raise SourceError(f"weights at {spec.s3_uri}: no objects under that prefix")
    return sorted(objects, key=lambda o: o["path"])


# ---------------------------------------------------------------------------------------------
# local folder
# ---------------------------------------------------------------------------------------------
def list_local_weights(directory: str | os.PathLike) -> list[dict]:
    """Files under a local weights folder as ``{path, size, full}``, sorted (hidden files skipped)."""
    root = Path(directory)
    if not root.is_dir():
        raise SourceError(f"weights folder {root} does not exist")
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in EXCLUDED_DIR_NAMES)
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if name.startswith(".") or not full.is_file():
                continue
            files.append({"path": rel, "size": full.stat().st_size, "full": str(full)})
    if not files:
        raise SourceError(f"weights folder {root} is empty")
    return sorted(files, key=lambda f: f["path"])


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a local file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _local_opener(full: str) -> Opener:
    def opener(offset: int, budget: Budget):
        try:
            fh = open(full, "rb")  # noqa: SIM115 - closed by the stream
        except OSError as err:
            raise SourceError(f"cannot read {full}: {err.strerror}") from None
        fh.seek(offset)
        return fh, os.fstat(fh.fileno()).st_size

    return opener


# ---------------------------------------------------------------------------------------------
# spec -> planned weight files
# ---------------------------------------------------------------------------------------------
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


def resolve_weights(spec: WeightsSpec, *, budget: Budget = UNLIMITED, retry: RetryPolicy = RetryPolicy(),
                    token_provider: Callable[[], str | None] | None = None, s3=None,
                    s3_listing: list[dict] | None = None,
                    local_listing: list[dict] | None = None) -> list[WeightFile]:
    """Plan the weight files of ``spec`` (paths relative to ``weights/``), sorted by path.

    Lists the Hub revision (Hub API) or the S3 prefix when needed; downloads nothing.
    """
    if spec.kind == "none":
        return []
    if spec.kind == "url":
        return [WeightFile(path=f.path, opener=_http_opener(f.url, f"weights/{f.path} ({display_url(f.url)})"),
                           label=f"weights/{f.path} ({display_url(f.url)})", size=f.size, sha256=f.sha256, md5=f.md5)
                for f in sorted(spec.files, key=lambda f: f.path)]
    if spec.kind == "huggingface":
        if spec.files:
            entries: list[FileEntry] = list(spec.files)
            planned = [(e.path, e.size, e.sha256, None) for e in entries]
        else:
            token = token_provider() if token_provider else None
            listing = _http_json(hf_listing_url(spec), budget=budget, retry=retry, token=token,
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
            url = hf_resolve_url(spec, path)
            label = f"weights/{path} ({spec.repo_id}@{spec.revision[:12]})"
            out.append(WeightFile(path=path, opener=_http_opener(url, label, token_provider), label=label,
                                  size=size, sha256=sha256, git_blob_sha1=blob))
        return out
    if spec.kind == "s3":
        if s3 is None:
            raise SpecError("an s3 weights spec needs an S3 client")
        listing = s3_listing if s3_listing is not None else list_s3_weights(s3, spec)
        return [WeightFile(path=o["path"], opener=_s3_opener(s3, spec.s3_bucket, o["key"], o.get("etag"),
                                                             f"weights/{o['path']} (s3://{spec.s3_bucket}/{o['key']})"),
                           label=f"weights/{o['path']} (s3://{spec.s3_bucket}/{o['key']})", size=o["size"],
                           sha256=spec.sha256 if not spec.s3_is_prefix else None)
                for o in listing]
    if spec.kind == "local":
        listing = local_listing if local_listing is not None else list_local_weights(spec.local_path)
        return [WeightFile(path=f["path"], opener=_local_opener(f["full"]), label=f"weights/{f['path']} ({f['full']})",
                           size=f["size"], sha256=f.get("sha256")) for f in listing]
    raise SpecError(f"unsupported weights kind {spec.kind!r}")


def secret_token_provider(secrets_client, secret_arn: str) -> Callable[[], str]:
    """A cached provider of the Hub token stored in a Secrets Manager secret.

    The secret string is either the token itself or JSON with a ``token``/``HF_TOKEN`` key.
    """
    cache: dict[str, str] = {}

    def provider() -> str:
        if "token" not in cache:
            try:
                value = secrets_client.get_secret_value(SecretId=secret_arn)["SecretString"]
            except Exception as err:  # noqa: BLE001 - any failure is the same for the user
                raise SourceError(f"cannot read the Hub token secret {secret_arn}: {s3_error(err)}") from None
            token = value.strip()
            if token.startswith("{"):
                try:
                    doc = json.loads(token)
                except json.JSONDecodeError:
                    doc = {}
                token = next((str(doc[k]) for k in ("token", "HF_TOKEN", "hf_token") if k in doc), "")
            if not token:
                raise SourceError(f"the secret {secret_arn} holds no Hub token")
            cache["token"] = token
        return cache["token"]

    return provider
