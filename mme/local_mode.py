"""``mme local up|down|status``: the editing models on a local TorchServe, in the background.

``up`` packages the enabled models with the project's packager (the same archives the endpoint
serves), starts TorchServe on 127.0.0.1 (token authorization on) in its own process session so it
outlives the command, registers every model and records the state; ``up`` again finds it running
and only registers what is missing. ``down`` stops it and makes sure no process of its session is
left. ``status`` says what runs where.

State directory (one local server per user): ``--state-dir``, else ``$MME_STATE_DIR``, else
``$XDG_STATE_HOME/mme``, else ``~/.local/state/mme``::

    local.json        what runs: server dir, weights, models -> archive (written by ``up``)
    server/           TorchServe's working dir: config.properties, key_file.json (the API keys),
                      logs/, model_store/, tmp/, local_server.json (process group, ports)
    artifacts/        the packaged <name>-<digest>.tar.gz archives
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
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mme import paths

STATE_FILE = "local.json"
STATE_VERSION = 1
ALL_MODELS = ("sam", "lama", "sd")
REPO_ROOT = paths.REPO_ROOT
#: TorchServe settings shared with the serving image (container/config.properties); token auth and
#: the model API are handled by LocalServer (auth stays on locally).
SHARED_SETTINGS = ("max_request_size", "max_response_size", "default_startup_timeout", "unregister_model_timeout")

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


def read_state(override: str | os.PathLike | None = None) -> dict | None:
    """The recorded state of the local server, or None when ``up`` has not run (or ``down`` did)."""
    path = state_dir(override) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LocalModeError(f"{path} is unreadable ({exc}); remove it after checking no TorchServe is left") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise LocalModeError(f"{path} was written by another version of mme; run `mme local down` with that version")
    return state


def attach_server(state: dict):
    """A :class:`mme.local_server.LocalServer` handle on the recorded server (not started here)."""
    from mme.local_server import LocalServer

    server_dir = Path(state["server_dir"])
    try:
        return LocalServer.attach(server_dir)
    except FileNotFoundError:
        server = LocalServer(server_dir)  # stopped: no process group recorded
        return server
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
        models = tuple(m for m in context.get("enabledModels", ALL_MODELS) if m in ALL_MODELS)
        return models or ALL_MODELS
    except (OSError, ValueError, AttributeError):
        return ALL_MODELS


def parse_models(text: str | None) -> tuple[str, ...]:
    """``"sam,lama"`` -> ``("sam", "lama")`` (checked); None -> :func:`enabled_models`."""
    if text is None:
        return enabled_models()
    models = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in models if m not in ALL_MODELS]
    if unknown or not models:
        raise LocalModeError(f"unknown model(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(ALL_MODELS)}")
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


def _server_config() -> dict[str, str]:
    config = {}
    path = REPO_ROOT / "container" / "config.properties"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return config
    for raw in lines:
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            if key.strip() in SHARED_SETTINGS:
                config[key.strip()] = value.strip()
    return config


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------
def up(weights: str = "tiny", models: Iterable[str] | None = None, *, state_override=None,
       report: Reporter = lambda message: None, start_timeout: float = 180.0) -> tuple[dict, bool]:
    """Start (or find) the local server with ``models`` registered; returns ``(state, already_running)``."""
    from mme.local_server import LocalServer, LocalServerError

    models = tuple(models or enabled_models())
    directory = state_dir(state_override)
    weights_label = "tiny" if weights == "tiny" else str(Path(weights).expanduser().resolve())
    with _locked(directory):
        state = read_state(directory)
        if state is not None:
            server = attach_server(state)
            if server.is_running():
                if state["weights"] != weights_label:
                    raise LocalModeError(f"the local server already runs with weights {state['weights']}; "
                                         "run `mme local down` first to switch")
                missing = [m for m in models if m not in state["models"]]
                if missing:
                    raise LocalModeError(f"the local server runs {', '.join(state['models'])}, not "
                                         f"{', '.join(missing)}; run `mme local down` first to change models")
                _register_missing(server, state, report)
                return state, True
            report("a previous local server is gone; cleaning up its state")
            _stop(server)
            (directory / STATE_FILE).unlink(missing_ok=True)

        found = tiny_weights(models, report) if weights == "tiny" else dir_weights(weights, models)
        packaged = package_models(found, directory / "artifacts", report)
        report("starting TorchServe on 127.0.0.1")
        server = LocalServer(directory / "server", config=_server_config(), start_timeout=start_timeout)
        state = {"version": STATE_VERSION, "server_dir": str(server.workdir), "weights": weights_label,
                 "models": packaged, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        # recorded before the start: if this command is killed while TorchServe starts, `down` still
        # finds the server (its process group is in server/local_server.json from the spawn on)
        (directory / STATE_FILE).write_text(json.dumps(state, indent=2))
        try:
            try:
                server.start()
            except LocalServerError as exc:
                raise LocalModeError(f"TorchServe did not start: {exc}") from None
            _register_missing(server, state, report)
        except BaseException:
            _stop(server)
            (directory / STATE_FILE).unlink(missing_ok=True)
            raise
        return state, False


def _register_missing(server, state: dict, report: Reporter) -> None:
    from mme.local_server import LocalServerError

    try:
        registered = set(server.models())
        for name, info in state["models"].items():
            if name in registered:
                continue
            report(f"registering {name}")
            started = time.monotonic()
            server.register(info["artifact"], name)
            report(f"registered {name} in {time.monotonic() - started:.1f}s")
    except (LocalServerError, OSError) as exc:
        raise LocalModeError(f"registering the models failed: {exc} (logs: {server.log_dir})") from None


def _stop(server) -> None:
    from mme.local_server import LocalServerError

    try:
        server.stop()
    except LocalServerError as exc:
        raise LocalModeError(str(exc)) from None


def down(*, state_override=None) -> bool:
    """Stop the local server; True if one was running. Leaves no process of its session behind."""
    directory = state_dir(state_override)
    with _locked(directory):
        state = read_state(directory)
        if state is None:
            return False
        server = attach_server(state)
        was_running = server.is_running()
        _stop(server)
        (directory / STATE_FILE).unlink(missing_ok=True)
        return was_running


def status(*, state_override=None) -> dict:
    """What runs: ``{"running", "state_dir", ...}`` (models with their TorchServe status)."""
    directory = state_dir(state_override)
    state = read_state(directory)
    info: dict = {"running": False, "state_dir": str(directory)}
    if state is None:
        return info
    server = attach_server(state)
    info.update(weights=state["weights"], started_at=state.get("started_at"), server_dir=state["server_dir"],
                log_dir=str(server.log_dir))
    if not server.is_running():
        info["stale"] = True
        return info
    info.update(running=True, process_group=server.pgid, inference_url=server.inference_url,
                management_url=server.management_url, key_file=str(server.workdir / "key_file.json"))
    models = {}
    try:
        registered = set(server.models())
    except Exception as exc:  # noqa: BLE001 - report, do not fail status
        info["error"] = f"management API not answering: {exc}"
        registered = set()
    for name, model in state["models"].items():
        entry = {"target_model": model["target_model"], "artifact": model["artifact"],
                 "registered": name in registered}
        if name in registered:
            try:
                workers = server.describe(name)[0].get("workers", [])
                entry["workers"] = [w.get("status") for w in workers]
            except Exception:  # noqa: BLE001
                entry["workers"] = []
        models[name] = entry
    info["models"] = models
    return info
