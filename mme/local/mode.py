"""``mme local up|down|status``: the editing models served locally the way the multi-model
endpoint serves them, in the background.

``up`` packages the enabled models (:mod:`mme.local.packaging`: the same ``<name>-<digest>.tar.gz``
archives, with the same ``TargetModel`` names, that the stack uploads), starts the serving
container and the local endpoint in front of it (:mod:`mme.local.endpoint`: ``InvokeEndpoint``
with a ``TargetModel``; models load on first use and the least recently used ones are unloaded
when the memory budget runs short), each in its own process session so they outlive the command,
and records the state (:mod:`mme.local.state`); ``up`` again finds them running. ``down`` stops
both and makes sure no process of their sessions (and no container) is left. ``status`` says
what runs where and what is loaded.

The serving container is TorchServe of this virtual environment started with the serving image's
settings (:mod:`mme.local.sagemaker_container`), or, with ``image=...``, the serving image itself
run by podman or docker (:mod:`mme.local.image_container`; ``make image`` builds
``localhost/mme-serving:dev``), GPUs passed through where the machine has them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from mme import paths
from mme.local import packaging, request_stats
from mme.local.processes import ProcessGroupError, group_alive, stop_process_group
from mme.local.state import (
    IMAGE,
    STATE_FILE,
    STATE_VERSION,
    TOKEN_FILE,
    VENV,
    LocalModeError,
    Reporter,
    attach_container,
    container_kind,
    locked,
    read_state,
    state_dir,
    write_state,
)
from mme.local.torchserve import LocalServerError

__all__ = ["LocalModeError", "down", "is_running", "running_endpoint", "status", "up"]

ENDPOINT_START_TIMEOUT_S = 60.0


# ---------------------------------------------------------------------------------------------
# the processes
# ---------------------------------------------------------------------------------------------
def _endpoint_alive(state: dict) -> bool:
    pid = (state.get("endpoint") or {}).get("pid")
    return bool(pid) and group_alive(int(pid))


def is_running(state: dict) -> bool:
    """True while both the serving container and the endpoint of ``state`` run."""
    return attach_container(state).is_running() and _endpoint_alive(state)


def _start_endpoint(directory: Path, state: dict, budget: int) -> None:
    """Start ``python -m mme.local.endpoint`` in its own session; wait until it listens."""
    from mme.local.endpoint import READY_FILE

    ready = directory / READY_FILE
    ready.unlink(missing_ok=True)
    log_path = Path(state["server_dir"]) / "logs" / "endpoint.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = str(paths.REPO_ROOT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mme.local.endpoint", "--state-dir", str(directory),
                                 "--memory-budget-bytes", str(budget)], cwd=directory, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    state["endpoint"] = {"pid": proc.pid, "url": None}
    write_state(directory, state)  # `down` finds it from here on
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
                    write_state(directory, state)
                    return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise LocalModeError(f"the local endpoint did not start within {ENDPOINT_START_TIMEOUT_S:.0f}s (log: {log_path})")


def _stop_all(directory: Path, state: dict) -> None:
    """Stop the endpoint, then the serving container; remove what only a running endpoint needs."""
    try:
        pid = (state.get("endpoint") or {}).get("pid")
        if pid:
            stop_process_group(int(pid))
        if state.get("server_dir"):
            attach_container(state).stop()
    except (LocalServerError, ProcessGroupError) as exc:
        raise LocalModeError(str(exc)) from None
    for name in (STATE_FILE, "endpoint.json", TOKEN_FILE):
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
        token = (directory / TOKEN_FILE).read_text().strip()
    except OSError as exc:
        raise LocalModeError(f"cannot read the endpoint token in {directory}: {exc.strerror or exc}") from None
    return {"url": state["endpoint"]["url"], "token": token,
            "target_models": {name: info["target_model"] for name, info in state["models"].items()}}


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------
def up(weights: str = "tiny", models: Iterable[str] | None = None, *, memory_budget_mib: int | None = None,
       image: str | None = None, state_override=None, report: Reporter = lambda message: None,
       start_timeout: float = 180.0) -> tuple[dict, bool]:
    """Start (or find) the local endpoint serving ``models``; returns ``(state, already_running)``.

    ``memory_budget_mib``: what the loaded models may hold together (default: 90% of the memory
    available now, see :mod:`mme.model_memory`). ``image``: serve with this container image (run
    by podman or docker) instead of the virtual environment's TorchServe."""
    models = tuple(models or packaging.enabled_models())
    directory = state_dir(state_override)
    weights_label = "tiny" if weights == "tiny" else str(Path(weights).expanduser().resolve())
    with locked(directory):
        state = read_state(directory, any_version=True)
        if state is not None and state.get("version") == STATE_VERSION and is_running(state):
            _check_same(state, weights_label, models, memory_budget_mib, image)
            return state, True
        if state is not None:
            report("a previous local endpoint is gone; cleaning up its state" if state.get("version") == STATE_VERSION
                   else "stopping the local server an earlier version of mme started")
            _stop_all(directory, state)
        found = (packaging.tiny_weights(models, report) if weights == "tiny"
                 else packaging.dir_weights(weights, models))
        packaged = packaging.package_models(found, directory / "artifacts", report)
        from mme.model_memory import default_memory_budget

        budget = memory_budget_mib * 2**20 if memory_budget_mib else default_memory_budget()
        container = {"kind": IMAGE, "image": image} if image else {"kind": VENV}
        return _start(directory, weights_label, packaged, budget, container, report, start_timeout), False


