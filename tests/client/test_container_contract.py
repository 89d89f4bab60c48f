"""The serving container's contract with SageMaker's multi-model agent, on a real TorchServe started
with the endpoint's settings: the SageMaker PyTorch toolkit's own ``mme-ts.properties`` (from the
pinned ``sagemaker-pytorch-inference`` distribution) + ``container/config.properties``.

Each tiny model archive is unpacked the way SageMaker unpacks it (``<root>/<model_name>/model``),
registered with the JSON body ``{"model_name", "url"}``, invoked at ``/models/<name>/invoke`` with
the ``X-Amzn-SageMaker-Target-Model`` header and the original sample's client payloads (JPEG image
and JPEG mask, ``gen_args`` as a JSON string), then unloaded and registered again. A change to
``container/config.properties``, the handlers or the packager that breaks this path fails here.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from mme import container_config
from mme.endpoint_emulator import opaque_model_name, unpack

pytestmark = pytest.mark.torchserve

WIDTH, HEIGHT = 400, 300


def jpeg_b64(array: np.ndarray) -> str:
    """What the original sample's clients send: ``img.save(output, format="JPEG")``, base64."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()).decode("utf8")


def photo() -> np.ndarray:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    img = np.stack([xx * 255 // WIDTH, yy * 255 // HEIGHT, (xx + yy) * 127 // (WIDTH + HEIGHT)], -1).astype(np.uint8)
    img[90:210, 120:260] = (240, 200, 40)
    return img


def mask() -> np.ndarray:
    m = np.zeros((HEIGHT, WIDTH), np.uint8)
    m[100:200, 130:250] = 255
    return m


def sample_payload(model: str) -> dict:
    """The original sample's client payload for ``model`` (workspace/<model>/client.py)."""
    if model == "sam":
        return {"image": jpeg_b64(photo()),
                "gen_args": json.dumps({"point_coords": [190, 150], "point_labels": 1, "dilate_kernel_size": 15})}
    if model == "lama":
        return {"image": jpeg_b64(photo()), "mask_image": jpeg_b64(mask())}
    return {"image": jpeg_b64(photo()), "mask_image": jpeg_b64(mask()), "prompt": "a teddy bear on a bench",
            "negative_prompt": "ugly", "gen_args": json.dumps({"num_inference_steps": 2, "guidance_scale": 10, "seed": 1})}


BAD_REQUESTS = {
    "sam": ({"image": jpeg_b64(photo()), "gen_args": json.dumps({"point_coords": [WIDTH + 5, 10], "point_labels": 1})},
            "point_outside_image"),
    "lama": ({"image": jpeg_b64(photo())}, "missing_field"),
    "sd": ({"image": jpeg_b64(photo()), "mask_image": jpeg_b64(mask()), "prompt": "  ",
            "gen_args": json.dumps({"seed": 1})}, None),
}


def effective_properties(container) -> dict:
    return container_config.parse_properties((container.workdir / "config.properties").read_text())


def test_torchserve_runs_with_the_toolkits_properties_and_the_images(sagemaker_container):
    toolkit = container_config.parse_properties(container_config.toolkit_file("mme-ts.properties").read_text())
    image = container_config.parse_properties((container_config.CONTAINER_DIR / "config.properties").read_text())
    effective = effective_properties(sagemaker_container)
    # the distribution's file, not a copy: the keys the endpoint depends on are in it
    assert toolkit["model_store"] == "/" and toolkit["decode_input_request"] == "false"
    assert toolkit["enable_envvars_config"] == "true" and toolkit["default_workers_per_model"] == "1"
    local_only = {"disable_token_authorization", "disable_system_metrics"}
    toolkit_set_at_start = {"default_service_handler", "inference_address", "management_address"}
    for key, value in toolkit.items():
        if key in image or key in local_only or key in toolkit_set_at_start:
            continue
        assert effective[key] == value, key
    for key, value in image.items():
        if key not in local_only:
            assert effective[key] == value, key
    # the toolkit's file ends without a newline: its last key must not swallow the next line
    assert effective["enable_model_api"] == "true"
    assert effective["default_response_timeout"] == container_config.dockerfile_env()["SAGEMAKER_MODEL_SERVER_TIMEOUT"]
    assert effective["default_service_handler"] == container_config.TOOLKIT_HANDLER_SERVICE + ":handle"
    # ... and TorchServe really read them (its start-up summary in ts_log.log)
    log = (sagemaker_container.log_dir / "ts_log.log").read_text()
    assert re.search(r"Model Store: /\s*$", log, re.M), log[:2000]
    assert f"Maximum Request Size: {image['max_request_size']}" in log
    assert "Default workers per model: 1" in log


@pytest.mark.parametrize("model", ["sam", "lama", "sd"])
def test_load_invoke_unload_reload_the_sagemaker_way(model, sagemaker_container, tiny_archives, tmp_path):
    container = sagemaker_container
    target = tiny_archives[model]["target_model"]
    name = "contract-" + opaque_model_name(target)[:12]
    url = tmp_path / name / "model"                       # /opt/ml/models/<model_name>/model
    unpack(tiny_archives[model]["artifact"], url)
    assert (url / "MAR-INF" / "MANIFEST.json").is_file() and (url / "handler.py").is_file()

    status, body = container.load_model(name, url)
    assert status == 200, body
    try:
        assert container.load_model(name, url)[0] == 409       # already loaded
        assert {"modelName": name, "modelUrl": str(url)} in _listed(container)

        status, headers, data = container.invoke(name, json.dumps(sample_payload(model)).encode(), target)
        assert status == 200, data[:300]
        answer = json.loads(data)
        with Image.open(io.BytesIO(base64.b64decode(answer["generated_image"]))) as out:
            assert out.size == (WIDTH, HEIGHT)
            if model == "sam":
                assert set(np.unique(np.asarray(out.convert("L")))) <= {0, 255}

        bad, code = BAD_REQUESTS[model]
        status, _, data = container.invoke(name, json.dumps(bad).encode(), target)
        assert 400 <= status < 500, (status, data[:300])
        error = json.loads(data)["error"]
        assert error["message"] and (code is None or error["code"] == code), error
        status, _, data = container.invoke(name, b"\x89PNG not json", target)
        assert status == 400 and json.loads(data)["error"]["code"] == "invalid_json"
    finally:
        status, body = container.unload_model(name)
    assert status == 200, body
    assert container.invoke(name, json.dumps(sample_payload(model)).encode(), target)[0] == 404
    assert name not in container.models()

    status, body = container.load_model(name, url)             # registered again after the unload
    assert status == 200, body
    try:
        status, _, data = container.invoke(name, json.dumps(sample_payload(model)).encode(), target)
        assert status == 200 and "generated_image" in json.loads(data)
    finally:
        assert container.unload_model(name)[0] == 200
    assert container.unload_model(name)[0] == 404


def _listed(container) -> list[dict]:
    status, _, data = container.call("management", "GET", "/models")
    assert status == 200
    return json.loads(data)["models"]
