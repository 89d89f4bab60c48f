"""Load the Stable Diffusion 2 inpainting pipeline of the ``sd`` handler: fast and lean.

Each network (UNet, text encoder, VAE) is built on the meta device from its config (accelerate's
``init_empty_weights``: no storage for parameters, buffers real; no initialiser run), its
safetensors file is mapped (``safetensors.safe_open``: tensors are views of the file's pages) and
every tensor is converted straight onto the device in the final dtype, then assigned
(``load_state_dict(assign=True)``): one read of the file, one conversion per tensor, into memory
that is the loaded model's. Then the pipeline is assembled from the networks. Weights kept in
their stored dtype on CPU stay views of the mapped file; they are faulted in at load
(``mme_serving.weights``).

diffusers' and transformers' own ``from_pretrained`` (with ``device_map``) reach the same models but
took two to three times as long on CPU when fp16 files load as fp32 (a copy of the mapped tensors, then
accelerate's per-tensor assignment; ``docs/performance.md``). They remain the path for whatever
the direct one does not cover: ``.bin`` weights, checkpoints whose names are not exactly the
model's (legacy keys that the libraries rename) and models that keep modules in fp32.

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
import logging
import os
from contextlib import ExitStack

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, ModelMixin, StableDiffusionInpaintPipeline, UNet2DConditionModel
from mme_serving import ConfigError
from mme_serving.weights import ReadAhead, fault_in, meta_initialisers_skipped
from safetensors import safe_open
from torch import nn
from transformers import CLIPTextModel, CLIPTokenizer
from transformers.initialization import no_init_weights

logger = logging.getLogger(__name__)

#: (subfolder, class) in load order (see the module docstring).
NETWORKS = (("unet", UNet2DConditionModel), ("text_encoder", CLIPTextModel), ("vae", AutoencoderKL))


def has_variant(weights_dir: str, variant: str) -> bool:
    """True when every network folder holds ``*.<variant>.safetensors`` (or .bin) files."""
    return all(glob.glob(os.path.join(weights_dir, sub, f"*.{variant}.*")) for sub, _ in NETWORKS)


def network_files(folder: str, variant: str | None) -> list[str]:
    """The weight files of one network's folder that the loader reads (safetensors where both
    formats exist; every shard)."""
    for ext in ("safetensors", "bin"):
        names = [n for n in sorted(glob.glob(os.path.join(folder, f"*.{ext}")))
                 if (f".{variant}." in os.path.basename(n)) == bool(variant)]
        if names:
            return names
    return []


def weight_files(weights_dir: str, variant: str | None) -> list[str]:
    """The weight files the loader reads, in load order."""
    return [f for sub, _ in NETWORKS for f in network_files(os.path.join(weights_dir, sub), variant)]


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


def _empty_network(cls: type, folder: str) -> nn.Module:
    """``cls`` built from the config in ``folder``, parameters on the meta device, no initialiser
    run on them: a diffusers model's layers call ``torch.nn.init`` (skipped on meta tensors,
    ``mme_serving.weights``); a transformers model also runs its own ``init_weights`` after
    building, which transformers' ``no_init_weights`` (what its ``from_pretrained`` uses) turns
    off. Without it the CLIP text encoder spent most of its 0.15-0.2 s build drawing normal
    values into meta tensors."""
    with init_empty_weights():
        if issubclass(cls, ModelMixin):
            with meta_initialisers_skipped():
                return cls.from_config(cls.load_config(folder))
        with no_init_weights():
            return cls(cls.config_class.from_pretrained(folder))


def load_direct(cls: type, folder: str, files: list[str], device: torch.device,
                dtype: torch.dtype) -> nn.Module | None:
    """The network in ``folder`` from its safetensors ``files``: built empty, each tensor converted
    onto ``device`` (floating ones to ``dtype``) and assigned. ``None`` when the direct path does not
    apply (see the module docstring): the caller then uses the library's ``from_pretrained``."""
    if (not files or not all(f.endswith(".safetensors") for f in files)
            or getattr(cls, "_keep_in_fp32_modules", None)):
        return None
    model = _empty_network(cls, folder)
    with ExitStack() as stack:
        mapped = [(key, fh) for fh in (stack.enter_context(safe_open(path, framework="pt")) for path in files)
                  for key in fh.keys()]
        if sorted(key for key, _ in mapped) != sorted(model.state_dict()):
            return None
        state = {}
        for key, fh in mapped:
            tensor = fh.get_tensor(key)
            state[key] = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device).eval()  # buffers that are not in the files (built real) move once


def load_network(weights_dir: str, sub: str, cls: type, device: torch.device, dtype: torch.dtype,
                 variant: str | None) -> nn.Module:
    """One network of the pipeline: the direct path, or the library's ``from_pretrained``."""
    folder = os.path.join(weights_dir, sub)
    model = load_direct(cls, folder, network_files(folder, variant), device, dtype)
    if model is None:
        logger.info("%s: loading through %s.from_pretrained", sub, cls.__name__)
        device_map = str(device) if device.type != "cpu" else "cpu"
        model = cls.from_pretrained(weights_dir, subfolder=sub, variant=variant, dtype=dtype,
                                    device_map=device_map, local_files_only=True)
    if device.type == "cpu":  # tensors kept as stored are views of the mapped file: read them now
        fault_in(model)
    return model


def load_pipeline(weights_dir: str, device: torch.device, dtype: torch.dtype,
                  variant: str | None) -> StableDiffusionInpaintPipeline:
    """The pipeline from a diffusers folder, on ``device`` in ``dtype`` (safety checker off)."""
    check_layout(weights_dir)
    with ReadAhead(weight_files(weights_dir, variant)):
        networks = {sub: load_network(weights_dir, sub, cls, device, dtype, variant) for sub, cls in NETWORKS}
    tokenizer = CLIPTokenizer.from_pretrained(weights_dir, subfolder="tokenizer", local_files_only=True)
    return StableDiffusionInpaintPipeline.from_pretrained(
        weights_dir, **networks, tokenizer=tokenizer, dtype=dtype,
        safety_checker=None,  # off on purpose: see handler.py's docstring
        feature_extractor=None, requires_safety_checker=False, local_files_only=True,
    )