def _check_same(state: dict, weights_label: str, models: tuple[str, ...], memory_budget_mib: int | None,
                image: str | None) -> None:
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
    running = state["container"].get("image") if container_kind(state) == IMAGE else None
    if running != image:
        now = f"the image {running}" if running else "this virtual environment's TorchServe"
        raise LocalModeError(f"the local server runs {now}; run `mme local down` first to switch")


def _container(directory: Path, container: dict, start_timeout: float):
    """The serving container ``local.json`` records (not started)."""
    if container["kind"] == IMAGE:
        from mme.local.image_container import ImageContainer

        return ImageContainer(directory / "server", image=container["image"], models_dir=directory / "models",
                              start_timeout=start_timeout)
    from mme.local.sagemaker_container import SageMakerContainer

    return SageMakerContainer(directory / "server", start_timeout=start_timeout)


def _start(directory: Path, weights_label: str, packaged: dict, budget: int, container_info: dict,
           report: Reporter, start_timeout: float) -> dict:
    token_path = directory / TOKEN_FILE
    token_path.unlink(missing_ok=True)
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    container = _container(directory, container_info, start_timeout)
    state = {"version": STATE_VERSION, "server_dir": str(container.workdir), "weights": weights_label,
             "memory_budget_bytes": budget, "models": packaged, "container": container_info, "endpoint": None,
             "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    # recorded before the start: if this command is killed while the container starts, `down` still
    # finds it (its process group or container is recorded in server/ from the spawn on)
    write_state(directory, state)
    try:
        what = (f"the image {container_info['image']}" if container_info["kind"] == IMAGE
                else "TorchServe with the serving container's settings")
        report(f"starting {what} on 127.0.0.1")
        try:
            container.start()
        except LocalServerError as exc:
            raise LocalModeError(f"the serving container did not start: {exc}") from None
        report(f"starting the local endpoint (memory budget {budget / 2**20:,.0f} MiB)")
        _start_endpoint(directory, state, budget)
    except BaseException:
        _stop_all(directory, state)
        raise
    return state


def down(*, state_override=None) -> bool:
    """Stop the local endpoint and its serving container; True if they were running. Leaves no
    process of their sessions (and no container) behind."""
    directory = state_dir(state_override)
    with locked(directory):
        state = read_state(directory, any_version=True)
        if state is None:
            return False
        was_running = attach_container(state).is_running() or _endpoint_alive(state)
        _stop_all(directory, state)
        return was_running


def _endpoint_status(url: str, token: str) -> dict:
    """``GET /status`` of the local endpoint (:mod:`mme.local.endpoint`)."""
    request = urllib.request.Request(url + "/status", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def status(*, state_override=None) -> dict:
    """What runs: ``{"running", "state_dir", ...}`` with each model's state, size and counters."""
    directory = state_dir(state_override)
    state = read_state(directory)
    info: dict = {"running": False, "state_dir": str(directory)}
    if state is None:
        return info
    server = attach_container(state)
    endpoint = state.get("endpoint") or {}
    info.update(weights=state["weights"], started_at=state.get("started_at"), server_dir=state["server_dir"],
                log_dir=str(server.log_dir), memory_budget_bytes=state["memory_budget_bytes"],
                container=state.get("container") or {"kind": VENV})
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
        found = running_endpoint(directory)
        live = _endpoint_status(found["url"], found["token"])
    except Exception as exc:  # noqa: BLE001 - report, do not fail status
        info["error"] = f"the local endpoint does not answer: {exc}"
        return info
    info["used_bytes"] = live["used_bytes"]
    by_target = {m["target_model"]: m for m in live["models"]}
    for entry in models.values():
        entry.update({k: v for k, v in by_target.get(entry["target_model"], {}).items() if k != "target_model"})
    info["requests"] = _request_figures(server)
    return info


def _request_figures(server) -> dict:
    """Per-model figures from the handlers' request lines in the server's output (as the endpoint's
    per-model metrics count them); empty when the output cannot be read."""
    try:
        return request_stats.from_output(server.container_logs())
    except Exception:  # noqa: BLE001 - status reports what it can
        return {}
