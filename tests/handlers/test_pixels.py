"""The shared decoder on real files: EXIF orientation, every image mode users send (grey, palette,
16-bit, CMYK, transparency), masks, and the array operations the handlers build outputs with."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from handler_testlib import displayed, oriented_jpeg, png16, png_bytes, sample_image
from PIL import ExifTags, Image

import mme_serving as ms
from mme_serving import Request, RequestError
from mme_serving.ops import alpha_inside_mask, dilate, mask_bbox
from mme_serving.pixels import flatten, mask_plane

W, H = 45, 31  # a landscape picture: orientations 5-8 store it as portrait


def code_of(fn, *args, **kwargs) -> str:
    with pytest.raises(RequestError) as info:
        fn(*args, **kwargs)
    return info.value.code


# ------------------------------------------------------------------------------------------ orientation
@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_decodes_as_displayed(orientation):
    data = oriented_jpeg(sample_image(W, H), orientation)
    out = ms.decode_image(data, "image")
    assert out.size == (W, H) and out.mode == "RGB"
    assert np.array_equal(np.asarray(out), displayed(data))  # what a browser shows, pixel for pixel
    assert out.getexif().get(ExifTags.Base.Orientation, 1) == 1  # applied once, not again downstream


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_exif_orientation(fmt):
    display = sample_image(W, H)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    stored = Image.fromarray(display).transpose(Image.Transpose.ROTATE_90)
    buf = io.BytesIO()
    stored.save(buf, format=fmt, exif=exif.tobytes(), **({"lossless": True} if fmt == "WEBP" else {}))
    out = np.asarray(ms.decode_image(buf.getvalue(), "image"))
    assert np.array_equal(out, display)


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_mask_size_is_the_displayed_size(orientation):
    """A portrait-stored photo shown landscape takes a landscape mask, and refuses a mask of its
    stored size (the header is enough to tell: no pixel of the mask is decoded)."""
    image = ms.decode_image(oriented_jpeg(sample_image(W, H), orientation), "image")
    good = np.zeros((H, W), np.uint8)
    good[5:9, 10:20] = 255
    req = Request({"mask_image": base64.b64encode(png_bytes(good)).decode()})
    assert np.array_equal(req.mask(image.size), good > 0)
    stored_size = Request({"mask_image": base64.b64encode(png_bytes(np.full((W, H), 255, np.uint8))).decode()})
    assert code_of(stored_size.mask, image.size) == "mask_size_mismatch"


def test_an_oriented_mask_is_read_as_displayed():
    display_mask = np.zeros((H, W), np.uint8)
    display_mask[3:12, 20:40] = 255
    data = oriented_jpeg(np.dstack([display_mask] * 3), 8, quality=100)
    mask = Request({"mask_image": base64.b64encode(data).decode()}).mask((W, H))
    assert mask.shape == (H, W) and (mask == (display_mask > 0)).mean() > 0.99


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_corrupt_exif_block_leaves_the_stored_pixels():
    buf = io.BytesIO()
    Image.fromarray(sample_image(W, H)).save(buf, format="JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    assert ms.decode_image(buf.getvalue(), "image").size == (W, H)


# ------------------------------------------------------------------------------------------ modes
def _encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_grey_and_bilevel_become_rgb_with_the_same_levels():
    grey = sample_image(W, H)[..., 0]
    out = np.asarray(ms.decode_image(_encoded(Image.fromarray(grey, "L")), "image"))
    assert out.shape == (H, W, 3) and np.array_equal(out, np.dstack([grey] * 3))
    bits = Image.fromarray(grey > 128).convert("1")
    out = np.asarray(ms.decode_image(_encoded(bits), "image"))
    assert set(np.unique(out)) == {0, 255} and np.array_equal(out[..., 0] > 0, grey > 128)


def test_palette_expands_and_keeps_its_transparent_entry():
    rgb = Image.fromarray(sample_image(W, H))
    pal = rgb.quantize(16)
    expected = np.asarray(pal.convert("RGB"))
    assert np.array_equal(np.asarray(ms.decode_image(_encoded(pal), "image")), expected)
    index = np.asarray(pal)[0, 0]
    out = ms.decode_image(_encoded(pal, transparency=int(index)), "image")
    assert out.mode == "RGBA"
    alpha = np.asarray(out)[..., 3]
    assert np.array_equal(alpha == 0, np.asarray(pal) == index)
    assert np.array_equal(np.asarray(out)[..., :3], expected)


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_alpha_channels_are_kept(mode):
    rgba = np.dstack([sample_image(W, H), np.linspace(0, 255, W * H).reshape(H, W).astype(np.uint8)])
    img = Image.fromarray(rgba, "RGBA").convert(mode)
    out = ms.decode_image(_encoded(img), "image")
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out), np.asarray(img.convert("RGBA")))


def test_colour_key_transparency_becomes_alpha():
    rgb = sample_image(W, H)
    key = tuple(int(v) for v in rgb[0, 0])
    out = np.asarray(ms.decode_image(_encoded(Image.fromarray(rgb), transparency=key), "image"))
    assert out.shape == (H, W, 4)
    assert np.array_equal(out[..., 3] == 0, (rgb == key).all(axis=-1))


def test_sixteen_bit_grey_keeps_its_levels():
    """Pillow's convert() clips 16-bit grey at 255 (a white picture); the decoder keeps the high
    byte, as Pillow itself reduces 16-bit RGB PNGs."""
    levels = np.linspace(0, 65535, W * H).reshape(H, W).astype(np.uint16)
    data = _encoded(Image.fromarray(levels))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    out = np.asarray(ms.decode_image(data, "image"))
    assert np.array_equal(out, np.dstack([(levels >> 8).astype(np.uint8)] * 3))
    assert len(np.unique(out)) > 200  # a gradient, not a white picture


@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_colour(channels):
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 65536, (H, W, channels), dtype=np.uint16)
    out = np.asarray(ms.decode_image(png16(levels), "image"))
    assert out.shape == (H, W, channels) and np.array_equal(out, (levels >> 8).astype(np.uint8))


def test_cmyk_jpeg_decodes_to_its_colours():
    rgb = sample_image(W, H)
    data = _encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=100)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out = np.asarray(ms.decode_image(data, "image")).astype(int)
    assert out.shape == (H, W, 3) and np.abs(out - rgb).mean() < 3  # JPEG loss only


# ------------------------------------------------------------------------------------------ what models see
def test_models_see_transparency_over_white_and_masks_over_black():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = 200  # hidden colour of transparent pixels
    rgba[0, :, 3] = [0, 128, 255]
    rgba[1, :, 3] = 255
    img = Image.fromarray(rgba, "RGBA")
    assert np.asarray(flatten(img))[0, :, 0].tolist() == [255, 227, 200]  # 200*a + 255*(1-a), rounded
    assert np.asarray(mask_plane(img))[0].tolist() == [0, 100, 200]
    data = _encoded(img)
    assert np.array_equal(np.asarray(ms.decode_image(data, "image", mode="RGB")), np.asarray(flatten(img)))
    strokes = np.zeros((H, W, 4), np.uint8)
    strokes[..., :3] = 255  # white everywhere, drawn only where opaque
    strokes[4:9, 5:15, 3] = 255
    mask = Request({"mask_image": base64.b64encode(_encoded(Image.fromarray(strokes, "RGBA"))).decode()}).mask((W, H))
    assert mask.sum() == 5 * 10 and mask[4:9, 5:15].all()


# ------------------------------------------------------------------------------------------ ops
def test_alpha_inside_the_mask():
    alpha = np.full((6, 8), 255, np.uint8)
    alpha[:, 5:] = 0  # a cut-out: transparent on the right
    mask = np.zeros((6, 8), bool)
    mask[1:5, 2:7] = True  # over the edge
    out = alpha_inside_mask(alpha, mask, "surroundings")
    assert np.array_equal(out[~mask], alpha[~mask])
    assert (out[1:5, 2:4] == 255).all() and (out[1:5, 6] == 0).all()  # each takes its nearest outside pixel
    assert (alpha_inside_mask(alpha, mask, "opaque")[mask] == 255).all()
    assert (alpha_inside_mask(alpha, np.ones_like(mask), "surroundings") == 255).all()
    with pytest.raises(ValueError):
        alpha_inside_mask(alpha, mask, "mean")


def _dilate_reference(mask: np.ndarray, k: int) -> np.ndarray:
    """The previous implementation: one k x k max-pool (cv2.dilate's result)."""
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    left = (k - 1) // 2
    t = F.pad(t, (left, k - 1 - left, left, k - 1 - left))
    return (F.max_pool2d(t, k, stride=1)[0, 0] > 0.5).numpy()


@pytest.mark.parametrize("k", [2, 3, 4, 15, 16, 31])
def test_dilate_equals_the_square_max_pool(k):
    rng = np.random.default_rng(k)
    mask = rng.random((53, 71)) > 0.97
    mask[0, 0] = mask[-1, -1] = True  # corners: the padding
    assert np.array_equal(dilate(mask, k), _dilate_reference(mask, k))
    assert dilate(mask, 1) is mask and dilate(mask, 0) is mask


def test_mask_bbox():
    mask = np.zeros((7, 5), bool)
    assert mask_bbox(mask) is None
    mask[2:4, 1:3] = True
    assert mask_bbox(mask) == (1, 2, 3, 4)
