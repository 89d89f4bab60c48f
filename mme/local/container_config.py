"""The serving container's TorchServe settings, composed the way the endpoint composes them.

On the endpoint, the SageMaker PyTorch inference toolkit's ``serve`` starts TorchServe in the
serving image (see ``container/Dockerfile`` and ``container/config.properties``). The properties
file it writes is:

1. the toolkit's own ``sagemaker_pytorch_serving_container/etc/mme-ts.properties``
   (``SAGEMAKER_MULTI_MODEL=true``), read here from the installed ``sagemaker-pytorch-inference``
   distribution pinned to the image's version (never retyped);
2. a newline and ``container/config.properties`` (the Dockerfile appends them to the toolkit's
   file; the toolkit's file has no final newline, so without it the last key would swallow the
   next line);
3. the lines the toolkit appends at start (``_generate_ts_config_properties`` in its
   ``torchserve.py``): ``default_response_timeout`` (``SAGEMAKER_MODEL_SERVER_TIMEOUT``),
   ``default_workers_per_model`` (only when ``SAGEMAKER_MODEL_SERVER_WORKERS`` is set),
   ``inference_address`` and ``management_address`` (both ``http://0.0.0.0:8080`` there) and
   ``default_service_handler``.

Java's ``Properties`` keeps the last value of a repeated key, so later lines win.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from mme.serving_image import layout, lockfile

TOOLKIT_DISTRIBUTION = "sagemaker-pytorch-inference"
TOOLKIT_ETC = "sagemaker_pytorch_serving_container/etc"
#: The toolkit's handler service; it sets SAGEMAKER_HANDLER to it for multi-model endpoints.
TOOLKIT_HANDLER_SERVICE = "sagemaker_pytorch_serving_container.handler_service"
CONTAINER_DIR = layout.CONTAINER_DIR
LOG_CONFIG = layout.LOG_CONFIG


def toolkit_version() -> str:
    """The toolkit version the serving image installs (``container/requirements-server.txt``)."""
    return lockfile.read_pins(layout.SERVER_REQUIREMENTS)[TOOLKIT_DISTRIBUTION].version


class ContainerConfigError(RuntimeError):
    """The toolkit distribution or a file of ``container/`` is missing or unreadable."""


def toolkit_file(name: str) -> Path:
    """Path of ``etc/<name>`` in the installed toolkit distribution (checked: the pinned version)."""
    wanted_version = toolkit_version()
    try:
        dist = importlib.metadata.distribution(TOOLKIT_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ContainerConfigError(f"{TOOLKIT_DISTRIBUTION}=={wanted_version} is not installed "
                                   "(it holds the endpoint's TorchServe settings): run `make setup-dev`") from None
    if dist.version != wanted_version:
        raise ContainerConfigError(f"{TOOLKIT_DISTRIBUTION} {dist.version} is installed; the serving image has "
                                   f"{wanted_version}: run `make setup-dev`")
    wanted = f"{TOOLKIT_ETC}/{name}"
    for entry in dist.files or ():
        if str(entry).replace("\\", "/") == wanted:
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path
    raise ContainerConfigError(f"{wanted} is missing from the installed {TOOLKIT_DISTRIBUTION}")


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` (or ``key: value``) lines of a Java properties file; ``#``/``!`` comments;
    a repeated key keeps its last value, as ``java.util.Properties`` does. Line continuations and
    escapes are not handled (TorchServe's files use none)."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*[=:]?\s*(.*)$", line)
        if match:
            found[match[1]] = match[2].strip()
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContainerConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def dockerfile_env(dockerfile: Path | None = None) -> dict[str, str]:
    """The ``ENV`` variables the serving image sets (``container/Dockerfile``)."""
    text = re.sub(r"\\\n", " ", _read(dockerfile or CONTAINER_DIR / "Dockerfile"))
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line))
    return env


def toolkit_appended_lines(inference_address: str, management_address: str, env: dict[str, str]) -> list[str]:
    """What the toolkit writes after its properties file at start, from the container's ``env``."""
    lines = []
    if env.get("SAGEMAKER_MODEL_SERVER_TIMEOUT"):
        lines.append(f"default_response_timeout={env['SAGEMAKER_MODEL_SERVER_TIMEOUT']}")
    if env.get("SAGEMAKER_MODEL_SERVER_WORKERS"):
        lines.append(f"default_workers_per_model={env['SAGEMAKER_MODEL_SERVER_WORKERS']}")
    lines += [f"inference_address={inference_address}", f"management_address={management_address}",
              f"default_service_handler={TOOLKIT_HANDLER_SERVICE}:handle"]
    return lines


def endpoint_properties(inference_address: str, management_address: str, *,
                        overrides: list[tuple[str, str, str]] = ()) -> str:
    """The properties file TorchServe gets (see the module docstring), then ``overrides``:
    ``(key, value, why)`` lines for a machine that is not the endpoint, each with its reason as
    a comment above it."""
    parts = [_read(toolkit_file("mme-ts.properties")), "\n", _read(CONTAINER_DIR / "config.properties")]
    if not parts[-1].endswith("\n"):
        parts.append("\n")
    parts.append("# appended by the toolkit at start\n")
    parts += [line + "\n" for line in toolkit_appended_lines(inference_address, management_address, dockerfile_env())]
    if overrides:
        parts.append("# not the endpoint: local settings\n")
        previous = None
        for key, value, why in overrides:
            if why != previous:
                parts.append(f"# {why}\n")
                previous = why
            parts.append(f"{key}={value}\n")
    return "".join(parts)
