"""The HTTP side of ``mme ui``: the page's own files and a small JSON API, nothing else.

Built on the standard library's ``http.server`` (a local, single-user tool; see ``command.py``
for why not Gradio or an ASGI framework). Routes (every other path is a 404, and no route maps a
URL to a file: the page's files are read from the package once, at start):

``GET /``, ``/app.js``, ``/app.css``, ``/favicon.svg``  the page
``GET /api/config``                 limits, defaults and where requests go
``POST /api/images``                an image file as the raw body -> its id and size
``GET /api/images/<id>``            a held image's bytes (the page's views and downloads)
``GET /api/masks/<id>``             a held selection as a PNG mask (white = selected)
``POST /api/jobs``                  ``{"op": "select"|"erase"|"replace", ...}`` -> a job
``GET /api/jobs/<id>?wait=S``       the job's state; waits up to S seconds for a change
``GET /api/history``                the session's edits, newest first

Defences: the server binds to 127.0.0.1 unless told otherwise; on a loopback address it answers
only requests whose ``Host`` is that address (a web page cannot reach it through DNS
rebinding); a POST must carry the ``X-MME-UI`` header and, when the browser sends one, an
``Origin`` of this server (another site cannot post to it: custom headers need a CORS preflight,
which is never granted); request bodies need a ``Content-Length`` within the limits, checked
before anything is read; every answer carries a Content-Security-Policy that lets the page load
and connect to this origin only.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, unquote, urlsplit

from mme.client.errors import InputError

from .editor import OPS, Editor
from .jobs import Busy, JobRunner, error_of
from .masks import mask_png
from .store import NotHeld

logger = logging.getLogger(__name__)

ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
MAX_JSON_BYTES = 64 * 1024
MAX_WAIT_SECONDS = 5.0
MAX_CONCURRENT_REQUESTS = 32
UI_HEADER = "X-MME-UI"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class HttpError(Exception):
    """An answer other than 200: ``status`` and a one-line ``message`` for the page."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def load_assets() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package (never from a path a request names)."""
    folder = resources.files("mme.ui") / "static"
    return {route: ((folder / name).read_bytes(), ctype) for route, (name, ctype) in ASSETS.items()}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """``Host`` header values accepted, or None (no check) when bound beyond loopback."""
    if not is_loopback(host):
        return None
    names = {host, "127.0.0.1", "localhost", "[::1]"}
    if ":" in host and not host.startswith("["):
        names.add(f"[{host}]")
    return frozenset(f"{name}:{port}" for name in names)


