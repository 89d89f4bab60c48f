"""The serving section of ``docs/performance.md`` (between ``<!-- serving-bench:start -->`` and
``<!-- serving-bench:end -->``), generated from ``bench/results/cold-start-*.json``
(:mod:`bench.cold_start`) and ``bench/results/load-*.json`` (:mod:`bench.load`).

``python -m bench.serving_report`` (or ``python -m bench.report``, which renders every section)
re-renders it; the rest of the file is kept as it is.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report_text as text  # noqa: E402
from bench.output import DOCS, RESULTS_DIR, load_average, number, write_json, write_section  # noqa: E402

START, END = "<!-- serving-bench:start -->", "<!-- serving-bench:end -->"
COLD_START_SCHEMA, LOAD_SCHEMA = "mme-coldstart/1", "mme-load/1"
STAGES = (("download_s", "download"), ("unpack_s", "unpack"), ("register_s", "register"),
          ("initialize_s", "initialize"), ("first_request_s", "first request"))
RSS_FLAT_PCT = 10.0


def _f(value, fmt: str = "{:,.2f}") -> str:
    return number(value, fmt)


def _machine(device: dict) -> str:
    gpus = f", GPU {'; '.join(device['gpus'])}" if device.get("gpus") else ", no GPU"
    return f"{device.get('cpu_count')} cores, {device.get('memory_gib')} GiB RAM{gpus}{load_average(device)}"


# ---------------------------------------------------------------------- cold start
def render_cold_start(data: dict) -> str:
    """Per model and way: archive size, each stage's median, total; the ratio of the totals."""
    lines = [f"#### {data['model_size']}-size models, {data['device'].get('kind', 'cpu').upper()} "
             f"({data['created'][:10]}; median of {data['repeats']})", "",
             f"Machine: {_machine(data['device'])}."
             + (f" SD's first request runs {data['sd_steps']} denoising steps." if "sd" in data["models"] else ""), "",
             f"Command: `{data['command']}`", "",
             "| model | way | archive MiB | " + " | ".join(f"{label} s" for _, label in STAGES) + " | total s |",
             "| --- | --- | --- |" + " --- |" * len(STAGES) + " --- |"]
    ratios = []
    for name, ways in data["models"].items():
        for way, entry in ways.items():
            med = entry["median"]
            lines.append(f"| {name} | {way} | {_f(entry['bytes'] / 2**20, '{:,.1f}')} | "
                         + " | ".join(_f(med.get(key)) for key, _ in STAGES) + f" | {_f(med.get('total_s'))} |")
        project, sample = ways.get("project", {}).get("median", {}), ways.get("sample", {}).get("median", {})
        if project.get("total_s") and sample.get("total_s"):
            ratios.append(f"{name} {sample['total_s'] / project['total_s']:.2f}x to the first response "
                          f"({_to_loaded(sample) / _to_loaded(project):.2f}x to a loaded model)")
        elif _to_loaded(project) and _to_loaded(sample):
            ratios.append(f"{name} {_to_loaded(sample) / _to_loaded(project):.2f}x to a loaded model")
    lines.append("")
    if ratios:
        lines += ["Sample's way / project's way: " + "; ".join(ratios) + ".", ""]
    failed = [f"{name} {way} #{i + 1}: {run['first_request_error']}" for name, ways in data["models"].items()
              for way, entry in ways.items() for i, run in enumerate(entry["runs"]) if run.get("first_request_error")]
    if failed:
        lines += ["First requests that failed after the model had loaded (their load stages count above, the "
                  "first request and total do not): " + "; ".join(failed) + ".", ""]
    return "\n".join(lines)


def _to_loaded(median: dict) -> float:
    """Seconds from the request to a loaded model: download + unpack + register + initialize."""
    return sum(median.get(k) or 0 for k in ("download_s", "unpack_s", "register_s", "initialize_s"))


# ---------------------------------------------------------------------- load
def _statuses(counts: dict) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "–"


