"""Load and soak of the local multi-model endpoint (``mme local``): concurrent clients for a fixed
time, mixed select / erase / replace, and a run that forces evictions.

Examples::

    # the default runs: 32 clients, 128 clients, then 32 clients with a budget for two models
    python -m bench.load --out bench/results/load-cpu.json --write-docs
    # one run, shorter
    python -m bench.load --runs steady:32 --duration 30 --out /tmp/load.json

What one run does: the local endpoint (``mme.local.mode.up``: TorchServe with the serving
container's settings behind the platform emulator) serves the tiny models (or ``--weights DIR``);
each model is loaded and warmed first; then ``N`` client threads send requests back to back for
``--duration`` seconds through :class:`mme.client.LocalBackend` (one kept-alive connection each, no
retries: every status is counted as it came). A client that gets a 503 (the container's queue is
full: explicit backpressure) waits 0.5 s before its next request. The request mix is an editing
session's: mostly clicks, some erases, some replaces (``--mix``), on photo-sized JPEGs (640x480,
1024x768, 768x1024) with PNG masks; replace runs 2 denoising steps (the load is about serving, not
denoising). Every 2 s the endpoint's status gives each worker's memory (resident + GPU) and pid.

``evict:N`` runs: the budget holds the two largest models measured in the warm-up (+5%), not three,
and traffic goes to all three: requests for the unloaded model wait for its load (and the least
recently used model is unloaded), which the status counts as misses, loads and unloads.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.workloads import b64, ellipse_mask, encode, synthetic_image  # noqa: E402
from mme.models import MODEL_FOR_OPERATION, MODELS  # noqa: E402

SCHEMA = "mme-load/1"
DEFAULT_MIX = "select=0.6,erase=0.25,replace=0.15"
SIZES = ((640, 480), (1024, 768), (768, 1024))
SAMPLE_EVERY_S = 2.0
BACKPRESSURE_PAUSE_S = 0.5


def request_bodies(seed: int = 0) -> dict[str, list[bytes]]:
    """Ready JSON bodies per request kind: two photos per size (the original sample's JSON)."""
    bodies: dict[str, list[bytes]] = {kind: [] for kind in MODEL_FOR_OPERATION}
    for i, (w, h) in enumerate(s for s in SIZES for _ in range(2)):
        image = b64(encode(synthetic_image(w, h, seed=seed + i), "JPEG"))
        mask = b64(encode(ellipse_mask(w, h, 0.25 + 0.05 * (i % 3)), "PNG"))
        click = {"point_coords": [w // 2, h // 2], "point_labels": 1, "dilate_kernel_size": 15}
        bodies["select"].append(json.dumps({"image": image, "gen_args": json.dumps(click)}).encode())
        bodies["erase"].append(json.dumps({"image": image, "mask_image": mask}).encode())
        bodies["replace"].append(json.dumps({
            "image": image, "mask_image": mask, "prompt": "a red ceramic vase on a wooden table",
            "negative_prompt": "blurry", "gen_args": json.dumps({"num_inference_steps": 2, "seed": i})}).encode())
    return bodies


def parse_mix(text: str) -> dict[str, float]:
    """``select=0.6,erase=0.25,replace=0.15`` -> weights (normalised)."""
    mix = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in MODEL_FOR_OPERATION:
            raise ValueError(f"--mix: unknown request kind {kind.strip()!r} (select, erase, replace)")
        mix[kind.strip()] = float(weight)
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("--mix: the weights must add up to more than 0")
    return {kind: weight / total for kind, weight in mix.items()}


# ---------------------------------------------------------------------- running
def client_loop(backend, bodies, mix, seed: int, stop_at: float, records: list, lock: threading.Lock) -> None:
    """One client: requests back to back until ``stop_at``; appends (start, seconds, model, status)."""
    rng = random.Random(seed)
    kinds, weights = list(mix), list(mix.values())
    mine = []
    while time.monotonic() < stop_at:
        kind = rng.choices(kinds, weights)[0]
        started = time.monotonic()
        try:
            status = backend.invoke_raw(MODEL_FOR_OPERATION[kind], rng.choice(bodies[kind]))[0]
        except Exception as exc:  # noqa: BLE001 - counted, the soak goes on
            status = f"error: {type(exc).__name__}"
        mine.append((started, time.monotonic() - started, MODEL_FOR_OPERATION[kind], status))
        if status == 503:
            time.sleep(BACKPRESSURE_PAUSE_S)
    with lock:
        records.extend(mine)


def sample_status(backend, samples: list, stop: threading.Event, started: float) -> None:
    """Every few seconds: each model's state, size, pids and counters."""
    while True:
        try:
            status = backend.status()
            samples.append({"t": time.monotonic() - started, "used_bytes": status["used_bytes"],
                            "models": {m["target_model"]: {k: m[k] for k in ("state", "size_bytes", "worker_pids",
                                                                              "worker_restarts", "loads", "unloads",
                                                                              "hits", "misses")}
                                       for m in status["models"]}})
        except Exception as exc:  # noqa: BLE001
            samples.append({"t": time.monotonic() - started, "error": str(exc)})
        if stop.wait(SAMPLE_EVERY_S):
            return


def warm_up(backend, bodies, kinds=tuple(MODEL_FOR_OPERATION), rounds: int = 2) -> None:
    """Load the models of ``kinds`` and send each body ``rounds`` times (worker memory settles)."""
    for kind in kinds:
        model = MODEL_FOR_OPERATION[kind]
        for _ in range(rounds):
            for body in bodies[kind]:
                status = backend.invoke_raw(model, body)[0]
                if status != 200:
                    raise RuntimeError(f"warm-up: {model} answered HTTP {status}")


def run_clients(backend, bodies, mix, clients: int, duration: float) -> tuple[list, list, float]:
    """``clients`` threads for ``duration`` s, status sampled meanwhile; (records, samples, wall s)."""
    records: list = []
    samples: list = []
    lock = threading.Lock()
    stop = threading.Event()
    started = time.monotonic()
    sampler = threading.Thread(target=sample_status, args=(backend, samples, stop, started), daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client_loop, args=(backend, bodies, mix, 1000 + i, started + duration,
                                                          records, lock), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    return records, samples, wall


# ---------------------------------------------------------------------- figures
def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(records: list, samples: list, wall: float, targets: dict[str, str]) -> dict:
    """Requests/s, latency per model, status counts, worker memory start/middle/end, restarts."""
    per_model = {}
    for model in targets:
        mine = [r for r in records if r[2] == model]
        ok = [r[1] * 1000 for r in mine if r[3] == 200]
        per_model[model] = {"requests": len(mine), "rps": len(mine) / wall, "ok": len(ok),
                            "p50_ms": percentile(ok, 50), "p99_ms": percentile(ok, 99),
                            "statuses": {str(k): v for k, v in sorted(Counter(r[3] for r in mine).items(), key=str)}}
    statuses = Counter(str(r[3]) for r in records)
    good = [s for s in samples if "models" in s]
    memory, counters = {}, {}
    for model, target in targets.items():
        series = [(s["t"], s["models"][target]) for s in good if target in s["models"]]
        loaded = [(t, m["size_bytes"]) for t, m in series if m["state"] == "loaded" and m["size_bytes"]]
        if loaded:
            middle = min(loaded, key=lambda p: abs(p[0] - wall / 2))[1]
            sizes = [size for _, size in loaded]
            memory[model] = {"start_mib": loaded[0][1] / 2**20, "middle_mib": middle / 2**20,
                             "end_mib": loaded[-1][1] / 2**20, "min_mib": min(sizes) / 2**20,
                             "max_mib": max(sizes) / 2**20,
                             "change_pct": 100 * (loaded[-1][1] - loaded[0][1]) / loaded[0][1]}
        if series:
            first, last = series[0][1], series[-1][1]
            counters[model] = {key: last[key] - first[key]
                               for key in ("loads", "unloads", "hits", "misses", "worker_restarts")}
            counters[model]["distinct_worker_pids"] = len({p for _, m in series for p in m["worker_pids"]})
    return {"wall_s": wall, "requests": len(records), "rps": len(records) / wall,
            "statuses": dict(sorted(statuses.items())),
            "errors": sum(v for k, v in statuses.items() if k not in ("200", "503")),
            "backpressure_503": statuses.get("503", 0), "per_model": per_model, "worker_memory": memory,
            "endpoint_counters": counters, "samples": len(good)}


# ---------------------------------------------------------------------- scenarios
def start_endpoint(state: Path, weights: str, budget_mib: int | None, log) -> "object":
    """``mme local up`` into ``state``; a LocalBackend on it."""
    from mme.local import mode as local_mode
    from mme.client import LocalBackend

    local_mode.up(weights, MODELS, memory_budget_mib=budget_mib, state_override=state, report=log)
    return LocalBackend.from_state(state, timeout=900)


def run_scenario(kind: str, clients: int, args, bodies, mix, sizes: dict, log) -> dict:
    """One ``steady`` or ``evict`` run on a fresh local endpoint."""
    from mme.local import mode as local_mode

    budget_mib = args.memory_budget_mib
    if kind == "evict":
        if len(sizes) < 3:
            raise RuntimeError("an evict run needs the model sizes of a steady run before it")
        two = sorted(sizes.values())[-2:]
        budget_mib = int(sum(two) * 1.05 / 2**20) + 1
    state = Path(tempfile.mkdtemp(prefix=f"mme-load-{kind}-", dir=args.work_dir))
    log(f"{kind}:{clients}: starting the local endpoint (budget {budget_mib or 'default'} MiB)")
    backend = start_endpoint(state, args.weights, budget_mib, log)
    try:
        if kind == "steady":
            warm_up(backend, bodies)
        else:
            warm_up(backend, bodies, kinds=("select", "erase"), rounds=1)  # sd loads under traffic
        targets = dict(backend.target_models)
        log(f"{kind}:{clients}: {clients} clients for {args.duration:.0f} s")
        records, samples, wall = run_clients(backend, bodies, mix, clients, args.duration)
        result = summarize(records, samples, wall, targets)
        final = backend.status()
        result.update(kind=kind, clients=clients, duration_s=args.duration,
                      memory_budget_bytes=final["memory_budget_bytes"],
                      loaded_at_end=[m["target_model"] for m in final["models"] if m["state"] == "loaded"])
        if kind == "steady":
            sizes.update({m: max(s["size_bytes"] or 0 for s in final["models"] if s["target_model"] == t)
                          for m, t in targets.items()})
        return result
    finally:
        local_mode.down(state_override=state)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.load`` (see the module docstring)."""
    from bench import serving_report

    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="steady:32,steady:128,evict:32",
                        help="comma-separated KIND:CLIENTS, KIND steady or evict (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic per run (default 60)")
    parser.add_argument("--mix", default=DEFAULT_MIX, help="request mix (default: %(default)s)")
    parser.add_argument("--weights", default="tiny", help="'tiny' (default) or a folder with sam/ lama/ sd/")
    parser.add_argument("--memory-budget-mib", type=int, default=None, help="budget of the steady runs")
    parser.add_argument("--work-dir", default=None, help="where the state dirs go (default: the temp dir)")
    parser.add_argument("--out", type=Path, required=True, help="results JSON to write")
    parser.add_argument("--write-docs", action="store_true", help="re-render docs/performance.md")
    args = parser.parse_args(argv)
    try:
        mix = parse_mix(args.mix)
        runs = [(k, int(n)) for k, _, n in (r.strip().partition(":") for r in args.runs.split(","))]
    except ValueError as exc:
        parser.error(str(exc))
    if any(k not in ("steady", "evict") or n < 1 for k, n in runs):
        parser.error("--runs: KIND:CLIENTS with KIND steady or evict and CLIENTS >= 1")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "command": serving_report.command_line("python -m bench.load", argv if argv is not None else sys.argv[1:]),
              "weights": args.weights, "mix": mix, "device": serving_report.machine(), "runs": []}
    bodies = request_bodies()
    result["request_bytes"] = {kind: sorted({len(b) for b in bodies[kind]}) for kind in bodies}
    sizes: dict = {}
    for kind, clients in runs:
        run = run_scenario(kind, clients, args, bodies, mix, sizes, log)
        result["runs"].append(run)
        log(f"{kind}:{clients}: {run['requests']} requests, {run['rps']:.2f}/s, statuses {run['statuses']}")
    serving_report.save(result, args.out, args.write_docs, log)
    return 0 if all(r["errors"] == 0 for r in result["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