class UiServer(ThreadingHTTPServer):
    """The HTTP server of the page (one per ``mme ui``)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], editor: Editor, jobs: JobRunner, config: dict):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, UiHandler)
        self.editor, self.jobs, self.config = editor, jobs, config
        self.assets = load_assets()
        self.hosts = allowed_hosts(address[0], self.server_address[1])
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"


class UiHandler(BaseHTTPRequestHandler):
    """Routes of :class:`UiServer` (see the module docstring)."""

    server: UiServer
    protocol_version = "HTTP/1.1"
    server_version = "mme-ui"
    timeout = 30  # seconds a connection may stay silent

    # ------------------------------------------------------------------ plumbing
    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        logger.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data) -> None:
        self._send(status, json.dumps(data, separators=(",", ":")).encode(), "application/json")

    def _dispatch(self, route) -> None:
        if not self.server.slots.acquire(blocking=False):
            self.close_connection = True
            return self._json(503, {"error": {"code": "busy", "message": "too many requests at once"}})
        try:
            self._check_host()
            route()
        except HttpError as err:
            if err.status >= 400 and self.command == "POST":
                self.close_connection = True  # the body may be unread
            self._json(err.status, {"error": {"code": err.code, "message": err.message}})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.server.slots.release()

    def do_GET(self):  # noqa: N802 - http.server API
        self._dispatch(self._get)

    def do_HEAD(self):  # noqa: N802
        self._dispatch(self._get)

    def do_POST(self):  # noqa: N802
        self._dispatch(self._post)

    def _refuse_method(self) -> None:
        raise HttpError(405, "method_not_allowed", f"{self.command} is not allowed here")

    def _not_allowed(self):
        self._dispatch(self._refuse_method)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    # ------------------------------------------------------------------ checks
    def _check_host(self) -> None:
        host = self.headers.get("Host", "")
        if self.server.hosts is not None and host not in self.server.hosts:
            raise HttpError(421, "wrong_host", f"this server answers as {self.server.url} only")

    def _check_post(self, limit: int, what: str) -> int:
        if self.headers.get(UI_HEADER) != "1":
            raise HttpError(403, "forbidden", f"requests must come from the page (missing {UI_HEADER} header)")
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            raise HttpError(403, "forbidden", "cross-origin requests are refused")
        if self.headers.get("Sec-Fetch-Site") not in (None, "same-origin", "none"):
            raise HttpError(403, "forbidden", "cross-site requests are refused")
        if self.headers.get("Transfer-Encoding"):
            raise HttpError(411, "length_required", "send the body with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise HttpError(411, "length_required", "send the body with a Content-Length") from None
        if length < 0:
            raise HttpError(400, "bad_request", "bad Content-Length")
        if length > limit:
            raise HttpError(413, "too_large", f"{what} is {length / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB")
        return length

    def _body(self, length: int) -> bytes:
        data = self.rfile.read(length)
        if len(data) != length:
            raise HttpError(400, "bad_request", "the request body ended early")
        return data

    # ------------------------------------------------------------------ GET
    def _get(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path in self.server.assets:
            body, ctype = self.server.assets[path]
            return self._send(200, body, ctype)
        if path == "/api/config":
            return self._json(200, self.server.config)
        if path == "/api/history":
            return self._json(200, {"history": self.server.editor.session.history()})
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "api" and _ID.match(parts[3]):
            if parts[2] == "images":
                return self._image(parts[3])
            if parts[2] == "masks":
                return self._mask(parts[3])
            if parts[2] == "jobs":
                return self._job(parts[3], parse_qs(url.query).get("wait", ["0"])[0])
        raise HttpError(404, "not_found", f"no such page: {unquote(path)[:100]}")

    def _image(self, image_id: str) -> None:
        try:
            stored = self.server.editor.session.image(image_id)
        except NotHeld as err:
            raise HttpError(404, "not_held", str(err)) from None
        self._send(200, stored.data, stored.content_type)

    def _mask(self, mask_id: str) -> None:
        try:
            held = self.server.editor.session.mask(mask_id)
        except NotHeld as err:
            raise HttpError(404, "not_held", str(err)) from None
        self._send(200, mask_png(held.array), "image/png")

    def _job(self, job_id: str, wait: str) -> None:
        job = self.server.jobs.get(job_id)
        if job is None:
            raise HttpError(404, "not_found", "no such job (the server keeps the latest ones)")
        try:
            seconds = min(MAX_WAIT_SECONDS, max(0.0, float(wait)))
        except ValueError:
            seconds = 0.0
        if seconds:
            job.wait(seconds)
        self._json(200, job.snapshot())

    # ------------------------------------------------------------------ POST
    def _post(self) -> None:
        path = urlsplit(self.path).path
        if path == "/api/images":
            limit = self.server.editor.limits.max_upload_bytes
            data = self._body(self._check_post(limit, "the image"))
            name = _display_name(self.headers.get("X-Filename", ""))
            try:
                return self._json(200, self.server.editor.load(data, name))
            except (InputError, ValueError) as err:
                raise HttpError(400, "bad_image", error_of(err)["message"]) from None
        if path == "/api/jobs":
            params = self._json_body(self._body(self._check_post(MAX_JSON_BYTES, "the request")))
            return self._start_job(params)
        raise HttpError(404, "not_found", f"no such page: {unquote(path)[:100]}")

    @staticmethod
    def _json_body(data: bytes) -> dict:
        try:
            params = json.loads(data)
        except (ValueError, RecursionError):
            raise HttpError(400, "bad_request", "the body is not JSON") from None
        if not isinstance(params, dict):
            raise HttpError(400, "bad_request", "the body must be a JSON object")
        return params

    def _start_job(self, params: dict) -> None:
        op = params.get("op")
        if op not in OPS:
            raise HttpError(400, "bad_request", f"op must be one of {', '.join(OPS)}")
        run = getattr(self.server.editor, op)
        try:
            job = self.server.jobs.submit(op, OPS[op], lambda job: run(params))
        except Busy as err:
            raise HttpError(409, "busy", str(err)) from None
        job.wait(1.0)  # quick answers (a click on a cached image) come back in this same response
        self._json(200, job.snapshot())


def _display_name(raw: str) -> str:
    """The file name the browser reported, for display and download names only (never opened)."""
    name = unquote(raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[^\w.\- ]+", "_", name).strip(" .")[:80]
    return name or "image"
