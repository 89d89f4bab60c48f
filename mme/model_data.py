"""Where a multi-model endpoint reads its archives: the ``ModelDataUrl`` prefix (a ``TargetModel``
is an object name under it). Two kinds, one interface (``describe``, ``size``, ``fetch``):

- :class:`FolderModelData`: a local folder (``mme local``: the packaged archives). ``fetch``
  returns the file itself: nothing is downloaded.
- :class:`S3ModelData`: ``s3://bucket/prefix/`` (any S3 API; the benchmarks use moto's server on
  127.0.0.1). ``fetch`` downloads the object into the model's folder first, as SageMaker does:
  one GetObject streamed to disk. (boto3's transfer manager, parallel ranged GETs, brought a
  600 MiB object out of moto's server at 11 MB/s against 124 MB/s for one GetObject.)

A missing archive raises ``FileNotFoundError``.
"""

from __future__ import annotations

import os
from pathlib import Path

CHUNK_BYTES = 8 * 2**20


class FolderModelData:
    """Archives in a local folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def describe(self) -> str:
        """Where the archives are, for messages."""
        return str(self.root)

    def _path(self, target_model: str) -> Path:
        path = Path(os.path.normpath(self.root / target_model))  # a link in the folder may point elsewhere
        if self.root not in path.parents or not path.is_file():
            raise FileNotFoundError(target_model)
        return path

    def size(self, target_model: str) -> int:
        """Bytes of the archive."""
        return self._path(target_model).stat().st_size

    def fetch(self, target_model: str, into: Path) -> Path:
        """The archive's path (read in place)."""
        return self._path(target_model)


class S3ModelData:
    """Archives under an S3 prefix; ``client`` is a boto3 S3 client."""

    def __init__(self, url: str, client):
        if not url.startswith("s3://"):
            raise ValueError(f"not an s3:// URL: {url!r}")
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {url!r}")
        self.bucket, self.prefix, self.client = bucket, prefix, client

    def describe(self) -> str:
        """The ``s3://`` prefix."""
        return f"s3://{self.bucket}/{self.prefix}"

    def size(self, target_model: str) -> int:
        """Bytes of the object (HeadObject)."""
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.prefix + target_model)["ContentLength"])
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(target_model) from None
            raise OSError(f"{self.describe()}{target_model}: {err}") from None

    def fetch(self, target_model: str, into: Path) -> Path:
        """Download the object to ``into/model.tar.gz`` (one GetObject, streamed to disk)."""
        from botocore.exceptions import BotoCoreError, ClientError

        destination = Path(into) / "model.tar.gz"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + target_model)["Body"]
            with open(destination, "wb") as out:
                for chunk in body.iter_chunks(CHUNK_BYTES):
                    out.write(chunk)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(target_model) from None
            raise OSError(f"{self.describe()}{target_model}: {err}") from None
        except BotoCoreError as err:
            raise OSError(f"{self.describe()}{target_model}: {err}") from None
        return destination
