"""Loopback stand-ins for the AWS side of the SageMaker backend (used by tests/client).

``FakeSageMakerRuntime`` is a real HTTP server on 127.0.0.1 that speaks enough of the
``InvokeEndpoint`` wire protocol (rest-json) for boto3: ``POST /endpoints/{name}/invocations``
with the ``X-Amzn-SageMaker-Target-Model`` header; errors as SageMaker sends them (status,
``x-amzn-ErrorType`` header, JSON body with ``__type``/``Message``; a model's own error as
``ModelError`` 424 with ``OriginalStatusCode``, ``OriginalMessage``, ``LogStreamArn``). Tests
script the answers; unscripted calls are served by a fake model that follows the request contract.

``moto_server()`` runs moto's server on a free loopback port (CloudFormation for stack outputs).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

LOG_STREAM = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/image-editing-mme"


@dataclass
class Call:
    """One request the fake received."""

    endpoint: str
    target_model: str | None
    content_type: str | None
    body: dict
    headers: dict = field(default_factory=dict)


def _png_b64(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def fake_model_answer(target_model: str, body: dict, known_ids: dict[str, tuple[int, int]]) -> tuple[int, dict]:
    """A stand-in for the three handlers: status and JSON answer for one request (``known_ids``:
    the fake SAM embedding cache, image_id -> size)."""
    def error(code, message, status=400):
        return status, {"error": {"code": code, "message": message}}

    if target_model.startswith("sam-"):
        if "image" in body:
            raw = base64.b64decode(body["image"])
            img = Image.open(io.BytesIO(raw))
            image_id = hashlib.sha256(raw).hexdigest()
            width, height = known_ids[image_id] = img.size
        elif body.get("image_id") in known_ids:
            image_id = body["image_id"]
            width, height = known_ids[image_id]
        else:
            return error("unknown_image_id", "image_id is not cached on this instance; resend the image")
        x, y = body["gen_args"]["point_coords"][0]
        if not (0 <= x < width and 0 <= y < height):
            return error("point_outside_image", f"point ({x:g}, {y:g}) is outside the {width}x{height} image")
        mask = np.zeros((height, width), np.uint8)
        mask[max(0, int(y) - 5):int(y) + 5, max(0, int(x) - 5):int(x) + 5] = 255
        return 200, {"generated_image": _png_b64(mask), "score": 0.9, "image_id": image_id,
                     "embedding_cached": "image" not in body}
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"]))).convert("RGB")).copy()
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_image"]))).convert("L")) > 127
    if target_model.startswith("sd-") and not body.get("prompt", "").strip():
        return error("empty_prompt", "'prompt' must not be empty")
    img[mask] = (0, 255, 0)
    answer = {"generated_image": _png_b64(img)}
    if target_model.startswith("sd-"):
        answer["seed"] = body.get("gen_args", {}).get("seed", 1234)
    return 200, answer


class FakeSageMakerRuntime:
    """See the module docstring. ``script(...)`` queues answers (consumed in order, before the fake
    model); ``calls`` lists what arrived."""

    def __init__(self):
        self.calls: list[Call] = []
        self.scripted: deque = deque()
        self.known_ids: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                parts = self.path.split("/")
                if len(parts) != 4 or parts[1] != "endpoints" or parts[3] != "invocations":
                    return self._send(404, {"__type": "UnknownOperationException"}, "UnknownOperationException")
                call = Call(endpoint=parts[2], target_model=self.headers.get("X-Amzn-SageMaker-Target-Model"),
                            content_type=self.headers.get("Content-Type"), body=json.loads(raw or b"{}"),
                            headers=dict(self.headers))
                with fake._lock:
                    fake.calls.append(call)
                    action = fake.scripted.popleft() if fake.scripted else None
                if action is None:
                    status, answer = fake_model_answer(call.target_model or "", call.body, fake.known_ids)
                    if status == 200:
                        return self._send(200, answer)
                    return self._send(*model_error(status, answer))
                status, body, error_type = action
                return self._send(status, body, error_type)

            def _send(self, status, body, error_type=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
                if error_type:
                    self.send_header("x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/com.amazon.sagemaker/")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def script(self, *actions) -> None:
        """Queue answers: each ``(status, json_body, x-amzn-ErrorType or None)``."""
        self.scripted.extend(actions)

    def __enter__(self) -> "FakeSageMakerRuntime":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------- SageMaker error shapes
def model_error(original_status: int, original_body: dict | str) -> tuple[int, dict, str]:
    """What SageMaker sends when the container answered ``original_status`` (4xx/5xx)."""
    original = original_body if isinstance(original_body, str) else json.dumps(original_body)
    kind = "client" if original_status < 500 else "server"
    return 424, {
        "__type": "ModelError",
        "ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL",
        "LogStreamArn": LOG_STREAM,
        "Message": f"Received {kind} error ({original_status}) from primary with message \"{original}\". "
                   f"See https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:"
                   f"group=/aws/sagemaker/Endpoints/image-editing-mme in account 123456789012 for more information.",
        "OriginalMessage": original,
        "OriginalStatusCode": original_status,
    }, "ModelError"


def throttling() -> tuple[int, dict, str]:
    return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}, "ThrottlingException"


def model_not_ready() -> tuple[int, dict, str]:
    return 429, {"__type": "ModelNotReadyException",
                 "Message": "Model is not yet ready: the target model is being downloaded and loaded"}, "ModelNotReadyException"


def service_unavailable() -> tuple[int, dict, str]:
    return 503, {"__type": "ServiceUnavailable", "Message": "Service is unavailable"}, "ServiceUnavailable"


def validation_error(message: str) -> tuple[int, dict, str]:
    return 400, {"__type": "ValidationError", "Message": message}, "ValidationError"


# ---------------------------------------------------------------------- moto
@contextlib.contextmanager
def moto_server():
    """moto's server on a free port of 127.0.0.1; yields its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def stack_template(outputs: dict[str, str]) -> str:
    """A minimal CloudFormation template with the given outputs (moto deploys it)."""
    return json.dumps({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value, "Description": f"TargetModel of {key[11:].lower()}"
                          if key.startswith("TargetModel") else key} for key, value in outputs.items()},
    })
