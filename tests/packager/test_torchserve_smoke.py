"""Smoke test: real TorchServe 0.12 registers a packaged archive and serves from its weights/ folder."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from mme_constructs.packager.core import LocalDestination, package
from mme_constructs.packager.sources import SourceTree
from mme_constructs.packager.specs import parse_spec

pytestmark = pytest.mark.torchserve


@pytest.mark.skipif(shutil.which("java") is None, reason="TorchServe needs Java")
def test_torchserve_registers_the_archive(tmp_path, model_src):
    from mme.local.torchserve import LocalServer

    weights = tmp_path / "weights"
    (weights / "unet").mkdir(parents=True)
    (weights / "model_index.json").write_text("{}")
    (weights / "unet" / "w.bin").write_bytes(os.urandom(1024))
    result = package("tiny", SourceTree.from_dirs(model_src), parse_spec({"kind": "local", "path": str(weights)}),
                     LocalDestination(tmp_path / "out"))
    archive = tmp_path / "out" / result.target_model
    with LocalServer(tmp_path / "ts") as server:
        server.register(archive, "tiny", initial_workers=1, timeout=180)
        status, body = server.predict("tiny", {"x": 1})
        assert status == 200, body
        assert json.loads(body) == {"weights": ["model_index.json", "unet"]}
        described = server.describe("tiny")[0]
        assert described["modelVersion"] == result.input_digest[:16]
        server.unregister("tiny")
