"""Request parsing and validation of the shared contract.

A TorchServe batch row is a dict whose ``body`` (or ``data``) holds the request: bytes or
bytearray of a JSON document, a str, or an already-decoded dict (TorchServe decodes
``application/json`` bodies itself). :func:`parse_body` turns any of these into a dict or raises
a :class:`RequestError`. :class:`Request` wraps that dict with typed accessors for the contract's
fields (images, masks, texts, ``gen_args``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image

from . import request_log
from .codec import ImageLimits, b64decode_field, decode_image, mask_from_image
from .errors import (
    INVALID_ARGUMENT,
    INVALID_FIELD,
    INVALID_GEN_ARGS,
    INVALID_JSON,
    INVALID_REQUEST,
    MISSING_FIELD,
    OUT_OF_RANGE,
    RequestError,
)

_MISSING = object()


def parse_body(row: Any) -> dict:
    """Extract the JSON object of one TorchServe batch row (``body`` or ``data`` key).

    Accepts bytes/bytearray/str holding JSON, or a dict TorchServe already decoded.
    Raises ``invalid_json`` (not UTF-8 / not JSON) or ``invalid_request`` (not an object).
    """
    if isinstance(row, Mapping) and ("body" in row or "data" in row):
        payload = row.get("body")
        if payload is None:
            payload = row.get("data")
    else:
        payload = row
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(INVALID_JSON, "request body is not UTF-8 JSON") from None
    if isinstance(payload, str):
        if not payload.strip():
            raise RequestError(INVALID_JSON, "request body is empty; send a JSON object")
        try:
            payload = json.loads(payload)
        except (json.JSONDecodeError, RecursionError) as exc:
            msg = getattr(exc, "msg", "too deeply nested")
            raise RequestError(INVALID_JSON, f"request body is not valid JSON: {msg}") from None
    if not isinstance(payload, dict):
        raise RequestError(INVALID_REQUEST, f"request body must be a JSON object, got {type(payload).__name__}")
    return payload


@dataclass(frozen=True)
class Arg:
    """Specification of one ``gen_args`` entry.

    ``kind``: ``int``, ``float``, ``bool``, ``str`` or ``"any"`` (value passed to ``parse``).
    ``default``: used when the key is absent or null (unless ``required``).
    ``min``/``max``: inclusive numeric bounds (``out_of_range`` otherwise).
    ``choices``: allowed values for str args.
    ``parse``: optional callable ``(value, name) -> value`` run after the type check; it may
    raise :class:`RequestError` itself.
    """

    kind: Any
    default: Any = None
    min: float | None = None
    max: float | None = None
    required: bool = False
    choices: tuple | None = None
    parse: Callable[[Any, str], Any] | None = None


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a finite real number (bools, NaN,
    infinities, and JSON integers too large for a float all give None, never an exception)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # e.g. a 400-digit JSON integer
        return None
    return number if math.isfinite(number) else None


def _check_type(name: str, value: Any, arg: Arg) -> Any:
    kind = arg.kind
    if kind is bool:
        if not isinstance(value, bool):
            raise RequestError(INVALID_ARGUMENT, f"gen_args.{name} must be true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(INVALID_ARGUMENT, f"gen_args.{name} must be an integer")
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise RequestError(INVALID_ARGUMENT, f"gen_args.{name} must be an integer")
            value = int(value)
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(INVALID_ARGUMENT, f"gen_args.{name} must be a number")
        number = finite_float(value)
        if number is None:
            raise RequestError(INVALID_ARGUMENT, f"gen_args.{name} must be a finite number")
        return number
    if kind is str:
        if not isinstance(value, str):
            raise RequestError(INVALID_ARGUMENT, f"gen_args.{name} must be a string")
        if arg.choices is not None and value not in arg.choices:
            raise RequestError(INVALID_ARGUMENT, f"gen_args.{name} must be one of {list(arg.choices)}")
        return value
    return value  # "any"


def gen_args_object(raw: Any) -> dict:
    """``gen_args`` as a dict: a dict as is, a JSON object string parsed, absent/null/blank -> ``{}``.
    Raises ``invalid_gen_args`` for anything else."""
    if raw is None:
        raw = {}
    elif isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if isinstance(raw, str):
        if not raw.strip():
            raw = {}
        else:
            try:
                raw = json.loads(raw)
            except (json.JSONDecodeError, RecursionError):
                raise RequestError(INVALID_GEN_ARGS, "gen_args is a string but not valid JSON") from None
    if not isinstance(raw, dict):
        raise RequestError(INVALID_GEN_ARGS, "gen_args must be a JSON object (or a string holding one)")
    return raw


def parse_gen_args(raw: Any, spec: Mapping[str, Arg]) -> dict:
    """Validate ``gen_args`` (a dict, a JSON object string, or absent/null) against ``spec``.

    Returns a dict with every key of ``spec`` (defaults filled in). Unknown keys are ignored
    (clients of the original sample send extra keys; :meth:`Request.gen_args` records them so the
    response can list them). Errors: ``invalid_gen_args`` (not an object), ``missing_field``,
    ``invalid_argument`` (type), ``out_of_range`` (bounds).
    """
    raw = gen_args_object(raw)
    out: dict = {}
    for name, arg in spec.items():
        value = raw.get(name)
        if value is None:
            if arg.required:
                raise RequestError(MISSING_FIELD, f"gen_args.{name} is required")
            out[name] = arg.default
            continue
        value = _check_type(name, value, arg)
        if arg.min is not None and value < arg.min:
            raise RequestError(OUT_OF_RANGE, f"gen_args.{name}={value} is below the minimum {arg.min}")
        if arg.max is not None and value > arg.max:
            raise RequestError(OUT_OF_RANGE, f"gen_args.{name}={value} is above the maximum {arg.max}")
        if arg.parse is not None:
            value = arg.parse(value, name)
        out[name] = value
    return out


class Request:
    """One parsed request of a batch: the JSON object plus typed field accessors.

    ``index`` is the position in the TorchServe batch; ``limits`` the image limits in force.
    """

    def __init__(self, body: dict, index: int = 0, limits: ImageLimits | None = None):
        self.body = body
        self.index = index
        self.limits = limits or ImageLimits()
        #: ``gen_args`` keys the handler does not know (sorted; set by :meth:`gen_args`); the
        #: response lists them as ``ignored_args`` so that a typo does not pass unnoticed
        self.ignored_args: list[str] = []

    @classmethod
    def from_row(cls, row: Any, index: int = 0, limits: ImageLimits | None = None) -> "Request":
        """Parse a TorchServe batch row (see :func:`parse_body`); timed as the ``decode`` stage."""
        with request_log.stage("decode"):
            return cls(parse_body(row), index, limits)

    def has(self, field: str) -> bool:
        """True when ``field`` is present and not null."""
        return self.body.get(field) is not None

    def field(self, field: str, kind: type | tuple, required: bool = True, default: Any = None) -> Any:
        """A top-level field checked for type (``missing_field`` / ``invalid_field``)."""
        value = self.body.get(field, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise RequestError(MISSING_FIELD, f"'{field}' is required")
            return default
        if isinstance(value, bool) and kind is not bool and (kind is int or kind is float):
            raise RequestError(INVALID_FIELD, f"'{field}' has the wrong type")
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise RequestError(INVALID_FIELD, f"'{field}' must be of type {names}, got {type(value).__name__}")
        return value

    def image_bytes(self, field: str = "image") -> bytes:
        """The base64-decoded bytes of an image field (required)."""
        value = self.body.get(field)
        if value is None:
            raise RequestError(MISSING_FIELD, f"'{field}' is required (a base64 PNG, JPEG or WebP)")
        return b64decode_field(value, field, self.limits)

    def image(self, field: str = "image", mode: str | None = None) -> Image.Image:
        """Decode a required base64 image field (display orientation; ``mode`` as in
        :func:`mme_serving.codec.decode_image`: RGB, or RGBA when it has transparency). Its pixels
        are the request line's ``input_mpx``."""
        image = decode_image(self.image_bytes(field), field, self.limits, mode)
        request_log.add_pixels(input_pixels=image.size[0] * image.size[1])
        return image

    def mask(self, size: tuple[int, int], field: str = "mask_image", threshold: int = 127,
             allow_empty: bool = False) -> np.ndarray:
        """Decode a required base64 mask (bool array, True = masked) of image ``size`` (w, h, as displayed)."""
        img = decode_image(self.image_bytes(field), field, self.limits, mode="L", size=size)
        return mask_from_image(img, size, field, threshold, allow_empty)

    def text(self, field: str, required: bool = True, max_chars: int = 1000, allow_empty: bool = False,
             default: str = "") -> str:
        """A text field, stripped. Errors: ``missing_field``, ``invalid_field``,
        ``empty_<field>`` (blank when not allowed), ``<field>_too_long``."""
        value = self.field(field, (str, bytes, bytearray), required=required, default=default)
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", errors="replace")
        value = value.strip()
        if not value and not allow_empty and (required or field in self.body):
            raise RequestError(f"empty_{field}", f"'{field}' must not be empty")
        if len(value) > max_chars:
            raise RequestError(f"{field}_too_long", f"'{field}' has {len(value)} characters; the limit is {max_chars}")
        return value

    def gen_args(self, spec: Mapping[str, Arg]) -> dict:
        """Validate the ``gen_args`` field against ``spec`` (see :func:`parse_gen_args`); unknown
        keys are accepted and recorded in :attr:`ignored_args`."""
        raw = gen_args_object(self.body.get("gen_args"))
        self.ignored_args = sorted(str(key) for key in raw if key not in spec)
        return parse_gen_args(raw, spec)


def digest(data: bytes) -> str:
    """Hex sha256 of bytes (used e.g. as SAM's ``image_id``)."""
    return hashlib.sha256(data).hexdigest()
