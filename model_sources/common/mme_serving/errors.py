"""Client-facing error type of the request contract.

A :class:`RequestError` raised anywhere while a request is parsed or served becomes that
request's own HTTP response (400 by default) with the body
``{"error": {"code": <code>, "message": <message>}}``; the other requests of the batch are
served and the worker lives on.
"""

from __future__ import annotations

import json

# Stable error codes (clients may branch on them).
INVALID_JSON = "invalid_json"                  # body is not JSON / not UTF-8
INVALID_REQUEST = "invalid_request"            # body is JSON but not an object
MISSING_FIELD = "missing_field"                # a required field is absent (or null)
INVALID_FIELD = "invalid_field"                # a field has the wrong type or value
INVALID_BASE64 = "invalid_base64"              # an image field is not valid base64
INVALID_IMAGE = "invalid_image"                # decoded bytes are not a PNG/JPEG/WebP image
IMAGE_TOO_LARGE = "image_too_large"            # over the pixel limit / decompression bomb
MASK_SIZE_MISMATCH = "mask_size_mismatch"      # mask size differs from the image size
EMPTY_MASK = "empty_mask"                      # mask selects no pixel
INVALID_GEN_ARGS = "invalid_gen_args"          # gen_args is not an object / JSON object string
INVALID_ARGUMENT = "invalid_argument"          # a gen_args value has the wrong type
OUT_OF_RANGE = "out_of_range"                  # a numeric gen_args value is out of range
POINT_OUTSIDE_IMAGE = "point_outside_image"    # sam: a point/box lies outside the image
INVALID_POINT_LABEL = "invalid_point_label"    # sam: a label is not 0 or 1
UNKNOWN_IMAGE_ID = "unknown_image_id"          # sam: image_id not cached on this instance
INTERNAL_ERROR = "internal_error"              # 500: unexpected failure for this request
OUT_OF_RESOURCES = "out_of_resources"          # 507: e.g. CUDA out of memory


class RequestError(Exception):
    """A problem with one request, reported to that client only.

    ``code`` is a stable machine-readable string (see the constants in this module, or a
    model-specific one such as ``empty_prompt``), ``message`` a one-line human explanation,
    ``status`` the HTTP status (400 unless said otherwise).
    """

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"RequestError({self.code!r}, {self.message!r}, status={self.status})"


def error_body(code: str, message: str) -> str:
    """Serialize the contract's error body."""
    return json.dumps({"error": {"code": code, "message": message}})
