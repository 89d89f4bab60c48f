"""Serve a model the way a TorchServe worker does, without the frontend: a model dir with the
archive layout, the handler class imported from its ``handler.py``, a real ``ts.context.Context``.

Kept in ``bench/`` (a small copy of what ``tests/handlers`` does) so the runner depends on no test
module.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
MODEL_SOURCES = REPO / "model_sources"


def read_model_config(name: str, sources: Path = MODEL_SOURCES) -> dict:
    """``<sources>/<name>/model-config.yaml`` as a dict (empty when the file is missing)."""
    path = Path(sources) / name / "model-config.yaml"
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else {}


def assemble_model_dir(name: str, weights_dir: Path, dest: Path, handler_overrides: dict | None = None,
                       sources: Path = MODEL_SOURCES) -> tuple[Path, dict]:
    """Lay out ``dest/<name>`` as the archive's root (CONVENTIONS "Archive layout"), from the
    model sources under ``sources`` (default: this checkout's ``model_sources/``; another version's
    folder measures that version).

    Sources are copied (handler.py, model-config.yaml, helper modules, the common package flat at
    the root); ``weights/`` is a symlink to ``weights_dir`` (GBs for the full-size models).
    Returns the model dir and the YAML config dict with ``handler_overrides`` merged into
    ``handler:`` (what ``context.model_yaml_config`` carries).
    """
    model_dir = dest / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    sources = Path(sources)
    for src_root in (sources / "common", sources / name):
        for entry in src_root.iterdir():
            if entry.name in ("__pycache__", "weights.yaml") or entry.name.endswith(".pyc"):
                continue
            target = model_dir / entry.name
            if entry.is_dir():
                shutil.copytree(entry, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(entry, target)
    os.symlink(Path(weights_dir).resolve(), model_dir / "weights", target_is_directory=True)
    cfg = read_model_config(name, sources)
    handler_cfg = dict(cfg.get("handler") or {})
    handler_cfg.update(handler_overrides or {})
    cfg["handler"] = handler_cfg
    (model_dir / "MAR-INF").mkdir()
    (model_dir / "MAR-INF" / "MANIFEST.json").write_text(json.dumps({
        "createdOn": time.strftime("%d/%m/%Y %H:%M:%S"), "runtime": "python",
        "model": {"modelName": name, "handler": "handler.py", "modelVersion": "1.0",
                  "configFile": "model-config.yaml"},
        "archiverVersion": "0.12.0"}, indent=2))
    return model_dir, cfg


def make_context(name: str, model_dir: Path, yaml_config: dict, device: str, batch_size: int = 1):
    """A real ``ts.context.Context`` as the TorchServe 0.12 worker builds it (gpu id 0 on CUDA)."""
    from ts.context import Context

    manifest = json.loads((Path(model_dir) / "MAR-INF" / "MANIFEST.json").read_text())
    gpu = 0 if device == "cuda" else None
    return Context(name, str(model_dir), manifest, batch_size, gpu, "0.12.0", model_yaml_config=yaml_config)


def load_handler_class(model_dir: Path, module_name: str = "handler"):
    """Import ``handler.py`` from the model dir (model dir first on ``sys.path``, as TorchServe's
    worker does) and return the one class it defines."""
    if str(model_dir) not in sys.path:
        sys.path.insert(0, str(model_dir))
    module = importlib.import_module(module_name)
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    if len(classes) != 1:
        raise RuntimeError(f"{model_dir}/handler.py must define exactly one class, found {[c.__name__ for c in classes]}")
    return classes[0]


def serve(handler: Any, ctx: Any, bodies: list) -> list[tuple[int, Any]]:
    """One TorchServe batch through ``handler.handle``: returns ``(status, parsed body)`` per request."""
    from ts.context import RequestProcessor

    rows = [{"body": b if isinstance(b, (bytes, bytearray)) else json.dumps(b).encode("utf-8")} for b in bodies]
    ctx.request_processor = [RequestProcessor({}) for _ in rows]
    responses = handler.handle(rows, ctx)
    out = []
    for i, resp in enumerate(responses):
        status = ctx.request_processor[i].get_response_status_code()
        try:
            body = json.loads(resp) if isinstance(resp, (str, bytes, bytearray)) else resp
        except ValueError:
            body = resp
        out.append((status, body))
    return out
