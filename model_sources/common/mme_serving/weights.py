"""Fast, lean model loading for the handlers (cold starts on a multi-model endpoint).

What the handlers do at load, and why:

1. **No random initialisation.** Modules are built with their parameters on the ``meta`` device
   (:func:`empty`; diffusers and transformers models from their configs under accelerate's
   ``init_empty_weights``, see ``sd_pipeline``): no memory is allocated and no initialiser runs
   for weights that the checkpoint replaces anyway.
2. **No copy of the checkpoint in memory.** ``.pth``/``.ckpt`` files are memory-mapped
   (``torch.load(mmap=True, weights_only=True)``): tensors are views of the file's pages;
   ``.safetensors`` files are mapped by the safetensors library.
3. **Assign, do not copy** (``load_state_dict(assign=True, strict=True)``), then **move to the
   device once** (only tensors not already there move).
4. **Disk reads overlap the work**: a :class:`ReadAhead` thread reads the weight files in order,
   in large sequential reads, while the main thread unpickles, builds and converts; page faults on
   the mapped files then hit the page cache instead of waiting for small synchronous reads.
5. On CPU the mapped pages are **faulted in at load** (:func:`fault_in`), so the first request
   does not pay the disk reads and memory figures after load include the weights.

All of it uses APIs present in torch 2.6 (the serving image's): ``mmap`` and ``assign`` are 2.1+.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .config import ConfigError

_PAGE = 4096
_CHUNK = 8 << 20


class ReadAhead:
    """Read ``paths`` once, in order, on a background thread (the reads release the GIL), so the
    page cache holds them by the time the loader touches them. Use as a context manager: leaving
    it waits for the thread (no thread outlives the load). Errors are ignored: the loader reads
    the files itself and reports its own."""

    def __init__(self, paths: Iterable[str | os.PathLike]):
        self.paths = [os.fspath(p) for p in paths]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="weights-read-ahead", daemon=True)

    def _run(self) -> None:
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        for path in self.paths:
            try:
                with open(path, "rb", buffering=0) as fh:
                    while not self._stop.is_set() and fh.readinto(view):
                        pass
            except OSError:
                continue

    def __enter__(self) -> "ReadAhead":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def empty(factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()`` built on the meta device: parameters and buffers without storage."""
    with torch.device("meta"):
        return factory()


def torch_checkpoint(path: str, pickle_module=None) -> dict:
    """A ``torch.save`` checkpoint, memory-mapped. Tensors only (``weights_only``), unless a
    ``pickle_module`` that resolves other globals safely is given."""
    if pickle_module is None:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    return torch.load(path, map_location="cpu", mmap=True, weights_only=False, pickle_module=pickle_module)


def assign(module: nn.Module, state: dict, device: torch.device, strict: bool = True) -> nn.Module:
    """Load ``state`` into ``module`` (built by :func:`empty`) by assignment, move whatever is not
    on ``device`` yet (once), check no tensor was left without storage, fault in mapped pages on
    CPU. Returns the module in eval mode."""
    module.load_state_dict(state, strict=strict, assign=True)
    module.to(device)
    missing = [name for name, t in _tensors(module) if t.is_meta]
    if missing:
        raise ConfigError(f"{type(module).__name__}: no weights for {missing[:5]} (not in the checkpoint)")
    if device.type == "cpu":
        fault_in(module)
    return module.eval()


def _tensors(module: nn.Module):
    yield from module.named_parameters()
    yield from module.named_buffers()


def fault_in(module: nn.Module) -> None:
    """Touch one byte per page of every CPU tensor of ``module``: memory-mapped weights are mapped
    in (from the page cache, or the disk) now rather than on the first request."""
    with torch.no_grad():
        for _, tensor in _tensors(module):
            if tensor.device.type == "cpu" and tensor.numel() and tensor.is_contiguous():
                tensor.reshape(-1).view(torch.uint8)[::_PAGE].max()
