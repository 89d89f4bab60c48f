"""Image and mask handling of the client: read, check, encode for the request, decode the answer.

Images travel as the file's own bytes when they are PNG, JPEG or WebP (what the handlers decode;
no re-encoding, so the model sees exactly the user's pixels and ``image_id`` is the digest of the
file), anything else Pillow can read is converted to PNG. The handlers use images as displayed (EXIF
orientation applied, as browsers and viewers do), so sizes, points and masks are those of the
displayed picture: the client sends the file as it is and reads its orientation tag only to check
points and masks against the displayed size. A Pillow image or an array is sent as its pixels are.
Masks travel as 8-bit PNG, 0 or 255 (white = selected; transparent = not selected), at the image's
displayed size.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import InputError

ImageLike = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray, "EncodedImage"]
"""A path, encoded file bytes, a Pillow image, an (H, W[, C]) uint8 array, or an already
checked :class:`EncodedImage`."""

WIRE_FORMATS = {"PNG", "JPEG", "WEBP"}


@dataclass(frozen=True)
class EncodedImage:
    """An image ready to send: ``data`` (PNG/JPEG/WebP bytes), ``size`` (width, height), the
    sha256 ``digest`` of ``data`` (what SAM's ``image_id`` is) and the ``source`` label for errors."""

    data: bytes
    size: tuple[int, int]
    digest: str
    source: str

    @property
    def b64(self) -> str:
        """Base64 of :attr:`data` (the request field's value)."""
        return base64.b64encode(self.data).decode("ascii")

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]


def _label(obj) -> str:
    if isinstance(obj, (str, os.PathLike)):
        return str(obj)
    if isinstance(obj, (bytes, bytearray)):
        return "image bytes"
    if isinstance(obj, np.ndarray):
        return "image array"
    return "image"


def _read_file(path: str | os.PathLike) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, not an image file") from None
    except PermissionError:
        raise InputError(f"{p}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None


def _open(data: bytes, label: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.size  # noqa: B018 - header parsed
            return img
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise InputError(f"{label}: not an image (expected PNG, JPEG or WebP)") from None
        raise InputError(f"{label}: image too large ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{label}: not a readable image ({exc})") from None


def _array_to_image(arr: np.ndarray, label: str) -> Image.Image:
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        raise InputError(f"{label}: arrays must be uint8 (or bool for masks), got {arr.dtype}")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)):
        return Image.fromarray(arr)
    raise InputError(f"{label}: array of shape {arr.shape} is not an (H, W), (H, W, 3) or (H, W, 4) image")


def _displayed_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) once the EXIF orientation is applied (orientations 5-8 swap the sides)."""
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, ValueError, SyntaxError):
        orientation = 1
    return (img.height, img.width) if orientation in (5, 6, 7, 8) else img.size


def _sendable(img: Image.Image) -> Image.Image:
    """``img`` in a mode PNG holds losslessly for the handlers: RGB, RGBA (transparency kept) or L."""
    if img.mode in ("RGB", "RGBA", "L"):
        return img
    return img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def encode_image(image: ImageLike) -> EncodedImage:
    """Read and check ``image``; return the bytes to send (see the module docstring)."""
    if isinstance(image, EncodedImage):
        return image
    label = _label(image)
    if isinstance(image, (str, os.PathLike)):
        image = _read_file(image)
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
        if not data:
            raise InputError(f"{label}: empty file, not an image")
        img = _open(data, label)
        if img.format not in WIRE_FORMATS:
            try:
                data = _png(_sendable(ImageOps.exif_transpose(img)))
            except (OSError, ValueError) as exc:
                raise InputError(f"{label}: not a readable image ({exc})") from None
        else:
            try:
                img.verify()  # catches truncated/corrupt files before the upload
            except Exception as exc:  # noqa: BLE001 - Pillow raises many types here
                raise InputError(f"{label}: corrupt {img.format} image ({exc})") from None
        size = _displayed_size(_open(data, label))  # verify() used up the first handle
    elif isinstance(image, Image.Image):
        size, data = image.size, _png(_sendable(image))
    elif isinstance(image, np.ndarray):
        img = _array_to_image(image, label)
        size, data = img.size, _png(img)
    else:
        raise InputError(f"unsupported image type {type(image).__name__}: give a path, bytes, a PIL image or an array")
    if size[0] < 1 or size[1] < 1:
        raise InputError(f"{label}: empty image ({size[0]}x{size[1]})")
    return EncodedImage(data=data, size=size, digest=hashlib.sha256(data).hexdigest(), source=label)


def load_mask(mask: ImageLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask as a bool (H, W) array (white/non-zero > 127 = selected); check its size and that
    it selects something."""
    label = "mask " + _label(mask) if not isinstance(mask, (str, os.PathLike)) else str(mask)
    if isinstance(mask, (str, os.PathLike)):
        mask = _read_file(mask)
    if isinstance(mask, (bytes, bytearray)):
        if not mask:
            raise InputError(f"{label}: empty file, not an image")
        img = _open(bytes(mask), label)
        try:
            img.load()
        except (OSError, ValueError) as exc:
            raise InputError(f"{label}: not a readable image ({exc})") from None
        arr = _mask_array(img)
    elif isinstance(mask, Image.Image):
        arr = _mask_array(mask)
    elif isinstance(mask, np.ndarray):
        if mask.ndim == 3 and mask.shape[2] in (3, 4):
            arr = _mask_array(Image.fromarray(mask.astype(np.uint8)))
        elif mask.ndim == 2:
            arr = mask.astype(bool) if mask.dtype == bool else np.asarray(mask) > 127
        else:
            raise InputError(f"{label}: array of shape {mask.shape} is not a mask")
    else:
        raise InputError(f"unsupported mask type {type(mask).__name__}")
    if size is not None and (arr.shape[1], arr.shape[0]) != tuple(size):
        raise InputError(f"{label}: mask is {arr.shape[1]}x{arr.shape[0]} but the image is {size[0]}x{size[1]}")
    if not arr.any():
        raise InputError(f"{label}: mask is empty (no white pixel): select something first")
    return arr


def _mask_array(img: Image.Image) -> np.ndarray:
    """Selected pixels of a mask image as displayed (EXIF orientation applied); transparent pixels
    are not selected (composited over black), as the handlers read masks."""
    img = ImageOps.exif_transpose(img)
    if "A" in img.getbands() or "transparency" in img.info:
        img = Image.alpha_composite(Image.new("RGBA", img.size, "black"), img.convert("RGBA"))
    return np.asarray(img.convert("L")) > 127


def encode_mask(mask: np.ndarray) -> str:
    """Base64 PNG (mode L, 0/255) of a bool mask."""
    return base64.b64encode(_png(Image.fromarray(mask.astype(np.uint8) * 255))).decode("ascii")


def decode_image(b64: str, what: str = "generated_image") -> Image.Image:
    """Decode a base64 image from a response (fully loaded, detached from the buffer)."""
    try:
        img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
        img.load()
        return img
    except Exception as exc:  # noqa: BLE001
        from .errors import EndpointError

        raise EndpointError(f"the response's {what} is not a valid base64 image ({exc})") from None
