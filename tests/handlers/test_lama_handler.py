"""The big-lama generator (names/shapes vs the published checkpoint) and the lama handler."""

from __future__ import annotations

import base64
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from handler_testlib import (
    SOURCES,
    b64_png,
    decode_b64_png,
    load_handler_class,
    model_config,
    png_bytes,
    rect_mask,
    run_batch,
    sample_image,
    start_handler,
)

PARAMS = Path(__file__).parent / "data" / "big_lama_generator_params.json"
W, H = 37, 29  # not multiples of 8


@pytest.fixture(scope="module")
def big_lama():
    load_handler_class("lama")  # puts model_sources/lama on sys.path
    import big_lama

    return big_lama


def make_handler(tmp_path, weights, **overrides):
    return start_handler("lama", tmp_path, weights, **overrides)


@pytest.fixture(scope="module")
def lama(tmp_path_factory, tiny_weights):
    return make_handler(tmp_path_factory.mktemp("lama"), tiny_weights("lama"))


def hole(width=W, height=H, box=(8, 6, 20, 17)):
    return rect_mask(width, height, box).astype(np.uint8) * 255


def req(image, mask, **extra):
    return {"image": b64_png(image), "mask_image": b64_png(mask), **extra}


# ------------------------------------------------------------------------------------------ architecture
def test_generator_matches_the_published_big_lama_parameters(big_lama):
    """Every name and shape of the published big-lama generator (checked-in list derived from the
    reference implementation + config), in order: best.ckpt's generator loads with strict=True."""
    ref = json.loads(PARAMS.read_text())
    with torch.device("meta"):
        ours = big_lama.FFCResNetGenerator().state_dict()
    assert [[f"generator.{k}", list(v.shape)] for k, v in ours.items()] == ref["params"]
    assert len(ours) == ref["count"] == 989
    assert sum(v.numel() for v in ours.values()) == ref["total_numel"] == 51_057_179


def test_strict_load_of_a_full_size_lightning_state_dict(big_lama):
    ref = json.loads(PARAMS.read_text())
    state = {name: torch.zeros(shape, dtype=torch.long if name.endswith("num_batches_tracked") else torch.float32)
             for name, shape in ref["params"]}
    state["discriminator.model0.0.weight"] = torch.zeros(1)  # other modules of the checkpoint are ignored
    gen = big_lama.generator_from_state_dict(state)
    assert sum(p.numel() for p in gen.parameters()) > 50_000_000
    del state["generator.model.34.bias"]
    with pytest.raises(RuntimeError, match="model.34.bias"):
        big_lama.generator_from_state_dict(state)


def test_fourier_unit_matches_the_reference_layout(big_lama):
    """Our FourierUnit computes what LaMa's does (rfftn -> stack(re, im) on a last dim ->
    permute/view to 2C channels -> conv/BN/ReLU -> view/permute back -> irfftn)."""
    torch.manual_seed(0)
    fu = big_lama.FourierUnit(6).eval()
    fu.bn.running_mean.normal_()
    fu.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 6, 10, 14)

    def reference(x):
        b = x.shape[0]
        ff = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")
        ff = torch.stack((ff.real, ff.imag), dim=-1).permute(0, 1, 4, 2, 3).contiguous()
        ff = ff.view((b, -1) + ff.size()[3:])
        ff = torch.relu(fu.bn(fu.conv_layer(ff)))
        ff = ff.view((b, -1, 2) + ff.size()[2:]).permute(0, 1, 3, 4, 2).contiguous()
        ff = torch.complex(ff[..., 0], ff[..., 1])
        return torch.fft.irfftn(ff, s=x.shape[-2:], dim=(-2, -1), norm="ortho")

    with torch.no_grad():
        assert torch.allclose(fu(x), reference(x), atol=1e-5)


def test_generator_shapes_and_range(big_lama):
    gen = big_lama.FFCResNetGenerator(ngf=8, n_blocks=1).eval()
    with torch.no_grad():
        out = gen(torch.rand(1, 4, 24, 40))
    assert out.shape == (1, 3, 24, 40) and out.min() >= 0 and out.max() <= 1


def test_pad_symmetric_is_numpy_symmetric():
    load_handler_class("lama")
    pad_symmetric = __import__("lama_handler_under_test").pad_symmetric
    for h, w in [(29, 37), (3, 2), (8, 16), (1, 1)]:
        x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
        ph, pw = (-h) % 8, (-w) % 8
        expected = np.pad(x.numpy(), ((0, 0), (0, 0), (0, ph), (0, pw)), mode="symmetric")
        assert np.array_equal(pad_symmetric(x, 8).numpy(), expected)
        ph, pw = max(h + ph, 16) - h, max(w + pw, 16) - w  # with a minimum size
        expected = np.pad(x.numpy(), ((0, 0), (0, 0), (0, ph), (0, pw)), mode="symmetric")
        assert np.array_equal(pad_symmetric(x, 8, 16).numpy(), expected)


# ------------------------------------------------------------------------------------------ checkpoint files
def test_lightning_checkpoint_needs_no_foreign_classes(tiny_weights, big_lama):
    """The tiny .ckpt pickles a config object (like Lightning's hyper_parameters): the weights-only
    loader refuses it, our reader replaces the class with an inert stub and gets the tensors."""
    ckpt = next(tiny_weights("lama").glob("*.ckpt"))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True)
    state = big_lama.read_state_dict(str(ckpt))
    assert any(k.startswith("generator.") for k in state) and "discriminator.model0.0.weight" in state
    assert ("mme.tiny.lama", "TrainingConfig") in big_lama._StubUnpickler._stubs


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_reader_never_runs_code_from_the_file(tmp_path, big_lama):
    evil = _Evil()
    evil.marker = tmp_path / "pwned"
    _Evil.marker = evil.marker
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"generator.x": torch.zeros(1)}, "payload": evil}, path)
    assert big_lama.read_state_dict(str(path)) == {"generator.x": torch.zeros(1)}
    assert not evil.marker.exists()


