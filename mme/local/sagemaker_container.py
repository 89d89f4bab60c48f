"""The serving container as a multi-model endpoint runs it, from this virtual environment: TorchServe
with the endpoint's settings, speaking the container API of :mod:`mme.local.container_api`.

:class:`SageMakerContainer` starts TorchServe the way the SageMaker PyTorch inference toolkit's
``serve`` starts it in the serving image (``torchserve --start --model-store / --ts-config
<properties> --log-config container/log4j2.xml``, which the image puts in place of the toolkit's
``log4j2.xml``; the properties composed by
:mod:`mme.local.container_config`, the image's ``ENV`` plus ``SAGEMAKER_HANDLER``). The image
itself, run by podman or docker, is :class:`mme.local.image_container.ImageContainer`.

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

from pathlib import Path

from mme.local import container_config
from mme.local.container_api import ContainerApi
from mme.local.torchserve import LocalServer


#: Variables of the image's ENV that describe the image's own file system, not the serving settings.
_IMAGE_ONLY_ENV = frozenset({"PATH"})


class SageMakerContainer(ContainerApi, LocalServer):
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
        log_config = container_config.LOG_CONFIG  # what the image puts in place of the toolkit's
        return [self.torchserve, "--start", "--foreground", "--ncs", "--model-store", "/",
                "--ts-config", str(config_path), "--log-config", str(log_config)]

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in super()._environment().items() if not k.startswith("TS_")}
        env.update({k: v for k, v in container_config.dockerfile_env().items() if k not in _IMAGE_ONLY_ENV})
        env["SAGEMAKER_MULTI_MODEL"] = "true"
        env.setdefault("SAGEMAKER_HANDLER", container_config.TOOLKIT_HANDLER_SERVICE)
        return env
