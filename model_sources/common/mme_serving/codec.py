"""Image codecs of the request contract: base64 -> image (with limits), image -> base64 PNG.

Decoding is defensive: only PNG, JPEG and WebP are accepted, the pixel count declared by the
file header is checked against a limit *before* any pixel is decoded, and Pillow's own
decompression-bomb guard (``DecompressionBombWarning``/``DecompressionBombError``) is turned into
a 400 as well. Decoded images are in display orientation (EXIF applied) and 8-bit RGB or RGBA;
the rules are in :mod:`mme_serving.pixels`.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import pixels, request_log
from .errors import (
    EMPTY_MASK,
    IMAGE_TOO_LARGE,
    INVALID_BASE64,
    INVALID_FIELD,
    INVALID_IMAGE,
    MASK_SIZE_MISMATCH,
    RequestError,
)

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
_DATA_URL = re.compile(r"^data:image/[a-zA-Z0-9.+-]+;base64,")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ImageLimits:
    """Limits applied to every decoded image.

    ``max_pixels``: width*height ceiling (header-checked before decoding).
    ``max_base64_chars``: ceiling on the encoded field length (0 = no extra limit; TorchServe's
    ``max_request_size`` already bounds the body).
    ``min_side``: smallest accepted width/height.
    """

    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_base64_chars: int = 0
    min_side: int = 1


def b64decode_field(value: object, field: str, limits: ImageLimits | None = None) -> bytes:
    """Decode a base64 string field (an optional ``data:image/...;base64,`` prefix and
    whitespace/newlines are tolerated). Raises ``invalid_base64`` / ``invalid_field``. Timed as the
    request line's ``decode`` stage."""
    with request_log.stage("decode"):
        return _b64decode_field(value, field, limits)


def _b64decode_field(value: object, field: str, limits: ImageLimits | None) -> bytes:
    limits = limits or ImageLimits()
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise RequestError(INVALID_BASE64, f"'{field}' is not valid base64") from None
    if not isinstance(value, str):
        raise RequestError(INVALID_FIELD, f"'{field}' must be a base64 string, got {type(value).__name__}")
    if limits.max_base64_chars and len(value) > limits.max_base64_chars:
        raise RequestError(IMAGE_TOO_LARGE, f"'{field}' is longer than {limits.max_base64_chars} characters")
    value = _DATA_URL.sub("", value, count=1)
    value = _WHITESPACE.sub("", value)
    if not value:
        raise RequestError(INVALID_BASE64, f"'{field}' is empty")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(INVALID_BASE64, f"'{field}' is not valid base64") from None


def _check_size(actual: tuple[int, int], size: tuple[int, int], field: str) -> None:
    """``mask_size_mismatch`` unless ``actual`` (w, h) equals the image ``size`` (w, h)."""
    if tuple(actual) != tuple(size):
        raise RequestError(
            MASK_SIZE_MISMATCH,
            f"'{field}' is {actual[0]}x{actual[1]} but the image is {size[0]}x{size[1]}",
        )


def decode_image(data: bytes, field: str = "image", limits: ImageLimits | None = None,
                 mode: str | None = None, size: tuple[int, int] | None = None) -> Image.Image:
    """:func:`_decode_image`, timed as the request line's ``decode`` stage."""
    with request_log.stage("decode"):
        return _decode_image(data, field, limits, mode, size)


def _decode_image(data: bytes, field: str = "image", limits: ImageLimits | None = None,
                  mode: str | None = None, size: tuple[int, int] | None = None) -> Image.Image:
    """Decode PNG/JPEG/WebP bytes into a loaded PIL image in display orientation.

    ``mode``: None = 8-bit ``RGB``, or ``RGBA`` when the image has transparency (what outputs are
    built on); ``"RGB"`` = what the models see (transparency composited over white); ``"L"`` = a
    mask's luminance (transparent pixels black). See :mod:`mme_serving.pixels`.

    Raises ``invalid_image`` for anything else (or a truncated file) and ``image_too_large``
    when the header declares more than ``limits.max_pixels`` pixels or Pillow flags a
    decompression bomb. With ``size`` (w, h, as displayed), a header of another size is a
    ``mask_size_mismatch``, before any pixel is decoded. Animated images yield their first frame.
    """
    if mode not in (None, "RGB", "L"):
        raise ValueError(f"mode must be None, 'RGB' or 'L', not {mode!r}")
    limits = limits or ImageLimits()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            width, height = img.size
            if width * height > limits.max_pixels:
                raise RequestError(
                    IMAGE_TOO_LARGE,
                    f"'{field}' is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}",
                )
            if width < limits.min_side or height < limits.min_side:
                raise RequestError(INVALID_IMAGE, f"'{field}' is {width}x{height}; each side must be at least {limits.min_side}")
            if size is not None:
                _check_size(pixels.display_size(img), size, field)
            img = pixels.to_display(img)
            if size is not None:  # an orientation found only while decoding (PNG eXIf after the data)
                _check_size(img.size, size, field)
            if mode == "L":
                return pixels.mask_plane(img)
            img = pixels.normalize(img)
            return pixels.flatten(img) if mode == "RGB" else img
    except RequestError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RequestError(IMAGE_TOO_LARGE, f"'{field}' looks like a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise RequestError(INVALID_IMAGE, f"'{field}' is not a PNG, JPEG or WebP image") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise RequestError(INVALID_IMAGE, f"'{field}' could not be decoded ({exc.__class__.__name__})") from None


def mask_from_image(mask_img: Image.Image, size: tuple[int, int], field: str = "mask_image",
                    threshold: int = 127, allow_empty: bool = False) -> np.ndarray:
    """Binarize a mask image (pixels > ``threshold`` in luminance are "masked"; transparent
    pixels never are, see :func:`mme_serving.pixels.mask_plane`).

    ``size`` is the (width, height) of the image the mask belongs to. Returns a bool array
    (H, W). Raises ``mask_size_mismatch`` and (unless ``allow_empty``) ``empty_mask``.
    """
    _check_size(mask_img.size, size, field)
    mask = np.asarray(pixels.mask_plane(mask_img)) > threshold
    if not allow_empty and not mask.any():
        raise RequestError(EMPTY_MASK, f"'{field}' selects no pixel (all values <= {threshold})")
    return mask


def to_pil(image: "Image.Image | np.ndarray") -> Image.Image:
    """Accept a PIL image, an (H, W) bool/uint8 array or an (H, W, 3) uint8 array."""
    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8 or bool pixels, got {arr.dtype}")
    return Image.fromarray(arr)


def encode_png(image: "Image.Image | np.ndarray", compress_level: int = 3) -> bytes:
    """PNG bytes of an image or array (bool masks become 0/255 single-channel PNGs); timed as the
    ``encode`` stage, its pixels counted as the request line's ``output_mpx``."""
    with request_log.stage("encode"):
        picture = to_pil(image)
        buf = io.BytesIO()
        picture.save(buf, format="PNG", compress_level=compress_level)
    request_log.add_pixels(output_pixels=picture.size[0] * picture.size[1])
    return buf.getvalue()


def encode_png_b64(image: "Image.Image | np.ndarray", compress_level: int = 3) -> str:
    """Base64 (ASCII str) of :func:`encode_png`; what ``generated_image`` carries."""
    png = encode_png(image, compress_level)
    with request_log.stage("encode"):
        return base64.b64encode(png).decode("ascii")
