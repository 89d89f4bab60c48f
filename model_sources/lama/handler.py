"""TorchServe handler for LaMa (``lama``): erase the masked object and fill from context.

Request (JSON): ``image`` (base64 PNG/JPEG/WebP), ``mask_image`` (base64, same size; pixels
> 127 are the hole), optional ``gen_args`` (accepted for compatibility; no arguments are used).
Response: ``{"generated_image": <base64 PNG, the input's displayed size>}``; pixels outside the
mask are the input's pixels (as decoded: display orientation, 8-bit), bit for bit.

Transparency: the model sees the image composited over white; the PNG keeps the input's alpha
and, inside the mask, takes the alpha of the nearest pixel outside it (the fill continues its
surroundings, transparency included: ``mme_serving.ops.alpha_inside_mask``).

Large images: a region around the mask, resized down when still large (``region.py``; settings
``hd_strategy``, ``crop_trigger_size``, ``crop_margin``, ``resize_limit``).

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
import torch.nn.functional as F
from big_lama import BIG_LAMA, LamaInpainter, generator_state, new_generator, read_state_dict
from mme_serving import (
    ConfigError,
    Request,
    ServingHandler,
    encode_png_b64,
    load_json_overrides,
    resolve_file,
)
from mme_serving import request_log, weights
from mme_serving.ops import alpha_inside_mask, mask_bbox
from mme_serving.pixels import flatten
from region import STRATEGIES, Region, plan_region

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

    default_max_image_pixels = 4096 * 4096
    operation = "erase"

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
        self.strategy = s.get_str("hd_strategy", "crop", choices=STRATEGIES)
        self.crop_trigger_size = s.get_int("crop_trigger_size", 800, min=16)
        self.crop_margin = s.get_int("crop_margin", 128, min=0)
        self.resize_limit = s.get_int("resize_limit", 1280, min=16)
        with weights.ReadAhead([path]):
            self._load_weights(path, s)
        logger.info("LaMa %s from %s on %s", self.kind, path, self.device)

    def _load_weights(self, path: str, s) -> None:
        if _is_torchscript(path):
            with warnings.catch_warnings():  # "torch.jit.load is deprecated": the published file is TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                self.model = torch.jit.load(path, map_location=self.device).eval()
            self.kind = "torchscript"
        else:
            arch = dict(s.get_dict("arch"))
            arch.update(load_json_overrides(self.model_dir, s.get_str("arch_file", "weights/arch.json")))
            try:  # built without random init, tensors assigned from the mapped file, moved once
                generator = weights.assign(weights.empty(lambda: new_generator(**arch)),
                                           generator_state(read_state_dict(path)), self.device)
            except (RuntimeError, ValueError) as exc:  # missing/unexpected keys, wrong shapes
                raise ConfigError(f"{os.path.basename(path)} does not match the LaMa architecture "
                                  f"{ {**BIG_LAMA, **arch} }: {exc}") from exc
            if self.pad_multiple % generator.multiple:
                raise ConfigError(f"handler.pad_multiple must be a multiple of {generator.multiple}")
            self.model = LamaInpainter(generator).eval()
            self.kind = "state_dict"

    def parse(self, request: Request):
        """Decode and check the image (RGB or RGBA) and the mask (same size, not empty)."""
        request.gen_args({})  # validated for shape only: must be an object/JSON string if present
        image = request.image("image")
        mask = request.mask(image.size, "mask_image", threshold=self.mask_threshold)
        return image, mask

    def region(self, size: tuple[int, int], mask: np.ndarray) -> Region:
        """Where and at what scale this mask is inpainted (see ``region.py``)."""
        return plan_region(size, mask_bbox(mask), self.strategy, self.crop_trigger_size,
                           self.crop_margin, self.resize_limit)

    def _tensors(self, rgb: np.ndarray, hole: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 3, h, w) image in [0, 1] and (1, 1, h, w) 0/1 mask on the device."""
        x = torch.from_numpy(np.array(rgb)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        m = torch.from_numpy(np.array(hole)).to(self.device)[None, None].float()
        return x, m

    def _run(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The model on (1, 3, h, w) / (1, 1, h, w), padded and cropped back, in [0, 1]."""
        h, w = m.shape[-2:]
        out = self.model(pad_symmetric(x, self.pad_multiple, self.min_size),
                         pad_symmetric(m, self.pad_multiple, self.min_size))
        return out[:, :, :h, :w]

    @staticmethod
    def _to_uint8(out: torch.Tensor) -> np.ndarray:
        return out.clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).cpu().numpy()

    def fill(self, rgb: np.ndarray, hole: np.ndarray, model_size: tuple[int, int] | None = None) -> np.ndarray:
        """(h, w, 3) uint8 + (h, w) bool of a region -> the model's fill at the region's size.

        With ``model_size`` (w, h) the region is inpainted at that size: the image resized down
        with antialiased bicubic, the mask with "any coverage" (a thin stroke stays a hole), the
        fill resized back up with bicubic."""
        x, m = self._tensors(rgb, hole)
        if model_size is None or model_size == (hole.shape[1], hole.shape[0]):
            return self._to_uint8(self._run(x, m))
        small = (model_size[1], model_size[0])
        x_small = F.interpolate(x, size=small, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        m_small = (F.interpolate(m, size=small, mode="bilinear", antialias=True, align_corners=False) > 0).float()
        out = F.interpolate(self._run(x_small, m_small), size=hole.shape, mode="bicubic", align_corners=False)
        return self._to_uint8(out)

    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB + (H, W) bool -> (H, W, 3) uint8 with only masked pixels changed."""
        region = self.region((mask.shape[1], mask.shape[0]), mask)
        left, top, right, bottom = region.box
        hole = mask[top:bottom, left:right]
        generated = self.fill(image[top:bottom, left:right], hole, region.model_size)
        with request_log.stage("postprocess"):
            out = image.copy()
            out[top:bottom, left:right][hole] = generated[hole]
        return out

    def infer(self, item) -> dict:
        """Serve one parsed request (alpha kept; inside the mask, from the surroundings)."""
        image, mask = item
        original = np.asarray(image)
        result = self.inpaint(np.asarray(flatten(image)), mask)
        if original.shape[-1] == 4:
            with request_log.stage("postprocess"):
                alpha = alpha_inside_mask(original[..., 3], mask, "surroundings")
                result = np.dstack([np.where(mask[..., None], result, original[..., :3]), alpha])
        return {"generated_image": encode_png_b64(result, self.png_compress_level)}
