"""Local backend: the local endpoint of ``mme local up`` (the same archives, served the way a
SageMaker multi-model endpoint serves them).

``mme local up`` packages the models, starts the serving container's TorchServe and the local
endpoint in the background and records where (:mod:`mme.local.mode`);
:meth:`LocalBackend.from_state` attaches to them. A request goes to the endpoint as an
``InvokeEndpoint`` with the model's ``TargetModel`` (``sam-<digest>.tar.gz``, the name the stack
outputs); the endpoint loads the model on first use, unloads the least recently used ones when
memory runs short (:mod:`mme.local.emulator`) and passes the container's answer back.
The endpoint's token is read from the state dir (``endpoint_token``, readable by its owner only).
While the container answers 503 (queue full), the request is sent again with backoff for up to
``busy_timeout`` seconds. With ``on_event``, a request for a model that is not loaded says so first
(``registering <model> ...``), as the loading takes a while.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path

from mme.local.protocol import PLATFORM_ERROR_HEADER, TARGET_MODEL_HEADER

from .errors import ConfigurationError, EndpointError, model_error

EventCallback = Callable[[str], None]


class LocalBackend:
    """Invoke models through the local endpoint at ``endpoint_url`` (``http://127.0.0.1:<port>``).

    ``target_models`` maps model names (``sam``, ``lama``, ``sd``) to their ``TargetModel``;
    ``token``: the endpoint's bearer token. ``timeout``: seconds per call (a first call includes
    loading the model); ``busy_timeout``: how long to keep retrying while the answer is 503.
    Thread-safe: each thread keeps its own connection.
    """

    def __init__(self, endpoint_url: str, token: str, target_models: Mapping[str, str], *,
                 endpoint_name: str = "local", timeout: float = 600.0, busy_timeout: float = 120.0,
                 on_event: EventCallback | None = None, sleep: Callable[[float], None] = time.sleep):
        parsed = urllib.parse.urlsplit(endpoint_url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ConfigurationError(f"local endpoint URL must be http://host:port, got {endpoint_url!r}")
        self.endpoint_url = endpoint_url.rstrip("/")
        self._host, self._port = parsed.hostname, parsed.port or 80
        self.token = token
        self.target_models = dict(target_models)
        self.endpoint_name = endpoint_name
        self.timeout = timeout
        self.busy_timeout = busy_timeout
        self.on_event = on_event
        self._sleep = sleep
        self._local = threading.local()

    @classmethod
    def from_state(cls, state_dir: str | Path | None = None, **kwargs) -> "LocalBackend":
        """Attach to the endpoint that ``mme local up`` started (state in ``state_dir``, default
        :func:`mme.local.state.state_dir`)."""
        from mme.local import mode

        try:
            found = mode.running_endpoint(state_dir)
        except mode.LocalModeError as exc:
            raise EndpointError(str(exc)) from None
        return cls(found["url"], found["token"], found["target_models"], **kwargs)

    def describe(self) -> str:
        return f"local endpoint at {self.endpoint_url}"

    def _event(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)

    # ------------------------------------------------------------------ HTTP
    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> tuple[int, dict, bytes]:
        """One authenticated call to the endpoint; ``(status, headers, body)``, errors returned.
        Raises :class:`EndpointError` when the endpoint does not answer."""
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            fresh = conn is None
            if fresh:
                conn = self._local.conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            try:
                conn.request(method, path, body=body, headers=sent)
                resp = conn.getresponse()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                self._local.conn = None
                if fresh or attempt == 2:  # a kept-alive connection may have been closed: once more
                    raise self._unreachable(exc) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                raise self._unreachable(exc) from None
        raise AssertionError("unreachable")

    def _unreachable(self, exc: BaseException) -> EndpointError:
        return EndpointError(f"the local endpoint at {self.endpoint_url} does not answer ({exc or type(exc).__name__}); "
                             "check `mme local status`")

    def invoke_raw(self, model: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict, bytes]:
        """One ``InvokeEndpoint`` of ``model`` with a ready body, no retries: ``(status, headers, body)``."""
        target = self.target_models.get(model)
        if target is None:
            served = ", ".join(sorted(self.target_models)) or "none"
            raise ConfigurationError(f"model {model!r} is not served locally (served: {served}); "
                                     "run `mme local up --models ...` with it")
        path = f"/endpoints/{urllib.parse.quote(self.endpoint_name)}/invocations"
        return self.request("POST", path, body, {"Content-Type": content_type, TARGET_MODEL_HEADER: target})

    # ------------------------------------------------------------------ the Backend protocol
    def invoke(self, model: str, payload: dict) -> dict:
        """Send one request to ``model``; return its JSON answer (see the module docstring)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        if self.on_event is not None and self.model_state(model) != "loaded":
            self._event(f"registering {model} ({self.target_models.get(model)}): the local endpoint loads it "
                        "on its first request")
        started = time.monotonic()
        busy = 0
        while True:
            status, headers, data = self.invoke_raw(model, body)
            if status == 200:
                try:
                    return json.loads(data)
                except ValueError:
                    raise EndpointError(f"{model} answered with something that is not JSON: {data[:100]!r}") from None
            if PLATFORM_ERROR_HEADER.lower() in headers:
                raise EndpointError(f"local endpoint: {_message(data)}")
            if status == 503 and time.monotonic() - started < self.busy_timeout:
                busy += 1
                delay = min(5.0, 0.2 * 2 ** (busy - 1))
                self._event(f"{model} is busy (HTTP 503); retrying in {delay:.1f}s")
                self._sleep(delay)
                continue
            raise model_error(model, status, data)

    # ------------------------------------------------------------------ the endpoint's own calls
    def _json_call(self, method: str, path: str, what: str) -> dict:
        status, _, data = self.request(method, path)
        if status != 200:
            raise EndpointError(f"local endpoint {what}: HTTP {status} {_message(data)}")
        return json.loads(data)

    def _model_path(self, model: str) -> str:
        return "/models/" + urllib.parse.quote(self.target_models.get(model, model), safe="")

    def status(self) -> dict:
        """The endpoint's status: memory budget and use, each model's state, size and counters."""
        return self._json_call("GET", "/status", "status")

    def model_state(self, model: str) -> str:
        """``loaded``, ``loading``, ``unloading`` or ``unloaded``: where ``model`` is on the endpoint."""
        return str(self._json_call("GET", self._model_path(model), "model state").get("state"))

    def unload(self, model: str) -> bool:
        """Unload ``model`` now (it loads again on its next request); True when it was loaded."""
        return bool(self._json_call("DELETE", self._model_path(model), "unload").get("unloaded"))


def _message(data: bytes) -> str:
    try:
        parsed = json.loads(data)
        return str(parsed["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return data[:200].decode("utf-8", "replace")
