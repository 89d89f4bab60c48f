"""Benchmark results: schema check, Markdown tables, and the section of ``docs/performance.md``
between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` (the rest of the file is kept as is).

``python -m bench.report [RESULTS.json ...] [--docs docs/performance.md]`` re-renders the section
from result files (default: every ``bench/results/*.json`` of the handler benchmark), then the
serving section (:mod:`bench.serving_report`: cold start and load results).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench import report_text as text
from bench.output import DOCS, REPO, RESULTS_DIR, load_average, number, write_section

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
SCHEMA = "mme-bench/1"

#: GPU memory per model of the original sample on an A10G (ml.g5.2xlarge), from the AWS post.
ORIGINAL_A10G_MIB = {"sam": 3362, "sd": 3910, "lama": 852}

#: The GPU targets, stated for one H100 (server-side p50, ms), of the handler's request types.
TARGETS_MS = {("sam", "first_click_1024"): 60, ("sam", "cached_click"): 10, ("lama", "inpaint_1024"): 40,
              ("sd", "inpaint_512"): 500}

_REQUEST_KEYS = ("n", "warmup", "p50_ms", "p95_ms", "mean_ms", "samples_ms")


class SchemaError(ValueError):
    """A results file that does not follow the ``mme-bench/1`` layout."""


def validate(data: Any) -> list[str]:
    """Problems with a results dict (empty list = valid ``mme-bench/1``)."""
    problems: list[str] = []

    def need(obj: Any, key: str, types, where: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            problems.append(f"{where}: missing '{key}'")
            return None
        if not isinstance(obj[key], types):
            problems.append(f"{where}.{key}: expected {types}, got {type(obj[key]).__name__}")
            return None
        return obj[key]

    if not isinstance(data, dict):
        return ["top level is not an object"]
    if data.get("schema") != SCHEMA:
        problems.append(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    for key, types in (("created", str), ("profile", str), ("model_size", str), ("device", dict),
                       ("models", dict), ("command", str)):
        need(data, key, types, "root")
    device = data.get("device") or {}
    if device.get("kind") not in ("cpu", "cuda"):
        problems.append("device.kind must be 'cpu' or 'cuda'")
    for name, model in (data.get("models") or {}).items():
        where = f"models.{name}"
        runs = need(model, "runs", dict, where)
        need(model, "comparisons", list, where)
        if not runs:
            continue
        if "handler" not in runs:
            problems.append(f"{where}.runs: missing 'handler'")
        for variant, run in runs.items():
            w = f"{where}.runs.{variant}"
            if not isinstance(run, dict):
                problems.append(f"{w}: not an object")
                continue
            if run.get("error"):
                continue  # a failed run carries its error instead of figures
            for key in ("load_s", "import_s"):
                need(run, key, (int, float), w)
            weights = need(run, "weights", dict, w)
            if weights is not None:
                need(weights, "bytes", int, f"{w}.weights")
                need(weights, "read_cold_s", (int, float), f"{w}.weights")
            mem = need(run, "memory", dict, w)
            if mem is not None:
                need(mem, "metric", str, f"{w}.memory")
                need(mem, "footprint_mib", (int, float), f"{w}.memory")
                need(mem, "load_peak_mib", (int, float), f"{w}.memory")
            reqs = need(run, "requests", dict, w)
            for rname, req in (reqs or {}).items():
                if isinstance(req, dict) and req.get("error"):
                    continue
                for key in _REQUEST_KEYS:
                    need(req, key, (int, float, list), f"{w}.requests.{rname}")
    return problems


def load(path: Path) -> dict:
    """Read and validate one results file (raises :class:`SchemaError`)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    problems = validate(data)
    if problems:
        raise SchemaError(f"{path}: " + "; ".join(problems[:5]))
    return data


# ---------------------------------------------------------------------- formatting
_f = number


def _ms(value: Any) -> str:
    if value is None:
        return "–"
    if value >= 10000:
        return f"{value / 1000:,.1f} s"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _mib(value: Any) -> str:
    return _f(value, "{:,.0f}")


def device_line(data: dict) -> str:
    """One line describing the machine of a results file."""
    d = data["device"]
    if d["kind"] == "cuda":
        return (f"GPU: {d.get('name')} ({_mib(d.get('gpu_memory_mib'))} MiB), CUDA {d.get('cuda')}, "
                f"torch {d.get('torch')}, diffusers {d.get('diffusers')}; host {d.get('cpu_count')} cores")
    return (f"CPU only: {d.get('cpu') or d.get('name')}, {d.get('cpu_count')} cores "
            f"(worker torch threads {d.get('worker_threads') or d.get('torch_threads')}), {d.get('memory_gib')} GiB RAM"
            f"{load_average(d)}; "
            f"torch {d.get('torch')}, diffusers {d.get('diffusers')}, transformers {d.get('transformers')}")


