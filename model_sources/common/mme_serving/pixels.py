"""What a decoded image's pixels mean: display orientation, 8-bit RGB(A), what the models see.

Rules (every handler follows them through :func:`mme_serving.decode_image`):

- **Orientation.** Images are used as a person sees them: the EXIF orientation tag (JPEG, PNG
  eXIf, WebP EXIF, or XMP ``tiff:Orientation``) is applied with Pillow's
  ``ImageOps.exif_transpose``, as every browser and image viewer does. Points, boxes and masks
  refer to the displayed picture, outputs come back in that orientation (and without the tag).
- **Modes.** Every input becomes 8-bit ``RGB``, or ``RGBA`` when it has transparency (an alpha
  channel, a palette with transparent entries, or a transparent colour key). Grey (``L``, ``1``),
  palette (``P``) and CMYK inputs are converted with Pillow; 16-bit grey PNGs (``I;16``), which
  Pillow's ``convert`` clips to white above 255, keep their high byte (the same reduction Pillow
  applies to 16-bit RGB PNGs). Colour profiles are not applied: pixel values are used as stored.
- **What the models see.** RGB composited over white (:func:`flatten`): transparent areas look
  the way a browser shows them on a white page, whatever colour the hidden pixels had.
- **Masks.** A mask's selection is its luminance composited over black (:func:`mask_plane`): a
  transparent pixel never selects anything (masks drawn on a transparent canvas work as drawn).
"""

from __future__ import annotations

import numpy as np
from PIL import ExifTags, Image, ImageOps

ORIENTATION = ExifTags.Base.Orientation
#: Orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING = (5, 6, 7, 8)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
WHITE = 255


def orientation_hint(img: Image.Image) -> int:
    """The EXIF orientation (1-8) as far as the file's header tells, without decoding pixels.

    A PNG whose eXIf chunk follows the image data is only known after decoding (1 here);
    :func:`to_display` applies the tag found then, and callers re-check sizes after it.
    """
    if img.format == "PNG" and "exif" not in img.info:
        return 1  # Pillow's PngImageFile.getexif() would decode the whole image to look further
    try:
        value = img.getexif().get(ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):  # a corrupt EXIF block: ignore it, as browsers do
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def display_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) as displayed, from the header (see :func:`orientation_hint`)."""
    width, height = img.size
    return (height, width) if orientation_hint(img) in _SWAPPING else (width, height)


def to_display(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (decodes the image; transposes in place, no copy when upright)."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):  # unreadable EXIF: stored pixels
        img.load()
    return img


def _sixteen_bit_to_8(img: Image.Image) -> Image.Image:
    """16-bit grey -> 8-bit ``L`` (high byte), or ``RGBA`` when a grey level is transparent."""
    values = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
    grey = Image.fromarray((values >> 8).astype(np.uint8), "L")
    key = img.info.get("transparency")
    if isinstance(key, int) and not isinstance(key, bool):
        alpha = np.where(values == key, 0, 255).astype(np.uint8)
        return Image.merge("RGBA", (grey, grey, grey, Image.fromarray(alpha, "L")))
    return grey.convert("RGB")


def has_transparency(img: Image.Image) -> bool:
    """True when ``img`` carries transparency (alpha band, transparent palette entry or colour key)."""
    return "A" in img.getbands() or img.mode in ("RGBa", "La", "PA") or img.info.get("transparency") is not None


def normalize(img: Image.Image) -> Image.Image:
    """8-bit ``RGB``, or ``RGBA`` when ``img`` has transparency (see the module docstring)."""
    if img.mode in _SIXTEEN_BIT:
        return _sixteen_bit_to_8(img)
    if has_transparency(img):
        return img if img.mode == "RGBA" else img.convert("RGBA")
    return img if img.mode == "RGB" else img.convert("RGB")


def flatten(img: Image.Image, background: int = WHITE) -> Image.Image:
    """``RGB`` for the models: an ``RGBA`` image composited over a grey level (white by default)."""
    if img.mode == "RGB":
        return img
    if img.mode != "RGBA":
        img = normalize(img)
        if img.mode == "RGB":
            return img
    arr = np.asarray(img, dtype=np.uint16)
    alpha = arr[..., 3:4]
    rgb = (arr[..., :3] * alpha + background * (255 - alpha) + 127) // 255
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def mask_plane(img: Image.Image) -> Image.Image:
    """``L`` luminance of a mask image, transparent pixels black (composited over black)."""
    if img.mode == "L":
        return img
    img = normalize(img)
    if img.mode == "RGBA":
        img = flatten(img, background=0)
    return img.convert("L")
