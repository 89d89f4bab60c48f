"""Real HTTP servers for the packager tests: a fake Hugging Face Hub + plain file server.

One ``ThreadingHTTPServer`` on 127.0.0.1 (free port) plays:

* ``GET /api/models/{owner}/{repo}/revision/{rev}?blobs=true``: the Hub listing (``sha``,
  ``siblings`` with ``size``, ``blobId`` and ``lfs.sha256``);
* ``GET /{owner}/{repo}/resolve/{rev}/{path}``: LFS files answer ``302`` to a "CDN" on another
  host name (``localhost`` instead of ``127.0.0.1``) with a signed-looking query; the CDN
  refuses requests that carry ``Authorization`` (a token must never follow a cross-host
  redirect). Small (non-LFS) files are served directly, or through a same-host ``307`` for
  gated repos (where the token must be kept);
* ``GET /files/{path}``: a plain URL; ``GET /redirect/{path}``: ``301`` to it;
* ``Range: bytes=N-`` -> ``206`` with ``Content-Range`` (unless ``no_range``);
* faults: drop the connection after N bytes of a file (``drops``), serve other bytes than the
  listing says (``tamper``), throttle, 404 for unknown paths, 401 for gated repos without the token.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclass
class Drop:
    """Close the connection after ``at`` bytes of the body (absolute offset in the file)."""

    at: int
    times: int = 1_000_000  # how many responses get cut


@dataclass
class FakeState:
    files: dict[str, bytes] = field(default_factory=dict)  # /files/<path>
    repos: dict[tuple[str, str], dict[str, tuple[bytes, bool]]] = field(default_factory=dict)  # (repo, rev) -> path -> (data, lfs)
    gated: dict[str, str] = field(default_factory=dict)  # repo -> token
    drops: dict[str, Drop] = field(default_factory=dict)  # request path -> Drop (path before redirects too)
    throttle_bps: float | None = None
    no_range: bool = False
    tamper: dict[str, bytes] = field(default_factory=dict)  # repo path -> bytes served instead of the listed ones
    requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeServer:
    """The server; ``url`` is ``http://127.0.0.1:<port>``, ``cdn_host`` is ``localhost:<port>``."""

    def __init__(self) -> None:
        self.state = FakeState()
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                with state.lock:
                    state.requests.append({"path": self.path, "host": self.headers.get("Host"),
                                           "auth": self.headers.get("Authorization"),
                                           "range": self.headers.get("Range")})
                try:
                    route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cdn = f"http://localhost:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

        def route(h: BaseHTTPRequestHandler) -> None:
            parsed = urlparse(h.path)
            path = unquote(parsed.path)
            parts = path.strip("/").split("/")
            auth = h.headers.get("Authorization")
            if path.startswith("/api/models/") and len(parts) >= 6 and parts[4] == "revision":
                repo, rev = f"{parts[2]}/{parts[3]}", parts[5]
                if not _authorized(repo, auth):
                    return _send(h, 401, b'{"error":"gated"}')
                files = state.repos.get((repo, rev))
                if files is None:
                    return _send(h, 404, b'{"error":"Repository not found"}')
                siblings = []
                for p, (data, lfs) in sorted(files.items()):
                    sib = {"rfilename": p, "size": len(data), "blobId": git_blob_sha1(data)}
                    if lfs:
                        sib["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                    siblings.append(sib)
                body = json.dumps({"id": repo, "sha": rev, "siblings": siblings}).encode()
                return _send(h, 200, body, ctype="application/json")
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, rev, fpath = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
                if not _authorized(repo, auth):
                    return _send(h, 401, b"gated")
                entry = state.repos.get((repo, rev), {}).get(fpath)
                if entry is None:
                    return _send(h, 404, b"Entry not found")
                data, lfs = entry
                if lfs:
                    digest = hashlib.sha256(data).hexdigest()
                    location = f"{self.cdn}/cdn/{repo}/{digest}?X-Amz-Signature=secret&file={fpath}"
                    return _redirect(h, 302, location)
                if repo in state.gated and "cache=1" not in (parsed.query or ""):
                    return _redirect(h, 307, f"{parsed.path}?cache=1")  # same host: token must be kept
                return _serve(h, state.tamper.get(fpath, data), key=path)
            if parts[0] == "cdn" and len(parts) >= 4:
                if auth:
                    return _send(h, 400, b"Authorization must not be sent to the CDN")
                repo, digest = f"{parts[1]}/{parts[2]}", parts[3]
                for (r, _rev), files in state.repos.items():
                    for fpath, (data, lfs) in files.items():
                        if r == repo and lfs and hashlib.sha256(data).hexdigest() == digest:
                            return _serve(h, state.tamper.get(fpath, data), key=f"/cdn/{fpath}")
                return _send(h, 404, b"no such blob")
            if parts[0] == "files":
                data = state.files.get("/".join(parts[1:]))
                if data is None:
                    return _send(h, 404, b"Not Found")
                return _serve(h, data, key=path)
            if parts[0] == "redirect":
                return _redirect(h, 301, f"/files/{'/'.join(parts[1:])}")
            return _send(h, 404, b"Not Found")

        def _authorized(repo: str, auth: str | None) -> bool:
            token = state.gated.get(repo)
            return token is None or auth == f"Bearer {token}"

        def _send(h, code: int, body: bytes, ctype: str = "text/plain") -> None:
            h.send_response(code)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        def _redirect(h, code: int, location: str) -> None:
            h.send_response(code)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()

        def _serve(h, data: bytes, key: str) -> None:
            start = 0
            rng = h.headers.get("Range")
            etag = '"' + hashlib.md5(data).hexdigest() + '"'
            if rng and not state.no_range:
                start = int(rng.split("=", 1)[1].split("-", 1)[0])
                if h.headers.get("If-Range") not in (None, etag):
                    start = 0
            if start:
                h.send_response(206)
                h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", str(len(data) - start))
            h.send_header("Accept-Ranges", "bytes")
            h.send_header("ETag", etag)
            h.end_headers()
            drop = None
            with state.lock:
                for k, d in state.drops.items():
                    if key.endswith(k) and d.times > 0 and d.at >= start:
                        d.times -= 1
                        drop = d
                        break
            end = drop.at if drop else len(data)
            pos = start
            step = 256 << 10
            while pos < end:
                chunk = data[pos:min(end, pos + step)]
                h.wfile.write(chunk)
                pos += len(chunk)
                if state.throttle_bps:
                    time.sleep(len(chunk) / state.throttle_bps)
            if drop:
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(2)

    def add_repo(self, repo: str, revision: str, files: dict[str, bytes], *, lfs_over: int = 1024,
                 token: str | None = None) -> None:
        """Publish a repo revision; files larger than ``lfs_over`` bytes are LFS files."""
        self.state.repos[(repo, revision)] = {p: (d, len(d) > lfs_over) for p, d in files.items()}
        if token:
            self.state.gated[repo] = token

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
