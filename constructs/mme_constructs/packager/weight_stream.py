"""Reading one weight file: :class:`WeightFile` (what is expected, how to open it) and
:class:`WeightStream` (digests computed while streaming, dropped HTTP/S3 streams resumed with
``Range`` requests where safe: a resumed stream continues at the same byte and everything is
verified at the end, the time budget checked on every chunk).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .download_retry import DownloadRetryPolicy, RetryableError
from .errors import DigestMismatch, SourceError
from .time_budget import UNLIMITED, Budget

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class RawStream(Protocol):
    """What an opener returns: something with ``read(n)`` and ``close()``."""

    def read(self, n: int) -> bytes: ...  # noqa: D102

    def close(self) -> None: ...  # noqa: D102


Opener = Callable[[int, Budget], "tuple[RawStream, int]"]
"""``opener(offset, budget) -> (stream positioned at offset, total size)``."""


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

    def __init__(self, item: "WeightFile", budget: Budget, retry: DownloadRetryPolicy) -> None:
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
            except RetryableError as err:
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
                    raise RetryableError(f"connection closed at byte {self.offset} of {self.size}")
                break
            except (RetryableError, OSError, http.client.HTTPException) as err:
                failures += 1
                reason = err if isinstance(err, RetryableError) else f"{type(err).__name__} at byte {self.offset}"
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

    def open(self, budget: Budget = UNLIMITED, retry: DownloadRetryPolicy = DownloadRetryPolicy()) -> WeightStream:
        """Start reading (raises :class:`SourceError` when it cannot be opened)."""
        return WeightStream(self, budget, retry)