def _runs(data: dict):
    """(model, variant, run) of every run in a results file."""
    for name, model in data["models"].items():
        for variant, run in model["runs"].items():
            yield name, variant, run


def _requests(data: dict):
    """(model, variant, request name, request) of every request type of every run."""
    for name, variant, run in _runs(data):
        for rname, req in (run.get("requests") or {}).items():
            yield name, variant, rname, req


# ---------------------------------------------------------------------- one results file
def render_results(data: dict) -> str:
    """Markdown tables for one results file."""
    kind = data["device"]["kind"]
    title = "GPU" if kind == "cuda" else "CPU"
    lines = [f"#### {title}: profile `{data['profile']}`, {data['model_size']}-size models ({data['created'][:10]})", "",
             device_line(data), "", f"Command: `{data['command']}`", ""]
    lines += [f"- {note}" for note in data.get("notes", [])] + ([""] if data.get("notes") else [])
    for part in (_load_table, _latency_table, _stage_tables, _comparison_table, _memory_table):
        lines += part(data)
    if kind == "cuda":
        lines += _targets_table(data)
    lines += _estimates(data)
    return "\n".join(lines) + "\n"


def _pooled(weights: dict) -> str:
    """How many cold reads a row's cold read is the median of (none: that run's own read)."""
    return f" (median of {weights['read_cold_of']})" if weights.get("read_cold_of") else ""


