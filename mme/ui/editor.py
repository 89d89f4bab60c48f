"""What the page asks the server to do, on the client library: load an image, select, erase,
replace. Parameters come from the browser as JSON and are checked here (``BadParams`` -> 400);
the models' own checks stay theirs, and their messages reach the page unchanged.
"""

from __future__ import annotations

import base64
import io
import math
import threading
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps

from mme.client.editing import IGNORED_ARGS, MAX_PROMPT_CHARS, EditingClient
from mme.models import MODEL_FOR_OPERATION
from mme.client.images import EncodedImage, encode_image
from mme.client.sagemaker import MAX_PAYLOAD_BYTES

from .jobs import BadParams
from .masks import overlay_png, shrink
from .store import Session

MASK_ALLOWANCE = 512 * 1024
"""Room left in a request for the mask, the prompt and the JSON around the image (bytes)."""
DEFAULT_MAX_UPLOAD_BYTES = (MAX_PAYLOAD_BYTES - MASK_ALLOWANCE) * 3 // 4
"""The largest image file the page accepts: base64 makes it 4/3 larger, and the request must stay
under InvokeEndpoint's limit, so what works locally works on the endpoint too."""
DEFAULT_MAX_PIXELS = 4096 * 4096
"""The handlers' default ``max_image_pixels`` (``mme_serving.codec.DEFAULT_MAX_IMAGE_PIXELS``;
a test keeps the two equal)."""
MAX_POINTS = 64
MAX_SHRINK = 50
MAX_GROW = 50
SEED_MAX = 2**32 - 1
EXIF_ORIENTATION = 0x0112
OPS = MODEL_FOR_OPERATION
"""The page's operations and the model each one calls."""


@dataclass(frozen=True)
class Limits:
    """What the page accepts: file size and pixel count of an image."""

    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS

    def as_dict(self) -> dict:
        return {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                "max_prompt_chars": MAX_PROMPT_CHARS, "max_points": MAX_POINTS,
                "max_grow": MAX_GROW, "max_shrink": MAX_SHRINK}


class MeteredBackend:
    """Wraps the client's backend to note, per thread, whether the last request carried the
    image or only SAM's ``image_id`` (the page shows it: later clicks do not re-send the photo)."""

    def __init__(self, backend):
        self.backend = backend
        self._local = threading.local()

    def invoke(self, model: str, payload: dict) -> dict:
        self._local.sent = "image" if payload.get("image") is not None else "image_id"
        return self.backend.invoke(model, payload)

    def describe(self) -> str:
        return self.backend.describe()

    def last_sent(self) -> str:
        return getattr(self._local, "sent", "")


# ---------------------------------------------------------------------------------- parameters
def _number(params: dict, name: str, kind: type, lo: float, hi: float, default: Any = None):
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadParams(f"{name} must be a number")
    if kind is int and value != int(value):
        raise BadParams(f"{name} must be a whole number")
    if not lo <= value <= hi:
        raise BadParams(f"{name} must be between {lo:g} and {hi:g}")
    return kind(value)


