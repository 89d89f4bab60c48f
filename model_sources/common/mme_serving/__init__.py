"""Shared serving code for the TorchServe model archives (sam, lama, sd).

Copied flat into every archive root next to ``handler.py``; handlers import it as
``mme_serving``. See ``base`` for the handler hooks, ``errors`` for the error contract,
``codec`` for image decode/encode, ``request`` for body/field/gen_args validation and
``config`` for ``model-config.yaml`` settings and device selection.
"""

from .base import JSON_CONTENT_TYPE, ServingHandler
from .cache import LRUCache
from .codec import (
    ALLOWED_FORMATS,
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageLimits,
    b64decode_field,
    decode_image,
    encode_png,
    encode_png_b64,
    mask_from_image,
)
from .config import ConfigError, Settings, load_json_overrides, resolve_file, select_device
from .errors import RequestError, error_body
from .ops import dilate
from .request import Arg, Request, digest, finite_float, parse_body, parse_gen_args

__all__ = [
    "ALLOWED_FORMATS", "DEFAULT_MAX_IMAGE_PIXELS", "JSON_CONTENT_TYPE", "Arg", "ConfigError",
    "ImageLimits", "LRUCache", "Request", "RequestError", "ServingHandler", "Settings",
    "b64decode_field", "decode_image", "digest", "encode_png", "encode_png_b64",
    "error_body", "finite_float", "load_json_overrides", "mask_from_image", "parse_body", "parse_gen_args",
    "resolve_file", "select_device", "dilate",
]