def _load_table(data: dict) -> list[str]:
    lines = [text.LOAD_INTRO, "",
             "| model | variant | weight files | MiB | cold read s | load s | load / cold read | warm read s | handler import s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, variant, run in _runs(data):
        if run.get("error"):
            lines.append(f"| {name} | {variant} | failed: {run['error'][:120]} | | | | | | |")
            continue
        w = run["weights"]
        lines.append(f"| {name} | {variant} | {w['files']} | {_mib(w['bytes'] / (1 << 20))} | "
                     f"{_f(w['read_cold_s'], '{:.2f}')}{_pooled(w)} | {_f(run['load_s'], '{:.2f}')} | "
                     f"{_f(run.get('load_to_cold_read_ratio'), '{:.2f}x')} | {_f(w.get('read_warm_s'), '{:.2f}')} | "
                     f"{_f(run['import_s'], '{:.2f}')} |")
    attempts = [(name, variant, run["load_attempts"]) for name, variant, run in _runs(data) if run.get("load_attempts")]
    if attempts:
        lines += ["", text.ATTEMPTS_INTRO, ""]
        for name, variant, tries in attempts:
            shown = "; ".join(f"{_f(a.get('load_s'), '{:.2f}')} / {_f(a.get('read_cold_s'), '{:.2f}')} = "
                              f"{_f(a.get('load_to_cold_read_ratio'), '{:.2f}x')}, "
                              f"{_mib(a.get('load_peak_mib'))} / {_mib(a.get('loaded_mib'))}"
                              if not a.get("error") else "failed" for a in tries)
            lines.append(f"- {name} {variant}: {shown}")
    return lines + [""]


def _latency_table(data: dict) -> list[str]:
    cpu_col = data["device"]["kind"] == "cpu"
    rows = []
    for name, variant, rname, req in _requests(data):
        if req.get("error"):
            rows.append(f"| {name} | {variant} | {rname} | | failed | |" + (" |" if cpu_col else "")
                        + f" | {req['error'][:120]} |")
            continue
        rows.append(f"| {name} | {variant} | {rname} | {req['n']} | {_ms(req['p50_ms'])} | "
                    f"{_ms(req['p95_ms'])} |" + (f" {_ms(req.get('cpu_p50_ms'))} |" if cpu_col else "")
                    + f" {_mib(req.get('peak_mib'))} | {req.get('description', '')} |")
    if not rows:
        return []
    intro = (text.LATENCY_INTRO + (text.LATENCY_CPU_TIME if cpu_col else "")
             + f"; peak = the worker's {'peak RSS' if cpu_col else 'peak GPU memory'} over these requests, MiB:")
    return [intro, "",
            "| model | variant | request | n | p50 | p95 |" + (" CPU time p50 |" if cpu_col else "") + " peak | what |",
            "| --- | --- | --- | --- | --- | --- |" + (" --- |" if cpu_col else "") + " --- | --- |",
            *rows, ""]


def _stage_tables(data: dict) -> list[str]:
    """The steps of a request (:mod:`bench.stages`), where they were timed."""
    lines = []
    for name, variant, rname, req in _requests(data):
        steps = req.get("stages_p50_ms")
        if not steps:
            continue
        lines += [text.STAGES_INTRO.format(name=name, variant=variant, request=rname, n=req["n"]), "",
                  "| " + " | ".join(steps) + " | request p50 |", "|" + " --- |" * (len(steps) + 1),
                  "| " + " | ".join(_f(v, "{:,.1f}") for v in steps.values()) + f" | {_ms(req['p50_ms'])} |", ""]
    return lines


def _comparison_value(unit: str):
    """(formatter, suffix) for a comparison's figures in ``unit``."""
    if unit == "ms":
        return _ms, ""
    if unit == "x":
        return (lambda v: _f(v, "{:.2f}x")), ""
    return (lambda v: _f(v, "{:,.2f}" if unit == "s" else "{:,.1f}")), f" {unit}"


def _comparison_table(data: dict) -> list[str]:
    comps = [(name, c) for name, model in data["models"].items() for c in model.get("comparisons", [])]
    if not comps:
        return []
    lines = [text.COMPARISONS_INTRO, "",
             "| model | comparison | handler | baseline or before | ratio |", "| --- | --- | --- | --- | --- |"]
    for name, c in comps:
        fmt, suffix = _comparison_value(c.get("unit", "ms"))
        lines.append(f"| {name} | {c['what']} | {fmt(c.get('handler'))}{suffix} | "
                     f"{fmt(c.get('baseline'))}{suffix} | {_f(c.get('ratio'), '{:.2f}x')} |")
    return lines + [""]


def _memory_table(data: dict) -> list[str]:
    kind = data["device"]["kind"]
    lines = [f"Memory, MiB ({text.MEMORY_METRIC[kind]}):", "",
             "| model | variant | before load | loaded | load peak | load peak / loaded | inference peak | footprint | original sample, A10G |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, variant, run in _runs(data):
        if run.get("error"):
            continue
        m = run["memory"]
        orig = ORIGINAL_A10G_MIB.get(name) if variant == "handler" else None
        peak_ratio = m["load_peak_mib"] / m["loaded_mib"] if m.get("load_peak_mib") and m.get("loaded_mib") else None
        lines.append(f"| {name} | {variant} | {_mib(m.get('before_load_mib'))} | {_mib(m.get('loaded_mib'))} | "
                     f"{_mib(m.get('load_peak_mib'))} | {_f(peak_ratio, '{:.2f}x')} | "
                     f"{_mib(m.get('inference_peak_mib'))} | {_mib(m.get('footprint_mib'))} | {_f(orig, '{:,}')} |")
    return lines + ["", text.FOOTPRINT[kind]]


def _verdict(got: Any, met: bool) -> str:
    return "not measured" if got is None else ("yes" if met else "no")


def _targets_table(data: dict) -> list[str]:
    """The GPU targets: latency limits and footprints below the original sample's."""
    handler = {name: ((model.get("runs") or {}).get("handler") or {}) for name, model in data["models"].items()}
    lines = ["", text.TARGETS_INTRO, "", "| target | limit | measured | met |", "| --- | --- | --- | --- |"]
    for (name, rname), limit in TARGETS_MS.items():
        req = (handler.get(name) or {}).get("requests", {}).get(rname)
        got = req.get("p50_ms") if req and not req.get("error") else None
        shown = _ms(got) + (" ms" if got is not None and got < 10000 else "")
        lines.append(f"| {name} {rname} | {limit} ms | {shown} | {_verdict(got, got is not None and got <= limit)} |")
    for name, orig in ORIGINAL_A10G_MIB.items():
        fp = ((handler.get(name) or {}).get("memory") or {}).get("footprint_mib")
        lines.append(f"| {name} footprint below the original sample's | {orig:,} MiB | {_mib(fp)} MiB | "
                     f"{_verdict(fp, fp is not None and fp < orig)} |")
    return lines


def _estimate(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    shown = _ms(value) if key.endswith("_ms") else _f(value, "{:.2f}")
    return f"{key.replace('_', ' ').removesuffix(' ms')} {shown}"


def _estimates(data: dict) -> list[str]:
    lines = []
    for name, model in data["models"].items():
        if model.get("estimates"):
            lines += ["", text.ESTIMATES_INTRO.format(name=name)
                      + "; ".join(_estimate(k, v) for k, v in model["estimates"].items())]
    return lines


# ---------------------------------------------------------------------- cost planner
def footprint_source(results: list[dict]) -> dict | None:
    """The results file whose footprints the cost table uses: a GPU run that served requests,
    else a full-size CPU run that did (its peak RSS as a stand-in); of those, the one that served
    the most models, the newest on a tie (a single-model run such as profile ``click`` does not
    hide the others). A run without requests (profile ``load``) is never used: its peak is the
    load's alone."""
    def served(data: dict) -> int:
        handlers = [((m.get("runs") or {}).get("handler") or {}) for m in data["models"].values()]
        return sum(h.get("memory", {}).get("inference_peak_mib") is not None for h in handlers)

    for kind in ("cuda", "cpu"):
        found = [r for r in results if r["device"]["kind"] == kind and served(r)
                 and (kind == "cuda" or r.get("model_size") == "full")]
        if found:
            return max(found, key=lambda r: (served(r), r["created"]))
    return None


def render_cost(results: list[dict]) -> str:
    """The cost planner's output: the post's example, then the footprints measured."""
    sys.path.insert(0, str(REPO))
    from mme import cost

    lines = [text.COST_INTRO, "", cost.MARKDOWN_HEADER,
             cost.post_example().markdown_row("AWS post example, exact (4 models/instance stated)")]
    for name, fp in cost.ORIGINAL_SAMPLE_FOOTPRINTS_MIB.items():
        plan = cost.plan_costs([cost.ModelGroup(name, 100, fp)], "ml.g5.2xlarge")
        lines.append(plan.markdown_row(f"100 x {name}, original sample's A10G figure {fp:,.0f} MiB"))
    source = footprint_source(results)
    if source is not None:
        lines += _measured_cost_rows(cost, source)
    lines.append("")
    if source is not None:
        kind = source["device"]["kind"]
        lines += [text.COST_SOURCE[kind].format(created=source["created"][:10], profile=source["profile"]), ""]
    lines.append(text.COST_FOOTER)
    return "\n".join(lines) + "\n"


def _measured_cost_rows(cost, source: dict) -> list[str]:
    kind = source["device"]["kind"]
    what = text.COST_MEASURED[kind]
    try:
        fps = cost.footprints_from_results(source, allow_cpu=kind == "cpu")
    except cost.CostError as exc:
        return [f"| footprints {what}: {exc} | | | | | | | | | |"]
    rows = []
    for name, fp in fps.items():
        label = f"100 x {name}, {fp:,.0f} MiB {what}"
        try:
            rows.append(cost.plan_costs([cost.ModelGroup(name, 100, fp)], "ml.g5.2xlarge").markdown_row(label))
        except cost.CostError as exc:
            rows.append(f"| {label}: {exc} | | | | | | | | | |")
    return rows


# ---------------------------------------------------------------------- the section
def render_section(results: list[dict]) -> str:
    """The whole generated section (between the markers)."""
    parts = [text.HANDLERS_HEAD, "### Results", ""]
    if not results:
        parts.append(text.NO_RESULTS)
    parts += [render_results(data) for data in results]
    parts += [text.GPU_RUN, "### Cost planner", "", render_cost(results)]
    return "\n".join(parts)


def write_docs(results: list[dict], docs: Path = DOCS) -> Path:
    """Replace the section between the markers in ``docs`` (created if missing; the rest kept)."""
    return write_section(docs, START, END, render_section(results))


def collect(paths: list[Path] | None = None, results_dir: Path = RESULTS_DIR) -> list[dict]:
    """Load the given result files (default: every ``*.json`` in ``results_dir``) of this schema
    (the serving benchmarks' files are :mod:`bench.serving_report`'s), oldest first."""
    paths = paths or sorted(Path(results_dir).glob("*.json"))
    paths = [p for p in paths if json.loads(Path(p).read_text(encoding="utf-8")).get("schema") in (SCHEMA, None)]
    loaded = [load(p) for p in paths]
    return sorted(loaded, key=lambda d: (d["device"]["kind"] == "cuda", d["created"]))


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.report [FILES...] [--docs PATH]``: check files and re-render the docs section."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--docs", type=Path, default=DOCS)
    args = parser.parse_args(argv)
    try:
        results = collect(args.files)
    except (SchemaError, OSError, json.JSONDecodeError) as exc:
        print(f"bench.report: error: {exc}", file=sys.stderr)
        return 2
    print(write_docs(results, args.docs))
    from bench import serving_report

    print(serving_report.write_docs(args.docs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
