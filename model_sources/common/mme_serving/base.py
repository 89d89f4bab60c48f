"""The TorchServe handler base class shared by the sam, lama and sd handlers.

A model handler subclasses :class:`ServingHandler` and implements three hooks:

``load_model(self)``
    load weights from ``self.model_dir`` using ``self.settings`` onto ``self.device``.
``parse(self, request: Request) -> Any``
    validate and decode one request (raise :class:`RequestError` on bad input); the result is
    handed to ``infer``/``infer_batch``.
``infer(self, item) -> dict``
    run the model for one parsed request and return the JSON-able response dict
    (``{"generated_image": ..., ...}``). Override ``infer_batch(items) -> list`` instead to run
    several requests together; it returns one dict *or exception* per item.

A successful response also lists the request's unknown ``gen_args`` keys as ``ignored_args``
(absent when there are none): they are accepted, as the original sample's clients send extra
keys, but a typo such as ``num_inference_step`` becomes visible.

``handle`` takes care of the batch: every request is parsed and served on its own, a bad one gets
its own status (400 + ``{"error": {"code", "message"}}``) through
``context.set_response_status(code, phrase, idx=i)``, the rest of the batch is served, and no
exception ever leaves ``handle`` (the worker never dies on bad input).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

import torch
from ts.torch_handler.base_handler import BaseHandler

from .codec import DEFAULT_MAX_IMAGE_PIXELS, ImageLimits
from .config import Settings, select_device
from .errors import INTERNAL_ERROR, OUT_OF_RESOURCES, RequestError, error_body
from .request import Request
from . import weights

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
_PHRASE_UNSAFE = re.compile(r"[^\x20-\x7e]+")


def _phrase(message: str) -> str:
    """HTTP reason phrase: printable ASCII on one line, bounded."""
    return _PHRASE_UNSAFE.sub(" ", message)[:200].strip() or "Bad Request"


class ServingHandler(BaseHandler):
    """Base TorchServe handler wiring the shared request contract (see module docstring)."""

    #: default for ``handler.max_image_pixels`` (subclasses may lower it)
    default_max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS

    def __init__(self):
        super().__init__()
        self.settings = Settings()
        self.model_dir: str = ""
        self.limits = ImageLimits()
        self.png_compress_level = 3

    # ------------------------------------------------------------------ lifecycle
    def initialize(self, context: Any) -> None:
        """TorchServe entry point at model load: read settings, pick the device, load the model."""
        self.context = context
        self.manifest = getattr(context, "manifest", None)
        props = getattr(context, "system_properties", None) or {}
        self.model_dir = props.get("model_dir") or os.getcwd()
        self.settings = Settings.from_context(context)
        self.device = select_device(context, self.settings)
        self.map_location = self.device.type
        self.limits = ImageLimits(
            max_pixels=self.settings.get_int("max_image_pixels", self.default_max_image_pixels, min=1),
            max_base64_chars=self.settings.get_int("max_base64_chars", 0, min=0),
        )
        self.png_compress_level = self.settings.get_int("png_compress_level", 3, min=0, max=9)
        threads = self.settings.get_int("torch_threads", 0, min=0)
        if threads:
            torch.set_num_threads(threads)
        started = time.perf_counter()
        weights.freeze_imported_objects()
        self.load_model()
        logger.info("%s loaded on %s in %.2fs", type(self).__name__, self.device, time.perf_counter() - started)
        self.initialized = True

    # ------------------------------------------------------------------ hooks
    def load_model(self) -> None:  # pragma: no cover - abstract
        """Load the model(s) from ``self.model_dir`` onto ``self.device``."""
        raise NotImplementedError

    def parse(self, request: Request) -> Any:  # pragma: no cover - abstract
        """Validate and decode one request; raise :class:`RequestError` on bad input."""
        raise NotImplementedError

    def infer(self, item: Any) -> dict:  # pragma: no cover - abstract
        """Serve one parsed request; return the JSON-able response dict."""
        raise NotImplementedError

    def infer_batch(self, items: list) -> list:
        """Serve parsed requests; one response dict or exception per item (default: one by one)."""
        results: list = []
        for item in items:
            try:
                results.append(self.infer(item))
            except Exception as exc:  # noqa: BLE001 - reported per request by handle()
                results.append(exc)
        return results

    # ------------------------------------------------------------------ batch driver
    def handle(self, data: list, context: Any) -> list:
        """TorchServe entry point: serve a batch; returns one JSON string per request."""
        self.context = context
        started = time.perf_counter()
        data = list(data or [])
        responses: list = [None] * len(data)
        parsed: list[tuple[int, Any]] = []
        ignored: dict[int, list[str]] = {}
        for idx, row in enumerate(data):
            try:
                request = Request.from_row(row, idx, self.limits)
                parsed.append((idx, self.parse(request)))
                if request.ignored_args:
                    ignored[idx] = request.ignored_args
            except Exception as exc:  # noqa: BLE001
                responses[idx] = self._error(context, idx, exc)
        if parsed:
            try:
                with torch.inference_mode():
                    results = self.infer_batch([item for _, item in parsed])
                if len(results) != len(parsed):
                    raise RuntimeError(f"infer_batch returned {len(results)} results for {len(parsed)} requests")
            except Exception as exc:  # noqa: BLE001 - the whole sub-batch failed
                results = [exc] * len(parsed)
            for (idx, _), result in zip(parsed, results):
                if isinstance(result, BaseException):
                    responses[idx] = self._error(context, idx, result)
                else:
                    if idx in ignored and isinstance(result, dict):
                        result = {**result, "ignored_args": ignored[idx]}
                    responses[idx] = self._ok(context, idx, result)
        metrics = getattr(context, "metrics", None)
        if metrics is not None:
            try:
                metrics.add_time("HandlerTime", round((time.perf_counter() - started) * 1000, 2), None, "ms")
            except Exception:  # noqa: BLE001 - metrics must never fail a request
                logger.debug("could not record HandlerTime", exc_info=True)
        return responses

    # ------------------------------------------------------------------ responses
    @staticmethod
    def _set_content_type(context: Any, idx: int) -> None:
        try:
            context.set_response_content_type(idx, JSON_CONTENT_TYPE)
        except Exception:  # noqa: BLE001 - contexts without a request processor
            pass

    def _ok(self, context: Any, idx: int, result: Any) -> str:
        self._set_content_type(context, idx)
        return result if isinstance(result, str) else json.dumps(result)

    def _error(self, context: Any, idx: int, exc: BaseException) -> str:
        if isinstance(exc, RequestError):
            status, code, message = exc.status, exc.code, exc.message
            logger.info("request %d rejected: %s: %s", idx, code, message)
        elif isinstance(exc, torch.cuda.OutOfMemoryError) or (
            isinstance(exc, RuntimeError) and "out of memory" in str(exc)
        ):
            status, code, message = 507, OUT_OF_RESOURCES, "out of GPU/CPU memory; retry with a smaller image"
            logger.error("request %d: out of memory", idx, exc_info=exc)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        else:
            status, code, message = 500, INTERNAL_ERROR, f"internal error ({exc.__class__.__name__})"
            logger.error("request %d failed", idx, exc_info=exc)
        try:
            context.set_response_status(code=status, phrase=_phrase(message), idx=idx)
        except Exception:  # noqa: BLE001
            logger.warning("could not set the response status", exc_info=True)
        self._set_content_type(context, idx)
        return error_body(code, message)