def render_load(data: dict) -> str:
    """Per run: throughput and statuses; per model: latency, worker memory, restarts."""
    mix = ", ".join(f"{k} {v:.0%}" for k, v in data["mix"].items())
    sizes = ", ".join(f"{k} {min(v) / 1024:,.0f}-{max(v) / 1024:,.0f} KiB" for k, v in data["request_bytes"].items())
    lines = [f"#### {data['weights']} models ({data['created'][:10]})", "",
             f"Machine: {_machine(data['device'])}.", "",
             f"Command: `{data['command']}`", "",
             f"Mix: {mix}; request bodies {sizes} (JPEG photos 640x480, 1024x768, 768x1024; PNG masks).", "",
             "| run | clients | s | requests | req/s | statuses | other errors | loads / unloads in the run |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in data["runs"]:
        counters = run["endpoint_counters"]
        loads = sum(c["loads"] for c in counters.values())
        unloads = sum(c["unloads"] for c in counters.values())
        lines.append(f"| {run['kind']} | {run['clients']} | {run['wall_s']:.0f} | {run['requests']:,} | "
                     f"{run['rps']:.2f} | {_statuses(run['statuses'])} | {run['errors']} | {loads} / {unloads} |")
    lines += ["", "| run | clients | model | requests | req/s | p50 s | p99 s | statuses | worker MiB start / middle / end "
              "| change | worker restarts | misses (waited for a load) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in data["runs"]:
        for model, figures in run["per_model"].items():
            mem = run["worker_memory"].get(model)
            counters = run["endpoint_counters"].get(model, {})
            memory = (f"{mem['start_mib']:,.0f} / {mem['middle_mib']:,.0f} / {mem['end_mib']:,.0f}" if mem else "–")
            change = f"{mem['change_pct']:+.1f}%" if mem and run["kind"] == "steady" else "(reloaded)" if mem else "–"
            lines.append(f"| {run['kind']} | {run['clients']} | {model} | {figures['requests']:,} | {figures['rps']:.2f} | "
                         f"{_f(_s(figures['p50_ms']))} | {_f(_s(figures['p99_ms']))} | {_statuses(figures['statuses'])} | "
                         f"{memory} | {change} | {counters.get('worker_restarts', '–')} | {counters.get('misses', '–')} |")
    lines += ["", _targets(data), ""]
    return "\n".join(lines)


def _s(ms):
    return None if ms is None else ms / 1000


def _targets(data: dict) -> str:
    steady = [r for r in data["runs"] if r["kind"] == "steady"]
    errors = sum(r["errors"] for r in data["runs"])
    changes = [abs(m["change_pct"]) for r in steady for m in r["worker_memory"].values()]
    restarts = sum(c["worker_restarts"] for r in data["runs"] for c in r["endpoint_counters"].values())
    worst = max(changes, default=None)
    return (f"Targets: errors other than 503 backpressure: {errors} ({'met' if errors == 0 else 'NOT met'}); "
            f"worker memory flat within {RSS_FLAT_PCT:.0f}% in the steady runs: largest change "
            f"{_f(worst, '{:.1f}')}% ({'met' if worst is not None and worst <= RSS_FLAT_PCT else 'NOT met'}); "
            f"worker restarts: {restarts} ({'met' if restarts == 0 else 'NOT met'}).")


# ---------------------------------------------------------------------- the section
def render_section(cold: list[dict], load: list[dict]) -> str:
    """The whole generated section."""
    parts = [text.SERVING_HEAD]
    parts += [render_cold_start(d) for d in cold] or ["No results yet: run `python -m bench.cold_start`.\n"]
    parts += ["### Load and soak of the local endpoint", "", text.SERVING_LOAD_INTRO, ""]
    parts += [render_load(d) for d in load] or ["No results yet: run `python -m bench.load`.\n"]
    return "\n".join(parts)


def collect(results_dir: Path = RESULTS_DIR) -> tuple[list[dict], list[dict]]:
    """(cold-start results, load results), oldest first."""
    cold, load = [], []
    for path in sorted(Path(results_dir).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") == COLD_START_SCHEMA:
            cold.append(data)
        elif data.get("schema") == LOAD_SCHEMA:
            load.append(data)
    key = lambda d: (d.get("device", {}).get("kind") == "cuda", d["created"])  # noqa: E731
    return sorted(cold, key=key), sorted(load, key=key)


def machine() -> dict:
    """The machine of a run: cores, memory, GPUs (``nvidia-smi``), load average at the start."""
    import os
    import platform

    import psutil

    from mme.model_memory import nvidia_smi

    gpus = [", ".join(row) for row in nvidia_smi("--query-gpu=name,memory.total")]
    return {"kind": "cuda" if gpus else "cpu", "gpus": gpus, "cpu_count": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "machine": platform.machine(), "load_average_start": list(os.getloadavg())}


def command_line(prog: str, argv: list[str]) -> str:
    """The command that reproduces a run (``--work-dir``, scratch space that changes no figure,
    left out)."""
    shown, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--work-dir":
            skip = True
        elif not arg.startswith("--work-dir="):
            shown.append(shlex.quote(arg))
    return " ".join([prog, *shown])


def save(result: dict, out: Path, write: bool, log) -> None:
    """Write a run's JSON (load average at the end added) and, with ``write``, the docs section."""
    import os

    result["device"]["load_average_end"] = list(os.getloadavg())
    log(f"wrote {write_json(out, result)}")
    if write:
        log(f"wrote {write_docs()}")


def write_docs(docs: Path = DOCS, results_dir: Path = RESULTS_DIR) -> Path:
    """Replace the section between the markers (appended when missing; the rest kept)."""
    return write_section(docs, START, END, render_section(*collect(results_dir)))


if __name__ == "__main__":
    print(write_docs(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS))
