"""Full-size models with random weights, in the production on-disk formats (benchmarks only).

Latency and memory do not depend on weight values, so random weights of the real shapes give
honest figures without downloading anything:

- ``sam``: ``segment_anything``'s own ``build_sam_vit_h`` (or ``vit_l``/``vit_b``) without a
  checkpoint; its state dict saved as a bare ``.pth`` (the format of ``sam_vit_h_4b8939.pth``).
- ``lama``: the project's big-lama generator (``model_sources/lama/big_lama.py``, the published
  ``configs/training/big-lama.yaml`` generator: ngf 64, 3 downsamplings, 18 FFC blocks, ratio
  0.75) saved like the published Lightning ``best.ckpt`` (``state_dict`` with ``generator.`` keys).
- ``sd``: Stable Diffusion 2 inpainting: UNet (9 input channels), KL VAE and the OpenCLIP-ViT/H
  text encoder (23 layers, width 1024) from ``bench/model_configs/*.json``, and a CLIP BPE
  tokenizer written here with the real vocabulary size (49,408 = 256 byte symbols + 256
  end-of-word byte symbols + 48,894 merges + 2 special tokens, ids as CLIP's: ``!`` = 0,
  ``<|startoftext|>`` = 49406, ``<|endoftext|>`` = 49407). Saved in the diffusers folder layout
  with the ``fp16`` variant files (what the GPU handler loads) and, optionally, fp32 defaults.

``python -m bench.full_size {sam,lama,sd} OUT_DIR`` builds one (the runner calls it in a child
process so the builder's memory never counts against a measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS_DIR = Path(os.environ.get("MME_MODEL_CONFIGS", REPO / "bench" / "model_configs"))

#: Bumped when a builder's output changes (the runner's weight cache keys on it).
BUILDER_VERSION = "1"

CLIP_VOCAB_SIZE = 49408


# ---------------------------------------------------------------------- SAM
def build_sam(out_dir: str | Path, model_type: str = "vit_h", seed: int = 0) -> list[Path]:
    """``sam_<type>_random.pth``: segment_anything's builder with random weights (no checkpoint)."""
    import torch
    from segment_anything import sam_model_registry

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model_type not in ("vit_h", "vit_l", "vit_b"):
        raise ValueError(f"model_type must be vit_h, vit_l or vit_b, got {model_type!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = sam_model_registry[model_type](checkpoint=None)
        for name, param in model.named_parameters():  # zero-initialised tables: make them non-trivial
            if "rel_pos" in name:
                torch.nn.init.normal_(param, std=0.02)
    path = out / f"sam_{model_type}_random.pth"
    torch.save(model.state_dict(), path)
    return [path]


# ---------------------------------------------------------------------- LaMa
def build_lama(out_dir: str | Path, seed: int = 0) -> list[Path]:
    """``best.ckpt`` shaped like the published big-lama Lightning checkpoint (generator keys)."""
    import torch

    sys.path.insert(0, str(REPO))
    from mme.tiny.lama import load_big_lama_module, make_generator

    big_lama = load_big_lama_module()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen = make_generator(seed, arch=dict(big_lama.BIG_LAMA))  # the published architecture
    state = {f"generator.{k}": v for k, v in gen.state_dict().items()}
    ckpt = {"epoch": 0, "global_step": 0, "pytorch-lightning_version": "1.2.9", "state_dict": state}
    path = out / "best.ckpt"
    torch.save(ckpt, path)
    return [path]


# ---------------------------------------------------------------------- SD2 inpainting
def write_clip_tokenizer(out_dir: str | Path, vocab_size: int = CLIP_VOCAB_SIZE, model_max_length: int = 77) -> int:
    """Write a CLIP BPE tokenizer with exactly ``vocab_size`` ids (vocab.json, merges.txt, configs).

    Layout of the real CLIP vocabulary: the 256 byte symbols, the same with ``</w>``, one token per
    merge, then the two special tokens. The merges here are generated (two-symbol words of frequent
    letters first), not learned, so texts split into different pieces than with the real
    vocabulary; the text encoder still sees 77 padded ids below 49,408, i.e. the real compute.
    Returns the vocabulary size.
    """
    from mme.tiny.sd import bytes_to_unicode, write_clip_tokenizer as write_clip_tokenizer_files

    alphabet = list(bytes_to_unicode().values())
    n_merges = vocab_size - 2 * len(alphabet) - 2
    if n_merges < 0:
        raise ValueError(f"vocab_size must be at least {2 * len(alphabet) + 2}")
    priority = "etaoinshrdlcumwfgypbvkjxqz0123456789"
    order = list(priority) + [c for c in alphabet if c not in priority]
    rank = {c: i for i, c in enumerate(order)}
    pairs = sorted(((a, b, end) for a in order for b in order for end in (True, False)),
                   key=lambda t: (rank[t[0]] + rank[t[1]], not t[2], rank[t[0]]))
    merges = [(a, b + "</w>" if end else b) for a, b, end in pairs[:n_merges]]
    size = write_clip_tokenizer_files(out_dir, merges, model_max_length)
    if size != vocab_size:
        raise AssertionError(f"generated vocabulary has {size} ids, not {vocab_size}")
    return size


def _config(configs_dir: Path, name: str) -> dict:
    data = json.loads((configs_dir / name).read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


def build_sd(out_dir: str | Path, configs_dir: str | Path = DEFAULT_CONFIGS_DIR, fp32: bool = False,
             seed: int = 0) -> list[Path]:
    """The diffusers folder of SD2 inpainting at production size with random weights.

    Writes ``unet/``, ``vae/``, ``text_encoder/`` with ``*.fp16.safetensors`` (and the fp32
    defaults when ``fp32``), ``tokenizer/`` (49,408 ids), ``scheduler/`` (the published PNDM
    config) and ``model_index.json``. About 2.6 GB (fp16 only).
    """
    import diffusers
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.utils import logging as dlog
    from transformers import CLIPTextConfig, CLIPTextModel
    from transformers.utils import logging as tlog

    sys.path.insert(0, str(REPO))
    from mme.tiny.sd import SD2_INPAINT_SCHEDULER_CONFIG

    cfg_dir = Path(configs_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = write_clip_tokenizer(out / "tokenizer")
    te_cfg = _config(cfg_dir, "sd2_text_encoder.json")
    te_cfg.pop("architectures", None)
    te_cfg.pop("model_type", None)
    if te_cfg.get("vocab_size") != vocab_size:
        raise ValueError(f"text encoder vocab_size {te_cfg.get('vocab_size')} != tokenizer {vocab_size}")
    te_cfg.update(bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=0)

    dlog.set_verbosity_error()
    tlog.disable_progress_bar()
    written: list[Path] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for sub, make in (
            ("unet", lambda: UNet2DConditionModel(**_config(cfg_dir, "sd2_inpaint_unet.json"))),
            ("vae", lambda: AutoencoderKL(**_config(cfg_dir, "sd2_vae.json"))),
            ("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**te_cfg))),
        ):
            module = make()  # one network in memory at a time (the UNet alone is 3.5 GB in fp32)
            if fp32:
                module.save_pretrained(out / sub, safe_serialization=True)
            module.to(torch.float16).save_pretrained(out / sub, variant="fp16", safe_serialization=True)
            written += sorted((out / sub).iterdir())
            del module
    sched = out / "scheduler"
    sched.mkdir(exist_ok=True)
    (sched / "scheduler_config.json").write_text(json.dumps(
        {**SD2_INPAINT_SCHEDULER_CONFIG, "_diffusers_version": diffusers.__version__}, indent=2), encoding="utf-8")
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionInpaintPipeline", "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }, indent=2), encoding="utf-8")
    return written + [sched / "scheduler_config.json", out / "model_index.json"]


BUILDERS = {"sam": build_sam, "lama": build_lama, "sd": build_sd}


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.full_size NAME OUT_DIR [--sam-type vit_h] [--fp32]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.full_size", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(BUILDERS))
    parser.add_argument("out_dir")
    parser.add_argument("--sam-type", default="vit_h", choices=["vit_h", "vit_l", "vit_b"])
    parser.add_argument("--fp32", action="store_true", help="sd: also write the fp32 default files")
    parser.add_argument("--configs-dir", default=str(DEFAULT_CONFIGS_DIR))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.name == "sam":
        paths = build_sam(args.out_dir, args.sam_type, args.seed)
    elif args.name == "lama":
        paths = build_lama(args.out_dir, args.seed)
    else:
        paths = build_sd(args.out_dir, args.configs_dir, fp32=args.fp32, seed=args.seed)
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
