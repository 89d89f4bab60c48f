"""Small array operations shared by the handlers (numpy and scipy.ndimage)."""

from __future__ import annotations

import numpy as np


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box ``(left, top, right, bottom)`` (exclusive) of a boolean mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def dilate(mask: np.ndarray, kernel_size: int) -> np.ndarray:
    """Binary dilation of an (H, W) bool mask with a square ``kernel_size`` kernel (odd or even;
    0/1 = unchanged), same size out: pixel (y, x) is set when any pixel of rows
    ``y - (k-1)//2 .. y + k//2`` and the same columns is. A square's maximum is separable, so it
    runs as two 1-D running maxima (scipy.ndimage, O(pixels) whatever the kernel; OpenCV's
    ``cv2.dilate`` computes the same but is not in the test environment)."""
    if kernel_size <= 1:
        return mask
    from scipy import ndimage  # imported on first use (0.3 s off the handlers' import)

    left = (kernel_size - 1) // 2
    origin = left - kernel_size // 2  # scipy centres even windows one pixel to the left of ours
    out = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    for axis in (0, 1):
        out = ndimage.maximum_filter1d(out, kernel_size, axis=axis, mode="constant", cval=0, origin=origin)
    return out.view(bool)


#: Alpha rules inside the mask for images with transparency (see :func:`alpha_inside_mask`).
ALPHA_RULES = ("surroundings", "opaque")


def alpha_inside_mask(alpha: np.ndarray, mask: np.ndarray, rule: str) -> np.ndarray:
    """The output's alpha: the input's ``alpha`` (H, W) outside ``mask``; inside it, by ``rule``:

    - ``surroundings`` (erase): the alpha of the nearest pixel outside the mask, so a fill that
      continues its surroundings continues their transparency too (erasing an object from a
      cut-out leaves the transparent background; inside an opaque photo the fill is opaque);
    - ``opaque`` (replace): 255, the new content is painted.

    With no pixel outside the mask, ``surroundings`` gives 255. Only the mask's bounding box plus
    one pixel is searched: the nearest unmasked pixel of a masked pixel always lies in it.
    """
    if rule not in ALPHA_RULES:
        raise ValueError(f"rule must be one of {ALPHA_RULES}, not {rule!r}")
    out = alpha.copy()
    if not mask.any():
        return out
    if rule == "opaque" or mask.all():
        out[mask] = 255
        return out
    from scipy import ndimage  # imported on first use, as in dilate()

    x0, y0, x1, y1 = mask_bbox(mask)
    top, bottom = max(y0 - 1, 0), min(y1 + 1, mask.shape[0])
    left, right = max(x0 - 1, 0), min(x1 + 1, mask.shape[1])
    window = mask[top:bottom, left:right]
    iy, ix = ndimage.distance_transform_edt(window, return_distances=False, return_indices=True)
    region = alpha[top:bottom, left:right]
    out[top:bottom, left:right][window] = region[iy[window], ix[window]]
    return out
