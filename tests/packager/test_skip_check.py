"""When may the packager skip a build because the archive exists? Only for an object it wrote itself
from the same inputs, whose bytes still match: against moto's S3 server, with objects planted by
someone else (tags copied, metadata copied, bytes swapped, another key)."""

from __future__ import annotations

import hashlib

import pytest

from mme_constructs.packager.core import S3Destination, archive_metadata, package, plan
from mme_constructs.packager.sources import SourceTree
from mme_constructs.packager.specs import parse_spec

NONE = parse_spec({"kind": "none"})


@pytest.fixture
def kms_keys(aws_env):
    """Two KMS keys of moto's KMS (the bucket's and another one)."""
    import boto3

    kms = boto3.client("kms")
    return [kms.create_key(Description=d)["KeyMetadata"]["Arn"] for d in ("model key", "another key")]


@pytest.fixture
def built(s3, bucket, model_src):
    """A real archive written by the packager: (sources, key, its bytes, the result)."""
    sources = SourceTree.from_dirs(list(model_src))
    result = package("tiny", sources, NONE, S3Destination(s3, bucket, "models/"))
    assert not result.skipped
    body = s3.get_object(Bucket=bucket, Key=result.key)["Body"].read()
    return sources, result.key, body, result


def _plant(s3, bucket, key, body: bytes, *, metadata: dict | None = None) -> None:
    """Someone else writes ``body`` at ``key``, copying the packager's tags (and ``metadata``)."""
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata or {},
                  Tagging="&".join(f"{k}={v}" for k, v in tags.items()))


def _rebuilt(s3, bucket, sources, key, kms_key_id=None) -> bool:
    """Package again; True when the packager built and uploaded the archive instead of skipping."""
    again = package("tiny", sources, NONE, S3Destination(s3, bucket, "models/", kms_key_id))
    assert again.key == key
    return not again.skipped


def test_its_own_unchanged_archive_is_skipped_after_reading_it(s3, bucket, built):
    sources, key, body, first = built
    again = package("tiny", sources, NONE, S3Destination(s3, bucket, "models/"))
    assert again.skipped and again.sha256 == first.sha256 == hashlib.sha256(body).hexdigest()
    assert again.size_bytes == len(body)


def test_tags_copied_onto_a_foreign_object_are_not_trusted(s3, bucket, built):
    """Someone with PutObject + tagging writes other bytes with the packager's tags but not its metadata."""
    sources, key, body, _ = built
    _plant(s3, bucket, key, b"handler.py that runs something else")
    assert _rebuilt(s3, bucket, sources, key)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_metadata_and_tags_copied_onto_other_bytes_are_caught_by_the_digest(s3, bucket, built):
    """Everything the packager records is copied, the bytes are not its archive: the content check rebuilds."""
    sources, key, body, _ = built
    metadata = s3.head_object(Bucket=bucket, Key=key)["Metadata"]
    assert metadata == archive_metadata(plan("tiny", sources, NONE))
    _plant(s3, bucket, key, body[:-64] + b"\0" * 64, metadata=metadata)
    assert _rebuilt(s3, bucket, sources, key)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_an_archive_of_other_inputs_under_the_key_is_rebuilt(s3, bucket, built):
    sources, key, body, _ = built
    _plant(s3, bucket, key, body, metadata={**s3.head_object(Bucket=bucket, Key=key)["Metadata"], "model-name": "other"})
    assert _rebuilt(s3, bucket, sources, key)


def test_an_archive_under_another_kms_key_is_rebuilt_with_the_store_key(s3, bucket, model_src, kms_keys):
    model_key, other_key = kms_keys
    sources = SourceTree.from_dirs(list(model_src))
    first = package("tiny", sources, NONE, S3Destination(s3, bucket, "models/", other_key))
    assert s3.head_object(Bucket=bucket, Key=first.key)["SSEKMSKeyId"] == other_key
    assert package("tiny", sources, NONE, S3Destination(s3, bucket, "models/", other_key)).skipped
    assert _rebuilt(s3, bucket, sources, first.key, kms_key_id=model_key)
    assert s3.head_object(Bucket=bucket, Key=first.key)["SSEKMSKeyId"] == model_key
    # a key id instead of the ARN names the same key
    key_id = model_key.rsplit("/", 1)[1]
    assert package("tiny", sources, NONE, S3Destination(s3, bucket, "models/", key_id)).skipped


@pytest.mark.parametrize("in_parts", [False, True], ids=["copy-object", "upload-part-copy"])
def test_a_retired_archive_keeps_its_bytes_key_and_metadata_and_is_skipped_again(
        s3, bucket, model_src, kms_keys, monkeypatch, in_parts):
    """Retiring copies the archive onto itself (a single CopyObject, or parts above 5 GiB: forced here
    with a tiny threshold) under the same KMS key, and tags it; the same inputs later make it current."""
    if in_parts:
        monkeypatch.setattr(S3Destination, "COPY_PART_THRESHOLD", 1024)
        monkeypatch.setattr(S3Destination, "COPY_PART_SIZE", 5 << 20)
    model_key, _ = kms_keys
    sources = SourceTree.from_dirs(list(model_src))
    destination = S3Destination(s3, bucket, "models/", model_key)
    first = package("tiny", sources, NONE, destination)
    before = s3.head_object(Bucket=bucket, Key=first.key)
    body = s3.get_object(Bucket=bucket, Key=first.key)["Body"].read()
    tags = s3.get_object_tagging(Bucket=bucket, Key=first.key)["TagSet"]
    s3.put_object_tagging(Bucket=bucket, Key=first.key, Tagging={"TagSet": [*tags, {"Key": "team", "Value": "vision"}]})

    assert destination.retire(first.key, "2026-01-02")
    after = s3.head_object(Bucket=bucket, Key=first.key)
    assert (after["SSEKMSKeyId"], after["Metadata"], after["ContentType"]) == \
        (model_key, before["Metadata"], before["ContentType"])
    assert s3.get_object(Bucket=bucket, Key=first.key)["Body"].read() == body
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=first.key)["TagSet"]}
    assert tags == {"sha256": first.sha256, "input-digest": first.input_digest, "archive-state": "retired",
                    "retired-at": "2026-01-02", "team": "vision"}
    assert not destination.retire("models/tiny-0000000000000000.tar.gz", "2026-01-02")

    again = package("tiny", sources, NONE, destination)
    assert again.skipped and again.sha256 == first.sha256
    # current again: the retirement tags go, the others stay
    assert {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=first.key)["TagSet"]} == {
        "sha256": first.sha256, "input-digest": first.input_digest, "team": "vision"}
