"""The local multi-model endpoint's platform side (``mme.local.emulator``) on a real TorchServe
with the endpoint's settings and the packaged tiny models: load on first use, least recently used
models unloaded when the next does not fit the memory budget or when the container answers 507,
requests in flight finished before an unload, counters and sizes in the status."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import threading
import time

import numpy as np
import pytest
from PIL import Image

from mme.local.emulator import EndpointEmulator, opaque_model_name
from mme.model_data import FolderModelData, S3ModelData
from mme.paths import REPO_ROOT as REPO

pytestmark = pytest.mark.torchserve

MANIFEST = {"runtime": "python", "model": {"modelName": "fixture", "handler": "handler.py", "modelVersion": "1.0"},
            "archiverVersion": "0.12.0"}
# A model for the 507 path: it answers 507 (out of memory) while another model's worker runs next to
# it, as an accelerator that holds one model at a time would; {"always": true} gets a 507 anyway.
TIGHT_HANDLER = '''
import json
import psutil


class TightMemoryHandler:
    def initialize(self, context):
        self.initialized = True

    def handle(self, data, context):
        me = psutil.Process()
        others = []
        for proc in me.parent().children():
            try:
                if proc.pid != me.pid and proc.status() != psutil.STATUS_ZOMBIE and \
                        "model_service_worker" in " ".join(proc.cmdline()):
                    others.append(proc)
            except psutil.Error:  # exited meanwhile
                continue
        out = []
        for i, row in enumerate(data):
            body = json.loads(row.get("body") or b"{}")
            if others or body.get("always"):
                context.set_response_status(code=507, phrase="out of memory", idx=i)
                out.append(json.dumps({"error": {"code": "out_of_resources", "message": "no room next to "
                                                 + str(len(others)) + " other worker(s)"}}))
            else:
                out.append(json.dumps({"ok": True}))
        return out
'''
BROKEN_HANDLER = '''
class BrokenHandler:
    def initialize(self, context):
        raise RuntimeError("this model cannot load")

    def handle(self, data, context):
        return ["never"]
'''


def jpeg_b64(array) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()).decode()


IMAGE = np.full((120, 160, 3), 90, np.uint8)
IMAGE[30:90, 40:120] = (230, 40, 40)
MASK = np.zeros((120, 160), np.uint8)
MASK[30:90, 40:120] = 255
BODIES = {
    "sam": {"image": jpeg_b64(IMAGE), "gen_args": json.dumps({"point_coords": [80, 60], "point_labels": 1})},
    "lama": {"image": jpeg_b64(IMAGE), "mask_image": jpeg_b64(MASK)},
    "sd": {"image": jpeg_b64(IMAGE), "mask_image": jpeg_b64(MASK), "prompt": "a vase",
           "gen_args": json.dumps({"num_inference_steps": 2, "seed": 3})},
}


def body(model: str) -> bytes:
    return json.dumps(BODIES[model]).encode()


def fixture_archive(folder, name: str, handler_source: str):
    """``folder/<name>.tar.gz`` holding handler.py and MAR-INF/MANIFEST.json at its root."""
    source = folder / f"{name}-src"
    (source / "MAR-INF").mkdir(parents=True)
    (source / "handler.py").write_text(handler_source)
    (source / "MAR-INF" / "MANIFEST.json").write_text(json.dumps(MANIFEST))
    with tarfile.open(folder / f"{name}.tar.gz", "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(source)), recursive=False)
    return f"{name}.tar.gz"


@pytest.fixture
def store(tiny_archives, tmp_path):
    """A model prefix holding the tiny archives and the fixture models."""
    folder = tmp_path / "prefix"
    folder.mkdir()
    targets = {}
    for model, info in tiny_archives.items():
        (folder / info["target_model"]).symlink_to(info["artifact"])
        targets[model] = info["target_model"]
    targets["tight"] = fixture_archive(folder, "tight", TIGHT_HANDLER)
    targets["broken"] = fixture_archive(folder, "broken", BROKEN_HANDLER)
    return folder, targets


@pytest.fixture
def emulator(sagemaker_container, store, tmp_path):
    folder, _ = store
    events = []
    em = EndpointEmulator(sagemaker_container, FolderModelData(folder), tmp_path / "models", 64 * 2**30,
                          on_event=events.append)
    em.events = events
    yield em
    for model in em.status()["models"]:
        em.unload(model["target_model"])
    assert not [name for name in sagemaker_container.models() if not name.startswith("contract-")]


def model_view(em, target) -> dict:
    return next(m for m in em.status()["models"] if m["target_model"] == target)


def test_first_use_loads_then_hits(emulator, store, sagemaker_container):
    _, targets = store
    target = targets["lama"]
    first = emulator.invoke(target, body("lama"))
    assert first.status == 200 and "generated_image" in json.loads(first.body)
    view = model_view(emulator, target)
    assert (view["state"], view["loads"], view["misses"], view["hits"]) == ("loaded", 1, 1, 0)
    name = opaque_model_name(target)
    assert view["model_name"] == name and name in sagemaker_container.models()
    assert (emulator.models_dir / name / "model" / "MAR-INF" / "MANIFEST.json").is_file()
    stages = view["last_load"]
    assert stages["unpacked_bytes"] > 0 and stages["load_s"] > 0 and stages["attempts"] == 1
    assert view["size_bytes"] > 50 * 2**20  # a Python worker with torch

    assert emulator.invoke(target, body("lama")).status == 200
    view = model_view(emulator, target)
    assert (view["loads"], view["misses"], view["hits"]) == (1, 1, 1)


def test_least_recently_used_unloads_when_the_next_does_not_fit(emulator, store, sagemaker_container):
    _, targets = store
    for model in ("sd", "sam"):                                            # the two largest
        assert emulator.invoke(targets[model], body(model)).status == 200
    sizes = {m: model_view(emulator, targets[m])["size_bytes"] for m in ("sd", "sam")}
    # room for these two and a bit, not for a third worker
    emulator.memory_budget_bytes = sizes["sd"] + sizes["sam"] + min(sizes.values()) // 3
    assert emulator.invoke(targets["sam"], body("sam")).status == 200      # sd is now the LRU

    assert emulator.invoke(targets["lama"], body("lama")).status == 200
    states = {m: model_view(emulator, targets[m])["state"] for m in ("sam", "lama", "sd")}
    assert states == {"sam": "loaded", "lama": "loaded", "sd": "unloaded"}
    assert opaque_model_name(targets["sd"]) not in sagemaker_container.models()
    assert not (emulator.models_dir / opaque_model_name(targets["sd"])).exists()
    assert any(e.startswith(f"unloaded {targets['sd']} to make room for {targets['lama']}") for e in emulator.events)

    assert emulator.invoke(targets["sd"], body("sd")).status == 200        # back: sam is the LRU now
    views = {m: model_view(emulator, targets[m]) for m in ("sam", "lama", "sd")}
    assert {m: v["state"] for m, v in views.items()} == {"sam": "unloaded", "lama": "loaded", "sd": "loaded"}
    assert (views["sd"]["loads"], views["sd"]["unloads"], views["sam"]["unloads"]) == (2, 1, 1)
    assert emulator.status()["used_bytes"] <= emulator.memory_budget_bytes


def test_a_507_unloads_the_least_recently_used_idle_model_and_retries(emulator, store, sagemaker_container):
    _, targets = store
    assert emulator.invoke(targets["lama"], body("lama")).status == 200
    reply = emulator.invoke(targets["tight"], b"{}")
    assert reply.status == 200 and json.loads(reply.body) == {"ok": True}
    assert model_view(emulator, targets["lama"])["state"] == "unloaded"
    assert opaque_model_name(targets["lama"]) not in sagemaker_container.models()
    # nothing left to unload: the container's 507 reaches the caller
    reply = emulator.invoke(targets["tight"], b'{"always": true}')
    assert reply.status == 507 and not reply.platform
    assert json.loads(reply.body)["error"]["code"] == "out_of_resources"


def test_requests_in_flight_finish_before_their_model_is_unloaded(emulator, store):
    _, targets = store
    assert emulator.invoke(targets["lama"], body("lama")).status == 200
    big = np.zeros((768, 1024, 3), np.uint8)
    big[..., 1] = np.arange(1024, dtype=np.uint8)[None, :]
    mask = np.zeros((768, 1024), np.uint8)
    mask[200:600, 300:800] = 255
    slow = json.dumps({"image": jpeg_b64(big), "mask_image": jpeg_b64(mask)}).encode()  # seconds of work
    replies = []

    def request():
        replies.append(emulator.invoke(targets["lama"], slow))
        replies.append(time.monotonic())

    worker = threading.Thread(target=request)
    worker.start()
    deadline = time.monotonic() + 30
    while model_view(emulator, targets["lama"])["inflight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert emulator.unload(targets["lama"])
    unloaded_at = time.monotonic()
    worker.join()
    assert replies[0].status == 200 and "generated_image" in json.loads(replies[0].body)
    assert replies[1] <= unloaded_at          # answered before the unload went ahead


def test_concurrent_first_requests_load_once(emulator, store):
    _, targets = store
    replies = []
    threads = [threading.Thread(target=lambda: replies.append(emulator.invoke(targets["lama"], body("lama"))))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in replies] == [200] * 6
    view = model_view(emulator, targets["lama"])
    assert (view["loads"], view["misses"] + view["hits"]) == (1, 6) and view["misses"] >= 1


def test_platform_errors(emulator, store, sagemaker_container):
    _, targets = store
    reply = emulator.invoke("nope-0000.tar.gz", b"{}")
    assert (reply.status, reply.platform, json.loads(reply.body)["error"]["code"]) == (404, True, "model_not_found")
    for bad in ("../etc/passwd", "/abs.tar.gz", ""):
        reply = emulator.invoke(bad, b"{}")
        assert reply.status == 400 and json.loads(reply.body)["error"]["code"] == "invalid_target_model"
    reply = emulator.invoke(targets["broken"], b"{}")
    error = json.loads(reply.body)["error"]
    assert reply.status == 500 and reply.platform and error["code"] == "model_load_failed", error
    assert "logs:" in error["message"]
    # nothing of it is left: not registered (TorchServe would retry its workers forever), not unpacked
    assert opaque_model_name(targets["broken"]) not in sagemaker_container.models()
    assert not (emulator.models_dir / opaque_model_name(targets["broken"])).exists()
    assert emulator.invoke(targets["broken"], b"{}").status == 500   # answered from memory, no new load
    assert model_view(emulator, targets["broken"])["loads"] == 0


def test_loads_from_an_s3_prefix(sagemaker_container, tiny_archives, tmp_path, monkeypatch):
    """The same platform with the archives in S3 (moto's server on 127.0.0.1): downloaded first."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="models")
        target = tiny_archives["lama"]["target_model"]
        s3.upload_file(tiny_archives["lama"]["artifact"], "models", "models/" + target)
        em = EndpointEmulator(sagemaker_container, S3ModelData("s3://models/models/", s3), tmp_path / "m", 2**36)
        try:
            assert em.invoke(target, body("lama")).status == 200
            stages = model_view(em, target)["last_load"]
            assert stages["archive_bytes"] == (tiny_archives["lama"]["artifact"]).stat().st_size
            assert stages["download_s"] > 0
            assert not (tmp_path / "m" / opaque_model_name(target) / "model.tar.gz").exists()  # unpacked, removed
            assert em.invoke("missing.tar.gz", b"{}").status == 404
        finally:
            em.unload(target)
    finally:
        server.stop()


def test_cold_start_stages_add_up(sagemaker_container, store, tmp_path):
    """The cold-start benchmark's split of one load on a real TorchServe: every stage measured,
    the stages add up to the first response, and TorchServe's own figures are found in its logs."""
    import sys

    sys.path.insert(0, str(REPO))
    from bench.cold_start import STAGES, first_request, measure_once

    folder, targets = store
    em = EndpointEmulator(sagemaker_container, FolderModelData(folder), tmp_path / "models", 2**40)
    run = measure_once(em, sagemaker_container, targets["lama"], first_request("lama", 2))
    assert all(run[key] is not None and run[key] >= 0 for key in STAGES), run
    assert sum(run[key] for key in STAGES) == pytest.approx(run["total_s"])
    assert 0 < run["initialize_s"] < run["worker_load_s"] < run["register_s"] + run["initialize_s"]
    assert run["first_request_s"] > 0 and run["worker_size_mib"] > 50
    assert model_view(em, targets["lama"])["state"] == "unloaded"     # measured cold, left cold
