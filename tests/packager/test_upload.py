"""The multipart upload sink against moto's S3 server: parts, completion, abort, orphan cleanup."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from packager_helpers import keys_in, uploads_left

from mme_constructs.packager.errors import BudgetExceeded
from mme_constructs.packager.time_budget import Budget
from mme_constructs.packager.upload import MIN_PART_SIZE, MultipartUploadWriter, abort_stale_uploads

MiB = 1 << 20


def test_parts_fill_and_complete(s3, bucket):
    data = os.urandom(23 * MiB + 5)
    writer = MultipartUploadWriter(s3, bucket, "models/x.tar.gz", part_size=5 * MiB, max_in_flight=2,
                                   create_args={"Metadata": {"input-digest": "abc"}})
    for i in range(0, len(data), 777_777):  # odd write sizes
        writer.write(data[i:i + 777_777])
    writer.complete()
    assert s3.get_object(Bucket=bucket, Key="models/x.tar.gz")["Body"].read() == data
    head = s3.head_object(Bucket=bucket, Key="models/x.tar.gz", PartNumber=1)
    assert head["PartsCount"] == 5 and head["ContentLength"] == 5 * MiB
    assert uploads_left(s3, bucket) == []


def test_abort_removes_every_part(s3, bucket):
    writer = MultipartUploadWriter(s3, bucket, "models/y.tar.gz", part_size=MIN_PART_SIZE)
    writer.write(os.urandom(12 * MiB))  # two parts uploaded or in flight
    assert writer.upload_id
    assert writer.abort() is True
    assert uploads_left(s3, bucket) == [] and keys_in(s3, bucket) == []


def test_nothing_is_created_before_the_first_full_part(s3, bucket):
    writer = MultipartUploadWriter(s3, bucket, "models/z.tar.gz", part_size=MIN_PART_SIZE)
    writer.write(b"x" * 1000)
    assert writer.upload_id is None and writer.abort() is True
    assert uploads_left(s3, bucket) == []


def test_a_budget_that_runs_out_while_parts_are_pending_fails(s3, bucket):
    writer = MultipartUploadWriter(s3, bucket, "models/b.tar.gz", part_size=MIN_PART_SIZE, budget=Budget(0))
    writer.write(os.urandom(6 * MiB))
    with pytest.raises(BudgetExceeded):
        writer.complete()
    writer.abort()
    assert uploads_left(s3, bucket) == []


def test_orphaned_uploads_of_the_key_are_aborted(s3, bucket):
    mine = s3.create_multipart_upload(Bucket=bucket, Key="models/sam-0123456789abcdef.tar.gz")["UploadId"]
    other = s3.create_multipart_upload(Bucket=bucket, Key="models/sam-0123456789abcdef.tar.gz.bak")["UploadId"]
    # moto reports every upload as initiated in 2010, so both count as old here; only the exact key goes.
    assert abort_stale_uploads(s3, bucket, "models/sam-0123456789abcdef.tar.gz", older_than=timedelta(minutes=20)) == 1
    assert [u["UploadId"] for u in uploads_left(s3, bucket)] == [other]
    assert mine != other
