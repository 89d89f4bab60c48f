"""The state directory of ``mme local``: where it is, what it records, and who may change it.

State directory (one local endpoint per user): ``--state-dir``, else ``$MME_STATE_DIR``, else
``$XDG_STATE_HOME/mme``, else ``~/.local/state/mme``::

    local.json        what runs: weights, memory budget, models -> TargetModel and archive, the
                      serving container (the virtual environment's TorchServe or an image run by
                      podman/docker), the endpoint's URL and process (written by ``up``)
    endpoint_token    the local endpoint's bearer token (readable by its owner only)
    endpoint.json     the endpoint's URL and pid (written by the endpoint once it listens)
    server/           the container's working dir: config.properties (venv), key_file.json (the
                      TorchServe API keys), logs/ (torchserve.out: TorchServe's console, endpoint.log), tmp/,
                      local_server.json or image_container.json (how to reach and stop it)
    artifacts/        the packaged archives (the endpoint's model prefix, ``ModelDataUrl``)
    models/           archives unpacked for TorchServe: ``models/<model_name>/model`` (mounted at
                      ``/opt/ml/models`` in an image, as SageMaker mounts them)
    lock              serializes concurrent up/down
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

STATE_FILE = "local.json"
STATE_VERSION = 3
TOKEN_FILE = "endpoint_token"
#: ``local.json``'s ``container`` kinds: TorchServe of the virtual environment, or the serving image.
VENV, IMAGE = "venv", "image"

Reporter = Callable[[str], None]


class LocalModeError(Exception):
    """A one-line reason why a ``mme local`` command could not do its job."""


def state_dir(override: str | os.PathLike | None = None) -> Path:
    """The state directory (see the module docstring for the lookup order)."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get("MME_STATE_DIR"):
        return Path(os.environ["MME_STATE_DIR"]).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return (Path(base).expanduser() / "mme").resolve()


def cache_dir() -> Path:
    """Cache for built tiny weights (``$XDG_CACHE_HOME/mme`` or ``~/.cache/mme``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "mme"


def read_state(override: str | os.PathLike | None = None, *, any_version: bool = False) -> dict | None:
    """The recorded state of the local endpoint, or None when ``up`` has not run (or ``down`` did).
    ``any_version``: also a state an earlier version of mme wrote (enough for ``down``)."""
    path = state_dir(override) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LocalModeError(f"{path} is unreadable ({exc}); remove it after checking no TorchServe is left") from None
    if not isinstance(state, dict) or (state.get("version") != STATE_VERSION and not any_version):
        raise LocalModeError(f"{path} was written by another version of mme; run `mme local down` first")
    return state


def write_state(directory: Path, state: dict) -> None:
    """Replace ``local.json`` in one step (a reader never sees half of it)."""
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, directory / STATE_FILE)


def container_kind(state: dict) -> str:
    """``venv`` or ``image`` (states of earlier versions ran the virtual environment's TorchServe)."""
    return (state.get("container") or {}).get("kind", VENV)


def attach_container(state: dict):
    """A handle on the recorded serving container (not started here): a
    :class:`~mme.local.sagemaker_container.SageMakerContainer` or an
    :class:`~mme.local.image_container.ImageContainer`."""
    if container_kind(state) == IMAGE:
        from mme.local.image_container import ImageContainer as kind
    else:
        from mme.local.sagemaker_container import SageMakerContainer as kind
    server_dir = Path(state["server_dir"])
    try:
        return kind.attach(server_dir)
    except FileNotFoundError:
        return kind(server_dir)  # stopped: nothing recorded to reach
    except (OSError, ValueError, KeyError) as exc:
        raise LocalModeError(f"cannot read the server state in {server_dir}: {exc}") from None


@contextlib.contextmanager
def locked(directory: Path):
    """Hold the state directory's lock (one ``up``/``down`` at a time); refuse when it is taken."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LocalModeError(f"another `mme local` command is working on {directory}; wait for it") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
