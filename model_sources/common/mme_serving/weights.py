"""Fast, lean model loading for the handlers (cold starts on a multi-model endpoint).

What the handlers do at load, and why:

1. **No random initialisation.** Modules are built with their parameters on the ``meta`` device
   (:func:`empty`; diffusers and transformers models from their configs under accelerate's
   ``init_empty_weights``, see ``sd_pipeline``) with the initialisers turned off
   (:func:`meta_initialisers_skipped`): no memory is allocated and no initialiser runs for
   weights that the checkpoint replaces anyway.
2. **No copy of the checkpoint in memory.** ``.pth``/``.ckpt`` files are memory-mapped
   (``torch.load(mmap=True)``: SAM's with ``weights_only=True``, :func:`torch_checkpoint`;
   LaMa's Lightning checkpoints with a restricted unpickler, ``big_lama.read_state_dict``):
   tensors are views of the file's pages; ``.safetensors`` files are mapped by the safetensors
   library.
3. **Assign, do not copy** (``load_state_dict(assign=True, strict=True)``), then **move to the
   device once** (only tensors not already there move).
4. **Disk reads overlap the work**: a :class:`ReadAhead` thread reads the weight files in order,
   in large sequential reads, while the main thread unpickles, builds and converts; page faults on
   the mapped files then hit the page cache instead of waiting for small synchronous reads.
5. On CPU the mapped pages are **faulted in at load** (:func:`fault_in`), so the first request
   does not pay the disk reads and memory figures after load include the weights.
6. **The collector leaves the imports alone.** Before the first load in a process, the objects
   alive then (the imported libraries: about 500,000 for SD's diffusers + transformers) are moved
   to the garbage collector's permanent generation (:func:`freeze_imported_objects`, Python's
   ``gc.freeze``): building a model allocates enough objects to start a full collection, and on
   SD's load one full collection re-scanned all of them for 0.3 s. They are never freed anyway (a
   TorchServe worker serves one model for its life), and the collections while serving skip them
   too.

All of it uses APIs present in torch 2.6 (the serving image's): ``mmap`` and ``assign`` are 2.1+.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
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


# The initialisers of torch.nn.init that modules call from ``reset_parameters``.
_INITIALISERS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                 "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                 "sparse_")


@contextlib.contextmanager
def meta_initialisers_skipped():
    """``torch.nn.init``'s initialisers return meta tensors untouched (they would only compute
    nothing on them; for big-lama's 225 convolutions that is a third of the build). Any other
    tensor is initialised as usual. transformers' ``no_init_weights`` patches the same functions,
    but for every tensor and inside a library the LaMa and SAM handlers do not import; accelerate's
    ``init_empty_weights`` leaves the initialisers running. Patched for the build only, on the
    loading thread (a handler loads one model, on one thread)."""
    saved = {name: getattr(nn.init, name) for name in _INITIALISERS if hasattr(nn.init, name)}

    def skip_on_meta(original):
        @functools.wraps(original)
        def initialiser(tensor, *args, **kwargs):
            return tensor if tensor.is_meta else original(tensor, *args, **kwargs)
        return initialiser

    try:
        for name, original in saved.items():
            setattr(nn.init, name, skip_on_meta(original))
        yield
    finally:
        for name, original in saved.items():
            setattr(nn.init, name, original)


_frozen = False


def freeze_imported_objects() -> None:
    """``gc.freeze()`` once per process (see point 6 above); later calls do nothing, so objects
    of earlier loads in a long-lived process (tests, a notebook) stay collectable. They are
    unfrozen at exit: the interpreter's last collection then finalises them as usual (extension
    libraries such as triton's report frozen objects as leaked)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()
        atexit.register(gc.unfreeze)


def empty(factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()`` built on the meta device: parameters and buffers without storage, and no
    initialiser run on them."""
    with meta_initialisers_skipped(), torch.device("meta"):
        return factory()


def torch_checkpoint(path: str) -> dict:
    """A ``torch.save`` checkpoint of tensors, memory-mapped, read with torch's weights-only
    unpickler."""
    return torch.load(path, map_location="cpu", mmap=True, weights_only=True)


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