def _text(params: dict, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadParams(f"{name} must be text")
    return value


def _points(params: dict) -> tuple[list, list]:
    raw = params.get("points") or []
    if not isinstance(raw, list) or len(raw) > MAX_POINTS:
        raise BadParams(f"points must be a list of at most {MAX_POINTS} [x, y, label]")
    coords, labels = [], []
    for point in raw:
        if (not isinstance(point, list) or len(point) != 3 or point[2] not in (0, 1)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
            raise BadParams("each point must be [x, y, label] with label 1 (include) or 0 (exclude)")
        coords.append((float(point[0]), float(point[1])))
        labels.append(int(point[2]))
    return coords, labels


def _box(params: dict) -> list[float] | None:
    box = params.get("box")
    if box is None:
        return None
    if (not isinstance(box, list) or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
        raise BadParams("box must be [x0, y0, x1, y1]")
    return [float(v) for v in box]


def _png_data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------------- the editor
class Editor:
    """The page's operations: an :class:`EditingClient` on ``backend`` (a client backend, see
    :class:`mme.client.Backend`), the images of one :class:`Session`."""

    def __init__(self, backend, session: Session, limits: Limits):
        self.backend = MeteredBackend(backend)
        self.client = EditingClient(self.backend)
        self.session = session
        self.limits = limits
        self._select_lock = threading.Lock()  # the client's image_id memory is not thread-safe

    # ------------------------------------------------------------------ load
    def load(self, data: bytes, name: str) -> dict:
        """Check and hold an uploaded image; returns its description for the page."""
        if len(data) > self.limits.max_upload_bytes:
            raise BadParams(f"{name} is {len(data) / 1e6:.1f} MB; the limit is "
                            f"{self.limits.max_upload_bytes / 1e6:.1f} MB")
        encoded = encode_image(data)  # InputError: not an image, corrupt, too large for Pillow
        width, height = encoded.size
        if width * height > self.limits.max_pixels:
            raise BadParams(f"{name} is {width}x{height} = {width * height / 1e6:.1f} megapixels; the limit is "
                            f"{self.limits.max_pixels / 1e6:.1f} megapixels")
        encoded, note = self._upright(encoded)
        fmt = Image.open(io.BytesIO(encoded.data)).format
        return self.session.add_image(encoded, name, fmt=fmt, note=note).describe()

    @staticmethod
    def _upright(encoded: EncodedImage) -> tuple[EncodedImage, str]:
        """Apply the EXIF orientation once, here, so that the page, the clicks and the models all
        see the same upright pixels (re-encoded losslessly as PNG when a rotation was needed)."""
        with Image.open(io.BytesIO(encoded.data)) as img:
            if img.getexif().get(EXIF_ORIENTATION) not in range(2, 9):  # 1 = upright; 2..8 = flips/turns
                return encoded, ""
            upright = ImageOps.exif_transpose(img)
        return encode_image(upright), "rotated upright from its EXIF orientation"

    def _result(self, image: Image.Image, source_name: str, op: str) -> dict:
        """Hold a result: PNG for the page and the download; when that PNG is too big to send to
        the models again, a JPEG (quality 95) working copy is what further edits use."""
        png = encode_image(image)
        name = f"{source_name.rsplit('.', 1)[0]}-{op}.png"
        if len(png.data) <= self.limits.max_upload_bytes:
            return self.session.add_image(png, name).describe()
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="JPEG", quality=95, subsampling=0)
        working = encode_image(buf.getvalue())
        note = (f"further edits use a JPEG copy (quality 95): the PNG ({len(png.data) / 1e6:.1f} MB) is over "
                f"the {self.limits.max_upload_bytes / 1e6:.1f} MB request limit")
        return self.session.add_image(working, name, data=png.data, fmt="PNG", note=note).describe()

    # ------------------------------------------------------------------ select
    def select(self, params: dict) -> dict:
        """SAM on the page's points/box; grow through SAM's dilate, shrink here."""
        stored = self.session.image(str(params.get("image")))
        coords, labels = _points(params)
        box = _box(params)
        grow = _number(params, "grow", int, 0, MAX_GROW, 0)
        shrink_px = _number(params, "shrink", int, 0, MAX_SHRINK, 0)
        if not coords and box is None:
            raise BadParams("click the object first (or drag a box around it)")
        with self._select_lock:
            result = self.client.select(stored.encoded, coords or None, labels=labels or None, box=box,
                                        dilate=2 * grow + 1 if grow else 0)
            sent = self.backend.last_sent()
        mask = shrink(result.array, shrink_px)
        held = self.session.add_mask(stored.id, mask)
        return {"mask": held.id, "overlay": _png_data_url(overlay_png(mask)), "score": result.score,
                "pixels": int(mask.sum()), "sent": sent, "embedding_cached": result.embedding_cached,
                "ignored_args": result.extras.get(IGNORED_ARGS, [])}

    # ------------------------------------------------------------------ erase / replace
    def _inputs(self, params: dict):
        stored = self.session.image(str(params.get("image")))
        held = self.session.mask(str(params.get("mask")))
        if held.image_id != stored.id:
            raise BadParams("this selection belongs to another image: select again")
        if not held.array.any():
            raise BadParams("the selection is empty: click the object (or shrink the mask less)")
        return stored, held

    def erase(self, params: dict) -> dict:
        """LaMa on the held image and selection."""
        stored, held = self._inputs(params)
        image = self.client.erase(stored.encoded, held.array)
        return self._finish("erase", stored, held, image, {})

    def replace(self, params: dict) -> dict:
        """SD inpainting on the held image and selection, with the page's prompt and settings."""
        stored, held = self._inputs(params)
        prompt = _text(params, "prompt") or ""
        if not prompt.strip():
            raise BadParams("write a prompt: what to paint into the selection")
        settings = {
            "negative_prompt": _text(params, "negative_prompt") or None,
            "seed": _number(params, "seed", int, 0, SEED_MAX),
            "steps": _number(params, "steps", int, 1, 1000),
            "guidance": _number(params, "guidance", float, 0, 1000),
            "strength": _number(params, "strength", float, 0, 1),
        }
        if settings["strength"] == 0:
            raise BadParams("strength must be above 0 (0 < strength <= 1)")
        image = self.client.replace(stored.encoded, held.array, prompt, **settings)
        return self._finish("replace", stored, held, image,
                            {"prompt": prompt, **settings, "seed": image.info.get("seed")})

    def _finish(self, op: str, source, held, image: Image.Image, params: dict) -> dict:
        result = self._result(image, source.name, op)
        entry = self.session.add_history({"op": op, "source": source.describe(), "result": result,
                                          "mask": held.id, "params": params})
        return {**entry, "ignored_args": image.info.get(IGNORED_ARGS, [])}
