"""The custom resource handler end to end: moto S3 server over HTTP + a fake Hub over HTTP.

Create / repeat Create / Update / Delete with CloudFormation-shaped events, then the faults:
every failure raises one line, leaves no multipart upload and no object behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
import urllib.request

import pytest
from packager_fakes import Drop, git_blob_sha1
from packager_helpers import REVISION, FakeContext, cfn_event, keys_in, uploads_left

from mme_constructs.packager.lambda_handler import PackagingFailed, handler

MiB = 1 << 20


@pytest.fixture
def weights(hub):
    """A Hub repo with one 12 MiB LFS file (3 parts of 5 MiB) and two small git files."""
    files = {
        "model_index.json": b'{"_class_name": "Tiny"}\n',
        "unet/config.json": b'{"sample_size": 8}\n',
        "unet/diffusion_pytorch_model.fp16.safetensors": os.urandom(12 * MiB),
        "unet/diffusion_pytorch_model.safetensors": os.urandom(2 * MiB),  # not allowed by the patterns
    }
    hub.add_repo("org/tiny", REVISION, files)
    return files


def hf_spec(hub, **extra) -> dict:
    spec = {"kind": "huggingface", "repo_id": "org/tiny", "revision": REVISION, "base_url": hub.url,
            "allow_patterns": ["model_index.json", "unet/config.json", "unet/*.fp16.safetensors"]}
    spec.update(extra)
    return spec


def props(bucket, sources, spec: dict, **extra) -> dict:
    return {"ModelName": "tiny", "Bucket": bucket, "Prefix": "models/", "Sources": sources,
            "WeightsSpec": json.dumps(spec), "GzipLevel": "0", "PackagerFormat": "mme-packager/1", **extra}


def archive_members(s3, bucket: str, key: str) -> dict[str, bytes]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    out = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tf:
        for m in tf.getmembers():
            out[m.name + ("/" if m.isdir() else "")] = tf.extractfile(m).read() if m.isfile() else b""
    return out


def resolve_requests(hub) -> list[dict]:
    return [r for r in hub.state.requests if "/resolve/" in r["path"]]


def assert_clean_failure(s3, bucket, err, *fragments):
    message = str(err.value)
    assert "\n" not in message and len(message) <= 700, message
    for fragment in fragments:
        assert fragment in message, message
    assert uploads_left(s3, bucket) == []
    assert keys_in(s3, bucket) == []


# ---------------------------------------------------------------------------------------------
# lifecycle
# ---------------------------------------------------------------------------------------------
def test_create_repeat_update_delete(s3, bucket, source_assets, hub, weights):
    ctx = FakeContext()
    p1 = props(bucket, source_assets, hf_spec(hub))

    created = handler(cfn_event("Create", p1), ctx)
    data = created["Data"]
    key = data["Key"]
    assert key.startswith("models/tiny-") and key.endswith(".tar.gz") and len(data["TargetModel"]) == len("tiny-") + 16 + 7
    assert created["PhysicalResourceId"] == f"s3://{bucket}/{key}" == data["S3Uri"]
    assert data["Skipped"] == "false"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == data["Sha256"]
    assert len(body) == int(data["SizeBytes"])
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"]["input-digest"] == data["InputDigest"]
    assert head["ContentType"] == "application/gzip"
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    assert tags["sha256"] == data["Sha256"]
    assert uploads_left(s3, bucket) == []

    members = archive_members(s3, bucket, key)
    assert sorted(members) == sorted([
        "MAR-INF/", "MAR-INF/MANIFEST.json", "handler.py", "helper.py", "tiny_common/", "tiny_common/__init__.py",
        "tiny_common/base.py", "model-config.yaml", "weights/", "weights/model_index.json", "weights/unet/",
        "weights/unet/config.json", "weights/unet/diffusion_pytorch_model.fp16.safetensors"])
    assert members["weights/unet/diffusion_pytorch_model.fp16.safetensors"] == \
        weights["unet/diffusion_pytorch_model.fp16.safetensors"]
    manifest = json.loads(members["MAR-INF/MANIFEST.json"])
    assert manifest["model"] == {"modelName": "tiny", "handler": "handler.py",
                                 "modelVersion": data["InputDigest"][:16], "configFile": "model-config.yaml"}

    # Repeat Create (e.g. a retried deployment): same key, nothing downloaded or uploaded.
    before = len(resolve_requests(hub))
    modified = head["LastModified"]
    again = handler(cfn_event("Create", p1), ctx)
    assert again["PhysicalResourceId"] == created["PhysicalResourceId"]
    assert again["Data"]["Skipped"] == "true"
    assert {k: v for k, v in again["Data"].items() if k != "Skipped"} == \
        {k: v for k, v in data.items() if k != "Skipped"}
    assert len(resolve_requests(hub)) == before
    assert s3.head_object(Bucket=bucket, Key=key)["LastModified"] == modified

    # Update without a content change (a mirror URL is transport only): same key and physical id.
    hub_mirror = dict(hf_spec(hub), base_url=hub.url + "/")
    same = handler(cfn_event("Update", props(bucket, source_assets, hub_mirror), physical_id=created["PhysicalResourceId"],
                             old_props=p1), ctx)
    assert same["PhysicalResourceId"] == created["PhysicalResourceId"] and same["Data"]["Skipped"] == "true"

    # Update with changed inputs: a new key and physical id; the old object stays until CFN's Delete.
    p2 = props(bucket, source_assets, hf_spec(hub, allow_patterns=["model_index.json", "unet/*.fp16.safetensors"]))
    updated = handler(cfn_event("Update", p2, physical_id=created["PhysicalResourceId"], old_props=p1), ctx)
    new_key = updated["Data"]["Key"]
    assert new_key != key and updated["PhysicalResourceId"] == f"s3://{bucket}/{new_key}"
    assert sorted(keys_in(s3, bucket)) == sorted([key, new_key])
    assert "weights/unet/config.json" not in archive_members(s3, bucket, new_key)

    # CloudFormation's cleanup Delete of the old physical id retires the old archive: it stays
    # loadable (a client or an instance that still names it) and the lifecycle rule expires it.
    before_retire = s3.head_object(Bucket=bucket, Key=key)
    old_bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    time.sleep(1.1)  # Last-Modified has whole seconds
    deleted = handler(cfn_event("Delete", p1, physical_id=created["PhysicalResourceId"]), ctx)
    assert deleted == {"PhysicalResourceId": created["PhysicalResourceId"]}
    # Retiring copies the archive onto itself: lifecycle days count from the retirement, while its
    # bytes, metadata and content type stay those the packager wrote.
    after_retire = s3.head_object(Bucket=bucket, Key=key)
    assert after_retire["LastModified"] > before_retire["LastModified"]
    assert after_retire["Metadata"] == before_retire["Metadata"]
    assert after_retire["ContentType"] == before_retire["ContentType"]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == old_bytes
    assert sorted(keys_in(s3, bucket)) == sorted([key, new_key])
    old_tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    assert old_tags["archive-state"] == "retired" and old_tags["sha256"] == data["Sha256"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", old_tags["retired-at"])
    assert "archive-state" not in {t["Key"] for t in s3.get_object_tagging(Bucket=bucket, Key=new_key)["TagSet"]}

    # Back to the first inputs (a revert): the retired archive is current again, nothing rebuilt.
    back = handler(cfn_event("Update", p1, physical_id=updated["PhysicalResourceId"], old_props=p2), ctx)
    assert back["PhysicalResourceId"] == created["PhysicalResourceId"] and back["Data"]["Skipped"] == "true"
    assert "archive-state" not in {t["Key"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}

    # Stack deletion retires the current archive too; a second Delete is a no-op; with
    # OnDelete: delete the archive goes.
    handler(cfn_event("Delete", p1, physical_id=created["PhysicalResourceId"]), ctx)
    handler(cfn_event("Delete", p1, physical_id=created["PhysicalResourceId"]), ctx)
    assert {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}[
        "archive-state"] == "retired"
    handler(cfn_event("Delete", dict(p2, OnDelete="delete"), physical_id=updated["PhysicalResourceId"]), ctx)
    handler(cfn_event("Delete", dict(p1, OnDelete="delete"), physical_id=created["PhysicalResourceId"]), ctx)
    handler(cfn_event("Delete", dict(p1, OnDelete="delete"), physical_id=created["PhysicalResourceId"]), ctx)
    assert keys_in(s3, bucket) == []


def test_an_unknown_on_delete_is_refused_at_create(s3, bucket, source_assets):
    with pytest.raises(PackagingFailed, match="OnDelete must be one of retire, delete, got 'keep'"):
        handler(cfn_event("Create", props(bucket, source_assets, {"kind": "none"}, OnDelete="keep")), FakeContext())


def test_delete_never_touches_objects_it_did_not_write(s3, bucket, source_assets, hub):
    p = props(bucket, source_assets, {"kind": "none"})
    foreign = ["models/tiny-manual.tar.gz", "models/other-0123456789abcdef.tar.gz", "elsewhere/tiny-0123456789abcdef.tar.gz"]
    for key in foreign:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    for physical in [f"s3://{bucket}/{k}" for k in foreign] + [
            "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED",
            "s3://another-bucket/models/tiny-0123456789abcdef.tar.gz"]:
        assert handler(cfn_event("Delete", p, physical_id=physical), FakeContext()) == {"PhysicalResourceId": physical}
    assert sorted(keys_in(s3, bucket)) == sorted(foreign)


def test_delete_after_a_create_that_failed_on_bad_properties_succeeds(s3, bucket, source_assets):
    """CloudFormation deletes a resource whose Create failed with the same (bad) properties: a
    Delete that failed too would leave the stack in ROLLBACK_FAILED."""
    bad = props(bucket, source_assets, {"kind": "none"}, GzipLevel="11")
    with pytest.raises(PackagingFailed, match="GzipLevel must be 0-9"):
        handler(cfn_event("Create", bad), FakeContext())
    marker = "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"  # what the Provider framework reports
    assert handler(cfn_event("Delete", bad, physical_id=marker), FakeContext()) == {"PhysicalResourceId": marker}
    no_name = {k: v for k, v in bad.items() if k != "ModelName"}
    assert handler(cfn_event("Delete", no_name, physical_id=marker), FakeContext()) == {"PhysicalResourceId": marker}
    # An archive it did write is still removed when an unrelated property is bad.
    good = handler(cfn_event("Create", props(bucket, source_assets, {"kind": "none"})), FakeContext())
    handler(cfn_event("Delete", dict(bad, OnDelete="delete"), physical_id=good["PhysicalResourceId"]), FakeContext())
    assert keys_in(s3, bucket) == [] and uploads_left(s3, bucket) == []


def test_weights_none_and_url_with_redirect(s3, bucket, source_assets, hub):
    data = os.urandom(6 * MiB + 123)
    hub.state.files["big-lama.pt"] = data
    spec = {"kind": "url", "files": [{"url": f"{hub.url}/redirect/big-lama.pt", "path": "big-lama.pt",
                                      "sha256": hashlib.sha256(data).hexdigest(),
                                      "md5": hashlib.md5(data).hexdigest(), "size": len(data)}]}
    out = handler(cfn_event("Create", props(bucket, source_assets, spec)), FakeContext())
    assert archive_members(s3, bucket, out["Data"]["Key"])["weights/big-lama.pt"] == data
    none = handler(cfn_event("Create", props(bucket, source_assets, {"kind": "none"})), FakeContext())
    assert not [m for m in archive_members(s3, bucket, none["Data"]["Key"]) if m.startswith("weights")]


def test_s3_staged_weights_prefix_and_object(s3, bucket, source_assets):
    staged = f"{bucket}-staged"
    s3.create_bucket(Bucket=staged)
    blob = os.urandom(3 * MiB)
    s3.put_object(Bucket=staged, Key="sd/unet/w.safetensors", Body=blob)
    s3.put_object(Bucket=staged, Key="sd/model_index.json", Body=b"{}")
    s3.put_object(Bucket=staged, Key="sd/", Body=b"")  # a console "folder" marker
    out = handler(cfn_event("Create", props(bucket, source_assets, {"kind": "s3", "uri": f"s3://{staged}/sd/"})),
                  FakeContext())
    members = archive_members(s3, bucket, out["Data"]["Key"])
    assert members["weights/unet/w.safetensors"] == blob and "weights/model_index.json" in members
    # Replacing a staged object under the same name changes the input digest (ETag is part of it).
    s3.put_object(Bucket=staged, Key="sd/model_index.json", Body=b'{"v": 2}')
    out2 = handler(cfn_event("Create", props(bucket, source_assets, {"kind": "s3", "uri": f"s3://{staged}/sd/"})),
                   FakeContext())
    assert out2["Data"]["Key"] != out["Data"]["Key"]
    one = {"kind": "s3", "uri": f"s3://{staged}/sd/unet/w.safetensors", "sha256": hashlib.sha256(blob).hexdigest()}
    out3 = handler(cfn_event("Create", props(bucket, source_assets, one)), FakeContext())
    assert archive_members(s3, bucket, out3["Data"]["Key"])["weights/w.safetensors"] == blob


def test_gated_repo_token_from_secrets_manager_stays_off_the_cdn(s3, bucket, source_assets, hub, weights):
    import boto3

    hub.state.gated["org/tiny"] = "hf_secret_token"
    arn = boto3.client("secretsmanager").create_secret(
        Name=f"hf-{bucket}", SecretString=json.dumps({"token": "hf_secret_token"}))["ARN"]
    with pytest.raises(PackagingFailed) as err:
        handler(cfn_event("Create", props(bucket, source_assets, hf_spec(hub))), FakeContext())
    assert_clean_failure(s3, bucket, err, "HTTP 401", "token_secret_arn")

    out = handler(cfn_event("Create", props(bucket, source_assets, hf_spec(hub, token_secret_arn=arn))), FakeContext())
    assert out["Data"]["Skipped"] == "false"
    authed = [r for r in hub.state.requests if r["auth"]]
    assert authed and all(r["host"].startswith("127.0.0.1") for r in authed)
    cdn = [r for r in hub.state.requests if r["path"].startswith("/cdn/")]
    assert cdn and all(r["auth"] is None for r in cdn)
    assert any("cache=1" in r["path"] and r["auth"] for r in hub.state.requests)  # same-host redirect kept it


def test_a_dropped_connection_is_resumed_with_a_range_request(s3, bucket, source_assets, hub, weights):
    hub.state.drops["diffusion_pytorch_model.fp16.safetensors"] = Drop(at=7 * MiB, times=1)
    out = handler(cfn_event("Create", props(bucket, source_assets, hf_spec(hub))), FakeContext())
    members = archive_members(s3, bucket, out["Data"]["Key"])
    assert members["weights/unet/diffusion_pytorch_model.fp16.safetensors"] == \
        weights["unet/diffusion_pytorch_model.fp16.safetensors"]
    assert any(r["range"] == f"bytes={7 * MiB}-" for r in hub.state.requests)


# ---------------------------------------------------------------------------------------------
# faults: one line, upload aborted, nothing left
# ---------------------------------------------------------------------------------------------
def test_connection_dropped_mid_file_for_good(s3, bucket, source_assets, hub, weights):
    hub.state.drops["diffusion_pytorch_model.fp16.safetensors"] = Drop(at=8 * MiB)  # every response, same byte
    with pytest.raises(PackagingFailed) as err:
        handler(cfn_event("Create", props(bucket, source_assets, hf_spec(hub))), FakeContext())
    assert_clean_failure(s3, bucket, err, "Create TinyArtifact:", "diffusion_pytorch_model.fp16.safetensors",
                         f"connection closed at byte {8 * MiB}", "no progress after")


def test_connection_dropped_and_the_server_cannot_resume(s3, bucket, source_assets, hub, weights):
    hub.state.drops["diffusion_pytorch_model.fp16.safetensors"] = Drop(at=8 * MiB, times=1)
    hub.state.no_range = True
    with pytest.raises(PackagingFailed) as err:
        handler(cfn_event("Create", props(bucket, source_assets, hf_spec(hub))), FakeContext())
    assert_clean_failure(s3, bucket, err, "cannot resume")


def test_digest_mismatch(s3, bucket, source_assets, hub):
    data = os.urandom(11 * MiB)
    hub.state.files["w.bin"] = data
    spec = {"kind": "url", "files": [{"url": f"{hub.url}/files/w.bin", "sha256": "0" * 64}]}
    with pytest.raises(PackagingFailed) as err:
        handler(cfn_event("Create", props(bucket, source_assets, spec)), FakeContext())
    assert_clean_failure(s3, bucket, err, "weights/w.bin", f"sha256 {hashlib.sha256(data).hexdigest()}",
                         "does not match the expected " + "0" * 64)


def test_hub_files_that_differ_from_the_listing(s3, bucket, source_assets, hub, weights):
    """The Hub listing's git blob ids (small files) and LFS sha256 (large files) are verified."""
    hub.state.tamper["unet/config.json"] = b'{"sample_size": 9}\n'  # same size, other bytes
    with pytest.raises(PackagingFailed) as err:
        handler(cfn_event("Create", props(bucket, source_assets, hf_spec(hub))), FakeContext())
    assert_clean_failure(s3, bucket, err, "weights/unet/config.json", "git blob id",
                         git_blob_sha1(weights["unet/config.json"]))
    hub.state.tamper = {"unet/diffusion_pytorch_model.fp16.safetensors": os.urandom(12 * MiB)}
    with pytest.raises(PackagingFailed) as err:
        handler(cfn_event("Create", props(bucket, source_assets, hf_spec(hub))), FakeContext())
    assert_clean_failure(s3, bucket, err, "diffusion_pytorch_model.fp16.safetensors", "does not match the expected "
                         + hashlib.sha256(weights["unet/diffusion_pytorch_model.fp16.safetensors"]).hexdigest())


