"""Helpers of the page's tests: the ``mme ui`` process, HTTP calls to it, sample photos."""

from __future__ import annotations

import http.client
import io
import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
# The browser test saves the page's screenshots here (build/ is ignored by git, so a test run leaves
# the checkout clean); MME_UI_SCREENSHOTS=docs/images refreshes the ones docs/usage.md shows.
SCREENSHOTS = Path(os.environ.get("MME_UI_SCREENSHOTS") or REPO_ROOT / "build" / "ui-screenshots")
CHROMIUM = Path(os.environ.get("MME_CHROMIUM", "/usr/bin/chromium"))
# Headless Debian Chromium as root in a container: no sandbox; nothing that calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def mme_command() -> list[str]:
    script = Path(sys.executable).with_name("mme")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mme.cli"]


def rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


class UiProcess:
    """``mme ui ... --port 0`` in the background; ``url`` is the address it printed."""

    def __init__(self, args: list[str], env: dict, timeout: float = 60.0):
        self.proc = subprocess.Popen([*mme_command(), "ui", "--port", "0", *args], env=env, cwd=REPO_ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.first_line = self._read_line(timeout)
        words = [w for w in self.first_line.split() if w.startswith("http://")]
        assert words, f"mme ui did not print its address: {self.first_line!r} {self.proc.stderr.read()}"
        self.url = words[0]
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port

    def _read_line(self, timeout: float) -> str:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sel.select(timeout=0.5):
                return self.proc.stdout.readline()
            if self.proc.poll() is not None:
                raise AssertionError(f"mme ui exited {self.proc.returncode}: {self.proc.stderr.read()}")
        raise AssertionError("mme ui printed nothing")

    def stop(self) -> tuple[int, str, str]:
        self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                page_headers: bool = True) -> tuple[int, dict, bytes]:
        """One HTTP request; ``page_headers`` adds what the page sends on a POST."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = {"Host": f"{self.host}:{self.port}"}
        if page_headers and method == "POST":
            sent.update({"X-MME-UI": "1", "Origin": f"http://{self.host}:{self.port}"})
        sent.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, payload=None, **kwargs):
        body = None if payload is None else json.dumps(payload).encode()
        status, headers, data = self.request(method, path, body, {"Content-Type": "application/json"}, **kwargs)
        return status, json.loads(data) if data else None
