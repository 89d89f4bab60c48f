"""The container contract cases shared by the tests of the virtual environment's TorchServe
(tests/client/test_container_contract.py) and of the serving image (tests/image): the original
sample's client payloads (JPEG image and JPEG mask, ``gen_args`` as a JSON string), a bad request
per model, and SageMaker's load -> invoke -> unload -> load again sequence on one model.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from mme.local.emulator import opaque_model_name, unpack

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


def load_invoke_unload_reload(container, model: str, archive: dict, models_root: Path, prefix: str = "contract-"):
    """SageMaker's calls for one ``model`` on a started ``container`` (a
    :class:`mme.local.container_api.ContainerApi`): the archive unpacked the way the platform
    unpacks it (``<models_root>/<model_name>/model``), registered by JSON body (and refused a second
    time), the sample payload answered with a picture of the input's size, bad requests refused with
    a 4xx and a message while the worker keeps serving, unregistered (404 after), registered again."""
    target = archive["target_model"]
    name = prefix + opaque_model_name(target)[:12]
    url = models_root / name / "model"                       # /opt/ml/models/<model_name>/model
    unpack(archive["artifact"], url)
    assert (url / "MAR-INF" / "MANIFEST.json").is_file() and (url / "handler.py").is_file()

    status, body = container.load_model(name, url)
    assert status == 200, body
    try:
        assert container.load_model(name, url)[0] == 409       # already loaded
        assert {"modelName": name, "modelUrl": container.container_url(url)} in listed_models(container)
        _answers_and_refuses(container, model, name, target)
    finally:
        unloaded = container.unload_model(name)  # checked after: a failure above stays the one reported
    assert unloaded[0] == 200, unloaded[1]
    assert container.invoke(name, json.dumps(sample_payload(model)).encode(), target)[0] == 404
    assert name not in container.models()

    status, body = container.load_model(name, url)             # registered again after the unload
    assert status == 200, body
    try:
        status, _, data = container.invoke(name, json.dumps(sample_payload(model)).encode(), target)
        assert status == 200 and "generated_image" in json.loads(data)
    finally:
        unloaded = container.unload_model(name)
    assert unloaded[0] == 200, unloaded[1]
    assert container.unload_model(name)[0] == 404


def _answers_and_refuses(container, model: str, name: str, target: str) -> None:
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
    # the worker lives on: the next good request is answered
    status, _, data = container.invoke(name, json.dumps(sample_payload(model)).encode(), target)
    assert status == 200, data[:300]


def listed_models(container) -> list[dict]:
    """The container's ``GET /models`` list."""
    status, _, data = container.call("management", "GET", "/models")
    assert status == 200
    return json.loads(data)["models"]
