"""Which part of an image the ``lama`` handler inpaints, and at what scale (large images).

LaMa's cost grows with the pixels it sees (memory linearly, time a bit faster: the spectral
layers are FFTs), and its fills get worse far above the resolutions it was trained for (big-lama
was trained on 256 px crops; its authors report better fills around 1k px than at 3k px). The
strategy follows IOPaint's default for its erase models ("crop"), plus a size limit:

1. ``hd_strategy: original``, or an image whose longest side is at most ``crop_trigger_size``:
   the whole image at its own resolution.
2. Otherwise the **region** is the mask's bounding box grown by ``crop_margin`` pixels on every
   side; where that crosses the image border, it is shifted inwards (its size kept where the
   image allows) so a mask near an edge still gets its margin of context from the other side.
3. If the region's longest side is still above ``resize_limit``, it is inpainted **resized
   down** so that side equals the limit, and the fill is resized back up.

Only masked pixels are replaced in the input (the handler pastes them back), so pixels outside
the mask are returned byte for byte whatever the region and scale.
"""

from __future__ import annotations

from dataclasses import dataclass

STRATEGIES = ("crop", "original")


@dataclass(frozen=True)
class Region:
    """``box``: ``(left, top, right, bottom)`` of the image that goes through the model (right and
    bottom exclusive); ``model_size``: its ``(width, height)`` at the model (smaller than the box
    when it is resized down)."""

    box: tuple[int, int, int, int]
    model_size: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the box in image pixels."""
        left, top, right, bottom = self.box
        return right - left, bottom - top

    @property
    def resized(self) -> bool:
        """True when the box is inpainted at a smaller size."""
        return self.model_size != self.size


def _span(lo: int, hi: int, margin: int, length: int) -> tuple[int, int]:
    """``[lo, hi)`` grown by ``margin`` on both sides, shifted inside ``[0, length)``."""
    start, end = lo - margin, hi + margin
    if start < 0:
        start, end = 0, end - start
    if end > length:
        start, end = max(0, start - (end - length)), length
    return start, end


def plan_region(image_size: tuple[int, int], bbox: tuple[int, int, int, int], strategy: str = "crop",
                crop_trigger_size: int = 800, crop_margin: int = 128, resize_limit: int = 1280) -> Region:
    """The region of a ``(width, height)`` image to inpaint for a mask with bounding box ``bbox``
    (``mme_serving.ops.mask_bbox``); see the module docstring for the rules."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
    width, height = image_size
    left, top, right, bottom = bbox
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(f"bbox {bbox} is not inside a {width}x{height} image")
    if strategy == "original" or max(width, height) <= crop_trigger_size:
        return Region((0, 0, width, height), (width, height))
    x0, x1 = _span(left, right, crop_margin, width)
    y0, y1 = _span(top, bottom, crop_margin, height)
    box_w, box_h = x1 - x0, y1 - y0
    longest = max(box_w, box_h)
    if longest <= resize_limit:
        return Region((x0, y0, x1, y1), (box_w, box_h))
    scale = resize_limit / longest
    model_size = (max(1, min(resize_limit, round(box_w * scale))), max(1, min(resize_limit, round(box_h * scale))))
    return Region((x0, y0, x1, y1), model_size)
