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


class _HubHTTPServer(ThreadingHTTPServer):
    """The listening socket, holding what every request handler shares: the state and the CDN's base URL."""

    daemon_threads = True

    def __init__(self, state: FakeState) -> None:
        super().__init__(("127.0.0.1", 0), _HubHandler)
        self.state = state
        self.cdn = f"http://localhost:{self.server_address[1]}"


class _HubHandler(BaseHTTPRequestHandler):
    """One request: recorded in ``state.requests``, then answered by the route its path names."""

    protocol_version = "HTTP/1.1"
    server: _HubHTTPServer

    def log_message(self, *args):  # quiet
        pass

    @property
    def state(self) -> FakeState:
        return self.server.state

    def do_GET(self):  # noqa: N802
        with self.state.lock:
            self.state.requests.append({"path": self.path, "host": self.headers.get("Host"),
                                        "auth": self.headers.get("Authorization"),
                                        "range": self.headers.get("Range")})
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            pass

    # ------------------------------------------------------------------------------ routes
    def _route(self) -> None:
        parsed = urlparse(self.path)
        path = unquote(parsed.path)
        parts = path.strip("/").split("/")
        if path.startswith("/api/models/") and len(parts) >= 6 and parts[4] == "revision":
            return self._hub_listing(f"{parts[2]}/{parts[3]}", parts[5])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), parsed, path)
        if parts[0] == "cdn" and len(parts) >= 4:
            return self._cdn(f"{parts[1]}/{parts[2]}", parts[3])
        if parts[0] == "files":
            return self._file("/".join(parts[1:]), path)
        if parts[0] == "redirect":
            return self._redirect(301, f"/files/{'/'.join(parts[1:])}")
        return self._send(404, b"Not Found")

    def _hub_listing(self, repo: str, rev: str) -> None:
        """``/api/models/{repo}/revision/{rev}``: the revision's sha and its files (LFS ones with sha256)."""
        if not self._authorized(repo):
            return self._send(401, b'{"error":"gated"}')
        files = self.state.repos.get((repo, rev))
        if files is None:
            return self._send(404, b'{"error":"Repository not found"}')
        siblings = []
        for p, (data, lfs) in sorted(files.items()):
            sib = {"rfilename": p, "size": len(data), "blobId": git_blob_sha1(data)}
            if lfs:
                sib["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            siblings.append(sib)
        body = json.dumps({"id": repo, "sha": rev, "siblings": siblings}).encode()
        return self._send(200, body, ctype="application/json")

    def _resolve(self, repo: str, rev: str, fpath: str, parsed, path: str) -> None:
        """``/{repo}/resolve/{rev}/{fpath}``: LFS files 302 to the CDN host; gated small files 307 on this host."""
        if not self._authorized(repo):
            return self._send(401, b"gated")
        entry = self.state.repos.get((repo, rev), {}).get(fpath)
        if entry is None:
            return self._send(404, b"Entry not found")
        data, lfs = entry
        if lfs:
            digest = hashlib.sha256(data).hexdigest()
            location = f"{self.server.cdn}/cdn/{repo}/{digest}?X-Amz-Signature=secret&file={fpath}"
            return self._redirect(302, location)
        if repo in self.state.gated and "cache=1" not in (parsed.query or ""):
            return self._redirect(307, f"{parsed.path}?cache=1")  # same host: token must be kept
        return self._serve(self.state.tamper.get(fpath, data), key=path)

    def _cdn(self, repo: str, digest: str) -> None:
        """``/cdn/{repo}/{sha256}``: an LFS blob by content; refuses any ``Authorization``."""
        if self.headers.get("Authorization"):
            return self._send(400, b"Authorization must not be sent to the CDN")
        for (r, _rev), files in self.state.repos.items():
            for fpath, (data, lfs) in files.items():
                if r == repo and lfs and hashlib.sha256(data).hexdigest() == digest:
                    return self._serve(self.state.tamper.get(fpath, data), key=f"/cdn/{fpath}")
        return self._send(404, b"no such blob")

    def _file(self, name: str, path: str) -> None:
        """``/files/{name}``: a plain URL."""
        data = self.state.files.get(name)
        if data is None:
            return self._send(404, b"Not Found")
        return self._serve(data, key=path)

    # ------------------------------------------------------------------------------ answers
    def _authorized(self, repo: str) -> bool:
        token = self.state.gated.get(repo)
        return token is None or self.headers.get("Authorization") == f"Bearer {token}"

    def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, code: int, location: str) -> None:
        self.send_response(code)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, data: bytes, key: str) -> None:
        """The bytes from the ``Range`` start (``206``) or whole (``200``), cut short by a matching drop."""
        start = self._range_start(data)
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", _etag(data))
        self.end_headers()
        drop = self._take_drop(key, start)
        self._write_body(data, start, drop.at if drop else len(data))
        if drop:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)

    def _range_start(self, data: bytes) -> int:
        """The ``Range: bytes=N-`` start, 0 when ranges are off or ``If-Range`` names other bytes."""
        rng = self.headers.get("Range")
        if not rng or self.state.no_range:
            return 0
        start = int(rng.split("=", 1)[1].split("-", 1)[0])
        return 0 if self.headers.get("If-Range") not in (None, _etag(data)) else start

    def _take_drop(self, key: str, start: int) -> Drop | None:
        """The first drop for this path still to cut, and beyond ``start``; it counts one use."""
        with self.state.lock:
            for k, d in self.state.drops.items():
                if key.endswith(k) and d.times > 0 and d.at >= start:
                    d.times -= 1
                    return d
        return None

    def _write_body(self, data: bytes, start: int, end: int) -> None:
        pos = start
        step = 256 << 10
        while pos < end:
            chunk = data[pos:min(end, pos + step)]
            self.wfile.write(chunk)
            pos += len(chunk)
            if self.state.throttle_bps:
                time.sleep(len(chunk) / self.state.throttle_bps)


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


class FakeServer:
    """The server; ``url`` is ``http://127.0.0.1:<port>``, ``cdn`` is ``http://localhost:<port>``
    (another host name, the same server)."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.httpd = _HubHTTPServer(self.state)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cdn = self.httpd.cdn
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add_repo(self, repo: str, revision: str, files: dict[str, bytes], *, lfs_over: int = 1024,
                 token: str | None = None) -> None:
        """Publish a repo revision; files larger than ``lfs_over`` bytes are LFS files."""
        self.state.repos[(repo, revision)] = {p: (d, len(d) > lfs_over) for p, d in files.items()}
        if token:
            self.state.gated[repo] = token

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
