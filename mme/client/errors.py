"""Exceptions of the editing client. Every one carries a one-line, human-readable ``str()``.

``MmeError``
    base class of everything the client raises on purpose.
``InputError``
    the caller's input is wrong and was caught before any request (missing/unreadable file, not
    an image, point outside the image, empty prompt, mask of another size, empty mask).
``ModelInputError``
    the model rejected the request (HTTP 4xx from the handler): ``code`` and ``message`` are the
    model's ``{"error": {"code", "message"}}``, ``status`` the HTTP status, ``model`` its name.
``ModelServerError``
    the model failed (5xx from the handler, after retries where retrying makes sense).
``EndpointError``
    the serving side could not be reached or refused the call (SageMaker ValidationError, stack
    or output missing, local endpoint not running, retries exhausted, ...).
``ConfigurationError``
    the client is not configured (no AWS credentials/region, unknown model name, ...).
"""

from __future__ import annotations


class MmeError(Exception):
    """Base class of the client's errors (``str(err)`` is one line)."""

    def __str__(self) -> str:
        return " ".join(str(super().__str__()).split())


class InputError(MmeError, ValueError):
    """Bad input detected locally, before any request was sent."""


class ConfigurationError(MmeError):
    """The client cannot be set up (credentials, region, unknown model, missing TargetModel)."""


class EndpointError(MmeError):
    """The serving side failed or refused the call (not the model's own answer)."""


class ModelError(MmeError):
    """An error answer from the model itself (the handler's ``{"error": {...}}`` body)."""

    def __init__(self, model: str, status: int, code: str, message: str, log_stream: str | None = None):
        self.model = model
        self.status = status
        self.code = code
        self.message = " ".join(str(message).split())
        self.log_stream = log_stream
        super().__init__(f"{model}: {self.message} ({code}, HTTP {status})")


class ModelInputError(ModelError, ValueError):
    """The model rejected the request as bad input (HTTP 4xx), e.g. ``point_outside_image``."""


class ModelServerError(ModelError):
    """The model failed to serve the request (HTTP 5xx), e.g. ``out_of_resources``."""


def model_error(model: str, status: int, body: bytes | str | None, log_stream: str | None = None) -> ModelError:
    """Build the right :class:`ModelError` from a handler's status and raw error body.

    The contract's body is ``{"error": {"code", "message"}}``; TorchServe's own errors look like
    ``{"code": 503, "type": "ServiceUnavailableException", "message": ...}``; anything else is
    kept as text (shortened).
    """
    import json

    code, message = "", ""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else (body or "")
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = str(data["error"].get("code") or "")
        message = str(data["error"].get("message") or "")
    elif isinstance(data, dict) and ("type" in data or "message" in data):
        code = str(data.get("type") or "")
        message = str(data.get("message") or "")
    else:
        message = text.strip()[:300]
    if not code:
        code = "bad_request" if 400 <= status < 500 else "server_error"
    if not message:
        message = f"HTTP {status} without a message"
    cls = ModelInputError if 400 <= status < 500 else ModelServerError
    return cls(model, status, code, message, log_stream)
