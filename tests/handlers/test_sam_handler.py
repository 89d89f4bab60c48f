"""The sam handler driven directly (real ts Context, batches) with the tiny SAM checkpoint."""

from __future__ import annotations

import base64
import hashlib
import json

import numpy as np
import pytest
import torch
from handler_testlib import (
    b64_png,
    decode_b64_png,
    load_handler_class,
    png_bytes,
    run_batch,
    sample_image,
    start_handler,
)

W, H = 45, 31  # odd sizes on purpose


def make_handler(tmp_path, tiny_weights, **overrides):
    handler, ctx = start_handler("sam", tmp_path, tiny_weights("sam"), **overrides)
    calls = []
    handler.model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    return handler, ctx, calls


@pytest.fixture(scope="module")
def sam(tmp_path_factory, tiny_weights):
    return make_handler(tmp_path_factory.mktemp("sam"), tiny_weights)


def req(image=None, **gen_args):
    body = {"gen_args": gen_args}
    if image is not None:
        body["image"] = b64_png(image)
    return body


def test_handler_file_defines_one_class():
    assert load_handler_class("sam").__name__ == "SamHandler"


@pytest.mark.parametrize("model_type", ["vit_b", "vit_l", "vit_h"])
def test_presets_match_segment_anything(model_type):
    """The handler's architecture presets build exactly the modules of segment_anything's
    registry (the published checkpoints are state dicts of those)."""
    from segment_anything import sam_model_registry

    module = __import__("sam_handler_under_test")
    with torch.device("meta"):
        ours = module.build_sam(module.ARCH_PRESETS[model_type]).state_dict()
        ref = sam_model_registry[model_type]().state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == [(k, tuple(v.shape)) for k, v in ref.items()]


def test_loads_the_tiny_checkpoint_strictly(sam):
    handler, _, _ = sam
    assert handler.model.image_encoder.img_size == 64  # arch.json, not the vit_h preset
    assert handler.encoder_dtype is None  # CPU: fp32
    assert handler.cache.capacity == 32


def test_mask_is_binary_png_at_input_size(sam):
    handler, ctx, _ = sam
    img = sample_image(W, H)
    [(status, body)] = run_batch(handler, ctx, [req(img, point_coords=[20, 10], point_labels=1)])
    assert status == 200
    mask = decode_b64_png(body["generated_image"])
    assert mask.shape == (H, W) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    assert 0 < (mask > 0).sum() < mask.size  # a real, non-trivial mask from the tiny model
    assert body["image_id"] == hashlib.sha256(png_bytes(img)).hexdigest()
    assert isinstance(body["score"], float)


def test_best_of_multimask_unless_asked(sam):
    """multimask (default) returns the best-scoring of the three masks; multimask false the single one."""
    handler, ctx, _ = sam
    img = sample_image(W, H, seed=3)
    results = run_batch(handler, ctx, [req(img, point_coords=[30, 20]),
                                       req(img, point_coords=[30, 20], multimask=False)])
    (s1, multi), (s2, single) = results
    assert s1 == s2 == 200
    emb = handler.cache.get(multi["image_id"])
    coords = handler.transform.apply_coords(np.array([[30.0, 20.0]]), emb.original_size)
    points = (torch.tensor(coords, dtype=torch.float32)[None], torch.tensor([[1]]))
    with torch.inference_mode():
        sparse, dense = handler.model.prompt_encoder(points=points, boxes=None, masks=None)
        scores = {}
        for mm in (True, False):
            _, iou = handler.model.mask_decoder(image_embeddings=emb.features,
                                                image_pe=handler.model.prompt_encoder.get_dense_pe(),
                                                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                                multimask_output=mm)
            scores[mm] = iou[0].tolist()
    assert len(scores[True]) == 3 and multi["score"] == pytest.approx(max(scores[True]), abs=1e-6)
    assert single["score"] == pytest.approx(scores[False][0], abs=1e-6)


