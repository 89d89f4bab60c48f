"""End to end on a real TorchServe 0.12 (Java 17): the packaged tiny sam and lama archives are
registered through the management API (token auth on, keys from key_file.json), served over
HTTP with good and bad requests, unregistered, and the server stops with no process left."""

from __future__ import annotations

import json
import os
import urllib.request

import numpy as np
import pytest
from handler_testlib import b64_png, decode_b64_png, package_model, sample_image

from mme.local.torchserve import LocalServer

pytestmark = pytest.mark.torchserve

W, H = 45, 31


@pytest.fixture(scope="module")
def archives(tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("archives")
    return {name: package_model(name, tiny_weights(name), out) for name in ("sam", "lama")}


@pytest.fixture(scope="module")
def server(archives, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("torchserve")  # kept after the run: logs/ for post-mortems
    srv = LocalServer(workdir)
    srv.start()
    try:
        for name, archive in archives.items():
            srv.register(archive, name, initial_workers=1)
        yield srv
    finally:
        srv.stop()
    assert not srv.is_running()


def predict(srv, model, payload):
    status, body = srv.predict(model, payload)
    return status, json.loads(body)


def worker_pids(srv, model):
    [desc] = srv.describe(model)
    assert [w["status"] for w in desc["workers"]] == ["READY"]
    return [w["pid"] for w in desc["workers"]]


def test_token_auth_is_on(server):
    keys = server.keys()
    assert keys["inference"] and keys["management"] and keys["inference"] != keys["management"]
    req = urllib.request.Request(f"{server.inference_url}/predictions/sam", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code in (400, 401)
    wrong = urllib.request.Request(f"{server.management_url}/models", headers={"Authorization": "Bearer nope"})
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(wrong, timeout=10)


def test_models_registered_from_their_archives(server):
    assert sorted(server.models()) == ["lama", "sam"]
    for model in ("sam", "lama"):
        [desc] = server.describe(model)
        assert desc["batchSize"] == 1 and desc["minWorkers"] == 1
        assert worker_pids(server, model)


def test_sam_good_bad_good(server):
    pids = worker_pids(server, "sam")
    img = sample_image(W, H)
    status, first = predict(server, "sam", {"image": b64_png(img),
                                            "gen_args": json.dumps({"point_coords": [20, 10], "point_labels": 1})})
    assert status == 200 and set(first) >= {"generated_image", "score", "image_id"}
    mask = decode_b64_png(first["generated_image"])
    assert mask.shape == (H, W) and set(np.unique(mask)) <= {0, 255}

    bad = [
        (b"this is not json", "invalid_json"),
        ({"image": "***", "gen_args": {"point_coords": [1, 1]}}, "invalid_base64"),
        ({"image": b64_png(img), "gen_args": {"point_coords": [W + 5, 1]}}, "point_outside_image"),
        ({"image": b64_png(img), "gen_args": {"point_coords": [1, 1], "point_labels": 3}}, "invalid_point_label"),
        ({"image_id": "f" * 64, "gen_args": {"point_coords": [1, 1]}}, "unknown_image_id"),
    ]
    for payload, code in bad:
        status, body = predict(server, "sam", payload)
        assert status == 400, (code, body)
        assert body["error"]["code"] == code and body["error"]["message"]

    # the worker lived on: same process, and the embedding cache still answers by id
    assert worker_pids(server, "sam") == pids
    status, again = predict(server, "sam", {"image_id": first["image_id"], "gen_args": {"point_coords": [20, 10]}})
    assert status == 200 and again["embedding_cached"] is True
    assert again["generated_image"] == first["generated_image"]


def test_lama_good_bad_good(server):
    pids = worker_pids(server, "lama")
    img = sample_image(W, H, seed=2)
    mask = np.zeros((H, W), np.uint8)
    mask[5:20, 10:30] = 255
    status, body = predict(server, "lama", {"image": b64_png(img), "mask_image": b64_png(mask)})
    assert status == 200
    out = decode_b64_png(body["generated_image"])
    assert out.shape == (H, W, 3) and np.array_equal(out[mask == 0], img[mask == 0])

    for payload, code in [
        ({"image": b64_png(img)}, "missing_field"),
        ({"image": b64_png(img), "mask_image": b64_png(np.zeros((H, W), np.uint8))}, "empty_mask"),
        ({"image": b64_png(img), "mask_image": b64_png(mask[:-1])}, "mask_size_mismatch"),
        ([1, 2, 3], "invalid_request"),
    ]:
        status, err = predict(server, "lama", payload)
        assert status == 400 and err["error"]["code"] == code

    assert worker_pids(server, "lama") == pids
    status, again = predict(server, "lama", {"image": b64_png(img), "mask_image": b64_png(mask)})
    assert status == 200 and again == body


def test_error_responses_are_json_with_the_status(server):
    status, headers, body = server.call("inference", "POST", "/predictions/sam", b'{"gen_args": {}}',
                                        "application/json")
    assert status == 400 and headers.get("content-type", headers.get("Content-Type")) == "application/json"
    assert json.loads(body)["error"]["code"] == "missing_field"


def test_renew_key_replaces_the_inference_key(server):
    old = server.keys()["inference"]
    new = server.renew_key("inference")
    assert new and new != old and server.keys()["inference"] == new
    stale = urllib.request.Request(f"{server.inference_url}/predictions/sam", data=b"{}", method="POST",
                                   headers={"Content-Type": "application/json", "Authorization": f"Bearer {old}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(stale, timeout=10)
    refusal = err.value.read().decode(errors="replace")
    assert err.value.code in (400, 401) and "error" not in json.loads(refusal), refusal  # TorchServe, not the handler
    status, body = predict(server, "sam", {"gen_args": {}})  # the new key (read from key_file.json) works
    assert status == 400 and body["error"]["code"] == "missing_field"


def test_unregister(server):
    server.unregister("lama")
    assert server.models() == ["sam"]
    status, _ = server.predict("lama", {"image": "x"})
    assert status == 404


def test_stop_from_another_handle_leaves_no_process(tmp_path):
    """``mme local down`` runs in another process: attach to the working dir and stop."""
    srv = LocalServer(tmp_path / "ts").start()
    java = srv._java_pid()
    assert java and srv.is_running()
    other = LocalServer.attach(srv.workdir)
    other.stop()
    assert srv.process.wait(timeout=10) is not None
    assert not other.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(java, 0)
