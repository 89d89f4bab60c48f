"""Destinations of an archive: an S3 multipart upload (streaming) or a local file.

:class:`MultipartUploadWriter` is a file-like ``write()`` sink: bytes fill a part buffer; a full
part is handed to a small thread pool (``max_in_flight`` parts at once, so memory stays at about
``(max_in_flight + 1) * part_size`` whatever the archive size) while the producer keeps going.
On any failure the upload is aborted, and the abort is verified (``ListParts`` must answer
``NoSuchUpload``; S3 documents that an abort racing in-flight part uploads may need repeating).

Standard library + boto3 only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .errors import UploadError, aws_error_message
from .time_budget import UNLIMITED, Budget

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 << 20
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 16 << 20
DEFAULT_MAX_IN_FLIGHT = 4
STALE_UPLOAD_AGE = timedelta(minutes=20)


class MultipartUploadWriter:
    """Streams bytes into ``s3://bucket/key`` as a multipart upload.

    ``create_args`` go to ``CreateMultipartUpload`` (content type, metadata, SSE-KMS key...).
    Call :meth:`complete` to finish, :meth:`abort` on any failure (idempotent). The upload is
    created lazily with the first full part, so an early failure leaves nothing behind.
    """

    def __init__(self, s3, bucket: str, key: str, *, part_size: int = DEFAULT_PART_SIZE,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, create_args: dict | None = None,
                 budget: Budget = UNLIMITED) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3 minimum)")
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.part_size = part_size
        self.budget = budget
        self.create_args = dict(create_args or {})
        self.upload_id: str | None = None
        self._buffer = bytearray()
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="s3-part")
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._futures: list[Future] = []
        self._parts: dict[int, dict] = {}
        self._next_part = 1
        self._cancelled = threading.Event()
        self.size = 0
        self.completed = False
        self.aborted = False

    # -- writing ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Append bytes; full parts are uploaded in the background."""
        self.size += len(data)
        self._buffer += data
        while len(self._buffer) >= self.part_size:
            part = bytes(self._buffer[: self.part_size])
            del self._buffer[: self.part_size]
            self._submit(part)

    def _create(self) -> None:
        try:
            resp = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key, ChecksumAlgorithm="CRC32",
                                                   **self.create_args)
        except Exception as err:  # noqa: BLE001
            raise UploadError(f"cannot start the upload to s3://{self.bucket}/{self.key}: {aws_error_message(err)}") from None
        self.upload_id = resp["UploadId"]
        log.info("started multipart upload of s3://%s/%s (%s)", self.bucket, self.key, self.upload_id)

    def _submit(self, part: bytes) -> None:
        self._raise_part_errors()
        if self.upload_id is None:
            self._create()
        if self._next_part > MAX_PARTS:
            raise UploadError(f"archive needs more than {MAX_PARTS} parts of {self.part_size >> 20} MiB; "
                              "raise the part size")
        while not self._slots.acquire(timeout=1.0):
            self._raise_part_errors()
            self.budget.check("uploading the archive")
        number = self._next_part
        self._next_part += 1
        future = self._pool.submit(self._upload_part, number, part)
        future.add_done_callback(lambda _f: self._slots.release())
        self._futures.append(future)

    def _upload_part(self, number: int, data: bytes) -> None:
        if self._cancelled.is_set():
            return
        try:
            resp = self.s3.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number,
                                       Body=data, ChecksumAlgorithm="CRC32")
        except Exception as err:  # noqa: BLE001
            raise UploadError(f"uploading part {number} of s3://{self.bucket}/{self.key} failed: {aws_error_message(err)}") \
                from None
        part = {"PartNumber": number, "ETag": resp["ETag"]}
        if resp.get("ChecksumCRC32"):
            part["ChecksumCRC32"] = resp["ChecksumCRC32"]
        self._parts[number] = part

    def _raise_part_errors(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise future.exception()

    # -- finishing --------------------------------------------------------------------------
    def complete(self) -> None:
        """Upload the last part, wait for all parts, complete the upload (within the budget)."""
        self.budget.check("uploading the archive")
        if self._buffer or self.upload_id is None:
            part = bytes(self._buffer)
            self._buffer.clear()
            self._submit(part)
        while True:
            done, pending = wait(self._futures, timeout=1.0, return_when=FIRST_EXCEPTION)
            self._raise_part_errors()
            if not pending:
                break
            self.budget.check("uploading the archive")
        parts = [self._parts[n] for n in sorted(self._parts)]
        try:
            self.s3.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                              MultipartUpload={"Parts": parts})
        except Exception as err:  # noqa: BLE001
            raise UploadError(f"completing the upload of s3://{self.bucket}/{self.key} failed: {aws_error_message(err)}") \
                from None
        self.completed = True
        self._pool.shutdown(wait=True)
        log.info("uploaded s3://%s/%s: %d bytes in %d parts", self.bucket, self.key, self.size, len(parts))

    def abort(self) -> bool:
        """Stop the upload and remove its parts; True when S3 confirms no part remains."""
        if self.aborted:
            return True
        self._cancelled.set()
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._buffer.clear()
        self.aborted = True
        if self.upload_id is None or self.completed:
            return True
        return abort_and_verify(self.s3, self.bucket, self.key, self.upload_id)


