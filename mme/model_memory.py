"""How much memory a loaded model holds, and how much this machine offers the local endpoint.

A model's size is what its TorchServe worker processes hold: resident memory (RSS, psutil) of each
worker and its child processes, plus the GPU memory ``nvidia-smi`` lists for them. ``nvidia-smi``
is asked only where it is on the PATH; without it (a CPU machine) GPU memory counts as 0.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterable

#: Share of the memory available at start that ``mme local up`` gives the models by default.
DEFAULT_BUDGET_SHARE = 0.9
_GPU_CACHE_S = 1.0
_gpu_lock = threading.Lock()
_gpu_cache: tuple[float, dict[int, int]] = (0.0, {})


def nvidia_smi(*query: str) -> list[list[str]]:
    """Rows of ``nvidia-smi QUERY --format=csv,noheader,nounits``; no rows where there is no
    NVIDIA GPU (or the tool fails). The local endpoint's memory accounting and the benches'
    machine description both read GPUs through it."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, *query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]


def gpu_memory_by_pid() -> dict[int, int]:
    """``{pid: bytes}`` of GPU memory per process (empty without ``nvidia-smi``); cached 1 s."""
    global _gpu_cache
    with _gpu_lock:
        stamp, cached = _gpu_cache
        if time.monotonic() - stamp < _GPU_CACHE_S:
            return cached
        found: dict[int, int] = {}
        for row in nvidia_smi("--query-compute-apps=pid,used_memory"):
            try:
                found[int(row[0])] = found.get(int(row[0]), 0) + int(float(row[1])) * 2**20
            except (ValueError, IndexError):
                continue
        _gpu_cache = (time.monotonic(), found)
        return found


def process_memory_bytes(pids: Iterable[int]) -> int:
    """Resident memory of these processes and their descendants, plus their GPU memory."""
    import psutil

    gpu = gpu_memory_by_pid()
    total = 0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        for member in family:
            try:
                total += member.memory_info().rss + gpu.get(member.pid, 0)
            except psutil.Error:
                continue
    return total


def default_memory_budget() -> int:
    """90% of the memory available now: RAM, plus free GPU memory where there are GPUs."""
    import psutil

    free_gpu = 0
    for row in nvidia_smi("--query-gpu=memory.free"):
        try:
            free_gpu += int(float(row[0])) * 2**20
        except (ValueError, IndexError):
            continue
    return int(DEFAULT_BUDGET_SHARE * (psutil.virtual_memory().available + free_gpu))
