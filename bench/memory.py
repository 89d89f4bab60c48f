"""Memory probes: peak GPU memory (CUDA caching allocator) or, on CPU, peak RSS.

CUDA: ``torch.cuda.max_memory_allocated`` (the peak the GPU targets are stated in), plus the allocator's
reserved peak and the CUDA context (device memory in use right after CUDA init, before any model:
this process alone on the GPU), whose sum is what the worker holds on the GPU as ``nvidia-smi``
would show it: ``footprint``.

CPU: the process's peak resident set (``VmHWM`` of ``/proc/self/status``), reset between phases by
writing ``5`` to ``/proc/self/clear_refs`` (Linux), so "during load" and "during inference" are
separate peaks. Falls back to ``ru_maxrss`` (lifetime peak) when the reset is not allowed.
"""

from __future__ import annotations

import resource

MiB = 1024 * 1024


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class MemoryProbe:
    """Snapshots of the process's memory on ``device`` ("cpu" or "cuda")."""

    def __init__(self, device: str):
        self.device = device
        self.context_mib = 0.0
        self.total_mib = 0.0
        self.peak_resets = True
        if device == "cuda":
            import torch

            torch.cuda.init()
            torch.zeros(1, device="cuda")  # create the context
            torch.cuda.synchronize()
            free, total = torch.cuda.mem_get_info()
            self.total_mib = total / MiB
            self.context_mib = (total - free) / MiB  # context (+ anything else on the device)
            self.metric = "cuda_max_memory_allocated"
        else:
            self.metric = "peak_rss"

    def current_mib(self) -> float:
        """Memory in use now (CUDA: allocated tensors; CPU: RSS)."""
        if self.device == "cuda":
            import torch

            return torch.cuda.memory_allocated() / MiB
        kib = _status_kib("VmRSS")
        return (kib or 0) / 1024

    def reset_peak(self) -> None:
        """Start a new peak window."""
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
        except OSError:
            self.peak_resets = False

    def peak(self) -> dict:
        """Peak since the last reset: ``{"peak_mib", ...}`` (CUDA adds reserved and device figures)."""
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            free, total = torch.cuda.mem_get_info()
            return {
                "peak_mib": torch.cuda.max_memory_allocated() / MiB,
                "reserved_peak_mib": torch.cuda.max_memory_reserved() / MiB,
                "device_used_mib": (total - free) / MiB,
            }
        kib = _status_kib("VmHWM") if self.peak_resets else None
        if kib is None:
            kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return {"peak_mib": kib / 1024}