def abort_and_verify(s3, bucket: str, key: str, upload_id: str, attempts: int = 3) -> bool:
    """Abort a multipart upload and check that S3 no longer knows it (retrying the abort)."""
    for attempt in range(1, attempts + 1):
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception as err:  # noqa: BLE001
            if "NoSuchUpload" not in aws_error_message(err):
                log.warning("abort of %s (s3://%s/%s) failed: %s", upload_id, bucket, key, aws_error_message(err))
        try:
            parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts", [])
        except Exception as err:  # noqa: BLE001
            if "NoSuchUpload" in aws_error_message(err):
                log.info("aborted multipart upload %s of s3://%s/%s", upload_id, bucket, key)
                return True
            log.warning("cannot verify the abort of %s: %s", upload_id, aws_error_message(err))
            parts = None
        if parts == []:
            # Some S3 implementations keep an empty upload listed for a moment; try again.
            log.info("upload %s has no parts left (attempt %d)", upload_id, attempt)
        if attempt < attempts:
            time.sleep(0.5 * attempt)
    log.error("multipart upload %s of s3://%s/%s may still hold parts; the bucket's lifecycle rule "
              "(abort incomplete uploads) removes them", upload_id, bucket, key)
    return False


def abort_stale_uploads(s3, bucket: str, key: str, older_than: timedelta = STALE_UPLOAD_AGE) -> int:
    """Abort uploads of exactly ``key`` started more than ``older_than`` ago (crashed runs).

    A running packager never takes that long (the Lambda stops after 15 minutes), so such an
    upload is an orphan. Returns how many were aborted.
    """
    now = datetime.now(timezone.utc)
    aborted = 0
    try:
        resp = s3.list_multipart_uploads(Bucket=bucket, Prefix=key)
    except Exception as err:  # noqa: BLE001 - cleanup is best effort
        log.warning("cannot list multipart uploads of s3://%s/%s: %s", bucket, key, aws_error_message(err))
        return 0
    for upload in resp.get("Uploads", []):
        initiated = upload.get("Initiated")
        if upload.get("Key") != key or initiated is None or now - initiated < older_than:
            continue
        if abort_and_verify(s3, bucket, key, upload["UploadId"]):
            aborted += 1
    return aborted


@dataclass
class LocalFileWriter:
    """Writes an archive to ``<path>.partial`` and renames it into place on :meth:`complete`."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._fh = open(self._partial, "wb")  # noqa: SIM115 - closed in complete/abort
        self.size = 0
        self.completed = False

    def write(self, data: bytes) -> None:  # noqa: D102
        self._fh.write(data)
        self.size += len(data)

    def complete(self) -> None:
        """Flush, fsync and rename into place."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._partial, self.path)
        self.completed = True

    def abort(self) -> bool:
        """Remove the partial file."""
        if not self._fh.closed:
            self._fh.close()
        try:
            self._partial.unlink()
        except FileNotFoundError:
            pass
        return True
