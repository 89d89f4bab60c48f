"""``mme local up|down|status``: the editing models served locally the way the multi-model
endpoint serves them, in the background.

``up`` packages the enabled models with the project's packager (the same ``<name>-<digest>.tar.gz``
archives, with the same ``TargetModel`` names, that the stack uploads), starts TorchServe with the
serving container's settings (:mod:`mme.sagemaker_container`: the SageMaker toolkit's
``mme-ts.properties`` + ``container/config.properties``) and the local endpoint in front of it
(:mod:`mme.local_endpoint`: ``InvokeEndpoint`` with a ``TargetModel``; models load on first use
and the least recently used ones are unloaded when the memory budget runs short), each in its own
process session so they outlive the command, and records the state; ``up`` again finds them
running. ``down`` stops both and makes sure no process of their sessions is left. ``status``
says what runs where and what is loaded.

State directory (one local endpoint per user): ``--state-dir``, else ``$MME_STATE_DIR``, else
``$XDG_STATE_HOME/mme``, else ``~/.local/state/mme``::

    local.json        what runs: weights, memory budget, models -> TargetModel and archive,
                      the endpoint's URL and process (written by ``up``)
    endpoint_token    the local endpoint's bearer token (readable by its owner only)
    endpoint.json     the endpoint's URL and pid (written by the endpoint once it listens)
    server/           TorchServe's working dir: config.properties, key_file.json (the API keys),
                      logs/ (ts_log.log, model_log.log, endpoint.log), tmp/, local_server.json
    artifacts/        the packaged archives (the endpoint's model prefix, ``ModelDataUrl``)
    models/           archives unpacked for TorchServe: ``models/<model_name>/model``
    lock              serializes concurrent up/down

Weights: ``tiny`` builds random-weight tiny models (``mme.tiny``; cached under
``$XDG_CACHE_HOME/mme/tiny/<builder digest>/``), or a directory with one subfolder per model
(``sam/``, ``lama/``, ``sd/``) holding that model's weight files as they go under ``weights/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from mme import paths
from mme.models import MODELS

STATE_FILE = "local.json"
STATE_VERSION = 2
REPO_ROOT = paths.REPO_ROOT
ENDPOINT_START_TIMEOUT_S = 60.0

Reporter = Callable[[str], None]


class LocalModeError(Exception):
    """A one-line reason why a ``mme local`` command could not do its job."""


# ---------------------------------------------------------------------------------------------
# paths and state
# ---------------------------------------------------------------------------------------------
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


def attach_server(state: dict):
    """A :class:`mme.sagemaker_container.SageMakerContainer` handle on the recorded TorchServe
    (not started here)."""
    from mme.sagemaker_container import SageMakerContainer

    server_dir = Path(state["server_dir"])
    try:
        return SageMakerContainer.attach(server_dir)
    except FileNotFoundError:
        return SageMakerContainer(server_dir)  # stopped: no process group recorded
    except (OSError, ValueError, KeyError) as exc:
        raise LocalModeError(f"cannot read the server state in {server_dir}: {exc}") from None


@contextlib.contextmanager
def _locked(directory: Path):
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


def enabled_models() -> tuple[str, ...]:
    """The models ``cdk.json`` enables (``enabledModels``), else all three."""
    try:
        context = json.loads((REPO_ROOT / "cdk.json").read_text()).get("context", {})
        models = tuple(m for m in context.get("enabledModels", MODELS) if m in MODELS)
        return models or MODELS
    except (OSError, ValueError, AttributeError):
        return MODELS


def parse_models(text: str | None) -> tuple[str, ...]:
    """``"sam,lama"`` -> ``("sam", "lama")`` (checked); None -> :func:`enabled_models`."""
    if text is None:
        return enabled_models()
    models = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise LocalModeError(f"unknown model(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODELS)}")
    return models


def model_sources_dir() -> Path:
    """``model_sources/`` of this checkout (``$MME_MODEL_SOURCES`` overrides)."""
    try:
        return paths.model_sources_dir()
    except FileNotFoundError as err:
        raise LocalModeError(str(err)) from None


# ---------------------------------------------------------------------------------------------
# weights and packaging
# ---------------------------------------------------------------------------------------------
def _tiny_builder_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((Path(paths.__file__).parent / "tiny").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def tiny_weights(models: Iterable[str], report: Reporter) -> dict[str, Path]:
    """Build (or reuse from the cache) the tiny random-weight models; ``{model: weights dir}``."""
    from mme import tiny

    root = cache_dir() / "tiny" / _tiny_builder_digest()
    found = {}
    for name in models:
        target = root / name
        if not (target / ".complete").exists():
            report(f"building the tiny {name} model")
            partial = root / f".{name}.partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            tiny.build(name, partial)
            (partial / ".complete").write_text("")
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
        found[name] = target
    return found


def dir_weights(directory: str | os.PathLike, models: Iterable[str]) -> dict[str, Path]:
    """``{model: DIR/model}``, checking every enabled model has its folder with files in it."""
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise LocalModeError(f"--weights {directory}: not a directory (give 'tiny' or a folder with "
                             "one subfolder per model)")
    found = {}
    for name in models:
        folder = root / name
        if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
            raise LocalModeError(f"--weights {root}: no weight files in {folder} (expected one subfolder per "
                                 f"model: {', '.join(m + '/' for m in models)})")
        found[name] = folder
    return found


def package_models(weights: dict[str, Path], out_dir: Path, report: Reporter) -> dict[str, dict]:
    """Package each model (sources + its weights folder) with the project's packager into
    ``out_dir``; ``{model: {"artifact": path, "target_model": name, "sha256": ..}}``."""
    from mme_constructs.packager.core import LocalDestination, package
    from mme_constructs.packager.errors import PackagingError
    from mme_constructs.packager.sources import SourceTree
    from mme_constructs.packager.specs import parse_spec

    sources = model_sources_dir()
    destination = LocalDestination(out_dir)
    result = {}
    for name, folder in weights.items():
        try:
            tree = SourceTree.from_dirs([sources / "common", sources / name])
            built = package(name, tree, parse_spec({"kind": "local", "path": str(folder)}), destination)
        except PackagingError as exc:
            raise LocalModeError(f"packaging {name} failed: {exc}") from None
        report(f"{'found' if built.skipped else 'packaged'} {name}: {built.target_model} "
               f"({built.size_bytes / 1e6:.1f} MB)")
        result[name] = {"artifact": built.location, "target_model": built.target_model, "sha256": built.sha256}
    keep = {Path(info["artifact"]).name for info in result.values()}
    for old in out_dir.glob("*.tar.gz"):  # archives of earlier inputs
        if old.name not in keep:
            old.unlink(missing_ok=True)
    return result


# ---------------------------------------------------------------------------------------------
# the processes
# ---------------------------------------------------------------------------------------------
def _endpoint_alive(state: dict) -> bool:
    from mme.local_server import _group_alive

    pid = (state.get("endpoint") or {}).get("pid")
    return bool(pid) and _group_alive(int(pid))


def is_running(state: dict) -> bool:
    """True while both the TorchServe and the endpoint of ``state`` run."""
    return attach_server(state).is_running() and _endpoint_alive(state)


def _write_state(directory: Path, state: dict) -> None:
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, directory / STATE_FILE)


def _start_endpoint(directory: Path, state: dict, budget: int) -> None:
    """Start ``python -m mme.local_endpoint`` in its own session; wait until it listens."""
    from mme.local_endpoint import READY_FILE

    ready = directory / READY_FILE
    ready.unlink(missing_ok=True)
    log_path = Path(state["server_dir"]) / "logs" / "endpoint.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mme.local_endpoint", "--state-dir", str(directory),
                                 "--memory-budget-bytes", str(budget)], cwd=directory, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    state["endpoint"] = {"pid": proc.pid, "url": None}
    _write_state(directory, state)  # `down` finds it from here on
    deadline = time.monotonic() + ENDPOINT_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-600:].strip().splitlines()[-3:]
            raise LocalModeError(f"the local endpoint exited with code {proc.returncode}: {' | '.join(tail)} "
                                 f"(log: {log_path})")
        try:
            url = json.loads(ready.read_text())["url"]
            with urllib.request.urlopen(url + "/ping", timeout=2) as resp:
                if resp.status == 200:
                    state["endpoint"]["url"] = url
                    _write_state(directory, state)
                    return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise LocalModeError(f"the local endpoint did not start within {ENDPOINT_START_TIMEOUT_S:.0f}s (log: {log_path})")


def _stop_all(directory: Path, state: dict) -> None:
    """Stop the endpoint, then TorchServe; remove what only a running endpoint needs."""
    from mme.local_server import LocalServerError, stop_process_group

    try:
        pid = (state.get("endpoint") or {}).get("pid")
        if pid:
            stop_process_group(int(pid))
        if state.get("server_dir"):
            attach_server(state).stop()
    except LocalServerError as exc:
        raise LocalModeError(str(exc)) from None
    for name in (STATE_FILE, "endpoint.json", "endpoint_token"):
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / "models", ignore_errors=True)


def running_endpoint(override: str | os.PathLike | None = None) -> dict:
    """``{"url", "token", "target_models"}`` of the running local endpoint (LocalModeError if none)."""
    directory = state_dir(override)
    state = read_state(directory)
    if state is None:
        raise LocalModeError(f"no local endpoint is running (state dir {directory}): "
                             "start one with `mme local up --weights tiny`")
    if not is_running(state) or not (state.get("endpoint") or {}).get("url"):
        raise LocalModeError(f"the local endpoint recorded in {directory} is not running: "
                             "run `mme local down` then `mme local up`")
    try:
        token = (directory / "endpoint_token").read_text().strip()
    except OSError as exc:
        raise LocalModeError(f"cannot read the endpoint token in {directory}: {exc.strerror or exc}") from None
    return {"url": state["endpoint"]["url"], "token": token,
            "target_models": {name: info["target_model"] for name, info in state["models"].items()}}


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------
def up(weights: str = "tiny", models: Iterable[str] | None = None, *, memory_budget_mib: int | None = None,
       state_override=None, report: Reporter = lambda message: None, start_timeout: float = 180.0) -> tuple[dict, bool]:
    """Start (or find) the local endpoint serving ``models``; returns ``(state, already_running)``.

    ``memory_budget_mib``: what the loaded models may hold together (default: 90% of the memory
    available now, see :mod:`mme.model_memory`)."""
    models = tuple(models or enabled_models())
    directory = state_dir(state_override)
    weights_label = "tiny" if weights == "tiny" else str(Path(weights).expanduser().resolve())
    with _locked(directory):
        state = read_state(directory, any_version=True)
        if state is not None and state.get("version") == STATE_VERSION and is_running(state):
            _check_same(state, weights_label, models, memory_budget_mib)
            return state, True
        if state is not None:
            report("a previous local endpoint is gone; cleaning up its state" if state.get("version") == STATE_VERSION
                   else "stopping the local server an earlier version of mme started")
            _stop_all(directory, state)
        found = tiny_weights(models, report) if weights == "tiny" else dir_weights(weights, models)
        packaged = package_models(found, directory / "artifacts", report)
        from mme.model_memory import default_memory_budget

        budget = memory_budget_mib * 2**20 if memory_budget_mib else default_memory_budget()
        return _start(directory, weights_label, packaged, budget, report, start_timeout), False


def _check_same(state: dict, weights_label: str, models: tuple[str, ...], memory_budget_mib: int | None) -> None:
    if state["weights"] != weights_label:
        raise LocalModeError(f"the local server already runs with weights {state['weights']}; "
                             "run `mme local down` first to switch")
    missing = [m for m in models if m not in state["models"]]
    if missing:
        raise LocalModeError(f"the local server runs {', '.join(state['models'])}, not "
                             f"{', '.join(missing)}; run `mme local down` first to change models")
    if memory_budget_mib and memory_budget_mib * 2**20 != state["memory_budget_bytes"]:
        raise LocalModeError(f"the local server runs with a memory budget of "
                             f"{state['memory_budget_bytes'] / 2**20:,.0f} MiB; run `mme local down` first to change it")


def _start(directory: Path, weights_label: str, packaged: dict, budget: int, report: Reporter,
           start_timeout: float) -> dict:
    from mme.local_server import LocalServerError
    from mme.sagemaker_container import SageMakerContainer

    token_path = directory / "endpoint_token"
    token_path.unlink(missing_ok=True)
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    container = SageMakerContainer(directory / "server", start_timeout=start_timeout)
    state = {"version": STATE_VERSION, "server_dir": str(container.workdir), "weights": weights_label,
             "memory_budget_bytes": budget, "models": packaged, "endpoint": None,
             "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    # recorded before the start: if this command is killed while TorchServe starts, `down` still
    # finds the server (its process group is in server/local_server.json from the spawn on)
    _write_state(directory, state)
    try:
        report("starting TorchServe with the serving container's settings on 127.0.0.1")
        try:
            container.start()
        except LocalServerError as exc:
            raise LocalModeError(f"TorchServe did not start: {exc}") from None
        report(f"starting the local endpoint (memory budget {budget / 2**20:,.0f} MiB)")
        _start_endpoint(directory, state, budget)
    except BaseException:
        _stop_all(directory, state)
        raise
    return state


def down(*, state_override=None) -> bool:
    """Stop the local endpoint and its TorchServe; True if they were running. Leaves no process
    of their sessions behind."""
    directory = state_dir(state_override)
    with _locked(directory):
        state = read_state(directory, any_version=True)
        if state is None:
            return False
        was_running = attach_server(state).is_running() or _endpoint_alive(state)
        _stop_all(directory, state)
        return was_running


def status(*, state_override=None) -> dict:
    """What runs: ``{"running", "state_dir", ...}`` with each model's state, size and counters."""
    directory = state_dir(state_override)
    state = read_state(directory)
    info: dict = {"running": False, "state_dir": str(directory)}
    if state is None:
        return info
    server = attach_server(state)
    endpoint = state.get("endpoint") or {}
    info.update(weights=state["weights"], started_at=state.get("started_at"), server_dir=state["server_dir"],
                log_dir=str(server.log_dir), memory_budget_bytes=state["memory_budget_bytes"])
    if not is_running(state):
        info["stale"] = True
        return info
    info.update(running=True, endpoint_url=endpoint.get("url"), endpoint_pid=endpoint.get("pid"),
                process_group=server.pgid, inference_url=server.inference_url,
                management_url=server.management_url)
    models = {name: {"target_model": m["target_model"], "artifact": m["artifact"], "state": "unloaded"}
              for name, m in state["models"].items()}
    info["models"] = models
    try:
        from mme.client.local import LocalBackend

        found = running_endpoint(directory)
        live = LocalBackend(found["url"], found["token"], found["target_models"], timeout=30).status()
    except Exception as exc:  # noqa: BLE001 - report, do not fail status
        info["error"] = f"the local endpoint does not answer: {exc}"
        return info
    info["used_bytes"] = live["used_bytes"]
    by_target = {m["target_model"]: m for m in live["models"]}
    for entry in models.values():
        entry.update({k: v for k, v in by_target.get(entry["target_model"], {}).items() if k != "target_model"})
    return info
