"""Test helpers of the sd handler tests: tiny weights, the sd handler module, request builders
(contexts, batches, PNG/base64, masks, packaging and the handler import come from
``handler_testlib``, which puts model_sources/common and model_sources/sd on sys.path as
TorchServe's model dir would have them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import handler_testlib
import numpy as np

SD_SOURCE = handler_testlib.SOURCES / "sd"


def load_handler_module():
    """model_sources/sd/handler.py as a module (imported once, by ``handler_testlib``)."""
    return sys.modules[handler_testlib.load_handler_class("sd").__module__]


def build_model_dir(root: Path, fp32_files: bool = True) -> Path:
    """A model dir holding the tiny pipeline under ``weights/`` (as the archive has it).

    ``fp32_files=False`` deletes the default-precision files, leaving only the fp16 variant
    (what a production archive that ships only the fp16 files looks like).
    """
    from mme.tiny.sd import build_tiny_sd

    model_dir = root / "model"
    build_tiny_sd(model_dir / "weights")
    if not fp32_files:
        for f in (model_dir / "weights").rglob("*.safetensors"):
            if ".fp16." not in f.name:
                f.unlink()
    return model_dir


def make_context(model_dir: Path, handler_settings: dict | None = None, batch_size: int = 1):
    """A real ``ts.context.Context`` for the sd model dir with these ``handler:`` settings."""
    yaml_cfg = {"batchSize": batch_size, "handler": dict(handler_settings or {})}
    return handler_testlib.make_context(model_dir, yaml_cfg, model_name="sd", batch_size=batch_size)


# One batch through handler.handle as TorchServe's worker sends it: [(status, json body)].
run_batch = handler_testlib.run_batch
b64_png = handler_testlib.b64_png
decode_png = handler_testlib.decode_b64_png
package_model = handler_testlib.package_model
rect_mask = handler_testlib.rect_mask


def noise_image(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A deterministic (h, w, 3) uint8 noise image."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def inpaint_request(image: np.ndarray, mask: np.ndarray, prompt: str = "a red vase on a table",
                    **gen_args: Any) -> dict:
    """A contract-shaped sd request (gen_args as an object)."""
    body = {"image": b64_png(image), "mask_image": b64_png(mask), "prompt": prompt}
    if gen_args:
        body["gen_args"] = gen_args
    return body
