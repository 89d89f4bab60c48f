"""Weight files staged in an S3 bucket: listing an object or a prefix, and resumable ``GetObject`` streams."""

from __future__ import annotations

from pathlib import PurePosixPath

from .download_retry import RetryableError
from .errors import SourceError, aws_error_message
from .specs import WeightsSpec, safe_relative_path
from .time_budget import Budget
from .weight_stream import Opener


def s3_opener(s3, bucket: str, key: str, etag: str | None, label: str) -> Opener:
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
                raise RetryableError(f"S3 {aws_error_message(err)}") from None
            raise SourceError(f"{label}: S3 {aws_error_message(err)}") from None
        except BotoCoreError as err:
            raise RetryableError(f"S3 {type(err).__name__}") from None
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
            raise RetryableError(f"S3 read failed: {type(err).__name__}") from None

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
        raise SourceError(f"weights at {spec.s3_uri}: S3 {aws_error_message(err)}") from None
    if not objects:
        raise SourceError(f"weights at {spec.s3_uri}: no objects under that prefix")
    return sorted(objects, key=lambda o: o["path"])