def test_deterministic_and_cache_hit_skips_the_encoder(tmp_path, tiny_weights):
    handler, ctx, calls = make_handler(tmp_path, tiny_weights)
    img = sample_image(W, H, seed=5)
    first = run_batch(handler, ctx, [req(img, point_coords=[12, 9])])[0]
    assert len(calls) == 1 and first[1]["embedding_cached"] is False
    second = run_batch(handler, ctx, [req(img, point_coords=[12, 9])])[0]
    assert len(calls) == 1 and second[1]["embedding_cached"] is True  # hit: no encoder call
    assert first[1]["generated_image"] == second[1]["generated_image"] and first[1]["score"] == second[1]["score"]
    # a second click on the same image, by id only
    third = run_batch(handler, ctx, [{"image_id": first[1]["image_id"], "gen_args": {"point_coords": [[3, 3], [40, 25]],
                                                                                      "point_labels": [1, 0]}}])[0]
    assert third[0] == 200 and len(calls) == 1 and third[1]["image_id"] == first[1]["image_id"]
    assert decode_b64_png(third[1]["generated_image"]).shape == (H, W)
    # a fresh handler (no cache) computes the same mask: outputs do not depend on the cache
    other, other_ctx, other_calls = make_handler(tmp_path / "other", tiny_weights)
    again = run_batch(other, other_ctx, [req(img, point_coords=[12, 9])])[0]
    assert len(other_calls) == 1 and again[1]["generated_image"] == first[1]["generated_image"]
    # a batch with two requests on the same new image runs the encoder once
    img2 = sample_image(W, H, seed=6)
    run_batch(handler, ctx, [req(img2, point_coords=[1, 1]), req(img2, point_coords=[2, 2])])
    assert len(calls) == 2


def test_cache_is_bounded_and_evicted_ids_ask_for_the_image(tmp_path, tiny_weights):
    handler, ctx, calls = make_handler(tmp_path, tiny_weights, cache_size=1)
    a, b = sample_image(W, H, seed=7), sample_image(W, H, seed=8)
    id_a = run_batch(handler, ctx, [req(a, point_coords=[5, 5])])[0][1]["image_id"]
    run_batch(handler, ctx, [req(b, point_coords=[5, 5])])
    [(status, body)] = run_batch(handler, ctx, [{"image_id": id_a, "gen_args": {"point_coords": [5, 5]}}])
    assert status == 400 and body["error"]["code"] == "unknown_image_id"
    assert "resend" in body["error"]["message"] and "'image'" in body["error"]["message"]
    assert len(calls) == 2
    # resending the image works again (and re-encodes)
    assert run_batch(handler, ctx, [req(a, point_coords=[5, 5])])[0][0] == 200 and len(calls) == 3


def test_dilation_grows_the_mask(sam):
    handler, ctx, _ = sam
    img = sample_image(W, H)
    (s0, plain), (s1, grown) = run_batch(handler, ctx, [req(img, point_coords=[20, 10]),
                                                      req(img, point_coords=[20, 10], dilate_kernel_size=5)])
    m0, m1 = decode_b64_png(plain["generated_image"]) > 0, decode_b64_png(grown["generated_image"]) > 0
    assert s0 == s1 == 200 and m0.shape == m1.shape == (H, W)
    assert np.all(m1[m0]) and m1.sum() > m0.sum()
    assert set(np.unique(decode_b64_png(grown["generated_image"]))) <= {0, 255}


def test_box_prompts_and_original_sample_json(sam):
    handler, ctx, _ = sam
    img = sample_image(W, H)
    body_string_args = {"image": b64_png(img),  # the original sample sends gen_args as a JSON string
                        "gen_args": json.dumps({"point_coords": [20, 10], "point_labels": 1, "dilate_kernel_size": 3})}
    results = run_batch(handler, ctx, [
        req(img, box=[2, 3, 30, 25]),
        req(img, box=[0, 0, W, H], point_coords=[10, 10], point_labels=[1]),
        body_string_args,
        req(img, point_coords=[[20, 10]], point_labels=[[1]]),
    ])
    assert [s for s, _ in results] == [200, 200, 200, 200]
    for _, body in results:
        assert decode_b64_png(body["generated_image"]).shape == (H, W)


def test_jpeg_and_webp_inputs(sam):
    handler, ctx, _ = sam
    img = sample_image(W, H)
    bodies = [{"image": base64.b64encode(png_bytes(img, fmt, quality=90)).decode(), "gen_args": {"point_coords": [5, 5]}}
              for fmt in ("JPEG", "WEBP")]
    for status, body in run_batch(handler, ctx, bodies):
        assert status == 200 and decode_b64_png(body["generated_image"]).shape == (H, W)


GOOD = {"point_coords": [10, 10], "point_labels": 1}


