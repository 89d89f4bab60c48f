"""Load the Stable Diffusion 2 inpainting pipeline of the ``sd`` handler: fast and lean.

The networks are loaded one by one with diffusers' and transformers' own ``from_pretrained``
(they know the checkpoints' key conventions), each straight onto the device in its final dtype
(``device_map`` + ``low_cpu_mem_usage``: built on the meta device with accelerate, no random
initialisation, safetensors mapped and each tensor converted as it is assigned), then the pipeline
is assembled from them: the weights move to the device once. On CPU, weights kept in their stored
dtype stay views of the mapped files; they are faulted in at load (``mme_serving.weights``).

Order matters for memory: while a network loads, its file's mapped pages and its converted
tensors are both resident, so each network adds about half its final size on top of what is
already loaded (fp16 files into fp32 on CPU). The UNet (1.7 GB in fp16, 3.5 GB in fp32) goes first,
when nothing else is loaded; the VAE, whose file is the smallest (0.17 GB), goes last, when
everything else is; the text encoder in between. The peak then stays within a few percent of the
loaded pipeline. A :class:`mme_serving.weights.ReadAhead` thread reads the files in that order.
"""

from __future__ import annotations

import glob
import json
import os

import torch
from diffusers import AutoencoderKL, StableDiffusionInpaintPipeline, UNet2DConditionModel
from mme_serving import ConfigError
from mme_serving.weights import ReadAhead, fault_in
from transformers import CLIPTextModel, CLIPTokenizer

#: (subfolder, class) in load order (see the module docstring).
NETWORKS = (("unet", UNet2DConditionModel), ("text_encoder", CLIPTextModel), ("vae", AutoencoderKL))


def has_variant(weights_dir: str, variant: str) -> bool:
    """True when every network folder holds ``*.<variant>.safetensors`` (or .bin) files."""
    return all(glob.glob(os.path.join(weights_dir, sub, f"*.{variant}.*")) for sub, _ in NETWORKS)


def weight_files(weights_dir: str, variant: str | None) -> list[str]:
    """The weight files the loader reads, in load order (safetensors first where both exist)."""
    files = []
    for sub, _ in NETWORKS:
        folder = os.path.join(weights_dir, sub)
        for ext in ("safetensors", "bin"):
            names = [n for n in sorted(glob.glob(os.path.join(folder, f"*.{ext}")))
                     if (f".{variant}." in os.path.basename(n)) == bool(variant)]
            if names:
                files += names
                break
    return files


def check_layout(weights_dir: str) -> None:
    """``ConfigError`` unless ``weights_dir`` is a diffusers folder of an SD inpainting pipeline."""
    index = os.path.join(weights_dir, "model_index.json")
    if not os.path.isfile(index):
        raise ConfigError(f"no diffusers pipeline (model_index.json) under {weights_dir}")
    with open(index, encoding="utf-8") as fh:
        components = json.load(fh)
    for sub, cls in (*NETWORKS, ("tokenizer", CLIPTokenizer)):
        entry = components.get(sub)
        if not (isinstance(entry, list) and len(entry) == 2 and entry[1] == cls.__name__):
            raise ConfigError(f"{index}: '{sub}' must be {cls.__name__}, found {entry!r}")


def load_pipeline(weights_dir: str, device: torch.device, dtype: torch.dtype,
                  variant: str | None) -> StableDiffusionInpaintPipeline:
    """The pipeline from a diffusers folder, on ``device`` in ``dtype`` (safety checker off)."""
    check_layout(weights_dir)
    device_map = str(device) if device.type != "cpu" else "cpu"
    networks = {}
    with ReadAhead(weight_files(weights_dir, variant)):
        for sub, cls in NETWORKS:
            networks[sub] = cls.from_pretrained(weights_dir, subfolder=sub, variant=variant, dtype=dtype,
                                                device_map=device_map, local_files_only=True)
            if device.type == "cpu":  # tensors kept as stored are views of the mapped file: read them now
                fault_in(networks[sub])
    tokenizer = CLIPTokenizer.from_pretrained(weights_dir, subfolder="tokenizer", local_files_only=True)
    return StableDiffusionInpaintPipeline.from_pretrained(
        weights_dir, **networks, tokenizer=tokenizer, dtype=dtype,
        safety_checker=None,  # off on purpose: see handler.py's docstring
        feature_extractor=None, requires_safety_checker=False, local_files_only=True,
    )
