"""The local endpoint of ``mme local``: ``InvokeEndpoint`` over HTTP on 127.0.0.1, answered by the
platform emulator (:mod:`mme.local.emulator`) in front of the serving container (the virtual
environment's TorchServe, :mod:`mme.local.sagemaker_container`, or the serving image,
:mod:`mme.local.image_container`).

HTTP API (every call but ``/ping`` needs ``Authorization: Bearer <token>``; the token is in the
state dir's ``endpoint_token``, readable only by its owner):

- ``POST /endpoints/<name>/invocations`` with the header ``X-Amzn-SageMaker-Target-Model:
  <TargetModel>`` and the request as body: the model's answer (status, content type and body as
  the container gives them) or the platform's error (``{"error": {"code", "message"}}``);
- ``GET /status``: memory budget, memory in use, every model's state, size and counters (JSON);
- ``GET /models/<TargetModel>``: that model's state only (``loaded``, ``loading``, ...);
- ``DELETE /models/<TargetModel>``: unload a model now;
- ``GET /ping``: 200 while serving.

``mme local up`` runs it as ``python -m mme.local.endpoint --state-dir DIR ...`` in its own
process session; it writes ``endpoint.json`` (URL and pid) into the state dir once it listens.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mme.local.emulator import EndpointEmulator, PlatformError
from mme.local.protocol import PLATFORM_ERROR_HEADER, TARGET_MODEL_HEADER
from mme.local.state import TOKEN_FILE

#: Largest request body accepted (the container's max_request_size is 20 MiB).
MAX_BODY_BYTES = 24 * 2**20
READY_FILE = "endpoint.json"


class EndpointServer(ThreadingHTTPServer):
    """A threading HTTP server holding the emulator and the token."""

    daemon_threads = True
    request_queue_size = 512  # hundreds of clients may connect at once

    def __init__(self, address, emulator: EndpointEmulator, token: str, endpoint_name: str = "local"):
        super().__init__(address, EndpointRequestHandler)
        self.emulator, self.token, self.endpoint_name = emulator, token, endpoint_name

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class EndpointRequestHandler(BaseHTTPRequestHandler):
    """One HTTP exchange of :class:`EndpointServer` (keep-alive connections)."""

    protocol_version = "HTTP/1.1"
    timeout = 900  # seconds an idle kept-alive connection may wait for its next request
    server: EndpointServer

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        """Only errors are logged (see :meth:`log_error`)."""

    def log_error(self, format, *args):  # noqa: A002
        sys.stderr.write(f"{self.log_date_time_string()} {self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str = "application/json", platform: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if platform:
            self.send_header(PLATFORM_ERROR_HEADER, "true")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        reply = PlatformError(status, code, message).reply()
        self._send(reply.status, reply.body, reply.content_type, platform=True)

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), self.server.token.encode()):
            return True
        self._error(401, "unauthorized", f"send 'Authorization: Bearer <token>' with the token in {TOKEN_FILE}")
        return False

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._error(411, "length_required", "send Content-Length")
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(413, "request_too_large", f"{length} bytes; at most {MAX_BODY_BYTES}")
            return None
        return self.rfile.read(length)

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = urllib.parse.urlsplit(self.path).path
        if path == "/ping":
            self._send(200, b'{"status": "Healthy"}')
        elif path == "/status":
            if self._authorized():
                self._send(200, json.dumps(self.server.emulator.status()).encode())
        elif path.startswith("/models/"):
            if self._authorized():
                target = urllib.parse.unquote(path[len("/models/"):])
                state = self.server.emulator.model_state(target)
                self._send(200, json.dumps({"target_model": target, "state": state}).encode())
        else:
            self._error(404, "not_found", f"no such path: GET {path}")

    def do_POST(self):  # noqa: N802
        parts = urllib.parse.urlsplit(self.path).path.strip("/").split("/")
        body = self._read_body()
        if body is None or not self._authorized():
            return
        if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
            self._error(404, "not_found", "POST /endpoints/<name>/invocations")
            return
        if urllib.parse.unquote(parts[1]) != self.server.endpoint_name:
            self._error(404, "endpoint_not_found", f"this is endpoint {self.server.endpoint_name!r}")
            return
        target = self.headers.get(TARGET_MODEL_HEADER)
        if not target:
            self._error(400, "missing_target_model", f"a multi-model endpoint needs the {TARGET_MODEL_HEADER} header")
            return
        reply = self.server.emulator.invoke(target, body, self.headers.get("Content-Type") or "application/json")
        self._send(reply.status, reply.body, reply.content_type, platform=reply.platform)

    def do_DELETE(self):  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        if not self._authorized():
            return
        if not path.startswith("/models/"):
            self._error(404, "not_found", "DELETE /models/<TargetModel>")
            return
        unloaded = self.server.emulator.unload(urllib.parse.unquote(path[len("/models/"):]))
        self._send(200, json.dumps({"unloaded": unloaded}).encode())


def serve(emulator: EndpointEmulator, token: str, ready_file: Path | None = None, port: int = 0) -> EndpointServer:
    """Listen on 127.0.0.1 (a free port by default) in a background thread; write ``ready_file``
    (``{"url", "pid"}``) once listening. Stop with ``server.shutdown()``."""
    server = EndpointServer(("127.0.0.1", port), emulator, token)
    threading.Thread(target=server.serve_forever, name="local-endpoint", daemon=True).start()
    if ready_file is not None:
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(json.dumps({"url": server.url, "pid": os.getpid()}))
        os.replace(tmp, ready_file)
    return server


def main(argv: list[str] | None = None) -> int:
    """``python -m mme.local.endpoint``: run the local endpoint of a ``mme local`` state dir."""
    from mme.local.state import attach_container, read_state
    from mme.model_data import FolderModelData

    parser = argparse.ArgumentParser(prog="python -m mme.local.endpoint", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--memory-budget-bytes", type=int, required=True)
    args = parser.parse_args(argv)
    state = args.state_dir.resolve()
    container = attach_container(read_state(state))
    token = (state / TOKEN_FILE).read_text().strip()

    def event(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    # a request may queue behind many others in TorchServe (which bounds the work, not the wait)
    emulator = EndpointEmulator(container, FolderModelData(state / "artifacts"), state / "models",
                                args.memory_budget_bytes, invoke_timeout=900, on_event=event)
    server = serve(emulator, token, state / READY_FILE)
    event(f"local endpoint at {server.url}, memory budget {args.memory_budget_bytes / 2**20:,.0f} MiB")
    threading.Event().wait()  # until SIGTERM
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
