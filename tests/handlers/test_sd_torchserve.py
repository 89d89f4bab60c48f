"""The sd model end to end on a real TorchServe 0.12 (Java 17): the tiny SD2-inpaint-like
pipeline packaged into a tar.gz (the archive layout the packager builds), registered through
the management API from that archive as SageMaker MME loads a model on first use, called over
HTTP with token auth (keys read from TorchServe's key_file.json), then unregistered.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sd_support import b64_png, decode_png, inpaint_request, noise_image, package_model, rect_mask

from mme.local.torchserve import LocalServer

pytestmark = pytest.mark.torchserve

MODEL = "sd"


@pytest.fixture(scope="module")
def sd_archive(tiny_weights, tmp_path_factory):
    return package_model(MODEL, tiny_weights("sd"), tmp_path_factory.mktemp("sd-archive"))


@pytest.fixture(scope="module")
def server(sd_archive, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sd-torchserve")       # kept: logs/ for post-mortems
    with LocalServer(workdir, config={"max_request_size": 20_000_000,
                                      "max_response_size": 20_000_000}) as srv:
        srv.register(sd_archive, MODEL, initial_workers=1)
        yield srv
        if MODEL in srv.models():
            srv.unregister(MODEL)


def _predict(srv: LocalServer, payload) -> tuple[int, dict]:
    status, body = srv.predict(MODEL, payload, timeout=180)
    return status, json.loads(body)


def test_registered_from_the_archive_with_a_live_worker(server):
    assert MODEL in server.models()
    [desc] = server.describe(MODEL)
    assert desc["batchSize"] == 1
    assert [w["status"] for w in desc["workers"]] == ["READY"]


def test_good_bad_good(server):
    img, mask = noise_image(97, 61, seed=1), rect_mask(97, 61, (0, 20, 40, 61))   # touches 2 borders
    good = inpaint_request(img, mask, prompt="a wooden bench", seed=5, num_inference_steps=2)

    status, body = _predict(server, good)
    assert status == 200, body
    first = body["generated_image"]
    out = decode_png(first)
    assert out.shape == img.shape and body["seed"] == 5
    assert (out[~mask] == img[~mask]).all()
    assert (out[mask] != img[mask]).any(axis=-1).mean() > 0.5

    bad = {
        "empty_prompt": dict(good, prompt=""),
        "out_of_range": dict(good, gen_args={"num_inference_steps": 1000}),
        "mask_size_mismatch": dict(good, mask_image=b64_png(rect_mask(61, 97, (0, 0, 5, 5)))),
        "empty_mask": dict(good, mask_image=b64_png(np.zeros((61, 97), dtype=np.uint8))),
        "invalid_base64": dict(good, image="%%%"),
        "invalid_json": b"{not json",
    }
    for code, payload in bad.items():
        status, body = _predict(server, payload)
        assert status == 400, (code, body)
        assert body["error"]["code"] == code and body["error"]["message"], body

    # the worker survived the bad requests and still answers, byte for byte the same
    status, again = _predict(server, good)
    assert status == 200 and again["generated_image"] == first
    [desc] = server.describe(MODEL)
    assert [w["status"] for w in desc["workers"]] == ["READY"]


def test_gen_args_as_a_json_string_like_the_original_sample(server):
    img, mask = noise_image(64, 64, seed=2), rect_mask(64, 64, (20, 20, 44, 44))
    payload = inpaint_request(img, mask, prompt="a cat")
    payload["negative_prompt"] = "blurry"
    payload["gen_args"] = json.dumps({"num_inference_steps": 2, "guidance_scale": 7.5, "seed": 42})
    status, body = _predict(server, payload)
    assert status == 200 and body["seed"] == 42


def test_unregister(server):
    server.unregister(MODEL)
    assert MODEL not in server.models()
    status, _ = server.predict(MODEL, {"prompt": "x"})
    assert status == 404
