"""The shared contract (model_sources/common/mme_serving): parsing, codecs, errors, batch driver."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import numpy as np
import pytest
import torch
from handler_testlib import b64_png, make_context, png_bytes, run_batch, sample_image
from PIL import Image

import mme_serving as ms
from mme_serving import Arg, ImageLimits, Request, RequestError


def code_of(fn, *args, **kwargs) -> str:
    with pytest.raises(RequestError) as info:
        fn(*args, **kwargs)
    assert info.value.status == 400
    return info.value.code


# ------------------------------------------------------------------------------------------ body
@pytest.mark.parametrize("row", [
    {"body": b'{"a": 1}'}, {"body": bytearray(b'{"a": 1}')}, {"body": '{"a": 1}'}, {"body": {"a": 1}},
    {"data": b'{"a": 1}'}, {"data": {"a": 1}}, {"body": None, "data": b'{"a": 1}'},
])
def test_parse_body_accepts_every_torchserve_shape(row):
    assert ms.parse_body(row) == {"a": 1}


@pytest.mark.parametrize("row,code", [
    ({"body": b"\xff\xfe{"}, "invalid_json"),
    ({"body": b"not json"}, "invalid_json"),
    ({"body": b""}, "invalid_json"),
    ({"body": b"   "}, "invalid_json"),
    ({"body": b"[1, 2]"}, "invalid_request"),
    ({"body": b'"text"'}, "invalid_request"),
    ({"body": [1]}, "invalid_request"),
    ({"body": b"[" * 100000}, "invalid_json"),
])
def test_parse_body_rejects(row, code):
    assert code_of(ms.parse_body, row) == code


# ------------------------------------------------------------------------------------------ base64
def test_b64_tolerates_data_url_and_line_breaks():
    raw = png_bytes(sample_image(8, 8))
    encoded = base64.encodebytes(raw).decode()  # with newlines every 76 chars
    assert ms.b64decode_field(encoded, "image") == raw
    assert ms.b64decode_field("data:image/png;base64," + base64.b64encode(raw).decode(), "image") == raw


@pytest.mark.parametrize("value,code", [
    ("!!!not-base64!!!", "invalid_base64"), ("abc", "invalid_base64"), ("", "invalid_base64"),
    (12345, "invalid_field"), ({"x": 1}, "invalid_field"), (["a"], "invalid_field"),
])
def test_b64_rejects(value, code):
    assert code_of(ms.b64decode_field, value, "image") == code


def test_b64_length_limit():
    assert code_of(ms.b64decode_field, "A" * 100, "image", ImageLimits(max_base64_chars=50)) == "image_too_large"


# ------------------------------------------------------------------------------------------ images
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_decode_supported_formats(fmt):
    img = sample_image(21, 13)
    out = ms.decode_image(png_bytes(img, fmt), "image")
    assert out.mode == "RGB" and out.size == (21, 13)
    if fmt == "PNG":
        assert np.array_equal(np.asarray(out), img)


def test_decode_keeps_alpha_and_takes_first_frame():
    rgba = Image.fromarray(np.dstack([sample_image(9, 7), np.full((7, 9), 128, np.uint8)]), "RGBA")
    assert ms.decode_image(png_bytes(rgba), "image").mode == "RGBA"
    assert ms.decode_image(png_bytes(rgba), "image", mode="RGB").mode == "RGB"
    frames = [Image.fromarray(sample_image(9, 7, seed=s)) for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert ms.decode_image(buf.getvalue(), "image").size == (9, 7)


@pytest.mark.parametrize("data", [
    b"hello, not an image", b"",
    png_bytes(sample_image(8, 8), "GIF"), png_bytes(sample_image(8, 8), "BMP"), png_bytes(sample_image(8, 8), "TIFF"),
    png_bytes(sample_image(64, 64))[:200],  # truncated PNG
])
def test_decode_rejects_non_images(data):
    assert code_of(ms.decode_image, data, "image") == "invalid_image"


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression-bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_pixel_limit_checked_from_the_header_before_decoding():
    bomb = _png_claiming(60000, 60000)  # 3.6 Gpx declared in a ~100-byte file
    assert len(bomb) < 200
    assert code_of(ms.decode_image, bomb, "image", ImageLimits(max_pixels=4096 * 4096)) == "image_too_large"
    ok = png_bytes(sample_image(40, 25))
    assert code_of(ms.decode_image, ok, "image", ImageLimits(max_pixels=40 * 25 - 1)) == "image_too_large"
    assert ms.decode_image(ok, "image", ImageLimits(max_pixels=40 * 25)).size == (40, 25)


@pytest.mark.parametrize("pixels", [40 * 40, 80 * 80])  # warning range (> limit) and error range (> 2x limit)
def test_pillow_decompression_bomb_guard_becomes_400(monkeypatch, pixels):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    side = int(pixels ** 0.5)
    data = png_bytes(sample_image(side, side))
    err = pytest.raises(RequestError, ms.decode_image, data, "image", ImageLimits(max_pixels=10**9)).value
    assert err.code == "image_too_large" and "decompression bomb" in err.message


# ------------------------------------------------------------------------------------------ masks
def test_mask_binarization_and_checks():
    arr = np.zeros((7, 9), np.uint8)
    arr[2:4, 3:6] = 200
    arr[0, 0] = 127  # at the threshold: not masked
    mask = ms.mask_from_image(Image.fromarray(arr), (9, 7))
    assert mask.dtype == bool and mask.sum() == 6 and not mask[0, 0]
    rgb = Image.fromarray(np.dstack([arr] * 3))
    assert np.array_equal(ms.mask_from_image(rgb, (9, 7)), mask)
    one_bit = Image.fromarray(arr > 127).convert("1")
    assert np.array_equal(ms.mask_from_image(one_bit, (9, 7)), mask)
    assert code_of(ms.mask_from_image, Image.fromarray(arr), (9, 8)) == "mask_size_mismatch"
    assert code_of(ms.mask_from_image, Image.fromarray(np.zeros((7, 9), np.uint8)), (9, 7)) == "empty_mask"
    assert not ms.mask_from_image(Image.fromarray(np.zeros((7, 9), np.uint8)), (9, 7), allow_empty=True).any()


def test_mask_size_checked_from_the_header_before_decoding():
    """A mask of the wrong size is refused from its header: no pixel of it is decoded."""
    wrong = _png_claiming(5000, 3000)  # header only: its pixel data would not decode
    assert code_of(ms.decode_image, wrong, "image") == "invalid_image"
    req = Request({"mask_image": base64.b64encode(wrong).decode()})
    assert code_of(req.mask, (40, 25)) == "mask_size_mismatch"
    good = Request({"mask_image": b64_png(np.full((25, 40), 255, np.uint8))})
    assert good.mask((40, 25)).all()


def test_encode_png_is_lossless_and_binary_for_masks():
    mask = np.zeros((5, 6), bool)
    mask[1:3, 2:5] = True
    raw = base64.b64decode(ms.encode_png_b64(mask))
    with Image.open(io.BytesIO(raw)) as img:
        assert img.format == "PNG" and img.mode == "L" and img.size == (6, 5)
        assert set(np.unique(np.asarray(img))) == {0, 255}
        assert np.array_equal(np.asarray(img) > 0, mask)
    rgb = sample_image(11, 3)
    with Image.open(io.BytesIO(ms.encode_png(rgb))) as img:
        assert np.array_equal(np.asarray(img), rgb)


def test_dilate():
    point = np.zeros((9, 9), bool)
    point[4, 4] = True
    assert ms.dilate(point, 0) is point and ms.dilate(point, 1) is point
    assert ms.dilate(point, 3).sum() == 9 and ms.dilate(point, 4).sum() == 16
    edge = np.zeros((9, 9), bool)
    edge[0, 0] = True
    assert ms.dilate(edge, 5).sum() == 9  # clipped at the border, same size out
    assert ms.dilate(edge, 5).shape == (9, 9)


# ------------------------------------------------------------------------------------------ gen_args
SPEC = {
    "steps": Arg(int, 20, min=1, max=50),
    "scale": Arg(float, 7.5, min=0.0, max=20.0),
    "flag": Arg(bool, False),
    "mode": Arg(str, "a", choices=("a", "b")),
}


def test_gen_args_object_string_and_defaults_agree():
    raw = {"steps": 30, "scale": 2, "flag": True, "mode": "b", "unknown_extra": [1]}
    assert ms.parse_gen_args(raw, SPEC) == ms.parse_gen_args(json.dumps(raw), SPEC) == \
        {"steps": 30, "scale": 2.0, "flag": True, "mode": "b"}
    defaults = {"steps": 20, "scale": 7.5, "flag": False, "mode": "a"}
    assert ms.parse_gen_args(None, SPEC) == ms.parse_gen_args("", SPEC) == ms.parse_gen_args({}, SPEC) == defaults
    assert ms.parse_gen_args({"steps": 30.0}, SPEC)["steps"] == 30
    assert ms.parse_gen_args({"steps": None}, SPEC)["steps"] == 20


@pytest.mark.parametrize("raw,code", [
    ("{not json", "invalid_gen_args"), ("[1, 2]", "invalid_gen_args"), ([1, 2], "invalid_gen_args"),
    (5, "invalid_gen_args"),
    ({"steps": 30.5}, "invalid_argument"), ({"steps": "30"}, "invalid_argument"), ({"steps": True}, "invalid_argument"),
    ({"steps": 0}, "out_of_range"), ({"steps": 51}, "out_of_range"),
    ({"scale": "high"}, "invalid_argument"), ({"scale": -0.1}, "out_of_range"), ('{"scale": NaN}', "invalid_argument"),
    ('{"scale": Infinity}', "invalid_argument"), ('{"scale": 1%s}' % ("0" * 400), "invalid_argument"),
    ({"flag": 1}, "invalid_argument"), ({"flag": "true"}, "invalid_argument"),
    ({"mode": "c"}, "invalid_argument"), ({"mode": 1}, "invalid_argument"),
])
def test_gen_args_rejects(raw, code):
    assert code_of(ms.parse_gen_args, raw, SPEC) == code


def test_gen_args_required():
    assert code_of(ms.parse_gen_args, {}, {"x": Arg(int, required=True)}) == "missing_field"


# ------------------------------------------------------------------------------------------ Request
def test_request_text_fields():
    req = Request({"prompt": "  a red car ", "negative_prompt": "", "n": 3})
    assert req.text("prompt", max_chars=20) == "a red car"
    assert req.text("negative_prompt", required=False, allow_empty=True) == ""
    assert req.text("absent", required=False) == ""
    assert code_of(Request({"prompt": "   "}).text, "prompt") == "empty_prompt"
    assert code_of(Request({"prompt": "x" * 11}).text, "prompt", max_chars=10) == "prompt_too_long"
    assert code_of(Request({}).text, "prompt") == "missing_field"
    assert code_of(Request({"prompt": 5}).text, "prompt") == "invalid_field"
    assert code_of(req.field, "n", str) == "invalid_field"
    assert code_of(Request({"n": True}).field, "n", int) == "invalid_field"
    assert req.field("n", int) == 3
    assert code_of(Request({}).image, "image") == "missing_field"


# ------------------------------------------------------------------------------------------ settings
def test_settings_and_device():
    ctx = make_context("/tmp", {"minWorkers": 1, "handler": {"cache_size": 4, "name": "x", "flag": True}})
    s = ms.Settings.from_context(ctx)
    assert s.get_int("cache_size", 1, min=0) == 4 and s.get_str("name", None) == "x" and s.get_bool("flag", False)
    assert s.get_int("absent", 7) == 7
    with pytest.raises(ms.ConfigError):
        s.get_int("name", 1)
    with pytest.raises(ms.ConfigError):
        s.get_int("cache_size", 1, max=3)
    with pytest.raises(ms.ConfigError):
        s.get_str("name", None, choices=("y",))
    assert ms.Settings.from_context(make_context("/tmp", None)).as_dict() == {}
    with pytest.raises(ms.ConfigError):
        ms.Settings.from_context(make_context("/tmp", {"handler": [1]}))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert ms.select_device(ctx, s).type == expected
    assert ms.select_device(ctx, ms.Settings({"device": "cpu"})).type == "cpu"


def test_lru_cache():
    cache = ms.LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now most recent
    cache.put("c", 3)           # evicts b
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2
    assert cache.get("b") is None and cache.misses == 1 and cache.hits == 3
    off = ms.LRUCache(0)
    off.put("a", 1)
    assert len(off) == 0


# ------------------------------------------------------------------------------------------ batch driver
class EchoHandler(ms.ServingHandler):
    """A minimal handler on the shared base: echoes the image size, fails on request."""

    def load_model(self):
        self.loaded = True

    def parse(self, request):
        args = request.gen_args({"fail": Arg(str, None, choices=("crash", "oom", "bad"))})
        return request.image("image"), args

    def infer(self, item):
        image, args = item
        if args["fail"] == "crash":
            raise RuntimeError("boom")
        if args["fail"] == "oom":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        if args["fail"] == "bad":
            raise RequestError("custom_code", "line one\nline two \u2713")
        return {"size": list(image.size), "grad": torch.is_grad_enabled()}


@pytest.fixture()
def echo(tmp_path):
    handler = EchoHandler()
    ctx = make_context(tmp_path, {"handler": {"max_image_pixels": 10000}})
    handler.initialize(ctx)
    return handler, ctx


def test_initialize_reads_settings(echo):
    handler, _ = echo
    assert handler.loaded and handler.initialized and handler.limits.max_pixels == 10000
    assert handler.device.type in ("cpu", "cuda")


def test_batch_isolates_failures(echo):
    handler, ctx = echo
    img = b64_png(sample_image(12, 8))
    results = run_batch(handler, ctx, [
        {"image": img},
        {"image": "###"},
        {"image": img, "gen_args": {"fail": "crash"}},
        b"{broken",
        {"image": img, "gen_args": '{"fail": "oom"}'},
        {"image": b64_png(sample_image(200, 100))},
        {"image": img, "gen_args": {"fail": "bad"}},
        {"image": img},
    ])
    statuses = [s for s, _ in results]
    assert statuses == [200, 400, 500, 400, 507, 400, 400, 200]
    assert results[0][1] == {"size": [12, 8], "grad": False} == results[-1][1]
    assert results[1][1]["error"]["code"] == "invalid_base64"
    assert results[2][1] == {"error": {"code": "internal_error", "message": "internal error (RuntimeError)"}}
    assert results[3][1]["error"]["code"] == "invalid_json"
    assert results[4][1]["error"]["code"] == "out_of_resources"
    assert results[5][1]["error"]["code"] == "image_too_large"
    assert results[6][1]["error"] == {"code": "custom_code", "message": "line one\nline two \u2713"}
    phrase = ctx.get_response_status(6)[1]
    assert "\n" not in phrase and phrase.isascii() and phrase.startswith("line one")
    # already-decoded dict bodies (application/json) work the same
    assert run_batch(handler, ctx, [{"image": img}], as_bytes=False)[0][0] == 200


def test_unknown_gen_args_are_served_and_listed_as_ignored(echo):
    handler, ctx = echo
    img = b64_png(sample_image(12, 8))
    results = run_batch(handler, ctx, [
        {"image": img, "gen_args": {"fial": "crash", "seed": 3}},        # typo + a key this model lacks
        {"image": img, "gen_args": json.dumps({"zeta": 1, "alpha": None})},
        {"image": img, "gen_args": {"fail": None}},                       # only known keys
        {"image": img},                                                   # no gen_args at all
        {"image": "###", "gen_args": {"typo": 1}},                        # an error body stays as it is
    ])
    assert [s for s, _ in results] == [200, 200, 200, 200, 400]
    assert results[0][1] == {"size": [12, 8], "grad": False, "ignored_args": ["fial", "seed"]}
    assert results[1][1]["ignored_args"] == ["alpha", "zeta"]
    assert "ignored_args" not in results[2][1] and "ignored_args" not in results[3][1]
    assert set(results[4][1]) == {"error"}


def test_whole_batch_failure_is_reported_per_request(echo, monkeypatch):
    handler, ctx = echo
    monkeypatch.setattr(handler, "infer_batch", lambda items: [])  # wrong length
    img = b64_png(sample_image(12, 8))
    results = run_batch(handler, ctx, [{"image": img}, {"image": "###"}, {"image": img}])
    assert [s for s, _ in results] == [500, 400, 500]
