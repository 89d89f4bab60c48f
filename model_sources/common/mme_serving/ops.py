"""Small array operations shared by the handlers (numpy/torch only)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def composite(original: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Take ``generated`` where ``mask`` is True and ``original`` elsewhere.

    ``original``/``generated``: (H, W, 3) uint8; ``mask``: (H, W) bool. Pixels outside the mask
    come back bit-for-bit unchanged.
    """
    if original.shape != generated.shape:
        raise ValueError(f"shape mismatch {original.shape} vs {generated.shape}")
    out = original.copy()
    out[mask] = generated[mask]
    return out


def dilate(mask: np.ndarray, kernel_size: int) -> np.ndarray:
    """Binary dilation of an (H, W) bool mask with a square ``kernel_size`` kernel (odd or even;
    0/1 = unchanged), same size out. Uses max-pooling, no OpenCV."""
    if kernel_size <= 1:
        return mask
    t = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    left = (kernel_size - 1) // 2
    right = kernel_size - 1 - left
    t = F.pad(t, (left, right, left, right), value=0.0)
    return (F.max_pool2d(t, kernel_size, stride=1)[0, 0] > 0.5).numpy()
