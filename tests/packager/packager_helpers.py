"""Helpers of the packager tests (importable by the test modules; fixtures live in conftest.py)."""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REVISION = "0123456789abcdef0123456789abcdef01234567"


def zip_dir(directory: Path) -> bytes:
    """A zip of a folder, the way a CDK folder asset is (relative paths, no folder entries)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory).as_posix())
    return buf.getvalue()



class FakeContext:
    """The part of the Lambda context the handler uses."""

    def __init__(self, seconds: float = 600.0) -> None:
        self.deadline = time.monotonic() + seconds
        self.function_name = "packager"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def cfn_event(request_type: str, props: dict, *, physical_id: str | None = None, old_props: dict | None = None,
              logical_id: str = "TinyArtifact") -> dict:
    """A CloudFormation custom resource event as the Provider framework passes it on."""
    event = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:framework-onEvent",
        "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?sig=1",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/ImageEditingMme/guid",
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": logical_id,
        "ResourceType": "Custom::ModelArtifact",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:framework-onEvent",
                               **props},
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if old_props is not None:
        event["OldResourceProperties"] = old_props
    return event


def uploads_left(s3, bucket: str) -> list:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def keys_in(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
