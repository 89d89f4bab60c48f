"""Fixtures of the packager tests: moto's S3 server over HTTP, the fake Hub, model sources.

* ``moto``: ``moto.server.ThreadedMotoServer`` on 127.0.0.1 (free port) for the session;
  boto3 reaches it through ``AWS_ENDPOINT_URL`` (the standard setting the packager honours).
* ``hub``: :class:`packager_fakes.FakeServer` (fake Hugging Face Hub + plain URLs), per test.
* ``bucket``: a fresh bucket per test.
* ``model_src``: a small model source (``handler.py``, ``model-config.yaml``, a helper module)
  and a ``common/`` folder, like ``model_sources/<name>`` + ``model_sources/common``.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from packager_fakes import FakeServer  # noqa: E402
from packager_helpers import zip_dir  # noqa: E402


@pytest.fixture(scope="session")
def moto_server():
    """A moto server (all services) on 127.0.0.1; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(moto_server, monkeypatch):
    """Standard AWS settings pointing every boto3 client at the moto server."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    # Small parts so a few MiB of weights already make a multi-part upload; quick retries.
    monkeypatch.setenv("MME_PACKAGER_PART_SIZE_MIB", "5")
    monkeypatch.setenv("MME_PACKAGER_RETRY_BASE_DELAY_S", "0.05")
    yield


@pytest.fixture
def s3(aws_env):
    import boto3

    return boto3.client("s3")


@pytest.fixture
def bucket(s3):
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def hub():
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture
def model_src(tmp_path):
    """(model_dir, common_dir) of a small TorchServe model source."""
    model = tmp_path / "src" / "tiny"
    common = tmp_path / "src" / "common"
    (common / "tiny_common").mkdir(parents=True)
    model.mkdir(parents=True)
    (model / "handler.py").write_text(
        "from tiny_common.base import EchoHandler\n\n_service = EchoHandler()\n\n\n"
        "def handle(data, context):\n    if data is None:  # TorchServe's load-time call\n        return None\n"
        "    return _service.handle(data, context)\n")
    (model / "model-config.yaml").write_text("minWorkers: 1\nmaxWorkers: 1\nhandler:\n  greeting: hi\n")
    (model / "helper.py").write_text("VALUE = 42\n")
    (model / "weights.yaml").write_text("kind: none\n")  # packager input, never archived
    (model / "__pycache__").mkdir()
    (model / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0junk")
    (common / "tiny_common" / "__init__.py").write_text('"""Shared serving code."""\n')
    (common / "tiny_common" / "base.py").write_text(
        "import json, os\n\n\nclass EchoHandler:\n"
        "    def handle(self, data, context):\n"
        "        props = context.system_properties\n"
        "        files = sorted(os.listdir(os.path.join(props['model_dir'], 'weights')))\n"
        "        return [json.dumps({'weights': files}) for _ in data]\n")
    return model, common


@pytest.fixture
def source_assets(s3, model_src):
    """The model source folders uploaded as zip 'CDK assets'; returns the Sources property."""
    asset_bucket = f"cdk-assets-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=asset_bucket)
    sources = []
    for directory in model_src:
        key = f"{uuid.uuid4().hex}.zip"
        s3.put_object(Bucket=asset_bucket, Key=key, Body=zip_dir(directory))
        sources.append({"Bucket": asset_bucket, "Key": key})
    return sources


