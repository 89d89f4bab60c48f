"""The serving image run by podman or docker the way SageMaker runs it on a multi-model endpoint
instance, speaking the container API of :mod:`mme.local.container_api`.

SageMaker starts the container as ``docker run <image> serve`` with the model's environment plus
what it sets for a multi-model container (:data:`SAGEMAKER_ENVIRONMENT`: ``SAGEMAKER_MULTI_MODEL``;
for an image labelled ``accept-bind-to-port``, the port to serve on and a port range of its own),
the archives it downloaded unpacked under ``/opt/ml/models/<model_name>/model``, and the GPU
driver mounted by the host's NVIDIA container toolkit. :class:`ImageContainer` does the same with
this machine's engine (:mod:`mme.serving_image.engine`): ``models_dir`` is mounted read-only at
``/opt/ml/models``, the container's port is published on 127.0.0.1 only, and every GPU of the
machine is passed through where ``nvidia-smi`` lists one (docker ``--gpus all``, podman the CDI
device ``nvidia.com/gpu=all``).

Two ways to run it:

- ``sagemaker_exact=True`` (the image tests): nothing else. Inference and management share one
  port, without TorchServe's token authorization, as on the endpoint.
- ``sagemaker_exact=False`` (``mme local up --image``): the published ports are open to every
  user of this machine, and with the model API on anyone could register code, so TorchServe's
  token authorization is turned back on through its environment overrides
  (``enable_envvars_config=true`` in the toolkit's properties lets ``TS_*`` variables win), which
  needs the management API on a second port (``TS_MANAGEMENT_ADDRESS``). The server directory is
  mounted as TorchServe's working directory, so its ``key_file.json`` and ``logs/`` are on this
  machine, as for :class:`~mme.local.sagemaker_container.SageMakerContainer`.

A model's workers run in the container's PID namespace; :meth:`ImageContainer.host_pids` finds
their numbers on this machine (``/proc/<pid>/status`` ``NSpid``) so the local endpoint can measure
them. Where this user cannot read the container's processes (a Docker daemon owned by root) the
list is empty and models are measured as 0 bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from mme.local.container_api import ContainerApi
from mme.local.processes import free_port
from mme.local.torchserve import LocalServer, LocalServerError
from mme.serving_image.engine import ContainerEngine, EngineError, require_engine
from mme.serving_image.layout import DEV_IMAGE

STATE_FILE = "image_container.json"
CONTAINER_MODELS_DIR = "/opt/ml/models"
#: TorchServe's working directory in the container when ``sagemaker_exact`` is off.
CONTAINER_RUN_DIR = "/opt/mme-local"
#: The port the container serves on (SageMaker passes it as SAGEMAKER_BIND_TO_PORT).
CONTAINER_PORT = 8080
#: What SageMaker sets for a multi-model container of an image labelled accept-bind-to-port (the
#: bind port, and a range the container may use for its own helpers), besides the model's environment.
SAGEMAKER_ENVIRONMENT = {
    "SAGEMAKER_MULTI_MODEL": "true",
    "SAGEMAKER_BIND_TO_PORT": str(CONTAINER_PORT),
    "SAGEMAKER_SAFE_PORT_RANGE": "20000-20999",
}
_LOCAL_MANAGEMENT_PORT = 8081
_STOP_GRACE_S = 30


class ImageContainer(ContainerApi, LocalServer):
    """The serving image in a container (see the module docstring).

    ``workdir``: this container's server directory (a new temp dir when None). ``image``: default
    the image ``make image`` builds. ``models_dir``: mounted at ``/opt/ml/models`` (default
    ``<workdir>/models``). ``environment``: the model's environment (CfnModel's ``Environment``).
    ``gpus``: pass the machine's GPUs through (default: where ``nvidia-smi`` lists one).
    """

    def __init__(self, workdir: str | os.PathLike | None = None, *, image: str = DEV_IMAGE,
                 engine: ContainerEngine | None = None, models_dir: str | os.PathLike | None = None,
                 sagemaker_exact: bool = False, environment: dict[str, str] | None = None,
                 gpus: bool | None = None, start_timeout: float = 180.0):
        super().__init__(workdir, start_timeout=start_timeout)
        self.image = image
        self._engine = engine
        self.models_dir = Path(models_dir).resolve() if models_dir else self.workdir / "models"
        self.sagemaker_exact = sagemaker_exact
        self.uses_tokens = not sagemaker_exact
        self.environment = dict(environment or {})
        self.gpus = gpus
        self.container_name = "mme-serving-" + hashlib.sha256(str(self.workdir).encode()).hexdigest()[:12]

    # ------------------------------------------------------------------ engine and paths
    @property
    def engine(self) -> ContainerEngine:
        if self._engine is None:
            try:
                self._engine = require_engine()
            except EngineError as exc:
                raise LocalServerError(str(exc)) from None
        return self._engine

    def container_url(self, url: str | os.PathLike) -> str:
        """``<models_dir>/<name>/model`` -> ``/opt/ml/models/<name>/model``; other paths are refused."""
        path = Path(url).resolve()
        try:
            relative = path.relative_to(self.models_dir)
        except ValueError:
            raise ValueError(f"{path} is not under {self.models_dir}, which the container sees as "
                             f"{CONTAINER_MODELS_DIR}") from None
        return f"{CONTAINER_MODELS_DIR}/{relative.as_posix()}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "ImageContainer":
        """Run the image with ``serve``; wait until it answers ``/ping`` (and, with tokens, wrote its keys)."""
        if self.pgid is not None:
            return self
        for d in (self.workdir, self.models_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.key_file.unlink(missing_ok=True)
        self._keys = None
        inference = free_port(self.host)
        self.ports = {"inference": inference, "management": inference if self.sagemaker_exact else free_port(self.host)}
        self.engine.remove_container(self.container_name)  # a container of an earlier run of this workdir
        try:
            self.engine.run(*self._run_args(), timeout=120)
            state = self.engine.container_state(self.container_name)
        except EngineError as exc:
            raise LocalServerError(f"the serving image did not start: {exc}") from None
        self.pgid = state["pid"] if state else None
        self._write_state()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _run_args(self) -> list[str]:
        env = {**self.environment, **SAGEMAKER_ENVIRONMENT}
        args = ["run", "--detach", "--name", self.container_name, "--label", f"mme.local.workdir={self.workdir}",
                "--publish", f"{self.host}:{self.ports['inference']}:{CONTAINER_PORT}",
                "--volume", f"{self.models_dir}:{CONTAINER_MODELS_DIR}:ro"]
        if not self.sagemaker_exact:
            env.update({"TS_DISABLE_TOKEN_AUTHORIZATION": "false",
                        "TS_MANAGEMENT_ADDRESS": f"http://0.0.0.0:{_LOCAL_MANAGEMENT_PORT}"})
            args += ["--publish", f"{self.host}:{self.ports['management']}:{_LOCAL_MANAGEMENT_PORT}",
                     "--volume", f"{self.workdir}:{CONTAINER_RUN_DIR}", "--workdir", CONTAINER_RUN_DIR]
        if self._gpus_wanted():
            args += ["--device", "nvidia.com/gpu=all"] if self.engine.is_podman else ["--gpus", "all"]
        for key, value in sorted(env.items()):
            args += ["--env", f"{key}={value}"]
        return [*args, self.image, "serve"]

    def _gpus_wanted(self) -> bool:
        if self.gpus is not None:
            return self.gpus
        from mme.model_memory import nvidia_smi

        return bool(nvidia_smi("--query-gpu=name"))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            state = self.engine.container_state(self.container_name)
            if state is None or not state["running"]:
                code = state["exit_code"] if state else "gone"
                raise LocalServerError(f"the serving image exited ({code}): {self._log_tail()}")
            try:
                if not self.uses_tokens or self.key_file.exists():
                    status, _, _ = self.call("inference", "GET", "/ping", timeout=2)
                    if status == 200:
                        return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise LocalServerError(f"the serving image did not answer /ping within {self.start_timeout:.0f}s: "
                               f"{self._log_tail()}")

    def _log_tail(self, n: int = 2000) -> str:
        try:
            return self.engine.logs(self.container_name)[-n:]
        except EngineError:
            return ""

    def container_logs(self) -> str:
        """Everything the container wrote to its console since it started (SageMaker sends this to
        CloudWatch Logs)."""
        return self.engine.logs(self.container_name, tail=-1)

    def _write_state(self) -> None:
        state = {"engine": self.engine.name, "container": self.container_name, "pid": self.pgid,
                 "ports": self.ports, "host": self.host, "image": self.image, "models_dir": str(self.models_dir),
                 "sagemaker_exact": self.sagemaker_exact}
        (self.workdir / STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def attach(cls, workdir: str | os.PathLike) -> "ImageContainer":
        """Re-open a container started by another process from its server directory."""
        state = json.loads((Path(workdir).resolve() / STATE_FILE).read_text())
        server = cls(workdir, image=state["image"], models_dir=state["models_dir"],
                     sagemaker_exact=state["sagemaker_exact"])
        server.pgid, server.ports, server.host = state["pid"], state["ports"], state["host"]
        return server

    def is_running(self) -> bool:
        """True while the container runs."""
        if self.pgid is None:
            return False
        try:
            state = self.engine.container_state(self.container_name)
        except (EngineError, LocalServerError):
            return False
        return bool(state and state["running"])

    def stop(self, timeout: float = _STOP_GRACE_S) -> None:
        """Stop the container (SIGTERM to tini, which passes it on; SIGKILL after ``timeout``) and
        remove it; raises :class:`LocalServerError` when a container by its name is left."""
        self.engine.run("stop", "--time", str(int(timeout)), self.container_name, check=False,
                        timeout=timeout + 60)
        self.engine.remove_container(self.container_name)
        if self.engine.container_state(self.container_name) is not None:
            raise LocalServerError(f"container {self.container_name} is still there after removing it")
        (self.workdir / STATE_FILE).unlink(missing_ok=True)
        self.pgid = None
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ processes
    def host_pids(self, pids: list[int]) -> list[int]:
        """The container's process ids ``pids`` as this machine numbers them (see the module docstring)."""
        if not pids or self.pgid is None:
            return []
        mapping = namespace_pid_map(self.pgid)
        return [mapping[p] for p in pids if p in mapping]


def namespace_pid_map(init_pid: int) -> dict[int, int]:
    """``{pid in the PID namespace of init_pid: pid on this machine}`` from ``/proc`` (empty when
    the namespace cannot be read)."""
    try:
        namespace = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return {}
    mapping = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "pid") != namespace:
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                numbers = [int(n) for n in line.split()[1:]]
                mapping[numbers[-1]] = numbers[0]
                break
    return mapping
