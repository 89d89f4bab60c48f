"""Tiny random-weight variants of the served models, saved in the real on-disk formats.

``build(name, out_dir)`` writes the files of a model's ``weights/`` folder (as packaged into the
TorchServe archive) for ``sam``, ``lama`` or ``sd``, so the real loading, packaging and serving
code runs in tests and in ``mme local`` without downloading anything. Also runnable as
``python -m mme.tiny NAME OUT_DIR``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from mme.models import MODELS


def build(name: str, out_dir: str | Path, **options) -> list[Path]:
    """Write the tiny ``name`` model's weight files into ``out_dir`` (created if needed).

    Returns the paths written. ``options`` are passed to the model's builder (e.g. ``seed``;
    lama: ``fmt="ckpt"|"torchscript"``).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"{__name__}.{name}")  # sd imports diffusers: load lazily
    return list(module.build(out, **options))
