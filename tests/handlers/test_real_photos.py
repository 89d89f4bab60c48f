"""What users really send, through the three handlers (tiny models, real ts Context): phone photos
with each EXIF orientation, pictures with transparency, and every image mode.

SAM's masks are compared with segment_anything's own ``SamPredictor`` on the picture as displayed:
a click at display coordinates must select what SAM selects at that point of the displayed picture.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from handler_testlib import (
    b64,
    b64_png,
    decode_b64_png,
    displayed,
    oriented_jpeg,
    png16,
    rect_mask,
    run_batch,
    sample_image,
    start_handler,
)
from PIL import Image

import mme_serving as ms
from mme_serving.ops import alpha_inside_mask
from mme_serving.pixels import flatten

W, H = 45, 31  # landscape as displayed; orientations 5-8 store it portrait
CLICK = (33, 9)  # right half, top: lands elsewhere in every wrongly oriented reading
HOLE = rect_mask(W, H, (8, 6, 20, 17))


@pytest.fixture(scope="module")
def sam(tmp_path_factory, tiny_weights):
    return start_handler("sam", tmp_path_factory.mktemp("sam"), tiny_weights("sam"))


@pytest.fixture(scope="module")
def lama(tmp_path_factory, tiny_weights):
    return start_handler("lama", tmp_path_factory.mktemp("lama"), tiny_weights("lama"))


@pytest.fixture(scope="module")
def sd(tmp_path_factory, tiny_weights):
    return start_handler("sd", tmp_path_factory.mktemp("sd"), tiny_weights("sd"))


def one(handler_ctx, body) -> dict:
    handler, ctx = handler_ctx
    [(status, out)] = run_batch(handler, ctx, [body])
    assert status == 200, out
    return out


def reference_mask(handler, picture: np.ndarray, point) -> np.ndarray:
    """segment_anything's SamPredictor on the same model: the best of three masks at ``point``."""
    from segment_anything import SamPredictor

    predictor = SamPredictor(handler.model)
    predictor.set_image(picture)
    masks, scores, _ = predictor.predict(point_coords=np.array([point], dtype=float), point_labels=np.array([1]),
                                         multimask_output=True)
    return masks[int(np.argmax(scores))]


def photo(orientation: int) -> bytes:
    return oriented_jpeg(sample_image(W, H, seed=3), orientation)


# ------------------------------------------------------------------------------------------ orientation
@pytest.mark.parametrize("orientation", range(1, 9))
def test_sam_click_in_display_coordinates(sam, orientation):
    data = photo(orientation)
    out = one(sam, {"image": b64(data), "gen_args": {"point_coords": list(CLICK), "point_labels": 1}})
    mask = decode_b64_png(out["generated_image"]) > 0
    assert mask.shape == (H, W)
    assert np.array_equal(mask, reference_mask(sam[0], displayed(data), CLICK))


def test_sam_refuses_a_click_outside_the_displayed_picture(sam):
    """(40, 25) exists in the displayed 45 x 31 picture but not in the stored 31 x 45 one, and
    (25, 40) the other way round."""
    handler, ctx = sam
    ok = {"image": b64(photo(6)), "gen_args": {"point_coords": [40, 25]}}
    outside = {"image": b64(photo(6)), "gen_args": {"point_coords": [25, 40]}}
    [(good, _), (bad, body)] = run_batch(handler, ctx, [ok, outside])
    assert good == 200 and bad == 400 and body["error"]["code"] == "point_outside_image"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_lama_erases_at_the_displayed_size(lama, orientation):
    data = photo(orientation)
    out = decode_b64_png(one(lama, {"image": b64(data), "mask_image": b64_png(HOLE)})["generated_image"])
    assert out.shape == (H, W, 3)
    assert np.array_equal(out[~HOLE], displayed(data)[~HOLE])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_sd_replaces_at_the_displayed_size(sd, orientation):
    data = photo(orientation)
    body = {"image": b64(data), "mask_image": b64_png(HOLE), "prompt": "a red vase",
            "gen_args": {"num_inference_steps": 1, "seed": 3}}
    out = decode_b64_png(one(sd, body)["generated_image"])
    assert out.shape == (H, W, 3)
    assert np.array_equal(out[~HOLE], displayed(data)[~HOLE])


