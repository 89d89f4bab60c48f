"""The lean loaders give the same models and outputs as the plain way (build, torch.load /
from_pretrained, load_state_dict, .to): every tensor equal, the same answers, nothing left on the
meta device, no read-ahead thread left behind; and SAM's faster click post-processing equals
segment_anything's."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from handler_testlib import b64_png, decode_b64_png, load_handler_class, rect_mask, run_batch, sample_image, start_handler

from mme_serving import ConfigError


def assert_same_tensors(ours: torch.nn.Module, reference: torch.nn.Module) -> None:
    mine, ref = ours.state_dict(), reference.state_dict()
    assert list(mine) == list(ref)
    for name, tensor in ref.items():
        assert mine[name].dtype == tensor.dtype and torch.equal(mine[name], tensor), name
    assert not any(t.is_meta for t in list(ours.parameters()) + list(ours.buffers()))


def no_read_ahead_thread() -> bool:
    return not any(t.name == "weights-read-ahead" for t in threading.enumerate())


# ------------------------------------------------------------------------------------------ building
def test_initialisers_are_skipped_on_meta_tensors_only(monkeypatch):
    from mme_serving import weights

    calls = []
    monkeypatch.setattr(torch.nn.init, "normal_", lambda tensor, *a, **k: calls.append(tensor.device.type) or tensor)
    recorder = torch.nn.init.normal_
    with weights.meta_initialisers_skipped():
        torch.nn.init.normal_(torch.empty(3, device="meta"))
        torch.nn.init.normal_(torch.empty(3))
        torch.nn.init.constant_(real := torch.zeros(3), 5.0)
    assert calls == ["cpu"] and torch.equal(real, torch.full((3,), 5.0))
    assert torch.nn.init.normal_ is recorder  # restored


def test_empty_builds_without_running_initialisers(monkeypatch):
    from mme_serving import weights

    def refuse(tensor, *args, **kwargs):
        raise AssertionError("an initialiser ran")

    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", refuse)
    monkeypatch.setattr(torch.nn.init, "uniform_", refuse)
    model = weights.empty(lambda: torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4, 2)))
    assert all(p.is_meta for p in model.parameters())
    with pytest.raises(AssertionError, match="an initialiser ran"):  # outside the build they run
        torch.nn.Linear(4, 2)


def test_imported_objects_are_frozen_once_and_unfrozen_at_exit():
    common = Path(__file__).resolve().parents[2] / "model_sources" / "common"
    code = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count()))\n"  # runs last (LIFO)
        "from mme_serving import weights\n"
        "weights.freeze_imported_objects(); first = gc.get_freeze_count()\n"
        "later = [[] for _ in range(1000)]\n"
        "weights.freeze_imported_objects()\n"
        "print('frozen:', first > 1000, gc.get_freeze_count() == first)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(common)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["frozen: True True", "frozen at exit: 0"]


# ------------------------------------------------------------------------------------------ SAM
@pytest.fixture(scope="module")
def sam(tmp_path_factory, tiny_weights):
    return start_handler("sam", tmp_path_factory.mktemp("sam"), tiny_weights("sam"))


def test_sam_loads_the_same_model(sam, tiny_weights):
    from mme.tiny.sam import make_model

    weights = tiny_weights("sam")
    reference = make_model(json.loads((weights / "arch.json").read_text()))
    reference.load_state_dict(torch.load(weights / "sam_tiny.pth", map_location="cpu", weights_only=True))
    assert_same_tensors(sam[0].model, reference.eval())
    assert no_read_ahead_thread()


def test_sam_refuses_an_incomplete_checkpoint(tmp_path, tiny_weights):
    weights = tmp_path / "w"
    weights.mkdir()
    state = torch.load(tiny_weights("sam") / "sam_tiny.pth", weights_only=True)
    del state["mask_decoder.iou_prediction_head.layers.2.bias"]
    torch.save(state, weights / "sam_tiny.pth")
    (weights / "arch.json").write_text((tiny_weights("sam") / "arch.json").read_text())
    with pytest.raises(RuntimeError, match="iou_prediction_head.layers.2.bias"):
        start_handler("sam", tmp_path, weights)
    assert no_read_ahead_thread()


@pytest.mark.parametrize("size", [(64, 40), (40, 64), (45, 31), (130, 97)])
def test_sam_upscale_equals_postprocess_masks(sam, size):
    """The tiny encoder's input is 64 px: (64, 40) and (40, 64) skip the last resize."""
    handler = sam[0]
    width, height = size
    low_res = torch.randn(1, 1, 16, 16) * 4
    input_size = tuple(handler.transform.get_preprocess_shape(height, width, 64))
    embedding = SimpleNamespace(original_size=(height, width), input_size=input_size)
    reference = handler.model.postprocess_masks(low_res, input_size, (height, width))[0, 0] > handler.model.mask_threshold
    assert np.array_equal(handler.upscale(low_res, embedding), reference.numpy())


