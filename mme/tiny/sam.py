"""Tiny SAM: the segment-anything modules at toy sizes with random weights.

Writes ``sam_tiny.pth`` (a bare state dict, like ``sam_vit_h_4b8939.pth``) and ``arch.json``
(the architecture the sam handler builds instead of its vit_h preset).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch

TINY_ARCH = {
    "image_size": 64, "patch_size": 8, "window_size": 4, "mlp_ratio": 2.0,
    "encoder_embed_dim": 32, "encoder_depth": 2, "encoder_num_heads": 2, "encoder_global_attn_indexes": [1],
    "prompt_embed_dim": 32, "mask_in_chans": 4, "decoder_depth": 1, "decoder_mlp_dim": 64,
    "decoder_num_heads": 2, "iou_head_depth": 3, "iou_head_hidden_dim": 32,
}


def make_model(arch: dict = TINY_ARCH):
    """Construct the SAM modules for ``arch`` directly from segment_anything (independently of the
    handler's builder, so loading the result in the handler cross-checks both)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    a = arch
    grid = a["image_size"] // a["patch_size"]
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=a["image_size"], patch_size=a["patch_size"], embed_dim=a["encoder_embed_dim"],
            depth=a["encoder_depth"], num_heads=a["encoder_num_heads"], mlp_ratio=a["mlp_ratio"],
            out_chans=a["prompt_embed_dim"], qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=a["window_size"],
            global_attn_indexes=tuple(a["encoder_global_attn_indexes"]),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=a["prompt_embed_dim"], image_embedding_size=(grid, grid),
            input_image_size=(a["image_size"], a["image_size"]), mask_in_chans=a["mask_in_chans"],
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=a["prompt_embed_dim"], num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=a["decoder_depth"], embedding_dim=a["prompt_embed_dim"],
                                          mlp_dim=a["decoder_mlp_dim"], num_heads=a["decoder_num_heads"]),
            iou_head_depth=a["iou_head_depth"], iou_head_hidden_dim=a["iou_head_hidden_dim"],
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def build(out_dir: Path, seed: int = 0) -> list[Path]:
    """Write ``sam_tiny.pth`` + ``arch.json`` into ``out_dir``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model()
        # Relative-position tables start at zero in segment_anything; randomize them too so the
        # tiny encoder exercises them.
        for name, param in model.named_parameters():
            if "rel_pos" in name:
                torch.nn.init.normal_(param, std=0.02)
    ckpt = out_dir / "sam_tiny.pth"
    torch.save(model.state_dict(), ckpt)
    arch = out_dir / "arch.json"
    arch.write_text(json.dumps(TINY_ARCH, indent=2) + "\n")
    return [ckpt, arch]
