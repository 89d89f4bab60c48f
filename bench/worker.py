"""One measurement in its own process (one model, one variant), as a TorchServe worker serves one
model: ``python -m bench.worker SPEC.json RESULT.json``.

Steps: CUDA context / memory baseline -> read the weight bytes from disk (page cache dropped for
those files first) -> import the handler module -> ``initialize(context)`` timed with the page
cache dropped again (load = artifact dir -> ready) -> for each request type: untimed priming and
warm-up requests, then timed ``handle`` calls, each checked for status 200 and a
``generated_image`` -> peaks of memory per phase -> JSON.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def weight_files(weights_dir: Path) -> list[Path]:
    """The files a handler reads at load: everything under ``weights/``, except default-precision
    ``.safetensors``/``.bin`` where an ``fp16`` variant sits next to them (the handler loads the
    variant)."""
    files = sorted(p for p in Path(weights_dir).resolve().rglob("*") if p.is_file())
    out = []
    for p in files:
        if p.suffix in (".safetensors", ".bin") and ".fp16." not in p.name:
            if any(".fp16." in q.name for q in p.parent.iterdir()):
                continue
        out.append(p)
    return out


def drop_page_cache(files: list[Path]) -> None:
    """Ask the kernel to evict these files from the page cache (fsync first: dirty pages stay)."""
    for p in files:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            try:
                os.fsync(fd)
            except OSError:
                pass
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_all(files: list[Path], chunk: int = 16 << 20) -> tuple[int, float]:
    """Read every byte of ``files``; returns (bytes, seconds)."""
    total = 0
    buf = bytearray(chunk)
    view = memoryview(buf)
    start = time.perf_counter()
    for p in files:
        with open(p, "rb", buffering=0) as fh:
            while True:
                n = fh.readinto(view)
                if not n:
                    break
                total += n
    return total, time.perf_counter() - start


def percentile(samples: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of a non-empty list."""
    import numpy as np

    return float(np.percentile(np.asarray(samples, dtype=float), q))


def run(spec: dict) -> dict:
    """Execute one measurement ``spec`` (see :mod:`bench.run`) and return its result dict."""
    import torch

    from bench.memory import MemoryProbe
    from bench.serving import make_context

    device = spec["device"]
    threads = spec.get("threads") or 0
    if threads:
        torch.set_num_threads(threads)
    result: dict = {"variant": spec["variant"], "label": spec["label"], "settings": spec.get("settings", {}),
                    "requests": {}, "error": None}
    probe = MemoryProbe(device)
    model_dir = Path(spec["model_dir"])
    result["weights"] = read_weights(weight_files(model_dir / "weights"))
    ctx = make_context(spec["model"], model_dir, spec["yaml_config"], device)
    handler, load_memory = _load(spec, ctx, probe, result)

    inference_peaks = []
    for rt_dict in spec["requests"]:
        peak = _measure_requests(handler, ctx, spec["variant"], rt_dict, probe, result["requests"])
        if peak is not None:
            inference_peaks.append(peak)
    result["memory"] = _memory(probe, device, load_memory, inference_peaks)
    if spec.get("implementation", spec["variant"]) == "handler":
        result["handler_info"] = {k: str(getattr(handler, k)) for k in
                                  ("encoder_dtype", "scheduler_name", "default_steps", "kind", "device")
                                  if hasattr(handler, k)}
    return result


def read_weights(files: list[Path]) -> dict:
    """Disk: the mean of two consecutive cold reads of the weight files (then a warm one), dropped
    from the page cache again for the load. Two: on a virtual disk, consecutive cold reads of the
    same file can alternate between two speeds (e.g. 1.5 s and 3.0 s for 2.4 GB, read after read),
    so one read would tell which of the two the load is compared with rather than the disk's."""
    reads = []
    for _ in range(2):
        drop_page_cache(files)
        nbytes, seconds = read_all(files)
        reads.append(seconds)
    cold_s = sum(reads) / len(reads)
    _, warm_s = read_all(files)
    drop_page_cache(files)
    return {"files": len(files), "bytes": nbytes, "read_cold_s": cold_s, "read_cold_each_s": reads,
            "read_warm_s": warm_s, "read_cold_mib_s": nbytes / (1 << 20) / cold_s if cold_s else None,
            "cache_dropped": bool(cold_s > 1.5 * warm_s) if nbytes > (64 << 20) else None}


def _load(spec: dict, ctx, probe, result: dict):
    """Import the handler (or baseline) class and time ``initialize``; returns (handler, memory
    figures of the load) and records the times in ``result``."""
    import torch

    from bench.serving import load_handler_class

    t0 = time.perf_counter()
    if spec.get("implementation", spec["variant"]) == "handler":
        cls = load_handler_class(Path(spec["model_dir"]))
    else:
        sys.path.insert(0, str(REPO))
        from bench.baselines import BASELINES

        cls = BASELINES[spec["model"]]
    handler = cls()
    import_s = time.perf_counter() - t0

    probe.reset_peak()
    before_load = probe.current_mib()
    t0 = time.perf_counter()
    handler.initialize(ctx)
    if spec["device"] == "cuda":
        torch.cuda.synchronize()
    load_s = time.perf_counter() - t0
    cold_s, warm_s = result["weights"]["read_cold_s"], result["weights"]["read_warm_s"]
    result.update(import_s=import_s, load_s=load_s, ready_s=import_s + load_s,
                  load_to_cold_read_ratio=load_s / cold_s if cold_s else None,
                  load_to_warm_read_ratio=load_s / warm_s if warm_s else None)
    return handler, {"before_load_mib": before_load, "peak": probe.peak(), "loaded_mib": probe.current_mib()}


