"""The multi-model container API that SageMaker's agent calls, on any local serving container.

- load: ``POST /models`` with the JSON body ``{"model_name": ..., "url": <unpacked dir>}``
  (409 when the name is loaded; a 507 asks the platform to unload other models);
- invoke: ``POST /models/<model_name>/invoke`` with the ``X-Amzn-SageMaker-Target-Model`` header;
- unload: ``DELETE /models/<model_name>``; list: ``GET /models``.

:class:`ContainerApi` is mixed into a :class:`~mme.local.torchserve.LocalServer` (its ``call``
sends the requests): the virtual environment's TorchServe
(:class:`~mme.local.sagemaker_container.SageMakerContainer`) and the serving image run by an
engine (:class:`~mme.local.image_container.ImageContainer`). The two differ in where the container
sees a model folder (:meth:`ContainerApi.container_url`) and which process ids its workers have on
this machine (:meth:`ContainerApi.host_pids`).
"""

from __future__ import annotations

import json
import os
import urllib.parse

from mme.local.protocol import TARGET_MODEL_HEADER


class ContainerApi:
    """SageMaker's calls to a multi-model container (see the module docstring)."""

    def container_url(self, url: str | os.PathLike) -> str:
        """The model folder ``url`` (a path on this machine) as the container sees it."""
        return str(url)

    def host_pids(self, pids: list[int]) -> list[int]:
        """The container's process ids ``pids`` as this machine numbers them."""
        return pids

    def load_model(self, model_name: str, url: str | os.PathLike, timeout: float = 900.0) -> tuple[int, bytes]:
        """SageMaker's Load Model call; returns ``(status, body)`` (200, 409, 507, ...)."""
        body = json.dumps({"model_name": model_name, "url": self.container_url(url)}).encode()
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
        """Process ids (on this machine) of the model's TorchServe workers; empty when it is not loaded."""
        status, _, data = self.call("management", "GET", f"/models/{urllib.parse.quote(model_name)}")
        if status != 200:
            return []
        try:
            pids = [int(w["pid"]) for entry in json.loads(data) for w in entry.get("workers", []) if w.get("pid")]
        except (ValueError, KeyError, TypeError):
            return []
        return self.host_pids(pids)
