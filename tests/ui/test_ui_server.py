"""``mme ui`` over plain HTTP: what it serves, what it refuses, and the limits it keeps, against a
real ``mme ui --local`` process on the tiny models' TorchServe."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from client_support import sample_photo
from ui_support import REPO_ROOT, UiProcess, mme_command

pytestmark = pytest.mark.torchserve

PHOTO = sample_photo("chelsea.png")


def upload(ui, data: bytes, name: str = "photo.png"):
    status, _, body = ui.request("POST", "/api/images", data, {"Content-Type": "application/octet-stream",
                                                               "X-Filename": name})
    return status, json.loads(body)


def test_binds_to_loopback_only_by_default(ui_local):
    assert ui_local.url.startswith("http://127.0.0.1:")
    listening = [c.laddr for c in psutil.Process(ui_local.proc.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", ui_local.port)]


def test_serves_its_page_with_a_strict_content_security_policy(ui_local):
    for path, ctype in (("/", "text/html"), ("/app.js", "text/javascript"), ("/app.css", "text/css"),
                        ("/favicon.svg", "image/svg+xml")):
        status, headers, body = ui_local.request("GET", path)
        assert status == 200 and headers["Content-Type"].startswith(ctype) and body
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
    page = ui_local.request("GET", "/")[2].decode()
    assert "http://" not in page and "https://" not in page  # nothing external to load
    script = ui_local.request("GET", "/app.js")[2].decode()
    assert "https://" not in script and "http://" not in script.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize("path", [
    "/../../../../etc/passwd", "/static/app.js", "/app.js/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
    "/api/images/..%2f..%2fetc%2fpasswd", "/api/images/../../etc/passwd", "//etc/passwd", "/index.html",
    "/mme/ui/static/app.js", "/api/images/" + "a" * 65, "/api/config/../../../etc/hostname",
])
def test_no_url_reaches_a_file(ui_local, path):
    status, headers, body = ui_local.request("GET", path)
    assert status == 404, (path, status)
    assert b"root:" not in body and headers["Content-Type"] == "application/json"


def test_refuses_other_hosts_origins_and_plain_posts(ui_local):
    # DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends Host: evil.example
    status, _, body = ui_local.request("GET", "/api/config", headers={"Host": f"evil.example:{ui_local.port}"})
    assert status == 421 and b"wrong_host" in body
    for extra in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        status, _, body = ui_local.request("POST", "/api/jobs", b"{}", {"Content-Type": "application/json", **extra})
        assert status == 403, extra
    # a form or an <img> of another site cannot set the page's header
    status, _, body = ui_local.request("POST", "/api/jobs", b"{}", {"Content-Type": "text/plain"}, page_headers=False)
    assert status == 403 and b"X-MME-UI" in body
    for method in ("PUT", "DELETE", "OPTIONS"):
        assert ui_local.request(method, "/api/jobs")[0] == 405


def read_all(sock) -> str:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_request_size_is_checked_before_the_body_is_read(ui_local):
    limit = ui_local.json("GET", "/api/config")[1]["limits"]["max_upload_bytes"]
    with socket.create_connection((ui_local.host, ui_local.port), timeout=10) as sock:
        sock.sendall((f"POST /api/images HTTP/1.1\r\nHost: {ui_local.host}:{ui_local.port}\r\nX-MME-UI: 1\r\n"
                      f"Content-Length: {limit + 1}\r\n\r\n").encode())  # the body never comes
        answer = read_all(sock)  # the server answers and closes without waiting for the body
    assert answer.startswith("HTTP/1.1 413") and "the limit is" in answer
    status, _, body = ui_local.request("POST", "/api/jobs", b"x" * (64 * 1024 + 1), {"Content-Type": "application/json"})
    assert status == 413
    with socket.create_connection((ui_local.host, ui_local.port), timeout=10) as sock:
        sock.sendall((f"POST /api/images HTTP/1.1\r\nHost: {ui_local.host}:{ui_local.port}\r\nX-MME-UI: 1\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n").encode())
        assert read_all(sock).startswith("HTTP/1.1 411")


def test_bad_uploads_and_job_requests_get_a_message(ui_local):
    status, answer = upload(ui_local, b"just some text, not an image", "notes.txt")
    assert status == 400 and "not an image" in answer["error"]["message"]
    status, answer = upload(ui_local, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "broken.png")
    assert status == 400 and answer["error"]["message"]
    assert ui_local.request("POST", "/api/jobs", b"{nope", {"Content-Type": "application/json"})[0] == 400
    status, answer = ui_local.json("POST", "/api/jobs", {"op": "format_disk"})
    assert status == 400 and "op must be one of" in answer["error"]["message"]
    status, answer = ui_local.json("POST", "/api/jobs", {"op": "select", "image": "nope", "points": [[1, 1, 1]]})
    assert status == 200 and answer["state"] == "failed" and answer["error"]["code"] == "not_held"
    status, answer = ui_local.json("GET", "/api/jobs/j999999")
    assert status == 404


def test_select_over_http_reuses_the_image_id(ui_local):
    status, image = upload(ui_local, PHOTO.read_bytes(), "chelsea.png")
    assert status == 200 and (image["width"], image["height"]) == (451, 300)
    sent = []
    for points in ([[200, 150, 1]], [[200, 150, 1], [60, 40, 0]]):
        status, job = ui_local.json("POST", "/api/jobs", {"op": "select", "image": image["id"], "points": points})
        while job["state"] not in ("done", "failed"):
            status, job = ui_local.json("GET", f"/api/jobs/{job['id']}?wait=2")
        assert job["state"] == "done", job
        sent.append(job["result"]["sent"])
        mask_status, headers, mask_png = ui_local.request("GET", f"/api/masks/{job['result']['mask']}")
        assert mask_status == 200 and headers["Content-Type"] == "image/png"
    assert sent[1] == "image_id"  # the second click sent SAM's image_id, not the photo
    status, _, data = ui_local.request("GET", image["url"])
    assert status == 200 and data == PHOTO.read_bytes()  # the photo as uploaded


def test_strength_out_of_range_is_refused(ui_local):
    status, image = upload(ui_local, PHOTO.read_bytes(), "chelsea.png")
    _, job = ui_local.json("POST", "/api/jobs", {"op": "select", "image": image["id"], "points": [[200, 150, 1]]})
    while job["state"] not in ("done", "failed"):
        _, job = ui_local.json("GET", f"/api/jobs/{job['id']}?wait=2")
    for strength, fragment in ((0, "above 0"), (1.5, "between 0 and 1"), ("x", "must be a number")):
        _, answer = ui_local.json("POST", "/api/jobs", {"op": "replace", "image": image["id"],
                                                        "mask": job["result"]["mask"], "prompt": "a hat",
                                                        "strength": strength})
        while answer["state"] not in ("done", "failed"):
            _, answer = ui_local.json("GET", f"/api/jobs/{answer['id']}?wait=2")
        assert answer["state"] == "failed" and fragment in answer["error"]["message"], answer


def test_ui_defaults_match_the_models_limits():
    sys.path.insert(0, str(REPO_ROOT / "model_sources" / "common"))
    try:
        from mme_serving.codec import DEFAULT_MAX_IMAGE_PIXELS
    finally:
        sys.path.pop(0)
    from mme.client.sagemaker import MAX_PAYLOAD_BYTES
    from mme.ui.editor import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, MASK_ALLOWANCE

    assert DEFAULT_MAX_PIXELS == DEFAULT_MAX_IMAGE_PIXELS
    # the largest accepted file, base64-encoded, plus the mask allowance fits one InvokeEndpoint call
    assert 4 * -(-DEFAULT_MAX_UPLOAD_BYTES // 3) + MASK_ALLOWANCE <= MAX_PAYLOAD_BYTES


def test_command_line_errors_are_one_line(ui_env, ui_local, tmp_path):
    def run(*args):
        return subprocess.run([*mme_command(), "ui", *args], env=ui_env, cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=60)

    result = run("--local", "--state-dir", str(tmp_path / "none"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "no local endpoint is running" in result.stderr
    result = run("--port", "70000", "--local")
    assert result.returncode == 2 and "a port is a number in 0..65535" in result.stderr
    result = run("--local", "--endpoint", "x")
    assert result.returncode == 2 and "--local cannot be combined" in result.stderr
    result = run()
    assert result.returncode == 2 and "--local" in result.stderr
    busy = run("--local", "--state-dir", str(ui_local_state(ui_local)), "--port", str(ui_local.port))
    assert busy.returncode == 2 and "cannot listen on 127.0.0.1" in busy.stderr and "choose another --port" in busy.stderr


def ui_local_state(ui) -> Path:
    args = ui.proc.args
    return Path(args[args.index("--state-dir") + 1])


def test_stops_cleanly_on_sigterm(tiny_models, ui_env):
    ui = UiProcess(["--local", "--state-dir", str(tiny_models)], ui_env)
    assert ui.request("GET", "/api/config")[0] == 200
    code, out, err = ui.stop()
    assert code == 0 and "mme ui: stopped" in out and err == ""
    with pytest.raises(OSError):
        socket.create_connection((ui.host, ui.port), timeout=2).close()