def test_missing_file(s3, bucket, source_assets, hub):
    spec = {"kind": "url", "files": [{"url": f"{hub.url}/files/missing.bin"}]}
    with pytest.raises(PackagingFailed) as err:
        handler(cfn_event("Create", props(bucket, source_assets, spec)), FakeContext())
    assert_clean_failure(s3, bucket, err, f"HTTP 404 Not Found for {hub.url}/files/missing.bin")


def test_time_budget_stops_before_the_lambda_limit(s3, bucket, source_assets, hub, weights):
    hub.state.throttle_bps = 2 * MiB  # 12 MiB take 6 s; the budget is 8 s - 5 s margin = 3 s
    with pytest.raises(PackagingFailed) as err:
        handler(cfn_event("Create", props(bucket, source_assets, hf_spec(hub))), FakeContext(seconds=8))
    assert_clean_failure(s3, bucket, err, "used up while downloading weights/unet/diffusion_pytorch_model.fp16")
    assert re.search(r"time budget of [23] s", str(err.value))


@pytest.fixture
def restricted_credentials(moto_server, monkeypatch, bucket, source_assets):
    """Credentials of an IAM user; moto's server enforces IAM while the fixture is active."""
    import boto3

    def make(deny_actions: list[str]) -> None:
        iam = boto3.client("iam")
        user = f"packager-{bucket}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {"Effect": "Deny", "Action": deny_actions, "Resource": f"arn:aws:s3:::{bucket}/models/*"},
            ]}))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        _set_auth(moto_server, "0")  # from now on every request is authenticated and authorized

    yield make
    _set_auth(moto_server, "inf")


def _set_auth(endpoint: str, count: str) -> None:
    req = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=count.encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def test_s3_access_denied(s3, bucket, source_assets, hub, weights, restricted_credentials, moto_server):
    restricted_credentials(["s3:PutObject"])
    with pytest.raises(PackagingFailed) as err:
        handler(cfn_event("Create", props(bucket, source_assets, hf_spec(hub))), FakeContext())
    _set_auth(moto_server, "inf")
    assert_clean_failure(s3, bucket, err, "AccessDenied", f"s3://{bucket}/models/tiny-")


def test_failure_after_the_upload_completed_removes_the_object(s3, bucket, source_assets, hub, weights,
                                                                restricted_credentials, moto_server):
    restricted_credentials(["s3:PutObjectTagging"])
    with pytest.raises(PackagingFailed) as err:
        handler(cfn_event("Create", props(bucket, source_assets, hf_spec(hub))), FakeContext())
    _set_auth(moto_server, "inf")
    assert_clean_failure(s3, bucket, err, "cannot tag", "AccessDenied")