# ------------------------------------------------------------------------------------------ LaMa
def test_lama_loads_the_same_generator_and_inpaints_the_same(tmp_path, tiny_weights):
    load_handler_class("lama")
    import big_lama

    weights = tiny_weights("lama")
    handler, ctx = start_handler("lama", tmp_path, weights)
    arch = json.loads((weights / "arch.json").read_text())
    ckpt = big_lama.read_state_dict(str(next(weights.glob("*.ckpt"))))
    reference = big_lama.FFCResNetGenerator(**{**big_lama.BIG_LAMA, **arch})
    reference.load_state_dict({k[len("generator."):]: v.clone() for k, v in ckpt.items() if k.startswith("generator.")})
    assert_same_tensors(handler.model.generator, reference.eval())
    image, mask = sample_image(37, 29), rect_mask(37, 29, (8, 6, 20, 17))
    [(status, body)] = run_batch(handler, ctx, [{"image": b64_png(image), "mask_image": b64_png(mask)}])
    handler.model = big_lama.LamaInpainter(reference).eval()
    [(_, again)] = run_batch(handler, ctx, [{"image": b64_png(image), "mask_image": b64_png(mask)}])
    assert status == 200 and body == again
    assert no_read_ahead_thread()


# ------------------------------------------------------------------------------------------ SD
def test_sd_loads_the_same_pipeline_and_generates_the_same(tmp_path, tiny_weights):
    """fp16 files loaded as fp32 on CPU, as the CPU handler does (network by network, the direct
    path), against the pipeline's own from_pretrained."""
    from diffusers import StableDiffusionInpaintPipeline

    load_handler_class("sd")
    import sd_pipeline

    weights = tiny_weights("sd")
    ours = sd_pipeline.load_pipeline(str(weights), torch.device("cpu"), torch.float32, "fp16")
    reference = StableDiffusionInpaintPipeline.from_pretrained(
        str(weights), variant="fp16", dtype=torch.float32, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False, local_files_only=True)
    for name in ("unet", "vae", "text_encoder"):
        assert_same_tensors(getattr(ours, name), getattr(reference, name))
    assert no_read_ahead_thread()

    def generate(pipe):
        pipe.set_progress_bar_config(disable=True)
        image = sample_image(64, 64)
        mask = rect_mask(64, 64, (16, 16, 48, 40))
        from PIL import Image

        out = pipe(prompt="a red vase", image=Image.fromarray(image), mask_image=Image.fromarray(mask.astype(np.uint8) * 255),
                   height=64, width=64, num_inference_steps=2, generator=torch.Generator().manual_seed(1),
                   output_type="np")
        return out.images[0]

    assert np.array_equal(generate(ours), generate(reference))


@pytest.mark.parametrize("sub", ["unet", "text_encoder", "vae"])
def test_sd_direct_path_loads_each_network_as_from_pretrained(tiny_weights, sub):
    """Every network of a diffusers folder takes the direct path (built empty, mapped safetensors
    converted and assigned) and equals the library's from_pretrained, tensor for tensor."""
    load_handler_class("sd")
    import sd_pipeline

    weights = str(tiny_weights("sd"))
    cls = dict(sd_pipeline.NETWORKS)[sub]
    files = sd_pipeline.network_files(f"{weights}/{sub}", "fp16")
    ours = sd_pipeline.load_direct(cls, f"{weights}/{sub}", files, torch.device("cpu"), torch.float32)
    assert ours is not None and not ours.training
    reference = cls.from_pretrained(weights, subfolder=sub, variant="fp16", dtype=torch.float32, local_files_only=True)
    assert_same_tensors(ours, reference)


def _legacy_vae_keys(weights) -> None:
    """Rename the VAE's attention weights to the names of checkpoints older than diffusers' Attention."""
    from safetensors.torch import load_file, save_file

    path = weights / "vae" / "diffusion_pytorch_model.fp16.safetensors"
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    state = load_file(path)
    for key in [k for k in state if ".attentions.0." in k]:
        head, _, leaf = key.rpartition(".")
        name = head.rsplit(".attentions.0.", 1)[1]
        if name in old:
            state[key.replace(f".{name}.{leaf}", f".{old[name]}.{leaf}")] = state.pop(key)
    save_file(state, path)


def _bin_unet(weights) -> None:
    """The UNet's fp16 weights as a pickled ``.bin`` instead of safetensors."""
    from safetensors.torch import load_file

    path = weights / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    torch.save(load_file(path), path.with_suffix(".bin"))
    path.unlink()


