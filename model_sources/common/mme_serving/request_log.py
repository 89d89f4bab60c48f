"""One structured line per request: what the endpoint's per-model metrics, dashboard rows, alarms and
saved queries are built from, and what ``mme local status`` counts.

Each request a handler answers (served, refused with a 4xx, or failed with a 5xx) writes exactly
one line to the worker's stdout, which TorchServe's frontend logs as a ``MODEL_LOG`` event and the
serving image's ``log4j2.xml`` passes to the container's stdout unchanged, where SageMaker sends it
to the endpoint's log group. The line is one JSON object (format version 1)::

    {"event":"mme.request","v":1,"model":"sam","operation":"select","outcome":"ok","status":200,
     "error":null,"message":null,"batch":1,
     "ms":{"total":812.4,"decode":21.0,"preprocess":3.1,"inference":760.2,"postprocess":20.9,"encode":7.2},
     "input_mpx":0.307,"output_mpx":0.307,"cache_hit":0,"steps":null}

* ``model``: the archive's model name (its manifest's ``modelName``: ``sam``, ``lama``, ``sd``), not
  the name SageMaker registers it under (a digest that changes with every archive);
* ``outcome``: ``ok``, ``4xx`` or ``5xx``; ``status`` the HTTP status; ``error`` the error code of
  the contract (``invalid_json``, ``image_too_large``, ...) and ``message`` its one-line text, both
  ``null`` when served;
* ``ms``: milliseconds, ``total`` from the start of the batch to the response, and the stages
  measured (exclusive: a stage inside another is not counted twice): ``decode`` (images from
  base64), ``preprocess`` (the rest of the request's validation and preparation), ``inference``
  (the model), ``postprocess`` (back to the image's size, compositing), ``encode`` (PNG + base64).
  In a batch that a handler serves in one call, each request is charged the call's time;
* ``input_mpx`` / ``output_mpx``: megapixels of the input image and of the generated image(s);
* ``cache_hit``: SAM, 1 when the image's embedding was cached, 0 when the encoder ran; ``steps``:
  SD, the denoising steps asked for; ``null`` for the other models;
* ``prompt`` / ``negative_prompt``: only with the handler setting ``log_prompts: true`` (or
  ``MME_LOG_PROMPTS=true`` in the container's environment); prompts can be personal data.

A handler also writes one load line when its model is loaded (:func:`emit_load`). No image data
is ever written. Every string is JSON-escaped with ``ensure_ascii``: a prompt, a file
name or a header value with line breaks or quotes stays inside its one line, so a request cannot
write a line of its own. Writing the line never fails a request (an error is swallowed).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

logger = logging.getLogger(__name__)

#: The ``event`` value of a request line, and the format version (``v``).
EVENT = "mme.request"
VERSION = 1
#: The ``event`` of the line a handler writes once its model is loaded:
#: ``{"event":"mme.load","v":1,"model":"sam","device":"cuda","seconds":1.84}``.
LOAD_EVENT = "mme.load"
#: The stages of ``ms``, in the order a request goes through them.
STAGES = ("decode", "preprocess", "inference", "postprocess", "encode")
OUTCOMES = ("ok", "4xx", "5xx")
_CURRENT: contextvars.ContextVar[tuple["RequestRecord", ...]] = contextvars.ContextVar("mme_requests", default=())


def outcome_of(status: int) -> str:
    """``ok`` for 1xx-3xx, ``4xx``, or ``5xx``."""
    return "ok" if status < 400 else "4xx" if status < 500 else "5xx"


class RequestRecord:
    """What one request's line holds; filled by the handler base while the request is served."""

    def __init__(self, model: str, operation: str, started: float, batch: int = 1) -> None:
        self.model, self.operation, self.started, self.batch = model, operation, started, batch
        self.status = 200
        self.error: str | None = None
        self.message: str | None = None
        self.stages = dict.fromkeys(STAGES, 0.0)
        self.input_pixels = 0
        self.output_pixels = 0
        self.extra: dict[str, Any] = {"cache_hit": None, "steps": None}

    def fail(self, status: int, code: str, message: str) -> None:
        self.status, self.error, self.message = status, code, message

    def as_dict(self, now: float) -> dict:
        line = {
            "event": EVENT, "v": VERSION, "model": self.model, "operation": self.operation,
            "outcome": outcome_of(self.status), "status": self.status, "error": self.error,
            "message": self.message, "batch": self.batch,
            "ms": {"total": _ms(now - self.started), **{k: round(v, 2) for k, v in self.stages.items()}},
            "input_mpx": _mpx(self.input_pixels), "output_mpx": _mpx(self.output_pixels),
        }
        line.update(self.extra)
        return line


