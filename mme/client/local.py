"""Local backend: the same packaged archives served by TorchServe on 127.0.0.1.

``mme local up`` packages the models, starts TorchServe in the background and records where
(:mod:`mme.local_mode`); :meth:`LocalBackend.from_state` attaches to it. Like a multi-model
endpoint, a model is registered on first use: a request for a model TorchServe does not know
(404 ``ModelNotFoundException``) registers its archive from the recorded path and is sent again.
Token authorization stays on (TorchServe's default): the inference key is read from the server's
``key_file.json``; when TorchServe rejects it (keys expire after an hour) the client asks for a new
one with the API key from the same file and retries once.
"""

from __future__ import annotations

import json
import time
import urllib.error
from collections.abc import Callable, Mapping
from pathlib import Path

from .errors import ConfigurationError, EndpointError, model_error

EventCallback = Callable[[str], None]


class LocalBackend:
    """Invoke models on a local TorchServe (``mme.local_server.LocalServer``).

    ``artifacts`` maps model names to their ``.tar.gz`` archives (registered on first use).
    ``timeout``: seconds per inference call; ``busy_timeout``: how long to keep retrying while
    TorchServe answers 503 (worker starting / busy).
    """

    def __init__(self, server, artifacts: Mapping[str, str | Path], *, timeout: float = 300.0,
                 busy_timeout: float = 120.0, on_event: EventCallback | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.server = server
        self.artifacts = {name: Path(path) for name, path in artifacts.items()}
        self.timeout = timeout
        self.busy_timeout = busy_timeout
        self.on_event = on_event
        self._sleep = sleep

    @classmethod
    def from_state(cls, state_dir: str | Path | None = None, **kwargs) -> "LocalBackend":
        """Attach to the TorchServe that ``mme local up`` started (state in ``state_dir``, default
        :func:`mme.local_mode.default_state_dir`)."""
        from mme import local_mode

        state = local_mode.read_state(state_dir)
        if state is None:
            raise EndpointError(f"no local TorchServe is running (state dir {local_mode.state_dir(state_dir)}): "
                                "start one with `mme local up --weights tiny`")
        server = local_mode.attach_server(state)
        if not server.is_running():
            raise EndpointError(f"the local TorchServe recorded in {local_mode.state_dir(state_dir)} is not running: "
                                "run `mme local down` then `mme local up`")
        artifacts = {name: info["artifact"] for name, info in state["models"].items()}
        return cls(server, artifacts, **kwargs)

    def describe(self) -> str:
        return f"local TorchServe at {self.server.inference_url}"

    def _event(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)

    # ------------------------------------------------------------------ invoke
    def invoke(self, model: str, payload: dict) -> dict:
        """Send one request to ``model``; return its JSON answer (see the module docstring)."""
        if model not in self.artifacts:
            served = ", ".join(sorted(self.artifacts)) or "none"
            raise ConfigurationError(f"model {model!r} is not served locally (served: {served}); "
                                     f"run `mme local up --models ...` with it")
        body = json.dumps(payload, separators=(",", ":")).encode()
        started = time.monotonic()
        registered = refreshed = False
        busy = 0
        while True:
            status, data = self._post(model, body)
            if status == 200:
                try:
                    return json.loads(data)
                except ValueError:
                    raise EndpointError(f"{model} answered with something that is not JSON: {data[:100]!r}") from None
            kind = _torchserve_error_type(data)
            if status == 404 and kind == "ModelNotFoundException" and not registered:
                self._register(model)
                registered = True
                continue
            if status in (400, 401) and kind == "InvalidKeyException" and not refreshed:
                self._refresh_inference_key()
                refreshed = True
                continue
            if status == 503 and time.monotonic() - started < self.busy_timeout:
                busy += 1
                delay = min(5.0, 0.2 * 2 ** (busy - 1))
                self._event(f"{model} is busy or starting (HTTP 503); retrying in {delay:.1f}s")
                self._sleep(delay)
                continue
            raise model_error(model, status, data)

    def _post(self, model: str, body: bytes) -> tuple[int, bytes]:
        try:
            return self.server.predict(model, body, timeout=self.timeout)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EndpointError(f"the local TorchServe at {self.server.inference_url} does not answer ({reason}); "
                                "check `mme local status`") from None

    def _register(self, model: str) -> None:
        from mme.local_server import LocalServerError

        archive = self.artifacts[model]
        if not archive.is_file():
            raise EndpointError(f"the archive of {model} ({archive}) is gone: run `mme local up` again")
        self._event(f"registering {model} from {archive.name}")
        try:
            self.server.register(archive, model)
        except LocalServerError as exc:
            raise EndpointError(f"could not register {model}: {exc}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise EndpointError(f"could not register {model}: {getattr(exc, 'reason', exc)}") from None

    def _refresh_inference_key(self) -> None:
        """Ask TorchServe for a new inference key (it rewrites ``key_file.json``)."""
        from mme.local_server import LocalServerError

        try:
            self.server.renew_key("inference")
        except LocalServerError as exc:
            raise EndpointError(str(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise EndpointError(f"could not renew the TorchServe inference key: {getattr(exc, 'reason', exc)}") from None
        self._event("renewed the TorchServe inference key")

def _torchserve_error_type(data: bytes) -> str:
    try:
        parsed = json.loads(data)
    except ValueError:
        return ""
    return str(parsed.get("type", "")) if isinstance(parsed, dict) else ""