# ------------------------------------------------------------------------------------------ transparency
def cutout() -> np.ndarray:
    """An RGBA product shot: opaque object on the left, transparent on the right (hidden pixels
    hold a colour the viewer never shows), a soft edge in between."""
    rgba = np.dstack([sample_image(W, H, seed=5), np.zeros((H, W), np.uint8)])
    rgba[:, :25, 3] = 255
    rgba[:, 25:28, 3] = [170, 85, 20]
    return rgba


def test_sam_sees_transparency_over_white(sam):
    rgba = cutout()
    args = {"point_coords": [10, 15]}
    with_alpha = one(sam, {"image": b64_png(rgba), "gen_args": args})
    flat = one(sam, {"image": b64_png(np.asarray(flatten(Image.fromarray(rgba, "RGBA")))), "gen_args": args})
    assert with_alpha["generated_image"] == flat["generated_image"]


def test_lama_keeps_alpha_and_continues_it_inside_the_mask(lama):
    rgba = cutout()
    hole = rect_mask(W, H, (18, 8, 34, 20))  # over the edge of the cut-out
    out = decode_b64_png(one(lama, {"image": b64_png(rgba), "mask_image": b64_png(hole)})["generated_image"])
    assert out.shape == (H, W, 4)
    assert np.array_equal(out[~hole], rgba[~hole])  # outside: every byte, alpha and hidden colours
    assert np.array_equal(out[..., 3], alpha_inside_mask(rgba[..., 3], hole, "surroundings"))
    assert (out[8:20, 18:24, 3] == 255).all() and (out[8:20, 30:34, 3] == 0).all()
    flat = np.asarray(flatten(Image.fromarray(rgba, "RGBA")))
    fill = decode_b64_png(one(lama, {"image": b64_png(flat), "mask_image": b64_png(hole)})["generated_image"])
    assert np.array_equal(out[..., :3][hole], fill[hole])  # the model saw the picture over white


def test_sd_keeps_alpha_and_paints_opaque_inside_the_mask(sd):
    rgba = cutout()
    hole = rect_mask(W, H, (18, 8, 34, 20))
    args = {"num_inference_steps": 1, "seed": 11}
    out = decode_b64_png(one(sd, {"image": b64_png(rgba), "mask_image": b64_png(hole), "prompt": "a lamp",
                                  "gen_args": args})["generated_image"])
    assert out.shape == (H, W, 4)
    assert np.array_equal(out[~hole], rgba[~hole]) and (out[hole][:, 3] == 255).all()
    flat = np.asarray(flatten(Image.fromarray(rgba, "RGBA")))
    same = decode_b64_png(one(sd, {"image": b64_png(flat), "mask_image": b64_png(hole), "prompt": "a lamp",
                                   "gen_args": args})["generated_image"])
    assert np.array_equal(out[..., :3][hole], same[hole])


# ------------------------------------------------------------------------------------------ image modes
def _encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def mode_cases() -> dict[str, bytes]:
    """One file per kind of input the decoder converts (see mme_serving.pixels)."""
    rgb = Image.fromarray(sample_image(W, H, seed=7))
    levels = np.linspace(0, 65535, W * H).reshape(H, W).astype(np.uint16)
    pal = rgb.quantize(32)
    return {
        "grey": _encoded(rgb.convert("L")),
        "bilevel": _encoded(rgb.convert("1")),
        "palette": _encoded(pal),
        "palette_transparent": _encoded(pal, transparency=int(np.asarray(pal)[0, 0])),
        "grey16": _encoded(Image.fromarray(levels)),
        "rgb16": png16(np.dstack([levels, levels[::-1], levels[:, ::-1]])),
        "cmyk_jpeg": _encoded(rgb.convert("CMYK"), "JPEG", quality=95),
        "grey_alpha": _encoded(rgb.convert("LA")),
    }


@pytest.mark.parametrize("case", sorted(mode_cases()))
def test_lama_serves_every_mode(lama, case):
    data = mode_cases()[case]
    expected = np.asarray(ms.decode_image(data, "image"))  # the decoder's 8-bit RGB(A) reading
    out = decode_b64_png(one(lama, {"image": b64(data), "mask_image": b64_png(HOLE)})["generated_image"])
    assert out.shape == expected.shape and out.shape[-1] in (3, 4)
    assert np.array_equal(out[~HOLE], expected[~HOLE])
    if case == "grey16":
        assert len(np.unique(expected)) > 100  # levels kept, not clipped to white
    if case == "cmyk_jpeg":
        rgb = sample_image(W, H, seed=7).astype(int)
        assert np.abs(expected[..., :3].astype(int) - rgb).mean() < 4
