"""Real photos end to end: the packaged tiny sam, lama and sd archives on a real TorchServe 0.12
started as the serving container starts it, behind the local endpoint (``mme local``'s platform
emulator), driven through the client library (``EditingClient`` + ``LocalBackend``) the way users call it,
with files as they come from phones and design tools: each EXIF orientation, transparency, grey,
palette, 16-bit and CMYK files, and a large photo."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from handler_testlib import displayed, oriented_jpeg, package_model, png16, png_bytes, rect_mask, sample_image
from PIL import Image

import mme_serving as ms
from mme.client import EditingClient
from mme.client.local import LocalBackend
from mme.local.emulator import EndpointEmulator
from mme.local.endpoint import serve
from mme.model_data import FolderModelData
from mme.models import MODELS
from mme.local.sagemaker_container import SageMakerContainer
from mme_serving.ops import alpha_inside_mask

pytestmark = pytest.mark.torchserve

W, H = 45, 31
CLICK = (33, 9)
HOLE = rect_mask(W, H, (8, 6, 20, 17))


@pytest.fixture(scope="module")
def client(tiny_weights, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("photo-archives")
    targets = {name: package_model(name, tiny_weights(name), prefix).name for name in MODELS}
    workdir = tmp_path_factory.mktemp("photo-torchserve")  # kept: logs/ for post-mortems
    with SageMakerContainer(workdir / "server") as container:
        emulator = EndpointEmulator(container, FolderModelData(prefix), workdir / "models", 64 * 2**30)
        endpoint = serve(emulator, token="photos-token")
        try:  # models load on first use, as on a multi-model endpoint
            yield EditingClient(LocalBackend(endpoint.url, "photos-token", targets))
        finally:
            endpoint.shutdown()


@pytest.fixture(scope="module")
def reference_sam(tiny_weights):
    """segment_anything's SamPredictor on the tiny checkpoint, loaded the plain way."""
    from segment_anything import SamPredictor

    from mme.tiny.sam import make_model

    weights = tiny_weights("sam")
    model = make_model(json.loads((weights / "arch.json").read_text()))
    model.load_state_dict(torch.load(weights / "sam_tiny.pth", map_location="cpu", weights_only=True))
    return SamPredictor(model.eval())


def best_mask(predictor, picture: np.ndarray, point) -> np.ndarray:
    predictor.set_image(picture)
    masks, scores, _ = predictor.predict(point_coords=np.array([point], dtype=float), point_labels=np.array([1]),
                                         multimask_output=True)
    return masks[int(np.argmax(scores))]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_phone_photo_in_every_orientation(client, reference_sam, tmp_path, orientation):
    path = tmp_path / f"photo-{orientation}.jpg"
    path.write_bytes(oriented_jpeg(sample_image(W, H, seed=3), orientation))
    shown = displayed(path.read_bytes())

    sel = client.select(path, CLICK)
    assert sel.mask.size == (W, H)
    assert np.array_equal(sel.array, best_mask(reference_sam, shown, CLICK))

    erased = client.erase(path, HOLE)
    assert erased.size == (W, H) and np.array_equal(np.asarray(erased)[~HOLE], shown[~HOLE])
    replaced = client.replace(path, HOLE, "a red vase", seed=4, steps=1)
    assert replaced.size == (W, H) and np.array_equal(np.asarray(replaced)[~HOLE], shown[~HOLE])


def test_transparent_cutout_keeps_its_alpha(client):
    rgba = np.dstack([sample_image(W, H, seed=5), np.zeros((H, W), np.uint8)])
    rgba[:, :25, 3] = 255
    hole = rect_mask(W, H, (18, 8, 34, 20))
    data = png_bytes(rgba)

    erased = np.asarray(client.erase(data, hole))
    assert erased.shape == (H, W, 4) and np.array_equal(erased[~hole], rgba[~hole])
    assert np.array_equal(erased[..., 3], alpha_inside_mask(rgba[..., 3], hole, "surroundings"))

    replaced = np.asarray(client.replace(data, hole, "a lamp", seed=2, steps=1))
    assert replaced.shape == (H, W, 4) and np.array_equal(replaced[~hole], rgba[~hole])
    assert (replaced[..., 3][hole] == 255).all()


def _encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("case", ["grey", "palette_transparent", "grey16", "rgb16", "cmyk"])
def test_other_modes_erase(client, case):
    rgb = Image.fromarray(sample_image(W, H, seed=7))
    levels = np.linspace(0, 65535, W * H).reshape(H, W).astype(np.uint16)
    pal = rgb.quantize(32)
    data = {
        "grey": lambda: _encoded(rgb.convert("L")),
        "palette_transparent": lambda: _encoded(pal, transparency=int(np.asarray(pal)[0, 0])),
        "grey16": lambda: _encoded(Image.fromarray(levels)),
        "rgb16": lambda: png16(np.dstack([levels, levels[::-1], levels[:, ::-1]])),
        "cmyk": lambda: _encoded(rgb.convert("CMYK"), "JPEG", quality=95),
    }[case]()
    expected = np.asarray(ms.decode_image(data, "image"))
    erased = np.asarray(client.erase(data, HOLE))
    assert erased.shape == expected.shape and np.array_equal(erased[~HOLE], expected[~HOLE])


def test_large_photo_erase(client, tmp_path):
    """A 2400 x 1800 photo with a small object: LaMa inpaints a region around it (region.py), the
    rest comes back byte for byte."""
    picture = np.tile(sample_image(400, 300, seed=9), (6, 6, 1))
    path = tmp_path / "large.jpg"
    path.write_bytes(oriented_jpeg(picture, 6, quality=90))  # stored 1800 x 2400, shown 2400 x 1800
    shown = displayed(path.read_bytes())
    hole = rect_mask(2400, 1800, (1500, 600, 1628, 696))
    erased = np.asarray(client.erase(path, hole))
    assert erased.shape == (1800, 2400, 3) and np.array_equal(erased[~hole], shown[~hole])
    assert (erased[hole] != shown[hole]).any(axis=-1).mean() > 0.5