def line_text(record: RequestRecord, now: float | None = None) -> str:
    """The record as its one line (no line break inside: every string JSON-escaped, ASCII only)."""
    return _json_line(record.as_dict(time.perf_counter() if now is None else now))


def _json_line(fields: dict) -> str:
    """``fields`` as compact ASCII JSON: no line break inside, whatever a string holds."""
    return json.dumps(fields, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def emit(records, stream: TextIO | None = None) -> None:
    """Write one line per record; never raises (a request must not fail because of its log line)."""
    out = stream or sys.stdout
    for record in records:
        try:
            out.write(line_text(record) + "\n")
        except Exception:  # noqa: BLE001 - logging never fails a request
            logger.debug("could not write a request line", exc_info=True)
    with contextlib.suppress(Exception):
        out.flush()


def emit_load(model: str, device: str, seconds: float, stream: TextIO | None = None) -> None:
    """The load line: a model is loaded (its handler's ``initialize`` took ``seconds``). With the
    request lines it says per model how often an endpoint loads it again (unloaded, then needed)."""
    out = stream or sys.stdout
    try:
        out.write(_json_line({"event": LOAD_EVENT, "v": VERSION, "model": model, "device": device,
                              "seconds": round(max(0.0, seconds), 3)}) + "\n")
        out.flush()
    except Exception:  # noqa: BLE001 - logging never fails a load
        logger.debug("could not write the load line", exc_info=True)


# ---------------------------------------------------------------------- what handlers report


@contextlib.contextmanager
def serving(records) -> Iterator[None]:
    """Make ``records`` the requests that :func:`stage` and :func:`note` report on, inside the block."""
    token = _CURRENT.set(tuple(records))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> tuple[RequestRecord, ...]:
    """The requests being served (inside :func:`serving`), empty outside."""
    return _CURRENT.get()


def note(**fields: Any) -> None:
    """Set fields of the current requests' lines (``cache_hit``, ``steps``, ``prompt``, ...)."""
    for record in _CURRENT.get():
        record.extra.update(fields)


def add_pixels(*, input_pixels: int = 0, output_pixels: int = 0) -> None:
    """Count an input image's or a generated image's pixels for the current requests."""
    for record in _CURRENT.get():
        record.input_pixels += input_pixels
        record.output_pixels += output_pixels


class _Clock:
    """Exclusive stage times: a stage's time minus the stages timed inside it."""

    def __init__(self) -> None:
        self.inner = 0.0


_CLOCKS: contextvars.ContextVar[tuple[_Clock, ...]] = contextvars.ContextVar("mme_stage_clocks", default=())


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Charge the block's time, less the stages timed inside it, to stage ``name`` of the current
    requests. On a GPU the queued kernels are waited for first, so the time is the stage's own."""
    records = _CURRENT.get()
    if not records:
        yield
        return
    clock, clocks = _Clock(), _CLOCKS.get()
    token = _CLOCKS.set((*clocks, clock))
    started = time.perf_counter()
    try:
        yield
    finally:
        _synchronize()
        elapsed = time.perf_counter() - started
        _CLOCKS.reset(token)
        if clocks:
            clocks[-1].inner += elapsed
        own = max(0.0, elapsed - clock.inner) * 1000.0
        for record in records:
            record.stages[name] = record.stages.get(name, 0.0) + own


def _synchronize() -> None:
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    except Exception:  # noqa: BLE001 - timing must never fail a request
        pass


def _ms(seconds: float) -> float:
    return round(max(0.0, seconds) * 1000.0, 2)


def _mpx(pixels: int) -> float | None:
    return round(pixels / 1e6, 4) if pixels and math.isfinite(pixels) else None
