"""LaMa on large images: which region the model sees and at what size (region.py), and that the
handler only ever changes masked pixels whatever the strategy."""

from __future__ import annotations

import numpy as np
import pytest
from handler_testlib import b64_png, decode_b64_png, load_handler_class, rect_mask, run_batch, sample_image, start_handler

load_handler_class("lama")  # model_sources/lama on sys.path
from region import Region, plan_region  # noqa: E402


# ------------------------------------------------------------------------------------------ plan
def test_small_images_and_the_original_strategy_use_the_whole_image():
    assert plan_region((800, 600), (10, 10, 20, 20)) == Region((0, 0, 800, 600), (800, 600))
    assert plan_region((4000, 3000), (10, 10, 20, 20), "original") == Region((0, 0, 4000, 3000), (4000, 3000))


def test_a_small_mask_in_a_large_image_gets_its_margin():
    region = plan_region((4000, 3000), (2000, 1000, 2128, 1096))
    assert region.box == (1872, 872, 2256, 1224) and region.model_size == region.size == (384, 352)
    assert not region.resized


def test_near_a_border_the_region_shifts_inwards_and_keeps_its_size():
    region = plan_region((4000, 3000), (5, 2950, 105, 2990))  # bottom-left corner
    assert region.box == (0, 2704, 356, 3000) and region.size == (356, 296)
    narrow = plan_region((900, 120), (400, 10, 500, 100))  # the image is smaller than the margin allows
    assert narrow.box == (272, 0, 628, 120)


def test_a_region_over_the_limit_is_resized_with_its_aspect_ratio():
    region = plan_region((4000, 3000), (500, 500, 3000, 1500))
    assert region.box == (372, 372, 3128, 1628) and region.resized
    assert region.model_size == (1280, 583)  # 2756 x 1256 scaled by 1280 / 2756


def test_bad_arguments():
    with pytest.raises(ValueError, match="strategy"):
        plan_region((900, 900), (0, 0, 1, 1), "tile")
    with pytest.raises(ValueError, match="not inside"):
        plan_region((900, 900), (0, 0, 901, 1))


# ------------------------------------------------------------------------------------------ handler
SMALL = {"crop_trigger_size": 64, "crop_margin": 8, "resize_limit": 48}
W, H = 120, 90


def lama_with(tmp_path, tiny_weights, **settings):
    handler, ctx = start_handler("lama", tmp_path, tiny_weights("lama"), **settings)
    seen = []
    handler.model.generator.register_forward_hook(lambda mod, args, out: seen.append(tuple(args[0].shape[-2:])))
    return handler, ctx, seen


def erase(handler, ctx, image, mask) -> np.ndarray:
    [(status, body)] = run_batch(handler, ctx, [{"image": b64_png(image), "mask_image": b64_png(mask)}])
    assert status == 200, body
    return decode_b64_png(body["generated_image"])


def test_defaults_come_from_model_config(tmp_path, tiny_weights):
    handler, _ = start_handler("lama", tmp_path, tiny_weights("lama"))
    assert (handler.strategy, handler.crop_trigger_size, handler.crop_margin, handler.resize_limit) == \
        ("crop", 800, 128, 1280)
    assert handler.limits.max_pixels == 4096 * 4096


def test_crop_runs_the_model_on_the_region_only(tmp_path, tiny_weights):
    handler, ctx, seen = lama_with(tmp_path, tiny_weights, **SMALL)
    image, mask = sample_image(W, H, seed=4), rect_mask(W, H, (50, 40, 60, 50))
    out = erase(handler, ctx, image, mask)
    assert seen == [(32, 32)]  # 10 + 2 x 8 = 26 px, padded to a multiple of 8
    assert np.array_equal(out[~mask], image[~mask]) and (out[mask] != image[mask]).any()
    # the fill is what LaMa makes of that region on its own
    left, top, right, bottom = 42, 32, 68, 58
    alone = erase(handler, ctx, np.ascontiguousarray(image[top:bottom, left:right]), mask[top:bottom, left:right])
    assert np.array_equal(out[top:bottom, left:right], alone)


def test_a_large_region_is_inpainted_resized(tmp_path, tiny_weights):
    handler, ctx, seen = lama_with(tmp_path, tiny_weights, **SMALL)
    image, mask = sample_image(W, H, seed=5), rect_mask(W, H, (20, 15, 90, 70))
    out = erase(handler, ctx, image, mask)
    assert seen == [(40, 48)]  # region 86 x 71 -> 48 x 40 at the model (h, w) = (40, 48)
    assert out.shape == image.shape and np.array_equal(out[~mask], image[~mask])
    assert (out[mask] != image[mask]).any(axis=-1).mean() > 0.5


def test_a_thin_stroke_survives_the_resize(tmp_path, tiny_weights):
    handler, ctx, _ = lama_with(tmp_path, tiny_weights, **SMALL)
    image, mask = sample_image(W, H, seed=6), rect_mask(W, H, (10, 44, 110, 45))  # 1 px high, 100 long
    out = erase(handler, ctx, image, mask)
    assert np.array_equal(out[~mask], image[~mask]) and (out[mask] != image[mask]).any(axis=-1).mean() > 0.5


def test_the_original_strategy_sees_the_whole_image(tmp_path, tiny_weights):
    handler, ctx, seen = lama_with(tmp_path, tiny_weights, hd_strategy="original", **SMALL)
    image, mask = sample_image(W, H, seed=4), rect_mask(W, H, (50, 40, 60, 50))
    out = erase(handler, ctx, image, mask)
    assert seen == [(96, 120)] and np.array_equal(out[~mask], image[~mask])


def test_a_large_photo_with_the_shipped_settings(tmp_path, tiny_weights):
    handler, ctx, seen = lama_with(tmp_path, tiny_weights)
    image = np.tile(sample_image(400, 300, seed=8), (6, 5, 1))  # 2000 x 1800
    mask = rect_mask(2000, 1800, (1200, 700, 1330, 790))
    out = erase(handler, ctx, image, mask)
    assert seen == [(352, 392)]  # (90 + 256) x (130 + 256), padded: not the 2000 x 1800 picture
    assert np.array_equal(out[~mask], image[~mask])
