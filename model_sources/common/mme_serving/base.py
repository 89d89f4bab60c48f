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

Every request also gets its one structured line (:mod:`mme_serving.request_log`): the base times
``preprocess`` (``parse``) and ``inference`` (each ``infer``); the codec times ``decode`` and
``encode``; a handler marks ``postprocess`` (and, in an ``infer_batch`` of its own,
``inference``) with ``request_log.stage`` and adds its own fields with ``request_log.note``. A
handler names its ``operation`` (class attribute).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import traceback
from typing import Any

import torch
from ts.torch_handler.base_handler import BaseHandler

from .codec import DEFAULT_MAX_IMAGE_PIXELS, ImageLimits
from .config import Settings, select_device
from .errors import INTERNAL_ERROR, OUT_OF_RESOURCES, RequestError, error_body
from .request import Request
from . import request_log, weights

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
    #: what a request to this model does, for its request line (``select``, ``erase``, ``replace``)
    operation: str = "infer"

    def __init__(self):
        super().__init__()
        self.settings = Settings()
        self.model_dir: str = ""
        self.limits = ImageLimits()
        self.png_compress_level = 3
        self.model_name = type(self).__name__
        self.log_prompts = False

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
        self.model_name = _model_name(self.manifest, context, type(self).__name__)
        self.log_prompts = self.settings.get_bool(
            "log_prompts", os.environ.get("MME_LOG_PROMPTS", "").strip().lower() in ("1", "true", "yes"))
        threads = self.settings.get_int("torch_threads", 0, min=0)
        if threads:
            torch.set_num_threads(threads)
        started = time.perf_counter()
        weights.freeze_imported_objects()
        self.load_model()
        seconds = time.perf_counter() - started
        logger.info("%s loaded on %s in %.2fs", type(self).__name__, self.device, seconds)
        request_log.emit_load(self.model_name, str(self.device), seconds)
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
        """Serve parsed requests; one response dict or exception per item (default: one by one,
        each timed as its own request's ``inference``). An override that serves several requests in
        one call marks its stages with ``request_log.stage``: each request is charged the call."""
        records = request_log.current()
        results: list = []
        for i, item in enumerate(items):
            mine = [records[i]] if len(records) == len(items) else records
            try:
                with request_log.serving(mine), request_log.stage("inference"):
                    results.append(self.infer(item))
            except Exception as exc:  # noqa: BLE001 - reported per request by handle()
                results.append(exc)
        return results

    # ------------------------------------------------------------------ batch driver
    def handle(self, data: list, context: Any) -> list:
        """TorchServe entry point: serve a batch; returns one JSON string per request and writes
        one request line per request."""
        self.context = context
        started = time.perf_counter()
        data = list(data or [])
        records = [request_log.RequestRecord(self.model_name, self.operation, started, len(data)) for _ in data]
        responses: list = [None] * len(data)
        parsed: list[tuple[int, Any]] = []
        ignored: dict[int, list[str]] = {}
        for idx, row in enumerate(data):
            try:
                with request_log.serving([records[idx]]), request_log.stage("preprocess"):
                    request = Request.from_row(row, idx, self.limits)
                    parsed.append((idx, self.parse(request)))
                if request.ignored_args:
                    ignored[idx] = request.ignored_args
            except Exception as exc:  # noqa: BLE001
                responses[idx] = self._error(context, idx, exc, records[idx])
        if parsed:
            results = self._serve([item for _, item in parsed], [records[idx] for idx, _ in parsed])
            for (idx, _), result in zip(parsed, results):
                if isinstance(result, BaseException):
                    responses[idx] = self._error(context, idx, result, records[idx])
                else:
                    if idx in ignored and isinstance(result, dict):
                        result = {**result, "ignored_args": ignored[idx]}
                    responses[idx] = self._ok(context, idx, result)
        request_log.emit(records)
        metrics = getattr(context, "metrics", None)
        if metrics is not None:
            try:
                metrics.add_time("HandlerTime", round((time.perf_counter() - started) * 1000, 2), None, "ms")
            except Exception:  # noqa: BLE001 - metrics must never fail a request
                logger.debug("could not record HandlerTime", exc_info=True)
        return responses

    def _serve(self, items: list, records: list) -> list:
        """One result (dict or exception) per parsed item, from ``infer_batch``."""
        try:
            with torch.inference_mode(), request_log.serving(records):
                results = self.infer_batch(items)
            if len(results) != len(items):
                raise RuntimeError(f"infer_batch returned {len(results)} results for {len(items)} requests")
        except Exception as exc:  # noqa: BLE001 - the whole sub-batch failed
            results = [exc] * len(items)
        return results

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

    def _error(self, context: Any, idx: int, exc: BaseException, record: request_log.RequestRecord | None = None) -> str:
        if isinstance(exc, RequestError):
            # no log line of its own: the request line carries the code and the message, escaped
            status, code, message = exc.status, exc.code, exc.message
        elif isinstance(exc, torch.cuda.OutOfMemoryError) or (
            isinstance(exc, RuntimeError) and "out of memory" in str(exc)
        ):
            status, code, message = 507, OUT_OF_RESOURCES, "out of GPU/CPU memory; retry with a smaller image"
            logger.error("request %d: out of memory%s", idx, _indented_traceback(exc))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        else:
            status, code, message = 500, INTERNAL_ERROR, f"internal error ({exc.__class__.__name__})"
            logger.error("request %d failed%s", idx, _indented_traceback(exc))
        if record is not None:
            record.fail(status, code, message)
        try:
            context.set_response_status(code=status, phrase=_phrase(message), idx=idx)
        except Exception:  # noqa: BLE001
            logger.warning("could not set the response status", exc_info=True)
        self._set_content_type(context, idx)
        return error_body(code, message)


def _indented_traceback(exc: BaseException) -> str:
    """The traceback, each of its lines indented: TorchServe logs every line of a worker's output as
    an event of its own, and an exception's text can hold a request's data; indented, no line of it
    can pass for a request line (those start with ``{``)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "".join(f"\n    {line}" for line in text.splitlines())


def _model_name(manifest: Any, context: Any, fallback: str) -> str:
    """The archive's model name (its manifest's ``modelName``: what the packager named it), not the
    name SageMaker registers the archive under (a digest per archive)."""
    try:
        name = manifest["model"]["modelName"]
        if isinstance(name, str) and name:
            return name
    except (KeyError, TypeError):
        pass
    return getattr(context, "model_name", None) or fallback
