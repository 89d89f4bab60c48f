"""The serving container as a multi-model endpoint runs it: TorchServe with the endpoint's settings
and the container API that SageMaker's agent calls.

:class:`SageMakerContainer` starts TorchServe the way the SageMaker PyTorch inference toolkit
starts it in the DLC (``torchserve --start --model-store / --ts-config <properties> --log-config
<toolkit's log4j2.xml>``, the properties composed by :mod:`mme.container_config`, the image's
``ENV`` plus ``SAGEMAKER_HANDLER``) and speaks the multi-model container contract:

- load: ``POST /models`` with the JSON body ``{"model_name": ..., "url": <unpacked dir>}``
  (409 when the name is loaded; a 507 asks the platform to unload other models);
- invoke: ``POST /models/<model_name>/invoke`` with the ``X-Amzn-SageMaker-Target-Model`` header;
- unload: ``DELETE /models/<model_name>``; list: ``GET /models``.

What differs from the endpoint, and why (each is also a commented line in the properties file):

- addresses: the endpoint's inference and management APIs share port 8080 with token
  authorization off (only SageMaker reaches the port). Here the ports are open to every user of the
  machine, and with ``model_store=/`` and the model API on, anyone could register their own code,
  so TorchServe's token authorization stays on; TorchServe 0.12 then checks both the inference and
  the management key on a shared port (every request fails), so the two APIs get two free ports on
  127.0.0.1. Metrics and gRPC get free ports too (several servers share one machine).
- system metrics are off (a Python process each minute measuring the host), config snapshots are
  off (``--ncs``: one file per load/unload), and ``TS_*`` variables of the caller's environment
  are dropped (``enable_envvars_config=true`` would let them override the file).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

from mme import container_config
from mme.client.local import TARGET_MODEL_HEADER
from mme.local_server import LocalServer


class SageMakerContainer(LocalServer):
    """TorchServe started as the serving image starts it on a multi-model endpoint (see the
    module docstring); the lifecycle (start, stop, attach, keys) is :class:`LocalServer`'s."""

    def _properties(self) -> str:
        host = self.host
        local = "several servers share this machine: a free port on 127.0.0.1"
        overrides = [
            ("metrics_address", f"http://{host}:{self.ports['metrics']}", local),
            ("grpc_inference_address", host, local),
            ("grpc_management_address", host, local),
            ("grpc_inference_port", str(self.ports["grpc_inference"]), local),
            ("grpc_management_port", str(self.ports["grpc_management"]), local),
            ("disable_token_authorization", "false",
             "these ports are open to every user of this machine: keep token authorization on"),
            ("disable_system_metrics", "true", "host metrics need a Python process each minute"),
        ]
        return container_config.endpoint_properties(f"http://{host}:{self.ports['inference']}",
                                                    f"http://{host}:{self.ports['management']}",
                                                    overrides=overrides)

    def _command(self, config_path: Path) -> list[str]:
        log_config = container_config.toolkit_file("log4j2.xml")
        return [self.torchserve, "--start", "--foreground", "--ncs", "--model-store", "/",
                "--ts-config", str(config_path), "--log-config", str(log_config)]

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in super()._environment().items() if not k.startswith("TS_")}
        env.update(container_config.dockerfile_env())
        env["SAGEMAKER_MULTI_MODEL"] = "true"
        env.setdefault("SAGEMAKER_HANDLER", container_config.TOOLKIT_HANDLER_SERVICE)
        return env

    # ------------------------------------------------------------------ the container API
    def load_model(self, model_name: str, url: str | os.PathLike, timeout: float = 900.0) -> tuple[int, bytes]:
        """SageMaker's Load Model call; returns ``(status, body)`` (200, 409, 507, ...)."""
        body = json.dumps({"model_name": model_name, "url": str(url)}).encode()
        status, _, data = self.call("management", "POST", "/models", body, "application/json", timeout)
        return status, data

    def unload_model(self, model_name: str, timeout: float = 300.0) -> tuple[int, bytes]:
        """SageMaker's Unload Model call; returns ``(status, body)`` (200, 404, ...)."""
        status, _, data = self.call("management", "DELETE", f"/models/{urllib.parse.quote(model_name)}",
                                    timeout=timeout)
        return status, data

    def invoke(self, model_name: str, body: bytes, target_model: str, content_type: str = "application/json",
               timeout: float = 300.0) -> tuple[int, dict, bytes]:
        """SageMaker's Invoke Model call; returns ``(status, headers, body)``."""
        return self.call("inference", "POST", f"/models/{urllib.parse.quote(model_name)}/invoke", body,
                         content_type, timeout, headers={TARGET_MODEL_HEADER: target_model})

    def worker_pids(self, model_name: str) -> list[int]:
        """Process ids of the model's TorchServe workers (empty when it is not loaded)."""
        status, _, data = self.call("management", "GET", f"/models/{urllib.parse.quote(model_name)}")
        if status != 200:
            return []
        try:
            return [int(w["pid"]) for entry in json.loads(data) for w in entry.get("workers", []) if w.get("pid")]
        except (ValueError, KeyError, TypeError):
            return []