@pytest.mark.parametrize("body,code", [
    ({"gen_args": GOOD}, "missing_field"),
    ({"image": "@@@", "gen_args": GOOD}, "invalid_base64"),
    ({"image": base64.b64encode(b"GIF89a not really").decode(), "gen_args": GOOD}, "invalid_image"),
    ({"image": 42, "gen_args": GOOD}, "invalid_field"),
    ({"image": "IMG", "gen_args": {}}, "missing_field"),
    ({"image": "IMG", "gen_args": {"point_labels": [1]}}, "missing_field"),
    ({"image": "IMG", "gen_args": "{oops"}, "invalid_gen_args"),
    ({"image": "IMG", "gen_args": [1, 2]}, "invalid_gen_args"),
    ({"image": "IMG", "gen_args": {"point_coords": [W, 5]}}, "point_outside_image"),
    ({"image": "IMG", "gen_args": {"point_coords": [5, H]}}, "point_outside_image"),
    ({"image": "IMG", "gen_args": {"point_coords": [-1, 5]}}, "point_outside_image"),
    ({"image": "IMG", "gen_args": {"point_coords": [[5, 5], [5, 500]], "point_labels": [1, 1]}}, "point_outside_image"),
    ({"image": "IMG", "gen_args": {"box": [0, 0, W + 1, H]}}, "point_outside_image"),
    ({"image": "IMG", "gen_args": {"box": [10, 10, 5, 20]}}, "point_outside_image"),
    ({"image": "IMG", "gen_args": {"point_coords": [5, 5], "point_labels": 2}}, "invalid_point_label"),
    ({"image": "IMG", "gen_args": {"point_coords": [5, 5], "point_labels": -1}}, "invalid_point_label"),
    ({"image": "IMG", "gen_args": {"point_coords": [5, 5], "point_labels": True}}, "invalid_point_label"),
    ({"image": "IMG", "gen_args": {"point_coords": [5, 5], "point_labels": "1"}}, "invalid_point_label"),
    ({"image": "IMG", "gen_args": {"point_coords": [[5, 5], [6, 6]], "point_labels": [1]}}, "invalid_argument"),
    ({"image": "IMG", "gen_args": {"point_coords": "5,5"}}, "invalid_argument"),
    ({"image": "IMG", "gen_args": {"point_coords": [5]}}, "invalid_argument"),
    ({"image": "IMG", "gen_args": {"point_coords": ["a", 5]}}, "invalid_argument"),
    ({"image": "IMG", "gen_args": {"point_coords": [10**400, 5]}}, "invalid_argument"),  # not a float: 400, not 500
    ({"image": "IMG", "gen_args": {"box": [0, 0, 10**400, 5]}}, "invalid_argument"),
    ({"image": "IMG", "gen_args": {"point_coords": [[5, 5]] * 33}}, "invalid_argument"),
    ({"image": "IMG", "gen_args": {"box": [1, 2, 3]}}, "invalid_argument"),
    ({"image": "IMG", "gen_args": {**GOOD, "dilate_kernel_size": -1}}, "out_of_range"),
    ({"image": "IMG", "gen_args": {**GOOD, "dilate_kernel_size": 1000}}, "out_of_range"),
    ({"image": "IMG", "gen_args": {**GOOD, "dilate_kernel_size": 2.5}}, "invalid_argument"),
    ({"image": "IMG", "gen_args": {**GOOD, "multimask": "yes"}}, "invalid_argument"),
    ({"image_id": "not-an-id", "gen_args": GOOD}, "invalid_field"),
    ({"image_id": "0" * 64, "gen_args": GOOD}, "unknown_image_id"),
    ({"image_id": 7, "gen_args": GOOD}, "invalid_field"),
])
def test_bad_requests_get_400_and_neighbours_are_served(sam, body, code):
    handler, ctx, _ = sam
    img = sample_image(W, H)
    if body.get("image") == "IMG":
        body = {**body, "image": b64_png(img)}
    results = run_batch(handler, ctx, [req(img, **GOOD), body, req(img, **GOOD)])
    assert [s for s, _ in results] == [200, 400, 200]
    assert results[1][1]["error"]["code"] == code and results[1][1]["error"]["message"]
    assert results[0][1] == results[2][1]


def test_image_over_the_pixel_limit(tmp_path, tiny_weights):
    handler, ctx, calls = make_handler(tmp_path, tiny_weights, max_image_pixels=W * H - 1)
    [(status, body)] = run_batch(handler, ctx, [req(sample_image(W, H), **GOOD)])
    assert status == 400 and body["error"]["code"] == "image_too_large" and not calls
    assert run_batch(handler, ctx, [req(sample_image(W - 1, H), **GOOD)])[0][0] == 200


def test_bad_config_fails_at_load(tmp_path, tiny_weights):
    from mme_serving import ConfigError

    with pytest.raises(ConfigError):
        make_handler(tmp_path, tiny_weights, model_type="vit_x")
    with pytest.raises(ConfigError):
        make_handler(tmp_path / "b", tiny_weights, checkpoint="weights/missing.pth")
