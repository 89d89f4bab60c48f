"""The sd handler driven directly: a real ts.context.Context, batches of JSON rows, the tiny
random-weight SD2-inpaint-like pipeline loaded from the real diffusers folder format.

Requests use 2-3 inference steps at the tiny model's native 64 px, so the module runs in
seconds on a CPU.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from sd_support import (
    SD_SOURCE,
    b64_png,
    build_model_dir,
    decode_png,
    inpaint_request,
    load_handler_module,
    make_context,
    noise_image,
    rect_mask,
    run_batch,
)

# diffusers' DPM-Solver calls np.array() on a tensor: numpy 2 warns; harmless, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

TEST_SETTINGS = {
    "device": "cpu",
    "default_steps": 2,
    "max_image_pixels": 600 * 600,
}


@pytest.fixture(scope="module")
def sd_model_dir(tmp_path_factory) -> Path:
    return build_model_dir(tmp_path_factory.mktemp("sd"))


def _make_handler(model_dir: Path, **settings):
    module = load_handler_module()
    ctx = make_context(model_dir, {**TEST_SETTINGS, **settings})
    handler = module.SDInpaintHandler()
    handler.initialize(ctx)
    return handler, ctx


@pytest.fixture(scope="module")
def sd(sd_model_dir):
    return _make_handler(sd_model_dir)


def _assert_inpainted(status_body, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    status, body = status_body
    assert status == 200, body
    out = decode_png(body["generated_image"])
    assert out.shape == image.shape, "output must keep the input's size"
    assert (out[~mask] == image[~mask]).all(), "pixels outside the mask must be unchanged"
    changed = (out[mask] != image[mask]).any(axis=-1).mean()
    assert changed > 0.5, f"only {changed:.0%} of the masked pixels were repainted"
    return out


# ---------------------------------------------------------------------------------- loading
def test_handler_file_defines_exactly_one_class():
    """TorchServe picks the handler as the only class defined in handler.py."""
    import inspect

    module = load_handler_module()
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    assert [c.__name__ for c in classes] == ["SDInpaintHandler"]


def test_loads_pipeline_with_fast_scheduler_and_no_safety_checker(sd):
    handler, _ = sd
    import torch

    pipe = handler.pipe
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.scheduler.config.algorithm_type == "dpmsolver++"
    assert pipe.scheduler.config.solver_order == 2
    assert pipe.safety_checker is None and pipe.config.requires_safety_checker is False
    assert pipe.unet.dtype == torch.float32 and pipe.unet.config.in_channels == 9
    assert handler.native == 64 and handler.cell == 2   # tiny: UNet 32 x VAE factor 2


def test_loads_fp16_variant_only_weights_in_fp32_on_cpu(tmp_path):
    model_dir = build_model_dir(tmp_path, fp32_files=False)
    assert not list((model_dir / "weights").rglob("diffusion_pytorch_model.safetensors"))
    handler, ctx = _make_handler(model_dir)
    import torch

    assert handler.pipe.unet.dtype == torch.float32
    img, mask = noise_image(40, 30), rect_mask(40, 30, (5, 5, 20, 20))
    [res] = run_batch(handler, ctx, [inpaint_request(img, mask, seed=1)])
    _assert_inpainted(res, img, mask)


def test_missing_weights_fail_at_load(tmp_path):
    module = load_handler_module()
    handler = module.SDInpaintHandler()
    with pytest.raises(Exception, match="model_index.json"):
        handler.initialize(make_context(tmp_path, TEST_SETTINGS))


@pytest.mark.parametrize("name,cls", [("dpmsolver++", "DPMSolverMultistepScheduler"),
                                      ("unipc", "UniPCMultistepScheduler"), ("ddim", "DDIMScheduler"),
                                      ("euler", "EulerDiscreteScheduler"), ("pndm", "PNDMScheduler")])
def test_scheduler_choices_keep_the_models_noise_schedule(sd, name, cls):
    handler, _ = sd
    module = load_handler_module()
    sched = module.make_scheduler(name, handler.pipe.scheduler.config)
    assert type(sched).__name__ == cls
    # the published SD2 schedule (scaled_linear 0.00085..0.012, 1000 steps) carries over
    assert sched.config.beta_schedule == "scaled_linear"
    assert (sched.config.beta_start, sched.config.beta_end) == (0.00085, 0.012)
    assert sched.config.num_train_timesteps == 1000
    sched.set_timesteps(25)
    assert len(sched.timesteps) == (26 if name == "pndm" else 25)   # PLMS repeats its first step


def test_bad_handler_settings_fail_at_load(sd_model_dir):
    module = load_handler_module()
    for bad in ({"scheduler": "lms"}, {"default_steps": 30, "max_steps": 20}, {"dtype": "int8"},
                {"batch_mode": "parallel"}, {"default_guidance": 25.0}):
        handler = module.SDInpaintHandler()
        with pytest.raises(ValueError):
            handler.initialize(make_context(sd_model_dir, {**TEST_SETTINGS, **bad}))


# ---------------------------------------------------------------------------------- geometry
GEOMETRY_CASES = {
    # name: (width, height, mask box)
    "odd_333x517_interior": (333, 517, (100, 200, 170, 290)),
    "tiny_97x61_left_border": (97, 61, (0, 10, 30, 50)),
    "tiny_61x97_whole_image": (61, 97, (0, 0, 61, 97)),
    "corner_200x150_bottom_right": (200, 150, (170, 120, 200, 150)),
    "elongated_700x90_right_border": (700, 90, (650, 0, 700, 90)),
    "one_pixel_image": (1, 1, (0, 0, 1, 1)),
}


@pytest.fixture(scope="module")
def geometry_results(sd):
    handler, ctx = sd
    inputs, bodies = {}, []
    for i, (name, (w, h, box)) in enumerate(GEOMETRY_CASES.items()):
        img, mask = noise_image(w, h, seed=i), rect_mask(w, h, box)
        if name == "odd_333x517_interior":
            mask[240:250, 130:140] = False                  # a hole inside the mask stays too
        inputs[name] = (img, mask)
        bodies.append(inpaint_request(img, mask, seed=i, num_inference_steps=2))
    results = run_batch(handler, ctx, bodies)
    return {name: (inputs[name], res) for name, res in zip(GEOMETRY_CASES, results)}


@pytest.mark.parametrize("name", list(GEOMETRY_CASES))
def test_output_keeps_size_and_unmasked_pixels(geometry_results, name):
    (img, mask), res = geometry_results[name]
    _assert_inpainted(res, img, mask)
    assert res[1]["seed"] == list(GEOMETRY_CASES).index(name)


# ---------------------------------------------------------------------------------- determinism
def test_seeded_requests_are_deterministic(sd):
    handler, ctx = sd
    img, mask = noise_image(150, 110, seed=9), rect_mask(150, 110, (20, 30, 90, 80))
    a = inpaint_request(img, mask, seed=7, num_inference_steps=2)
    b = inpaint_request(img, mask, seed=8, num_inference_steps=2)
    first = run_batch(handler, ctx, [a, a, b])
    again = run_batch(handler, ctx, [a])
    assert all(status == 200 for status, _ in first + again)
    same = first[0][1]["generated_image"]
    assert first[1][1]["generated_image"] == same, "same seed in one batch -> same bytes"
    assert again[0][1]["generated_image"] == same, "same seed in another batch -> same bytes"
    assert first[2][1]["generated_image"] != same, "another seed -> another image"
    out_a, out_b = decode_png(same), decode_png(first[2][1]["generated_image"])
    assert (out_a[~mask] == out_b[~mask]).all() and (out_a[mask] != out_b[mask]).any()


def test_unseeded_request_returns_a_seed_that_reproduces_it(sd):
    handler, ctx = sd
    img, mask = noise_image(64, 64, seed=4), rect_mask(64, 64, (10, 10, 40, 40))
    [(status, body)] = run_batch(handler, ctx, [inpaint_request(img, mask, num_inference_steps=2)])
    assert status == 200 and isinstance(body["seed"], int) and 0 <= body["seed"] < 2**32
    [(status2, body2)] = run_batch(handler, ctx, [inpaint_request(img, mask, seed=body["seed"],
                                                                  num_inference_steps=2)])
    assert status2 == 200 and body2["generated_image"] == body["generated_image"]


def test_guidance_and_steps_change_the_result(sd):
    handler, ctx = sd
    img, mask = noise_image(64, 64, seed=5), rect_mask(64, 64, (16, 16, 48, 48))
    res = run_batch(handler, ctx, [
        inpaint_request(img, mask, seed=3, num_inference_steps=2, guidance_scale=7.5),
        inpaint_request(img, mask, seed=3, num_inference_steps=3, guidance_scale=7.5),
        inpaint_request(img, mask, seed=3, num_inference_steps=2, guidance_scale=1.0),
    ])
    images = [body["generated_image"] for _, body in res]
    assert len(set(images)) == 3


def test_strength_runs_the_last_steps_only_and_changes_the_result(sd):
    handler, ctx = sd
    img, mask = noise_image(64, 64, seed=6), rect_mask(64, 64, (12, 12, 44, 40))
    unet_calls = []
    hook = handler.pipe.unet.register_forward_hook(lambda *args: unet_calls.append(1))
    try:
        res = []
        for strength in (None, 1.0, 0.5, 0.5, 0.25):
            gen = {"seed": 5, "num_inference_steps": 4} | ({} if strength is None else {"strength": strength})
            unet_calls.clear()
            [answer] = run_batch(handler, ctx, [inpaint_request(img, mask, **gen)])
            res.append((answer, len(unet_calls)))
    finally:
        hook.remove()
    images = [body["generated_image"] for (_, body), _ in res]
    assert [calls for _, calls in res] == [4, 4, 2, 2, 1], "only the last int(steps x strength) steps run"
    assert images[0] == images[1], "strength 1.0 is the default"
    assert images[2] == images[3], "a seeded request with a strength is deterministic"
    assert len({images[1], images[2], images[4]}) == 3, "the strength changes the picture"
    for (status_body, _) in res:
        assert "ignored_args" not in status_body[1]
        _assert_inpainted(status_body, img, mask)


def test_unknown_gen_args_are_listed_in_the_answer(sd):
    handler, ctx = sd
    img, mask = noise_image(48, 40, seed=2), rect_mask(48, 40, (8, 8, 30, 30))
    [(status, body)] = run_batch(handler, ctx, [inpaint_request(
        img, mask, seed=1, num_inference_steps=2, strenght=0.5, dilate_kernel_size=15)])
    assert status == 200 and body["ignored_args"] == ["dilate_kernel_size", "strenght"]
    assert body["seed"] == 1


# ---------------------------------------------------------------------------------- bad input
_IMG = noise_image(64, 48, seed=11)
_MASK = rect_mask(64, 48, (10, 10, 30, 30))


def _req(**overrides):
    body = inpaint_request(_IMG, _MASK, prompt="a small boat", seed=1, num_inference_steps=2)
    for key, value in overrides.items():
        if value is _DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def _gen(**gen_args):
    return _req(gen_args={"seed": 1, "num_inference_steps": 2, **gen_args})


_DROP = object()
BAD_CASES = {
    # name: (body, expected error code)
    "missing_prompt": (_req(prompt=_DROP), "missing_field"),
    "null_prompt": (_req(prompt=None), "missing_field"),
    "empty_prompt": (_req(prompt=""), "empty_prompt"),
    "blank_prompt": (_req(prompt="  \n\t "), "empty_prompt"),
    "prompt_not_a_string": (_req(prompt=123), "invalid_field"),
    "prompt_too_many_chars": (_req(prompt="a" * 1001), "prompt_too_long"),
    "prompt_too_many_tokens": (_req(prompt="cat " * 76), "prompt_too_long"),
    "negative_prompt_too_many_tokens": (_req(negative_prompt="cat " * 80), "negative_prompt_too_long"),
    "negative_prompt_not_a_string": (_req(negative_prompt=["x"]), "invalid_field"),
    "steps_zero": (_gen(num_inference_steps=0), "out_of_range"),
    "steps_over_max": (_gen(num_inference_steps=101), "out_of_range"),
    "steps_fractional": (_gen(num_inference_steps=2.5), "invalid_argument"),
    "steps_string": (_gen(num_inference_steps="ten"), "invalid_argument"),
    "guidance_negative": (_gen(guidance_scale=-1), "out_of_range"),
    "guidance_over_max": (_gen(guidance_scale=20.5), "out_of_range"),
    "guidance_bool": (_gen(guidance_scale=True), "invalid_argument"),
    "seed_negative": (_gen(seed=-1), "out_of_range"),
    "seed_over_32_bits": (_gen(seed=2**32), "out_of_range"),
    "seed_string": (_gen(seed="42"), "invalid_argument"),
    "strength_zero": (_gen(strength=0), "out_of_range"),
    "strength_negative": (_gen(strength=-0.5), "out_of_range"),
    "strength_over_one": (_gen(strength=1.01), "out_of_range"),
    "strength_string": (_gen(strength="0.5"), "invalid_argument"),
    "strength_leaves_no_step": (_gen(strength=0.4), "out_of_range"),        # int(2 steps x 0.4) == 0
    "gen_args_array": (_req(gen_args=[1, 2]), "invalid_gen_args"),
    "gen_args_bad_json_string": (_req(gen_args="{num_inference_steps"), "invalid_gen_args"),
    "mask_size_mismatch": (_req(mask_image=b64_png(rect_mask(48, 64, (1, 1, 5, 5)))), "mask_size_mismatch"),
    "empty_mask": (_req(mask_image=b64_png(np.zeros((48, 64), dtype=np.uint8))), "empty_mask"),
    "mask_below_threshold": (_req(mask_image=b64_png(np.full((48, 64), 100, dtype=np.uint8))), "empty_mask"),
    "image_bad_base64": (_req(image="@@ not base64 @@"), "invalid_base64"),
    "image_not_an_image": (_req(image=base64.b64encode(b"hello, not an image").decode()), "invalid_image"),
    "mask_not_an_image": (_req(mask_image=base64.b64encode(b"GIF89a....").decode()), "invalid_image"),
    "missing_image": (_req(image=_DROP), "missing_field"),
    "missing_mask": (_req(mask_image=_DROP), "missing_field"),
    "image_over_pixel_limit": (_req(image=b64_png(np.zeros((601, 600, 3), dtype=np.uint8)),
                                    mask_image=b64_png(np.ones((601, 600), dtype=bool))), "image_too_large"),
    "body_not_json": (b"this is not json", "invalid_json"),
    "body_json_array": (b"[1, 2, 3]", "invalid_request"),
}

# Good requests placed first, in the middle and last: the rest of the batch is served.
GOOD_FIRST = _req()
GOOD_MIDDLE = _req(gen_args=json.dumps({"num_inference_steps": 2, "guidance_scale": 5.0, "seed": 2}))
GOOD_LAST = _req(prompt="cat " * 75, negative_prompt="cat " * 75)   # exactly at the token limit


@pytest.fixture(scope="module")
def bad_batch(sd):
    handler, ctx = sd
    names = list(BAD_CASES)
    half = len(names) // 2
    bodies = ([GOOD_FIRST] + [BAD_CASES[n][0] for n in names[:half]] + [GOOD_MIDDLE]
              + [BAD_CASES[n][0] for n in names[half:]] + [GOOD_LAST])
    results = run_batch(handler, ctx, bodies)
    good = [results[0], results[half + 1], results[-1]]
    bad = dict(zip(names, results[1:half + 1] + results[half + 2:-1]))
    return good, bad


@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_input_is_a_400_with_code_and_message(bad_batch, name):
    _, bad = bad_batch
    status, body = bad[name]
    assert status == 400, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == BAD_CASES[name][1], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def test_rest_of_a_bad_batch_is_served(bad_batch, sd):
    good, _ = bad_batch
    for res in good:
        _assert_inpainted(res, _IMG, _MASK)
    assert good[1][1]["seed"] == 2                         # gen_args given as a JSON string
    # the worker lives on: a good request after the bad batch is still served
    handler, ctx = sd
    [res] = run_batch(handler, ctx, [GOOD_FIRST])
    assert res[1]["generated_image"] == good[0][1]["generated_image"]


# ---------------------------------------------------------------------------------- batching
def test_grouped_batch_mode_serves_each_request(sd_model_dir, sd):
    grouped, gctx = _make_handler(sd_model_dir, batch_mode="grouped")
    img1, m1 = noise_image(90, 70, seed=1), rect_mask(90, 70, (0, 0, 30, 30))
    img2, m2 = noise_image(333, 120, seed=2), rect_mask(333, 120, (300, 60, 333, 120))
    bodies = [
        inpaint_request(img1, m1, seed=1, num_inference_steps=2),
        inpaint_request(img2, m2, seed=2, num_inference_steps=2, guidance_scale=7.5),
        _req(prompt=""),
        inpaint_request(img1, m1, seed=1, num_inference_steps=3),
    ]
    res = run_batch(grouped, gctx, bodies)
    out1 = _assert_inpainted(res[0], img1, m1)
    _assert_inpainted(res[1], img2, m2)
    assert res[2][0] == 400 and res[2][1]["error"]["code"] == "empty_prompt"
    _assert_inpainted(res[3], img1, m1)
    # the same request served alone (sequential handler) gives the same picture
    handler, ctx = sd
    [alone] = run_batch(handler, ctx, [bodies[0]])
    diff = np.abs(decode_png(alone[1]["generated_image"]).astype(int) - out1.astype(int))
    assert diff.max() <= 2, f"grouped vs alone differ by up to {diff.max()}"


# ---------------------------------------------------------------------------------- config
def test_shipped_model_config_is_valid_and_loads(sd_model_dir):
    cfg = yaml.safe_load((SD_SOURCE / "model-config.yaml").read_text())
    for key in ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout"):
        assert isinstance(cfg[key], int) and cfg[key] >= 0, key
    settings = dict(cfg["handler"])
    assert settings["scheduler"] == "dpmsolver++" and settings["default_steps"] == 25
    settings["device"] = "cpu"                              # the shipped config, on this CPU
    module = load_handler_module()
    ctx = make_context(sd_model_dir, settings, batch_size=cfg["batchSize"])
    handler = module.SDInpaintHandler()
    handler.initialize(ctx)
    assert handler.default_steps == 25 and handler.batch_mode == "sequential"
    img, mask = noise_image(50, 40), rect_mask(50, 40, (0, 0, 10, 10))
    [res] = run_batch(handler, ctx, [inpaint_request(img, mask, seed=0, num_inference_steps=2)])
    _assert_inpainted(res, img, mask)


# ---------------------------------------------------------------------------------- builders
def test_tiny_builder_writes_the_real_folder_format_deterministically(tmp_path):
    from mme.tiny import build

    first = build("sd", tmp_path / "a")
    second = build("sd", tmp_path / "b")
    rel = sorted(str(p.relative_to(tmp_path / "a")) for p in first)
    for expected in ("model_index.json", "scheduler/scheduler_config.json",
                     "unet/diffusion_pytorch_model.fp16.safetensors",
                     "vae/diffusion_pytorch_model.fp16.safetensors",
                     "text_encoder/model.fp16.safetensors",
                     "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json"):
        assert expected in rel
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    index = json.loads((tmp_path / "a" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionInpaintPipeline"
    assert index["safety_checker"] == [None, None] and index["requires_safety_checker"] is False
    unet_cfg = json.loads((tmp_path / "a" / "unet" / "config.json").read_text())
    assert unet_cfg["in_channels"] == 9 and unet_cfg["out_channels"] == 4


def test_full_size_builder_follows_the_config_files(tmp_path):
    """bench.full_size.build_sd reads the production config files; here shrunk copies of them."""
    from bench.full_size import build_sd
    from safetensors import safe_open

    cfgs = tmp_path / "configs"
    cfgs.mkdir()
    (cfgs / "sd2_inpaint_unet.json").write_text(json.dumps({
        "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": [2, 4],
        "block_out_channels": [32, 64], "cross_attention_dim": 48,
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "in_channels": 9,
        "layers_per_block": 1, "norm_num_groups": 32, "out_channels": 4, "sample_size": 16,
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "use_linear_projection": True}))
    (cfgs / "sd2_vae.json").write_text(json.dumps({
        "_class_name": "AutoencoderKL", "block_out_channels": [32, 32],
        "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1,
        "norm_num_groups": 32, "sample_size": 32}))
    (cfgs / "sd2_text_encoder.json").write_text(json.dumps({
        "architectures": ["CLIPTextModel"], "hidden_act": "gelu", "hidden_size": 48,
        "intermediate_size": 64, "max_position_embeddings": 77, "model_type": "clip_text_model",
        "num_attention_heads": 4, "num_hidden_layers": 2, "projection_dim": 16, "vocab_size": 49408}))
    out = tmp_path / "model" / "weights"
    build_sd(out, configs_dir=cfgs)
    assert not (out / "unet" / "diffusion_pytorch_model.safetensors").exists()   # fp16 only
    with safe_open(str(out / "unet" / "diffusion_pytorch_model.fp16.safetensors"), "pt") as f:
        conv_in = f.get_tensor("conv_in.weight")
    assert tuple(conv_in.shape) == (32, 9, 3, 3) and str(conv_in.dtype) == "torch.float16"
    with safe_open(str(out / "text_encoder" / "model.fp16.safetensors"), "pt") as f:
        emb = [k for k in f.keys() if k.endswith("token_embedding.weight")]
        assert tuple(f.get_tensor(emb[0]).shape) == (49408, 48)
    handler, ctx = _make_handler(tmp_path / "model")
    assert handler.native == 32 and handler.cell == 2
    img, mask = noise_image(45, 33), rect_mask(45, 33, (40, 0, 45, 33))
    [res] = run_batch(handler, ctx, [inpaint_request(img, mask, seed=0, num_inference_steps=2)])
    _assert_inpainted(res, img, mask)
