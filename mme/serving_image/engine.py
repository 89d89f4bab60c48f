"""The container engine that builds and runs the serving image here: docker where its engine
answers, else podman (``make container-engine`` installs Debian's podman and runc when neither is
there, as ``make browser`` installs chromium).

podman needs up to three settings on some machines, each written into a ``containers.conf`` of
our own (``CONTAINERS_CONF``) only where the machine needs it, unless the caller set
``CONTAINERS_CONF`` already:

- ``[containers] default_ulimits = []`` where the hard limit of open files is below the
  1048576 podman asks for by default (the runtime then fails with ``setrlimit``);
- ``[engine] runtime = "runc"`` where the host's cgroups are v1 or hybrid (crun refuses them) and
  runc is installed;
- ``[engine] cgroup_manager = "cgroupfs"`` where systemd is not the init system.

``MME_CONTAINER_ENGINE=podman|docker`` picks one explicitly.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ENGINE_ENV = "MME_CONTAINER_ENGINE"
_PODMAN_DEFAULT_NOFILE = 1048576


class EngineError(RuntimeError):
    """No usable container engine, or an engine command failed; the message is one line."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mme`` (or ``~/.cache/mme``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mme"


def podman_settings() -> dict[str, dict[str, object]]:
    """The ``containers.conf`` settings this machine needs (see the module docstring); ``{}`` for none."""
    containers: dict[str, object] = {}
    engine: dict[str, object] = {}
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < _PODMAN_DEFAULT_NOFILE:
        containers["default_ulimits"] = []
    unified_only = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    if not unified_only and shutil.which("runc"):
        engine["runtime"] = "runc"
    if not Path("/run/systemd/system").is_dir():
        engine["cgroup_manager"] = "cgroupfs"
    return {section: values for section, values in (("containers", containers), ("engine", engine)) if values}


def _toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return f'"{value}"'


def podman_conf(settings: dict[str, dict[str, object]] | None = None) -> Path | None:
    """Write the settings this machine needs into ``<cache>/podman/containers.conf``; its path, or
    ``None`` when it needs none."""
    settings = podman_settings() if settings is None else settings
    if not settings:
        return None
    text = "# written by mme.serving_image.engine: the settings podman needs on this machine\n"
    for section, values in settings.items():
        text += f"[{section}]\n" + "".join(f"{key} = {_toml_value(value)}\n" for key, value in values.items())
    path = cache_dir() / "podman" / "containers.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


@dataclass
class ContainerEngine:
    """One engine (``podman`` or ``docker``) and the environment its commands run with."""

    name: str
    executable: str
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def is_podman(self) -> bool:
        return self.name == "podman"

    def command(self, *args: str) -> list[str]:
        return [self.executable, *args]

    def run(self, *args: str, timeout: float | None = 300.0, check: bool = True,
            input: bytes | None = None) -> subprocess.CompletedProcess:
        """Run an engine command, capturing its output; :class:`EngineError` (its last line) on failure
        when ``check``."""
        try:
            done = subprocess.run(self.command(*args), env=self.env, capture_output=True, timeout=timeout,
                                  input=input)
        except subprocess.TimeoutExpired:
            raise EngineError(f"`{self.name} {' '.join(args[:2])}` did not finish within {timeout:.0f}s") from None
        if check and done.returncode != 0:
            raise EngineError(f"`{self.name} {' '.join(args[:2])}` failed: {last_line(done)}")
        return done

    def image_exists(self, reference: str) -> bool:
        return self.run("image", "inspect", reference, check=False, timeout=60).returncode == 0

    def image_id(self, reference: str) -> str:
        return self.run("image", "inspect", "--format", "{{.Id}}", reference).stdout.decode().strip()

    def pull(self, reference: str, timeout: float = 600.0) -> str | None:
        """Pull ``reference``; ``None`` when done, else why not (one line)."""
        try:
            done = self.run("pull", reference, check=False, timeout=timeout)
        except EngineError as err:
            return str(err)
        return None if done.returncode == 0 else last_line(done)

    def remove_container(self, name: str) -> None:
        """Stop and remove a container by name or id (no error when it is gone)."""
        self.run("rm", "--force", "--time", "10", name, check=False, timeout=120) if self.is_podman else \
            self.run("rm", "--force", name, check=False, timeout=120)

    def container_state(self, name: str) -> dict | None:
        """``{"running", "pid", "exit_code"}`` of a container, ``None`` when there is none by that name."""
        done = self.run("inspect", "--type", "container", "--format",
                        "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}", name, check=False, timeout=60)
        if done.returncode != 0:
            return None
        running, pid, code = done.stdout.decode().split()
        return {"running": running == "true", "pid": int(pid), "exit_code": int(code)}

    def logs(self, name: str, tail: int = 40) -> str:
        """The container's console, its last ``tail`` lines (``-1``: all of it)."""
        done = self.run("logs", "--tail", str(tail), name, check=False, timeout=60)
        return (done.stdout + done.stderr).decode(errors="replace")


def last_line(done: subprocess.CompletedProcess) -> str:
    """The last non-empty line a command printed (stderr first), for one-line errors."""
    for stream in (done.stderr, done.stdout):
        text = stream.decode(errors="replace") if isinstance(stream, bytes) else (stream or "")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
    return f"exit status {done.returncode}"


def _docker_answers(executable: str) -> bool:
    try:
        return subprocess.run([executable, "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _podman(executable: str) -> ContainerEngine:
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env:
        conf = podman_conf()
        if conf is not None:
            env["CONTAINERS_CONF"] = str(conf)
    return ContainerEngine("podman", executable, env)


def find_engine() -> ContainerEngine | None:
    """The engine to use here (see the module docstring), ``None`` when there is none.
    :class:`EngineError` when ``MME_CONTAINER_ENGINE`` names one that is not usable."""
    wanted = os.environ.get(ENGINE_ENV, "").strip().lower()
    if wanted and wanted not in ("podman", "docker"):
        raise EngineError(f"{ENGINE_ENV}={wanted!r}: give podman or docker")
    docker, podman = shutil.which("docker"), shutil.which("podman")
    if wanted == "podman" and not podman:
        raise EngineError(f"{ENGINE_ENV}=podman, but podman is not installed (make container-engine installs it)")
    if wanted == "docker" and not (docker and _docker_answers(docker)):
        raise EngineError(f"{ENGINE_ENV}=docker, but `docker info` fails: is a Docker engine running?")
    if wanted == "docker" or (not wanted and docker and _docker_answers(docker)):
        return ContainerEngine("docker", docker)
    return _podman(podman) if podman else None


def require_engine() -> ContainerEngine:
    """:func:`find_engine`, or :class:`EngineError` saying how to get one."""
    engine = find_engine()
    if engine is None:
        raise EngineError("no container engine: run `make container-engine` (installs Debian's podman and runc) "
                          "or start a Docker engine")
    return engine
