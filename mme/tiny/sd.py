"""Stable Diffusion 2 inpainting in the real diffusers on-disk format, built offline.

``build(out_dir)`` (alias :func:`build_tiny_sd`) writes a *tiny* random-weight pipeline shaped like
``stabilityai/stable-diffusion-2-inpainting`` (UNet with 9 input channels = 4 latent + 4
masked-image latent + 1 mask, SD2's linear attention projections, a CLIP text encoder, a KL VAE,
the published PNDM scheduler config and a CLIP BPE tokenizer written locally) so that the real
loading code (``StableDiffusionInpaintPipeline.from_pretrained(..., variant="fp16")``) runs in
tests without any download. Weights are saved twice, as the published repository does: fp32
(``diffusion_pytorch_model.safetensors`` / ``model.safetensors``) and the ``fp16`` variant
(``diffusion_pytorch_model.fp16.safetensors`` / ``model.fp16.safetensors``).

The production-size builder for benchmarks is ``bench.full_size.build_sd``; it reuses this module's
scheduler config and tokenizer writer.

Nothing here touches the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The tiny model's geometry. The VAE downsamples by 2 (two blocks), the UNet works on 32x32
# latents, so the pipeline's native resolution is 32 * 2 = 64 px: tests run at 64x64.
TINY_UNET_SAMPLE_SIZE = 32
TINY_NATIVE_SIZE = 64
TINY_HIDDEN = 32

# Published scheduler of stabilityai/stable-diffusion-2-inpainting (scheduler/scheduler_config.json).
# The handler swaps it for DPM-Solver++ at load time (see model_sources/sd/handler.py); shipping
# the published one here keeps the weights folder identical in format to the real repository.
SD2_INPAINT_SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
}

_BOS = "<|startoftext|>"
_EOS = "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode character table (the ByteLevel alphabet)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


#: Merges of the tiny tokenizer: a few common English letter pairs. A word's last character
#: carries the "</w>" suffix as one symbol ("e</w>"), as in CLIP.
TINY_MERGES = (("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("o", "n</w>"),
               ("e", "r"), ("a", "t"), ("o", "r"), ("a", "t</w>"), ("c", "at</w>"))


def write_clip_tokenizer(out_dir: str | Path, merge_pairs, model_max_length: int = 77) -> int:
    """Write a complete CLIP BPE tokenizer (vocab.json, merges.txt, configs) from ``merge_pairs``.

    The vocabulary is laid out as CLIP's: every byte-level character alone, then each with
    ``</w>``, then one token per merge, then the two special tokens; so every string tokenizes
    (no unknown tokens) the way a CLIP tokenizer splits it. Returns the vocabulary size (the text
    encoder's ``vocab_size``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    alphabet = list(bytes_to_unicode().values())
    vocab_list: list[str] = list(alphabet) + [c + "</w>" for c in alphabet]
    merges: list[str] = []
    for left, right in merge_pairs:
        merged = left + right
        merges.append(f"{left} {right}")
        if merged not in vocab_list:
            vocab_list.append(merged)
    vocab_list += [_BOS, _EOS]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")

    def special(tok: str) -> dict[str, Any]:
        return {"content": tok, "lstrip": False, "normalized": True, "rstrip": False,
                "single_word": False, "__type": "AddedToken"}

    # Same fields as the published SD2 tokenizer_config.json (pad "!" as OpenCLIP pads with 0).
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "add_prefix_space": False,
        "bos_token": special(_BOS),
        "do_lower_case": True,
        "eos_token": special(_EOS),
        "errors": "replace",
        "model_max_length": model_max_length,
        "pad_token": "!",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": special(_EOS),
    }, indent=2), encoding="utf-8")
    (out_dir / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": {k: v for k, v in special(_BOS).items() if k != "__type"},
        "eos_token": {k: v for k, v in special(_EOS).items() if k != "__type"},
        "pad_token": "!",
        "unk_token": {k: v for k, v in special(_EOS).items() if k != "__type"},
    }, indent=2), encoding="utf-8")
    return len(vocab)


def write_tiny_clip_tokenizer(out_dir: Path, model_max_length: int = 77) -> int:
    """Write the tiny pipeline's small but complete CLIP tokenizer (see ``write_clip_tokenizer``)."""
    return write_clip_tokenizer(out_dir, TINY_MERGES, model_max_length)


def _write_model_index(out_dir: Path) -> None:
    """model_index.json as the published repository has it (safety checker absent)."""
    import diffusers

    index = {
        "_class_name": "StableDiffusionInpaintPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (out_dir / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")


def _save_components(out_dir: Path, unet, vae, text_encoder, fp32: bool = True) -> None:
    """Save the three networks in fp16 variant files (and fp32 defaults when ``fp32``)."""
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # Quiet: diffusers warns about casting with .to() (nothing here must stay fp32) and
    # transformers draws a progress bar per saved file.
    verbosity = diffusers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    diffusers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
            sub = out_dir / name
            if fp32:
                module.to(torch.float32).save_pretrained(sub, safe_serialization=True)
            module.to(torch.float16).save_pretrained(sub, variant="fp16", safe_serialization=True)
            module.to(torch.float32)
    finally:
        diffusers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def _write_scheduler(out_dir: Path) -> None:
    import diffusers

    sched = out_dir / "scheduler"
    sched.mkdir(parents=True, exist_ok=True)
    config = dict(SD2_INPAINT_SCHEDULER_CONFIG)
    config["_diffusers_version"] = diffusers.__version__
    (sched / "scheduler_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def build_tiny_sd(out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny SD2-inpaint-like pipeline into ``out_dir`` (the model dir's ``weights/``).

    Layout (what the handler and the packager expect)::

        model_index.json
        unet/{config.json, diffusion_pytorch_model{,.fp16}.safetensors}
        vae/{config.json, diffusion_pytorch_model{,.fp16}.safetensors}
        text_encoder/{config.json, model{,.fp16}.safetensors}
        tokenizer/{vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json}
        scheduler/scheduler_config.json

    Deterministic for a given ``seed``. A few MB, well under a second on a CPU.
    """
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tiny_clip_tokenizer(out / "tokenizer")

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=TINY_UNET_SAMPLE_SIZE,
        in_channels=9,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TINY_HIDDEN,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=TINY_NATIVE_SIZE,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TINY_HIDDEN,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=TINY_HIDDEN,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=0,
    ))
    _save_components(out, unet, vae, text_encoder)
    _write_scheduler(out)
    _write_model_index(out)
    return out


def build(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Dispatcher entry point (``mme.tiny.build("sd", out_dir)``): build the tiny SD pipeline
    into ``out_dir`` and return the files written (sorted)."""
    out = build_tiny_sd(out_dir, seed=seed)
    return sorted(p for p in out.rglob("*") if p.is_file())