def _measure_requests(handler, ctx, variant: str, rt_dict: dict, probe, requests: dict) -> dict | None:
    """One request type: priming and warm-up, then the timed requests (wall and CPU time, steps
    where asked), each response checked. Records the entry in ``requests``; returns the memory
    peak over them (``None`` when they failed)."""
    from bench.serving import serve
    from bench.stages import StageTimer
    from bench.workloads import RequestType, build_bodies

    rt = RequestType.from_dict(rt_dict)
    entry: dict = {"description": rt.description, "params": rt.params, "n": rt.iterations, "warmup": rt.warmup}
    requests[rt.name] = entry
    probe.reset_peak()  # a peak per request type; the inference peak is the largest
    try:
        prime, bodies = build_bodies(rt, variant, rt.warmup + rt.iterations)
        for body in prime + bodies[:rt.warmup]:
            _check(serve(handler, ctx, [body]), rt.name)
        samples, cpu_samples, stage_samples = [], [], []
        with StageTimer(handler, rt.params.get("stages") or []) as stages:
            for body in bodies[rt.warmup:]:
                stages.take()
                c, t = time.process_time(), time.perf_counter()
                responses = serve(handler, ctx, [body])
                samples.append((time.perf_counter() - t) * 1000.0)
                cpu_samples.append((time.process_time() - c) * 1000.0)
                stage_samples.append(stages.take())
                _check(responses, rt.name)
        if rt.params.get("stages"):
            entry["stages_p50_ms"] = _stage_p50(stage_samples, samples)
        peak = probe.peak()
        # process CPU time per request (all threads): it shows the work done, which wall time
        # hides behind any other load on the machine
        entry.update(samples_ms=samples, p50_ms=percentile(samples, 50), p95_ms=percentile(samples, 95),
                     mean_ms=sum(samples) / len(samples), min_ms=min(samples), max_ms=max(samples),
                     cpu_samples_ms=cpu_samples, cpu_p50_ms=percentile(cpu_samples, 50),
                     peak_mib=peak["peak_mib"])
        return peak
    except Exception as exc:  # noqa: BLE001 - recorded, the other request types still run
        entry["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        return None


def _memory(probe, device: str, load: dict, inference_peaks: list[dict]) -> dict:
    """The run's memory figures: before and after load, the load's and the requests' peaks, and
    the footprint (GPU: CUDA context + reserved peak; CPU: the larger RSS peak)."""
    load_peak = load["peak"]
    inf_peak = max((p["peak_mib"] for p in inference_peaks), default=None)
    mem = {"metric": probe.metric, "unit": "MiB", "before_load_mib": load["before_load_mib"],
           "loaded_mib": load["loaded_mib"], "load_peak_mib": load_peak["peak_mib"], "inference_peak_mib": inf_peak,
           "peak_window_reset": probe.peak_resets}
    if device == "cuda":
        reserved = max([load_peak["reserved_peak_mib"]] + [p["reserved_peak_mib"] for p in inference_peaks])
        from bench.memory import _status_kib

        mem.update(context_mib=probe.context_mib, reserved_peak_mib=reserved,
                   host_rss_peak_mib=(_status_kib("VmHWM") or 0) / 1024,
                   device_used_peak_mib=max([load_peak["device_used_mib"]]
                                            + [p["device_used_mib"] for p in inference_peaks]),
                   footprint_mib=probe.context_mib + reserved, gpu_total_mib=probe.total_mib)
    else:
        mem["footprint_mib"] = max(load_peak["peak_mib"], inf_peak or 0)
    return mem


def _stage_p50(stage_samples: list[dict], totals: list[float]) -> dict:
    """p50 per step, and of ``other`` (each request's wall time minus its steps)."""
    names = list(stage_samples[0]) if stage_samples else []
    out = {name: percentile([s[name] for s in stage_samples], 50) for name in names}
    out["other"] = percentile([total - sum(s.values()) for s, total in zip(stage_samples, totals)], 50)
    return out


def _check(responses: list, name: str) -> None:
    for status, body in responses:
        if status != 200 or not isinstance(body, dict) or "generated_image" not in body:
            detail = body.get("error") if isinstance(body, dict) else str(body)[:200]
            raise RuntimeError(f"{name}: status {status}: {detail}")


def environment(device: str) -> dict:
    """Describe the machine and software of this run."""
    import torch

    info = {"kind": device, "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
        with open("/proc/meminfo", encoding="utf-8") as fh:
            info["memory_gib"] = round(int(fh.readline().split()[1]) / (1 << 20), 1)
    except (OSError, StopIteration, ValueError):
        pass
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, gpu_memory_mib=props.total_memory / (1 << 20), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    else:
        info["name"] = info.get("cpu", "cpu")
    for mod in ("diffusers", "transformers", "segment_anything"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            info[mod] = None
    return info


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.worker SPEC.json RESULT.json`` (``--env DEVICE OUT.json`` for the machine info)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, str(REPO))
    if argv and argv[0] == "--env":
        Path(argv[2]).write_text(json.dumps(environment(argv[1]), indent=2))
        return 0
    spec = json.loads(Path(argv[0]).read_text())
    try:
        result = run(spec)
    except Exception as exc:  # noqa: BLE001 - reported in the result file
        traceback.print_exc()
        result = {"variant": spec.get("variant"), "label": spec.get("label"), "error": f"{type(exc).__name__}: {exc}"}
    Path(argv[1]).write_text(json.dumps(result, indent=2))
    return 0 if not result.get("error") else 1


if __name__ == "__main__":
    raise SystemExit(main())
