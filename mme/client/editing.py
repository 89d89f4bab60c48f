"""``EditingClient``: the editing flow (select -> erase | replace) over any backend.

A backend only knows how to send one JSON request to a model by its logical name (``sam``,
``lama``, ``sd``) and return the parsed JSON answer; see :class:`Backend`. The client builds the
requests of the shared contract, checks inputs before sending them, decodes the answers and keeps
SAM's ``image_id`` per image so that further clicks on the same image do not upload it again.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from .errors import EndpointError, InputError, ModelInputError
from ..models import ERASE_MODEL, REPLACE_MODEL, SEGMENT_MODEL
from .images import EncodedImage, ImageLike, decode_image, encode_image, encode_mask, load_mask

UNKNOWN_IMAGE_ID = "unknown_image_id"
MAX_PROMPT_CHARS = 1000
IGNORED_ARGS = "ignored_args"
"""Answer field listing the ``gen_args`` keys the model did not know (absent when none)."""


class Backend(Protocol):
    """Transport to the models. Raises :mod:`mme.client.errors` exceptions on failure."""

    def invoke(self, model: str, payload: dict) -> dict:
        """Send ``payload`` (the contract's JSON object) to ``model``; return the JSON answer."""
        ...

    def describe(self) -> str:
        """One line saying where requests go (for messages)."""
        ...


@dataclass(frozen=True)
class SelectResult:
    """SAM's answer: ``mask`` (Pillow "L" image, 0/255, the input's size), ``score`` (the
    model's predicted IoU), ``image_id`` (send it instead of the image for further clicks) and
    whether the image embedding came from the model's cache. ``extras`` holds the answer's other
    fields (e.g. ``ignored_args``)."""

    mask: Image.Image
    score: float
    image_id: str
    embedding_cached: bool = False
    extras: dict = field(default_factory=dict)

    @property
    def array(self) -> np.ndarray:
        """The mask as a bool (H, W) array."""
        return np.asarray(self.mask.convert("L")) > 127


def _points(points, labels, width: int, height: int) -> tuple[list[list[float]], list[int]]:
    if points is None:
        return [], []
    pts = [points] if (len(points) == 2 and all(isinstance(v, (int, float, np.integer, np.floating)) for v in points)) else points
    out = []
    for i, point in enumerate(pts):
        try:
            x, y = (float(v) for v in point)
        except (TypeError, ValueError):
            raise InputError(f"point {i + 1}: expected (x, y), got {point!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InputError(f"point {i + 1}: coordinates must be finite numbers")
        if not (0 <= x < width and 0 <= y < height):
            raise InputError(f"point ({x:g}, {y:g}) is outside the {width}x{height} image "
                             f"(x in 0..{width - 1}, y in 0..{height - 1})")
        out.append([x, y])
    if labels is None:
        labs = [1] * len(out)
    else:
        labs = [labels] if isinstance(labels, int) else list(labels)
        if len(labs) != len(out):
            raise InputError(f"{len(labs)} labels for {len(out)} points: give one label per point")
        for label in labs:
            if isinstance(label, bool) or label not in (0, 1):
                raise InputError(f"point labels must be 1 (foreground) or 0 (background), got {label!r}")
        labs = [int(v) for v in labs]
    return out, labs


class EditingClient:
    """The editing operations over one backend.

    >>> client = EditingClient(SageMakerBackend.from_stack("ImageEditingMme"))   # or LocalBackend.from_state()
    >>> sel = client.select("photo.jpg", [(120, 80)])
    >>> client.erase("photo.jpg", sel.mask).save("erased.png")
    >>> client.replace("photo.jpg", sel.mask, "a red vase", seed=7).save("vase.png")

    Images are paths, encoded bytes, Pillow images or uint8 arrays; masks the same or bool arrays.
    """

    def __init__(self, backend: Backend, image_id_cache_size: int = 64):
        self.backend = backend
        self._image_ids: OrderedDict[str, str] = OrderedDict()
        self._cache_size = image_id_cache_size

    # ------------------------------------------------------------------ select (SAM)
    def select(self, image: ImageLike | None, points: Sequence | None = None, labels: Sequence[int] | int | None = None,
               image_id: str | None = None, box: Sequence[float] | None = None, dilate: int = 0,
               multimask: bool = True) -> SelectResult:
        """Segment the object under ``points`` ((x, y) or a list of them, image pixels) and/or inside
        ``box`` (x0, y0, x1, y1). ``labels``: 1 = foreground (default), 0 = background, one per point.

        The first call for an image uploads it; later calls for the same image send only its
        ``image_id`` (kept per image by this client, or given explicitly) and, if the serving
        instance no longer has its embedding (``unknown_image_id``), resend the image transparently.
        ``image`` may be None when ``image_id`` is given (then a cache miss raises ModelInputError).
        """
        encoded = encode_image(image) if image is not None else None
        if encoded is None and not image_id:
            raise InputError("give an image (or the image_id of an earlier select)")
        width, height = encoded.size if encoded is not None else (math.inf, math.inf)
        coords, labs = _points(points, labels, width, height)
        gen_args: dict[str, Any] = {}
        if box is not None:
            try:
                box = [float(v) for v in box]
            except (TypeError, ValueError):
                raise InputError(f"box must be (x0, y0, x1, y1), got {box!r}") from None
            if len(box) != 4 or not (0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height):
                raise InputError(f"box {box} must satisfy 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height "
                                 f"of the {width}x{height} image")
        if not coords and box is None:
            raise InputError("give at least one point (or a box) to select")
        if coords:
            gen_args["point_coords"] = coords
            gen_args["point_labels"] = labs
        if box is not None:
            gen_args["box"] = box
        if dilate:
            gen_args["dilate_kernel_size"] = int(dilate)
        if not multimask:
            gen_args["multimask"] = False

        known = image_id or (self._image_ids.get(encoded.digest) if encoded is not None else None)
        answer = None
        if known:
            try:
                answer = self.backend.invoke(SEGMENT_MODEL, {"image_id": known, "gen_args": gen_args})
            except ModelInputError as err:
                if err.code != UNKNOWN_IMAGE_ID or encoded is None:
                    raise
                self._image_ids.pop(encoded.digest, None)
        if answer is None:
            answer = self.backend.invoke(SEGMENT_MODEL, {"image": encoded.b64, "gen_args": gen_args})
        mask = decode_image(self._field(answer, "generated_image", SEGMENT_MODEL)).convert("L")
        new_id = str(answer.get("image_id") or known or (encoded.digest if encoded else ""))
        if encoded is not None:
            if mask.size != encoded.size:
                raise EndpointError(f"sam returned a {mask.size[0]}x{mask.size[1]} mask for a "
                                    f"{encoded.width}x{encoded.height} image")
            self._remember(encoded.digest, new_id)
        extras = {k: v for k, v in answer.items() if k not in ("generated_image", "score", "image_id", "embedding_cached")}
        return SelectResult(mask=mask, score=float(answer.get("score", float("nan"))), image_id=new_id,
                            embedding_cached=bool(answer.get("embedding_cached", False)), extras=extras)

    def _remember(self, digest: str, image_id: str) -> None:
        if not image_id or self._cache_size <= 0:
            return
        self._image_ids[digest] = image_id
        self._image_ids.move_to_end(digest)
        while len(self._image_ids) > self._cache_size:
            self._image_ids.popitem(last=False)

    # ------------------------------------------------------------------ erase (LaMa)
    def erase(self, image: ImageLike, mask: ImageLike) -> Image.Image:
        """Remove the masked object and fill the hole from its surroundings (LaMa). Returns an RGB
        image (RGBA when the input has transparency) of the input's displayed size; pixels outside
        the mask are the input's. The answer's other fields (e.g. ``ignored_args``) are in
        ``result.info``."""
        encoded = encode_image(image)
        mask_arr = load_mask(mask, encoded.size)
        answer = self.backend.invoke(ERASE_MODEL, {"image": encoded.b64, "mask_image": encode_mask(mask_arr)})
        return self._result_image(answer, ERASE_MODEL, encoded)

    # ------------------------------------------------------------------ replace (SD inpaint)
    def replace(self, image: ImageLike, mask: ImageLike, prompt: str, negative_prompt: str | None = None,
                seed: int | None = None, steps: int | None = None, guidance: float | None = None,
                strength: float | None = None) -> Image.Image:
        """Repaint the masked area from ``prompt`` (Stable Diffusion 2 inpainting). Returns an RGB
        image (RGBA when the input has transparency) of the input's displayed size; pixels outside
        the mask are the input's. The seed used is in ``result.info["seed"]`` (pass it back to
        reproduce the result). ``strength`` (0 < s <= 1, the model's default 1.0): lower keeps more
        of the photo under the mask."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("the prompt is empty: say what to paint into the mask")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InputError(f"the prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS}")
        gen_args: dict[str, Any] = {}
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1:
                raise InputError(f"seed must be an integer in 0..{2**32 - 1}, got {seed!r}")
            gen_args["seed"] = seed
        if steps is not None:
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise InputError(f"steps must be a positive integer, got {steps!r}")
            gen_args["num_inference_steps"] = steps
        if guidance is not None:
            if not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
                raise InputError(f"guidance must be a number >= 0, got {guidance!r}")
            gen_args["guidance_scale"] = float(guidance)
        if strength is not None:
            if (isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength)
                    or not 0 < strength <= 1):
                raise InputError(f"strength must be a number in (0, 1], got {strength!r}")
            gen_args["strength"] = float(strength)
        encoded = encode_image(image)
        mask_arr = load_mask(mask, encoded.size)
        payload: dict[str, Any] = {"image": encoded.b64, "mask_image": encode_mask(mask_arr), "prompt": prompt}
        if negative_prompt:
            payload["negative_prompt"] = negative_prompt
        if gen_args:
            payload["gen_args"] = gen_args
        answer = self.backend.invoke(REPLACE_MODEL, payload)
        return self._result_image(answer, REPLACE_MODEL, encoded)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _field(answer: dict, name: str, model: str):
        if not isinstance(answer, dict) or name not in answer:
            raise EndpointError(f"{model} answered without '{name}'")
        return answer[name]

    def _result_image(self, answer: dict, model: str, encoded: EncodedImage) -> Image.Image:
        img = decode_image(self._field(answer, "generated_image", model))
        if img.size != encoded.size:
            raise EndpointError(f"{model} returned a {img.size[0]}x{img.size[1]} image for a "
                                f"{encoded.width}x{encoded.height} input")
        if img.mode not in ("RGB", "RGBA"):
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        for key, value in answer.items():
            if key != "generated_image":
                img.info[key] = value
        return img