# ------------------------------------------------------------------------------------------ handler
def test_handler_file_defines_one_class():
    assert load_handler_class("lama").__name__ == "LamaHandler"


def test_inpaints_only_the_hole_at_input_size(lama):
    handler, ctx = lama
    assert handler.kind == "state_dict"
    img, mask = sample_image(W, H), hole()
    [(status, body)] = run_batch(handler, ctx, [req(img, mask)])
    assert status == 200
    out = decode_b64_png(body["generated_image"])
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    inside = mask > 127
    assert np.array_equal(out[~inside], img[~inside])  # outside the mask: bit for bit
    assert (out[inside] != img[inside]).any()            # inside: generated


def test_deterministic(lama):
    handler, ctx = lama
    img, mask = sample_image(W, H, seed=4), hole()
    a, b = run_batch(handler, ctx, [req(img, mask), req(img, mask)])
    assert a == b and a[0] == 200


@pytest.mark.parametrize("size,box", [((40, 32), (0, 0, 40, 3)), ((17, 9), (10, 0, 17, 9)), ((5, 3), (0, 0, 5, 3)),
                                      ((64, 23), (30, 20, 64, 23))])
def test_odd_sizes_and_masks_at_borders(lama, size, box):
    handler, ctx = lama
    w, h = size
    img, mask = sample_image(w, h, seed=w), hole(w, h, box)
    [(status, body)] = run_batch(handler, ctx, [req(img, mask)])
    out = decode_b64_png(body["generated_image"])
    assert status == 200 and out.shape == (h, w, 3)
    assert np.array_equal(out[mask <= 127], img[mask <= 127])


def test_jpeg_webp_inputs_and_soft_masks(lama):
    handler, ctx = lama
    img = sample_image(W, H)
    soft = hole().astype(np.float32) * 0.8  # 204 inside: still a hole after thresholding
    body = {"image": base64.b64encode(png_bytes(img, "JPEG", quality=95)).decode(),
            "mask_image": base64.b64encode(png_bytes(soft.astype(np.uint8), "WEBP", lossless=True)).decode(),
            "gen_args": "{}"}
    [(status, resp)] = run_batch(handler, ctx, [body])
    out = decode_b64_png(resp["generated_image"])
    assert status == 200 and out.shape == (H, W, 3)


def test_torchscript_export_gives_the_same_pixels(tmp_path, tiny_weights, lama):
    """IOPaint-style big-lama.pt (traced at 64x64) serves other sizes and matches the state-dict path."""
    ts_handler, ts_ctx = make_handler(tmp_path, tiny_weights("lama", fmt="torchscript"))
    assert ts_handler.kind == "torchscript"
    handler, ctx = lama
    img, mask = sample_image(W, H, seed=9), hole()
    [(s1, a)] = run_batch(handler, ctx, [req(img, mask)])
    [(s2, b)] = run_batch(ts_handler, ts_ctx, [req(img, mask)])
    assert s1 == s2 == 200
    diff = np.abs(decode_b64_png(a["generated_image"]).astype(int) - decode_b64_png(b["generated_image"]).astype(int))
    assert diff.max() <= 1


@pytest.mark.parametrize("mutate,code", [
    (lambda b: b.pop("mask_image"), "missing_field"),
    (lambda b: b.pop("image"), "missing_field"),
    (lambda b: b.update(mask_image=b64_png(hole(W + 1, H))), "mask_size_mismatch"),
    (lambda b: b.update(mask_image=b64_png(np.zeros((H, W), np.uint8))), "empty_mask"),
    (lambda b: b.update(mask_image=base64.b64encode(b"nope").decode()), "invalid_image"),
    (lambda b: b.update(mask_image="%%%"), "invalid_base64"),
    (lambda b: b.update(image=base64.b64encode(b"\x89PNG\r\n\x1a\n broken").decode()), "invalid_image"),
    (lambda b: b.update(gen_args=[1]), "invalid_gen_args"),
    (lambda b: b.update(gen_args="not json"), "invalid_gen_args"),
])
def test_bad_requests_get_400_and_neighbours_are_served(lama, mutate, code):
    handler, ctx = lama
    img, mask = sample_image(W, H), hole()
    bad = req(img, mask)
    mutate(bad)
    results = run_batch(handler, ctx, [req(img, mask), bad, req(img, mask)])
    assert [s for s, _ in results] == [200, 400, 200]
    assert results[1][1]["error"]["code"] == code
    assert results[0][1] == results[2][1]


def test_image_over_the_pixel_limit(tmp_path, tiny_weights):
    handler, ctx = make_handler(tmp_path, tiny_weights("lama"), max_image_pixels=W * H - 1)
    [(status, body)] = run_batch(handler, ctx, [req(sample_image(W, H), hole())])
    assert status == 400 and body["error"]["code"] == "image_too_large"


def test_wrong_architecture_fails_at_load(tmp_path, tiny_weights):
    from mme_serving import ConfigError

    with pytest.raises(ConfigError, match="does not match"):
        make_handler(tmp_path, tiny_weights("lama"), arch_file="weights/absent.json", arch={"ngf": 16})


def test_shipped_config_defaults_to_big_lama():
    cfg = model_config("lama")["handler"]
    assert cfg["pad_multiple"] == 8 and "arch" not in cfg
    assert (SOURCES / "lama" / "big_lama.py").exists()
