"""Handler settings (``model-config.yaml`` ``handler:`` section) and device selection."""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Mapping

import torch


class ConfigError(ValueError):
    """Invalid handler configuration: raised at model load, so registration fails loudly."""


class Settings:
    """Typed, read-only view of ``context.model_yaml_config["handler"]``.

    Getters validate types and bounds and raise :class:`ConfigError` on a bad value, so a
    misconfigured model fails at load instead of at the first request.
    """

    def __init__(self, values: Mapping[str, Any] | None = None):
        self._values = dict(values or {})

    @classmethod
    def from_context(cls, context: Any) -> "Settings":
        """Read the ``handler:`` mapping of the model's YAML config (empty if absent)."""
        cfg = getattr(context, "model_yaml_config", None) or {}
        handler = cfg.get("handler") if isinstance(cfg, Mapping) else None
        if handler is not None and not isinstance(handler, Mapping):
            raise ConfigError("model-config.yaml 'handler' must be a mapping")
        return cls(handler or {})

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def as_dict(self) -> dict:
        """A copy of the raw values."""
        return dict(self._values)

    def get(self, key: str, default: Any = None) -> Any:
        """Raw value (``default`` when absent or null)."""
        value = self._values.get(key)
        return default if value is None else value

    def get_int(self, key: str, default: int, min: int | None = None, max: int | None = None) -> int:
        """Integer setting with inclusive bounds."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"handler.{key} must be an integer, got {value!r}")
        if (min is not None and value < min) or (max is not None and value > max):
            raise ConfigError(f"handler.{key}={value} is outside [{min}, {max}]")
        return value

    def get_float(self, key: str, default: float, min: float | None = None, max: float | None = None) -> float:
        """Number setting with inclusive bounds."""
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"handler.{key} must be a number, got {value!r}")
        if (min is not None and value < min) or (max is not None and value > max):
            raise ConfigError(f"handler.{key}={value} is outside [{min}, {max}]")
        return float(value)

    def get_bool(self, key: str, default: bool) -> bool:
        """Boolean setting."""
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"handler.{key} must be true or false, got {value!r}")
        return value

    def get_str(self, key: str, default: str | None, choices: tuple | None = None) -> str | None:
        """String setting, optionally restricted to ``choices``."""
        value = self.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"handler.{key} must be a string, got {value!r}")
        if choices is not None and value not in choices:
            raise ConfigError(f"handler.{key}={value!r} is not one of {list(choices)}")
        return value

    def get_dict(self, key: str) -> dict:
        """Mapping setting (empty dict when absent)."""
        value = self.get(key, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"handler.{key} must be a mapping, got {value!r}")
        return dict(value)


def select_device(context: Any, settings: Settings | None = None) -> torch.device:
    """The torch device for this worker.

    ``handler.device``: ``auto`` (default: the GPU TorchServe assigned to this worker,
    ``cuda:<gpu_id>``, when CUDA is available, else CPU), ``cpu`` or ``cuda``.
    """
    choice = (settings or Settings()).get_str("device", "auto", choices=("auto", "cpu", "cuda"))
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("handler.device is 'cuda' but CUDA is not available")
    props = getattr(context, "system_properties", None) or {}
    gpu_id = props.get("gpu_id")
    return torch.device(f"cuda:{int(gpu_id)}" if gpu_id is not None else "cuda")


def resolve_file(model_dir: str, pattern: str | list | tuple, what: str, required: bool = True) -> str | None:
    """Resolve a path (relative to the model dir) or glob(s) to exactly one existing file.

    ``pattern`` may be a list: the first entry that matches wins. Raises :class:`ConfigError`
    when nothing matches (and ``required``) or a glob matches several files.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    for pat in patterns:
        matches = sorted(glob.glob(os.path.join(model_dir, pat)))
        matches = [m for m in matches if os.path.isfile(m)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ConfigError(f"{what}: {pat!r} matches several files: {[os.path.relpath(m, model_dir) for m in matches]}")
    if required:
        raise ConfigError(f"{what}: no file matches {patterns} under {model_dir}")
    return None


def load_json_overrides(model_dir: str, rel_path: str | None) -> dict:
    """Load an optional JSON object file (e.g. ``weights/arch.json`` written by the tiny builders)."""
    if not rel_path:
        return {}
    path = os.path.join(model_dir, rel_path)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ConfigError(f"{rel_path} must hold a JSON object")
    return data
