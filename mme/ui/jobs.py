"""Background jobs: each model call of the page runs in its own thread, and the page polls it.

A job's ``state`` is ``running``, then ``done`` (with ``result``) or ``failed`` (with ``error``,
whose ``message`` is the model's or the client's own one-line message, unchanged). While it
runs, the backends' progress callbacks move it to ``loading_model`` (a multi-model endpoint
answered ``ModelNotReadyException`` and the client is retrying; locally: the model is being
registered) or ``retrying`` (throttled, busy, unavailable), with a message saying so. The
callbacks find their job through a thread-local: the client calls them on the job's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from mme.client.errors import ConfigurationError, EndpointError, InputError, ModelError

logger = logging.getLogger(__name__)

RUNNING, LOADING_MODEL, RETRYING, DONE, FAILED = "running", "loading_model", "retrying", "done", "failed"
MAX_JOBS_KEPT = 64


class Busy(RuntimeError):
    """Another edit is already running."""


class BadParams(ValueError):
    """The page sent parameters the server refuses (a 400 with this message)."""


def error_of(exc: BaseException) -> dict:
    """The page's view of a failure: ``kind``, ``code``, ``message`` (+ ``model``/``status``)."""
    if isinstance(exc, ModelError):
        return {"kind": "model", "code": exc.code, "message": exc.message, "model": exc.model, "status": exc.status}
    if isinstance(exc, (InputError, BadParams)):
        return {"kind": "input", "code": "bad_input", "message": str(exc)}
    if isinstance(exc, LookupError):
        return {"kind": "input", "code": "not_held", "message": str(exc).strip("'\"")}
    if isinstance(exc, (EndpointError, ConfigurationError)):
        return {"kind": "endpoint", "code": "endpoint_error", "message": str(exc)}
    logger.exception("job failed")
    return {"kind": "internal", "code": "internal_error",
            "message": f"internal error ({type(exc).__name__}: {exc}); see the terminal running mme ui"}


class Job:
    """One model call; see the module docstring."""

    def __init__(self, job_id: str, op: str, model: str):
        self.id, self.op, self.model = job_id, op, model
        self.state, self.message = RUNNING, ""
        self.result: Any = None
        self.error: dict | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self._changed = threading.Condition()

    def update(self, state: str, message: str = "", result: Any = None, error: dict | None = None) -> None:
        with self._changed:
            self.state, self.message, self.result, self.error = state, message, result, error
            if state in (DONE, FAILED):
                self.finished = time.monotonic()
            self._changed.notify_all()

    def wait(self, timeout: float) -> None:
        """Return when the job's state changes or ends, or after ``timeout`` seconds."""
        with self._changed:
            if self.finished is None:
                self._changed.wait(timeout)

    def snapshot(self) -> dict:
        with self._changed:
            end = self.finished if self.finished is not None else time.monotonic()
            snap = {"id": self.id, "op": self.op, "model": self.model, "state": self.state,
                    "message": self.message, "elapsed": round(end - self.started, 2)}
            if self.state == DONE:
                snap["result"] = self.result
            if self.state == FAILED:
                snap["error"] = self.error
            return snap


class JobRunner:
    """Starts jobs, keeps the latest :data:`MAX_JOBS_KEPT`, routes backend progress to them.
    ``exclusive`` ops (the edits) run one at a time: a second one is refused with :class:`Busy`."""

    def __init__(self, exclusive: tuple[str, ...] = ()):
        self.exclusive = exclusive
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._next = 0

    def submit(self, op: str, model: str, fn: Callable[[Job], Any]) -> Job:
        """Run ``fn(job)`` on a new thread; its return value is the job's result."""
        with self._lock:
            if op in self.exclusive and any(j.op in self.exclusive and j.finished is None for j in self._jobs.values()):
                raise Busy("another edit is still running: wait for it to finish")
            self._next += 1
            job = Job(f"j{self._next}", op, model)
            self._jobs[job.id] = job
            while len(self._jobs) > MAX_JOBS_KEPT:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].finished is None:
                    break
                self._jobs.pop(oldest)
        threading.Thread(target=self._run, args=(job, fn), name=f"mme-ui-{job.id}", daemon=True).start()
        return job

    def _run(self, job: Job, fn: Callable[[Job], Any]) -> None:
        self._local.job = job
        try:
            job.update(DONE, result=fn(job))
        except Exception as exc:  # noqa: BLE001 - every failure goes to the page
            job.update(FAILED, error=error_of(exc))
        finally:
            self._local.job = None

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _current(self) -> Job | None:
        return getattr(self._local, "job", None)

    # ------------------------------------------------------------------ backend callbacks
    def on_retry(self, kind: str, attempt: int, delay: float, message: str) -> None:
        """``SageMakerBackend(on_retry=...)``: a retry is coming (see :mod:`mme.client.retry`)."""
        job = self._current()
        if job is None:
            return
        if kind == "model_loading":
            job.update(LOADING_MODEL, f"{job.model} is loading on the endpoint (a model's first request copies "
                                      f"and loads it: up to a few minutes); retry {attempt} in {delay:.1f} s")
        else:
            what = {"throttled": "the endpoint throttled the call",
                    "unavailable": "the endpoint is busy or unavailable"}.get(kind, kind)
            job.update(RETRYING, f"{what}; retry {attempt} in {delay:.1f} s")

    def on_event(self, message: str) -> None:
        """``LocalBackend(on_event=...)``: what the local backend is doing (registering a model,
        waiting for a busy worker, renewing its key)."""
        job = self._current()
        if job is None:
            return
        job.update(LOADING_MODEL if message.startswith("registering") else RETRYING, message)
