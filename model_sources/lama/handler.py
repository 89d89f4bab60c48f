"""TorchServe handler for LaMa (``lama``): erase the masked object and fill from context.

Request (JSON): ``image`` (base64 PNG/JPEG/WebP), ``mask_image`` (base64, same size; pixels
> 127 are the hole), optional ``gen_args`` (accepted for compatibility; no arguments are used).
Response: ``{"generated_image": <base64 PNG, input size>}``; pixels outside the mask are the
input's pixels, bit for bit.

Weights (first match of ``handler.checkpoint``):
- a Lightning checkpoint (``best.ckpt`` from the big-lama release: ``state_dict`` with
  ``generator.``-prefixed keys) or a bare generator state dict, loaded with ``strict=True`` into
  the project's own generator (``big_lama.py``); architecture from ``handler.arch`` /
  ``weights/arch.json`` (defaults: the published big-lama);
- a TorchScript ``big-lama.pt`` (the IOPaint / simple-lama export), called as
  ``model(image, mask)`` with image in [0, 1] and mask 0/1.

The input is padded to a multiple of 8 (symmetric padding, as LaMa's own prediction code does),
inpainted, cropped back and composited. Precision: fp32 everywhere. LaMa's spectral (FFT) layers
are the reason: cuFFT in half precision only takes power-of-two sizes and the generator is small
(51 M parameters), so reduced precision buys little and would change outputs.
"""

from __future__ import annotations

import logging
import os
import warnings
import zipfile

import numpy as np
import torch
from big_lama import BIG_LAMA, LamaInpainter, generator_from_state_dict, read_state_dict
from mme_serving import (
    ConfigError,
    Request,
    ServingHandler,
    composite,
    encode_png_b64,
    load_json_overrides,
    resolve_file,
)

logger = logging.getLogger(__name__)


def _is_torchscript(path: str) -> bool:
    """TorchScript archives are zip files with a ``code/`` folder (plain torch.save zips have none)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in name or name.startswith("code/") for name in zf.namelist())


def pad_symmetric(x: torch.Tensor, multiple: int, min_size: int = 1) -> torch.Tensor:
    """Pad (B, C, H, W) at the bottom/right to multiples of ``multiple`` (and at least ``min_size``)
    like ``np.pad(mode="symmetric")``."""
    for dim in (-2, -1):
        size = x.shape[dim]
        missing = max(size + (-size) % multiple, min_size + (-min_size) % multiple) - size
        while missing:
            take = min(missing, x.shape[dim])
            tail = x.narrow(dim, x.shape[dim] - take, take).flip(dim)
            x = torch.cat([x, tail], dim=dim)
            missing -= take
    return x


class LamaHandler(ServingHandler):
    """LaMa inpainting handler (see the module docstring for the contract)."""

    default_max_image_pixels = 4096 * 2048

    def load_model(self) -> None:
        """Load a Lightning/bare state dict into the project's generator, or a TorchScript export."""
        s = self.settings
        path = resolve_file(self.model_dir, s.get("checkpoint", ["weights/*.ckpt", "weights/*.pt", "weights/*.pth"]),
                            "LaMa weights")
        self.pad_multiple = s.get_int("pad_multiple", 8, min=1, max=256)
        self.mask_threshold = s.get_int("mask_threshold", 127, min=0, max=254)
        # The reflect-padded 3x3 convolutions at the bottleneck need >= 2 pixels there: big-lama
        # (3 downsamplings) needs inputs of at least 16x16, so smaller images are padded up.
        self.min_size = s.get_int("min_padded_size", 16, min=1, max=1024)
        if _is_torchscript(path):
            with warnings.catch_warnings():  # "torch.jit.load is deprecated": the published file is TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                self.model = torch.jit.load(path, map_location=self.device).eval()
            self.kind = "torchscript"
        else:
            arch = dict(s.get_dict("arch"))
            arch.update(load_json_overrides(self.model_dir, s.get_str("arch_file", "weights/arch.json")))
            try:
                generator = generator_from_state_dict(read_state_dict(path), **arch)
            except (RuntimeError, ValueError) as exc:  # missing/unexpected keys, wrong shapes
                raise ConfigError(f"{os.path.basename(path)} does not match the LaMa architecture "
                                  f"{ {**BIG_LAMA, **arch} }: {exc}") from exc
            if self.pad_multiple % generator.multiple:
                raise ConfigError(f"handler.pad_multiple must be a multiple of {generator.multiple}")
            self.model = LamaInpainter(generator).to(self.device).eval()
            self.kind = "state_dict"
        logger.info("LaMa %s from %s on %s", self.kind, path, self.device)

    def parse(self, request: Request):
        """Decode and check the image and the mask (same size, not empty)."""
        request.gen_args({})  # validated for shape only: must be an object/JSON string if present
        image = request.image("image")
        mask = request.mask(image.size, "mask_image", threshold=self.mask_threshold)
        return np.array(image), mask

    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 + (H, W) bool -> (H, W, 3) uint8 with only masked pixels changed."""
        h, w = mask.shape
        x = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        m = torch.from_numpy(mask).to(self.device)[None, None].float()
        out = self.model(pad_symmetric(x, self.pad_multiple, self.min_size),
                         pad_symmetric(m, self.pad_multiple, self.min_size))
        out = out[0, :, :h, :w].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        return composite(image, out, mask)

    def infer(self, item) -> dict:
        """Serve one parsed request."""
        image, mask = item
        return {"generated_image": encode_png_b64(self.inpaint(image, mask), self.png_compress_level)}
