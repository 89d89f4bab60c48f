"""Crop-for-inpainting geometry of the ``sd`` handler (numpy + Pillow).

Stable Diffusion 2 inpainting is trained at 512x512. Feeding it a whole 4000x3000 photo (or a
97x61 thumbnail) at its own size is slow, out of distribution, or both, and shrinking the whole
photo to 512 loses detail where it matters. So the handler edits a window around the mask:

1. **Window** (:func:`plan_crop`): a square centred on the mask's bounding box, of side
   ``max(native, longest bbox side * (1 + 2 * context))``, i.e. at least the model's native
   size (small masks get 512 px of real context at 1:1 scale, no resampling blur) and at least
   ``context`` (25 %) of the bbox's longest side as margin on each side (large masks still see
   their surroundings). The window is clamped into the image; where the image is smaller than
   the square in one dimension the window is the full extent of that dimension (tiny or very
   elongated images), so the window is not always square.
2. **Canvas** (:func:`prepare_canvas`): the window is resized with its aspect ratio kept so its
   longest side is ``native``, and centred on a ``native`` x ``native`` canvas; the rest of the
   canvas is a mirror reflection of the window (plausible context the model need not repaint;
   it is marked "keep" in the model's mask and discarded afterwards). Keeping the aspect ratio
   (padding rather than stretching) means objects are generated with their true proportions;
   the fixed square canvas lets requests of a batch share one pipeline call.
   The model's mask is the window's mask resized with "any coverage" semantics, then grown to
   whole latent cells (``cell`` = the VAE's downsampling factor, 8 for SD): the pipeline
   downsamples the mask to the latent grid with nearest-neighbour sampling, so a thin mask
   stroke could otherwise vanish there and its pixels would come back un-repainted.
3. **Paste back** (:func:`paste_back`): the canvas's window region is resized back to the
   window's size and only the pixels of the *original* (un-grown) mask are replaced; every
   other pixel of the input is returned byte for byte.

Masks are boolean ``(H, W)`` arrays, True = edit (``mme_serving`` binarizes the client's mask:
luminance > 127).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from mme_serving.ops import mask_bbox  # noqa: F401  (part of this module's API: plan_crop takes its box)
from PIL import Image

DEFAULT_CONTEXT = 0.25


@dataclass(frozen=True)
class CropPlan:
    """Where the model's canvas comes from and goes back to.

    ``box``: the window in image pixels ``(left, top, right, bottom)``, right/bottom exclusive.
    ``content``: ``(width, height)`` of the window once resized onto the canvas.
    ``offset``: ``(x, y)`` of the resized window inside the canvas.
    ``canvas``: side of the square canvas (the model's native size).
    """

    box: tuple[int, int, int, int]
    content: tuple[int, int]
    offset: tuple[int, int]
    canvas: int

    @property
    def window_size(self) -> tuple[int, int]:
        """``(width, height)`` of the window in image pixels."""
        left, top, right, bottom = self.box
        return right - left, bottom - top


def _window_1d(lo: int, hi: int, length: int, limit: int) -> tuple[int, int]:
    """A ``length``-wide interval containing ``[lo, hi)``, centred on it, clamped into ``[0, limit)``."""
    length = min(length, limit)
    start = (lo + hi - length) // 2
    start = max(0, min(start, limit - length))
    return start, start + length


def plan_crop(image_size: tuple[int, int], bbox: tuple[int, int, int, int], native: int = 512,
              context: float = DEFAULT_CONTEXT) -> CropPlan:
    """Choose the window around ``bbox`` and its placement on the ``native``-sized canvas.

    ``image_size`` is ``(width, height)``; ``bbox`` as returned by :func:`mask_bbox`.
    The window always contains the whole bbox.
    """
    width, height = image_size
    left, top, right, bottom = bbox
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(f"bbox {bbox} is not inside a {width}x{height} image")
    if native < 1 or context < 0:
        raise ValueError("native must be >= 1 and context >= 0")
    longest = max(right - left, bottom - top)
    side = max(native, math.ceil(longest * (1.0 + 2.0 * context)))
    x0, x1 = _window_1d(left, right, side, width)
    y0, y1 = _window_1d(top, bottom, side, height)
    assert x0 <= left and right <= x1 and y0 <= top and bottom <= y1, "window must hold the mask"

    win_w, win_h = x1 - x0, y1 - y0
    scale = native / max(win_w, win_h)
    content_w = min(native, max(1, round(win_w * scale)))
    content_h = min(native, max(1, round(win_h * scale)))
    offset = ((native - content_w) // 2, (native - content_h) // 2)
    return CropPlan(box=(x0, y0, x1, y1), content=(content_w, content_h), offset=offset, canvas=native)


def grow_to_cells(mask: np.ndarray, cell: int) -> np.ndarray:
    """Grow a boolean mask so that every ``cell`` x ``cell`` block touching it is fully masked.

    The mask's sides must be multiples of ``cell``.
    """
    if cell <= 1:
        return mask.copy()
    h, w = mask.shape
    if h % cell or w % cell:
        raise ValueError(f"mask {w}x{h} is not a multiple of the cell size {cell}")
    blocks = mask.reshape(h // cell, cell, w // cell, cell).any(axis=(1, 3))
    return np.repeat(np.repeat(blocks, cell, axis=0), cell, axis=1)


def prepare_canvas(image_rgb: Image.Image, mask: np.ndarray, plan: CropPlan,
                   cell: int = 8) -> tuple[Image.Image, Image.Image]:
    """The model's inputs: an RGB ``canvas`` x ``canvas`` image and its L mask (0 keep / 255 edit).

    ``image_rgb`` is the full input image in RGB, ``mask`` the full boolean mask.
    """
    x0, y0, x1, y1 = plan.box
    cw, ch = plan.content
    ox, oy = plan.offset
    n = plan.canvas

    window = image_rgb.crop(plan.box)
    if window.size != (cw, ch):
        window = window.resize((cw, ch), Image.Resampling.LANCZOS)
    pad = ((oy, n - ch - oy), (ox, n - cw - ox), (0, 0))
    canvas = np.pad(np.asarray(window, dtype=np.uint8), pad, mode="symmetric")

    win_mask = Image.fromarray(mask[y0:y1, x0:x1].astype(np.uint8) * 255)
    if win_mask.size != (cw, ch):
        # Bilinear resampling (antialiased when shrinking) + "> 0": any masked pixel that
        # contributes to a canvas pixel marks it, so thin strokes survive a downscale.
        win_mask = win_mask.resize((cw, ch), Image.Resampling.BILINEAR)
    canvas_mask = np.zeros((n, n), dtype=bool)
    canvas_mask[oy:oy + ch, ox:ox + cw] = np.asarray(win_mask, dtype=np.uint8) > 0
    canvas_mask = grow_to_cells(canvas_mask, cell)
    return (Image.fromarray(canvas),
            Image.fromarray(canvas_mask.astype(np.uint8) * 255))


def window_from_canvas(generated: Image.Image, plan: CropPlan) -> Image.Image:
    """The generated canvas's window region, resized back to the window's size in the image."""
    if generated.size != (plan.canvas, plan.canvas):
        raise ValueError(f"generated image is {generated.size}, expected {plan.canvas}x{plan.canvas}")
    ox, oy = plan.offset
    cw, ch = plan.content
    region = generated.convert("RGB").crop((ox, oy, ox + cw, oy + ch))
    if region.size != plan.window_size:
        region = region.resize(plan.window_size, Image.Resampling.LANCZOS)
    return region


def paste_back(original: Image.Image, mask: np.ndarray, generated: Image.Image,
               plan: CropPlan) -> Image.Image:
    """The input image with only its masked pixels replaced by the generated ones.

    The result has the input's size and mode for RGB, RGBA (alpha kept), L and LA (the
    generated pixels converted to luminance); other modes (P, CMYK, 16-bit...) come back as
    RGB, or RGBA when the input has transparency. Outside ``mask`` every pixel equals the
    input's (after that conversion, for the other modes).
    """
    if mask.shape != (original.height, original.width):
        raise ValueError("mask and image sizes differ")
    if original.mode in ("RGB", "RGBA", "L", "LA"):
        base = original
    elif original.mode == "PA" or "transparency" in original.info:
        base = original.convert("RGBA")
    else:
        base = original.convert("RGB")

    region = window_from_canvas(generated, plan)
    if base.mode in ("L", "LA"):
        patch = np.asarray(region.convert("L"), dtype=np.uint8)[..., None]
    else:
        patch = np.asarray(region, dtype=np.uint8)

    out = np.array(base, dtype=np.uint8)  # a writable copy
    if out.ndim == 2:
        out = out[..., None]
    x0, y0, x1, y1 = plan.box
    win = out[y0:y1, x0:x1]
    win_mask = mask[y0:y1, x0:x1]
    channels = patch.shape[-1]  # colour channels only: alpha is never touched
    win[..., :channels][win_mask] = patch[win_mask]
    if out.shape[-1] == 1:
        out = out[..., 0]
    return Image.fromarray(out)