@pytest.mark.parametrize(("change", "sub"), [(_legacy_vae_keys, "vae"), (_bin_unet, "unet")])
def test_sd_networks_the_direct_path_does_not_cover_load_through_the_library(tmp_path, tiny_weights, caplog, change, sub):
    """Legacy key names and .bin weights go through from_pretrained (which renames and unpickles):
    the same pipeline as from the untouched folder."""
    import logging
    import shutil

    load_handler_class("sd")
    import sd_pipeline

    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights("sd"), weights)
    change(weights)
    with caplog.at_level(logging.INFO, logger="sd_pipeline"):
        ours = sd_pipeline.load_pipeline(str(weights), torch.device("cpu"), torch.float32, "fp16")
    through_library = [r.getMessage() for r in caplog.records if "from_pretrained" in r.getMessage()]
    assert [m.split(":")[0] for m in through_library] == [sub]
    reference = sd_pipeline.load_pipeline(str(tiny_weights("sd")), torch.device("cpu"), torch.float32, "fp16")
    for name in ("unet", "vae", "text_encoder"):
        assert_same_tensors(getattr(ours, name), getattr(reference, name))


def test_sd_refuses_a_folder_of_another_pipeline(tmp_path, tiny_weights):
    import shutil

    load_handler_class("sd")
    import sd_pipeline

    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights("sd"), weights)
    index = json.loads((weights / "model_index.json").read_text())
    index["unet"] = ["diffusers", "UNet2DModel"]
    (weights / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match="'unet' must be UNet2DConditionModel"):
        sd_pipeline.load_pipeline(str(weights), torch.device("cpu"), torch.float32, None)
    (weights / "model_index.json").unlink()
    with pytest.raises(ConfigError, match="model_index.json"):
        sd_pipeline.load_pipeline(str(weights), torch.device("cpu"), torch.float32, None)


def test_sd_handler_answers_as_before_the_change(tmp_path, tiny_weights):
    """A seeded request gives the bytes it gave with the pipeline's own from_pretrained."""
    handler, ctx = start_handler("sd", tmp_path, tiny_weights("sd"))
    image, mask = sample_image(64, 48, seed=2), rect_mask(64, 48, (10, 10, 40, 30))
    body = {"image": b64_png(image), "mask_image": b64_png(mask), "prompt": "a bench",
            "gen_args": {"seed": 9, "num_inference_steps": 2}}
    [(status, first)] = run_batch(handler, ctx, [body])
    from diffusers import StableDiffusionInpaintPipeline
    from sd_pipeline import has_variant

    weights = str(tmp_path / "sd-model" / "weights")
    reference = StableDiffusionInpaintPipeline.from_pretrained(
        weights, variant="fp16" if has_variant(weights, "fp16") else None, dtype=torch.float32,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False, local_files_only=True)
    reference.scheduler = handler.pipe.scheduler
    reference.set_progress_bar_config(disable=True)
    handler.pipe = reference
    [(_, again)] = run_batch(handler, ctx, [body])
    assert status == 200 and decode_b64_png(first["generated_image"]).shape == (48, 64, 3)
    assert first == again


def test_sam_decoder_memo_gives_segment_anythings_masks(sam):
    """Later clicks on an image reuse the decoder's image-only projections (CPU default): every
    click's mask is still SamPredictor's, and the memo holds exactly those three tensors."""
    from segment_anything import SamPredictor

    handler, ctx = sam
    assert handler.decoder_memo is not None  # CPU: on by default
    image = sample_image(45, 31, seed=12)
    predictor = SamPredictor(handler.model)
    predictor.set_image(image)
    image_id = None
    for i, point in enumerate([(10, 10), (30, 20), (44, 0), (5, 30)]):
        body = {"image_id": image_id} if image_id else {"image": b64_png(image)}
        [(status, out)] = run_batch(handler, ctx, [{**body, "gen_args": {"point_coords": list(point)}}])
        assert status == 200 and out["embedding_cached"] == (i > 0)
        image_id = out["image_id"]
        masks, scores, _ = predictor.predict(point_coords=np.array([point], dtype=float), point_labels=np.array([1]))
        assert np.array_equal(decode_b64_png(out["generated_image"]) > 0, masks[int(np.argmax(scores))])
    memo = handler.cache.get(image_id).memo
    tokens = (64 // 8) ** 2  # the tiny encoder: 64 px in 8 px patches; decoder width 32, attention 16
    assert sorted(memo) == [0, 1, 2] and all(tuple(t.shape) == (1, tokens, 16) for t in memo.values())


def test_sam_decoder_memo_can_be_turned_off(tmp_path, tiny_weights):
    handler, _ = start_handler("sam", tmp_path, tiny_weights("sam"), decoder_memo="off")
    assert handler.decoder_memo is None
    assert all("forward" not in vars(m) for m in handler.model.modules())  # no instance patched
