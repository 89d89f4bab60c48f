"""Mask helpers of the page: shrinking a selection and drawing it as a translucent overlay.

Growing a mask is the model's job (SAM's ``dilate_kernel_size``); shrinking is done here, on the
mask SAM returned, with a square min-filter written with numpy (Pillow's ``MinFilter`` does the
same but sorts a size x size window per pixel, far slower for a 12-megapixel photo; scipy is not
a dependency of the client).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

FILL = (30, 136, 229, 110)      # translucent blue over the selected pixels
EDGE = (255, 213, 0, 255)       # opaque yellow outline


def _erode_axis(mask: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Min-filter of width ``2 * radius + 1`` along ``axis`` (the image border repeats outward,
    so an object touching the border is not eaten from there)."""
    n = mask.shape[axis]
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    padded = np.pad(mask, pad, mode="edge")
    out = np.ones_like(mask)
    window = [slice(None), slice(None)]
    for offset in range(2 * radius + 1):
        window[axis] = slice(offset, offset + n)
        out &= padded[tuple(window)]
    return out


def shrink(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Erode a bool (H, W) mask by ``pixels`` in every direction (a square structuring element)."""
    if pixels <= 0:
        return mask
    return _erode_axis(_erode_axis(mask, pixels, 0), pixels, 1)


def overlay_png(mask: np.ndarray, max_side: int = 2048) -> bytes:
    """An RGBA PNG of the mask: :data:`FILL` inside, an :data:`EDGE` outline. At most
    ``max_side`` pixels on its longer side (the page stretches it over the photo, which a screen
    shows smaller anyway); the outline widens with the overlay so it stays visible."""
    height, width = mask.shape
    scale = min(1.0, max_side / max(width, height))
    if scale < 1.0:
        small = Image.fromarray(mask).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                             Image.Resampling.NEAREST)
        mask = np.asarray(small, dtype=bool)
        height, width = mask.shape
    edge_px = max(1, round(max(width, height) / 600))
    edge = mask & ~shrink(mask, edge_px)
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[mask] = FILL
    rgba[edge] = EDGE
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def mask_png(mask: np.ndarray) -> bytes:
    """The mask as the CLI writes it: 8-bit PNG, 255 = selected, 0 elsewhere."""
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
