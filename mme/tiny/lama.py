"""Tiny LaMa: the project's big-lama generator class at toy width/depth with random weights.

``fmt="ckpt"`` (default) writes ``big-lama-tiny.ckpt`` shaped like the published Lightning
``best.ckpt`` (``state_dict`` with ``generator.``/``discriminator.`` keys plus non-tensor entries
including a pickled config object, as Lightning writes); ``fmt="torchscript"`` writes
``big-lama-tiny.pt``, a traced ``model(image, mask)`` module like IOPaint's ``big-lama.pt``.
Both come with ``arch.json`` (the generator hyper-parameters the lama handler reads).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mme.paths import model_sources_dir

TINY_ARCH = {"ngf": 8, "n_downsampling": 3, "n_blocks": 2, "ratio_g": 0.75}


@dataclass
class TrainingConfig:
    """Stands in for the OmegaConf config Lightning pickles into ``hyper_parameters``: an object
    the serving side cannot (and must not need to) import."""

    generator: dict = field(default_factory=dict)
    note: str = "tiny random-weight LaMa for tests"


def load_big_lama_module():
    """Import ``model_sources/lama/big_lama.py`` (the generator the handler serves)."""
    path = model_sources_dir() / "lama" / "big_lama.py"
    name = "mme_tiny_big_lama"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def make_generator(seed: int = 0, arch: dict = TINY_ARCH):
    """A randomly initialised generator (BN statistics randomised too, so eval mode is non-trivial)."""
    big_lama = load_big_lama_module()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = big_lama.FFCResNetGenerator(**{**big_lama.BIG_LAMA, **arch})
        for module in gen.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return gen.eval()


def build(out_dir: Path, seed: int = 0, fmt: str = "ckpt") -> list[Path]:
    """Write the tiny LaMa weights (``fmt``: ``ckpt`` or ``torchscript``) + ``arch.json``."""
    gen = make_generator(seed)
    arch = out_dir / "arch.json"
    arch.write_text(json.dumps(TINY_ARCH, indent=2) + "\n")
    if fmt == "ckpt":
        state = {f"generator.{k}": v for k, v in gen.state_dict().items()}
        state["discriminator.model0.0.weight"] = torch.zeros(4, 3, 3, 3)  # other modules live here too
        ckpt = {
            "epoch": 0, "global_step": 0, "pytorch-lightning_version": "1.2.9",
            "state_dict": state, "hyper_parameters": TrainingConfig(generator=dict(TINY_ARCH)),
        }
        path = out_dir / "big-lama-tiny.ckpt"
        torch.save(ckpt, path)
    elif fmt == "torchscript":
        big_lama = load_big_lama_module()
        wrapper = big_lama.LamaInpainter(gen).eval()
        example = (torch.rand(1, 3, 64, 64), (torch.rand(1, 1, 64, 64) > 0.5).float())
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.trace is deprecated": the format is the point
            traced = torch.jit.trace(wrapper, example, check_trace=False)
        path = out_dir / "big-lama-tiny.pt"
        traced.save(str(path))
    else:
        raise ValueError(f"fmt must be 'ckpt' or 'torchscript', got {fmt!r}")
    return [path, arch]
