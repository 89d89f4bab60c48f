"""The full-size builders' inputs, checked cheaply: the SD2 configs give the published component
sizes (instantiated on the meta device, no memory), the locally written CLIP tokenizer has the real
49,408 ids, and the big-lama checkpoint loads strictly into the lama handler's generator."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import full_size  # noqa: E402

CONFIGS = full_size.DEFAULT_CONFIGS_DIR


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_sd2_configs_have_the_published_sizes():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    te_cfg = full_size._config(CONFIGS, "sd2_text_encoder.json")
    te_cfg.pop("architectures", None)
    te_cfg.pop("model_type", None)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**full_size._config(CONFIGS, "sd2_inpaint_unet.json"))
        vae = AutoencoderKL(**full_size._config(CONFIGS, "sd2_vae.json"))
        text = CLIPTextModel(CLIPTextConfig(**te_cfg))
    # SD2's UNet has 865,910,724 parameters; inpainting adds 5 input channels to conv_in (320 x 5 x 3 x 3)
    assert _params(unet) == 865_910_724 + 320 * 5 * 3 * 3
    assert unet.config.in_channels == 9 and unet.config.cross_attention_dim == 1024
    assert _params(vae) == 83_653_863
    assert _params(text) == 340_387_840  # OpenCLIP ViT-H/14 text tower without its last block (23 layers)
    assert text.config.vocab_size == full_size.CLIP_VOCAB_SIZE == 49408


def test_clip_tokenizer_has_the_real_vocabulary_size(tmp_path):
    from transformers import CLIPTokenizer

    assert full_size.write_clip_tokenizer(tmp_path) == 49408
    tok = CLIPTokenizer.from_pretrained(tmp_path)
    assert len(tok) == 49408
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (49406, 49407, 0)
    ids = tok("a red ceramic vase on a wooden table, photo", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == 49406 and 49407 in ids and max(ids) < 49408
    assert tok.convert_ids_to_tokens(ids[1]) == "a</w>"


def test_sam_vit_h_builder_is_segment_anythings():
    from segment_anything import sam_model_registry

    with torch.device("meta"):
        assert _params(sam_model_registry["vit_h"](checkpoint=None)) == 641_090_608


def test_big_lama_checkpoint_loads_strictly(tmp_path):
    sys.path.insert(0, str(REPO / "model_sources" / "lama"))
    import big_lama

    (path,) = full_size.build_lama(tmp_path)
    assert path.name == "best.ckpt"
    generator = big_lama.generator_from_state_dict(big_lama.read_state_dict(str(path)))  # strict=True inside
    assert 50_000_000 < _params(generator) < 52_000_000
