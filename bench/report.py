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

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
DOCS = REPO / "docs" / "performance.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
SCHEMA = "mme-bench/1"

#: GPU memory per model of the original sample on an A10G (ml.g5.2xlarge), from the AWS post.
ORIGINAL_A10G_MIB = {"sam": 3362, "sd": 3910, "lama": 852}

#: Issue 6's targets on one H100 (server-side p50, ms) for the handler's request types.
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
def _f(value: Any, fmt: str = "{:,.1f}", none: str = "–") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return none
    return fmt.format(value)


def _ms(value: Any) -> str:
    if value is None:
        return "–"
    if value >= 10000:
        return f"{value / 1000:,.1f} s"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def device_line(data: dict) -> str:
    """One line describing the machine of a results file."""
    d = data["device"]
    if d["kind"] == "cuda":
        return (f"GPU: {d.get('name')} ({_f(d.get('gpu_memory_mib'), '{:,.0f}')} MiB), CUDA {d.get('cuda')}, "
                f"torch {d.get('torch')}, diffusers {d.get('diffusers')}; host {d.get('cpu_count')} cores")
    start, end = d.get("load_average_start"), d.get("load_average_end")
    busy = f", 1-min load average {start[0]:.1f} at the start" if start else ""
    busy += f" and {end[0]:.1f} at the end" if end else ""
    return (f"CPU only: {d.get('cpu') or d.get('name')}, {d.get('cpu_count')} cores "
            f"(worker torch threads {d.get('worker_threads') or d.get('torch_threads')}), {d.get('memory_gib')} GiB RAM, "
            f"shared with other jobs{busy}; "
            f"torch {d.get('torch')}, diffusers {d.get('diffusers')}, transformers {d.get('transformers')}")


def render_results(data: dict) -> str:
    """Markdown tables for one results file."""
    kind = data["device"]["kind"]
    mem_label = "peak GPU memory (torch.cuda.max_memory_allocated)" if kind == "cuda" else \
        "peak RSS of the worker process (no GPU: CPU RSS, not GPU memory)"
    title = "GPU" if kind == "cuda" else "CPU"
    lines = [f"#### {title}: profile `{data['profile']}`, {data['model_size']}-size models ({data['created'][:10]})", "",
             device_line(data), "", f"Command: `{data['command']}`", ""]
    for note in data.get("notes", []):
        lines.append(f"- {note}")
    if data.get("notes"):
        lines.append("")

    # Load
    lines += ["Load (artifact dir -> ready; page cache of the weight files dropped before each):", "",
              "| model | variant | weight files | MiB | cold read s | load s | load / cold read | warm read s | handler import s |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, model in data["models"].items():
        for variant, run in model["runs"].items():
            if run.get("error"):
                lines.append(f"| {name} | {variant} | failed: {run['error'][:120]} | | | | | | |")
                continue
            w = run["weights"]
            lines.append(f"| {name} | {variant} | {w['files']} | {_f(w['bytes'] / (1 << 20), '{:,.0f}')} | "
                         f"{_f(w['read_cold_s'], '{:.2f}')} | {_f(run['load_s'], '{:.2f}')} | "
                         f"{_f(run.get('load_to_cold_read_ratio'), '{:.2f}x')} | {_f(w.get('read_warm_s'), '{:.2f}')} | "
                         f"{_f(run['import_s'], '{:.2f}')} |")
    attempts = [(name, variant, run["load_attempts"]) for name, model in data["models"].items()
                for variant, run in model["runs"].items() if run.get("load_attempts")]
    if attempts:
        lines += ["", "Each row is the median of its attempts by load / cold read (one worker process each, the "
                  "variants interleaved); all attempts, load s / cold read s = ratio, load peak / loaded MiB:", ""]
        for name, variant, tries in attempts:
            shown = "; ".join(f"{_f(a.get('load_s'), '{:.2f}')} / {_f(a.get('read_cold_s'), '{:.2f}')} = "
                              f"{_f(a.get('load_to_cold_read_ratio'), '{:.2f}x')}, "
                              f"{_f(a.get('load_peak_mib'), '{:,.0f}')} / {_f(a.get('loaded_mib'), '{:,.0f}')}"
                              if not a.get("error") else "failed" for a in tries)
            lines.append(f"- {name} {variant}: {shown}")
    lines.append("")

    # Latency
    cpu_col = kind == "cpu"
    rows = []
    for name, model in data["models"].items():
        for variant, run in model["runs"].items():
            for rname, req in (run.get("requests") or {}).items():
                if req.get("error"):
                    rows.append(f"| {name} | {variant} | {rname} | | failed | |" + (" |" if cpu_col else "")
                                + f" | {req['error'][:120]} |")
                    continue
                rows.append(f"| {name} | {variant} | {rname} | {req['n']} | {_ms(req['p50_ms'])} | "
                            f"{_ms(req['p95_ms'])} |" + (f" {_ms(req.get('cpu_p50_ms'))} |" if cpu_col else "")
                            + f" {_f(req.get('peak_mib'), '{:,.0f}')} | {req.get('description', '')} |")
    if rows:
        lines += ["Latency per request, server side (`handle()` wall time: decode, model, encode), ms unless marked s"
                  + ("; CPU time = the worker's CPU seconds per request over all its threads (less sensitive to the "
                     "other jobs on this machine than wall time)" if cpu_col else "")
                  + f"; peak = the worker's {'peak RSS' if cpu_col else 'peak GPU memory'} over these requests, MiB:", "",
                  "| model | variant | request | n | p50 | p95 |" + (" CPU time p50 |" if cpu_col else "") + " peak | what |",
                  "| --- | --- | --- | --- | --- | --- |" + (" --- |" if cpu_col else "") + " --- | --- |"]
        lines += rows + [""]

    # Steps of a request (bench.stages)
    staged = [(name, variant, rname, req) for name, model in data["models"].items()
              for variant, run in model["runs"].items() for rname, req in (run.get("requests") or {}).items()
              if req.get("stages_p50_ms")]
    for name, variant, rname, req in staged:
        steps = req["stages_p50_ms"]
        lines += [f"{name} {variant} `{rname}`, per step (p50 of each step over the {req['n']} requests, ms; "
                  "exclusive times, `other` = the rest of the request: body JSON, response JSON, batch driver):", "",
                  "| " + " | ".join(steps) + " | request p50 |", "|" + " --- |" * (len(steps) + 1),
                  "| " + " | ".join(_f(v, "{:,.1f}") for v in steps.values()) + f" | {_ms(req['p50_ms'])} |", ""]

    # Comparisons
    comps = [(name, c) for name, model in data["models"].items() for c in model.get("comparisons", [])]
    if comps:
        lines += ["Handler vs the original sample's way, and vs the version before (`before`), same run, same "
                  "weights, same inputs; ratio = baseline (or before) / handler:", "",
                  "| model | comparison | handler | baseline or before | ratio |", "| --- | --- | --- | --- | --- |"]
        for name, c in comps:
            unit = c.get("unit", "ms")
            if unit == "ms":
                fmt, suffix = _ms, ""
            elif unit == "x":
                fmt, suffix = (lambda v: _f(v, "{:.2f}x")), ""
            else:
                fmt, suffix = (lambda v: _f(v, "{:,.2f}" if unit == "s" else "{:,.1f}")), f" {unit}"
            lines.append(f"| {name} | {c['what']} | {fmt(c.get('handler'))}{suffix} | "
                         f"{fmt(c.get('baseline'))}{suffix} | {_f(c.get('ratio'), '{:.2f}x')} |")
        lines.append("")

    # Memory
    lines += [f"Memory, MiB ({mem_label}):", "",
              "| model | variant | before load | loaded | load peak | load peak / loaded | inference peak | footprint | original sample, A10G |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, model in data["models"].items():
        for variant, run in model["runs"].items():
            if run.get("error"):
                continue
            m = run["memory"]
            orig = ORIGINAL_A10G_MIB.get(name) if variant == "handler" else None
            peak_ratio = m["load_peak_mib"] / m["loaded_mib"] if m.get("load_peak_mib") and m.get("loaded_mib") else None
            lines.append(f"| {name} | {variant} | {_f(m.get('before_load_mib'), '{:,.0f}')} | {_f(m.get('loaded_mib'), '{:,.0f}')} | "
                         f"{_f(m.get('load_peak_mib'), '{:,.0f}')} | {_f(peak_ratio, '{:.2f}x')} | "
                         f"{_f(m.get('inference_peak_mib'), '{:,.0f}')} | "
                         f"{_f(m.get('footprint_mib'), '{:,.0f}')} | {_f(orig, '{:,}')} |")
    lines.append("")
    if kind == "cuda":
        lines.append("footprint = CUDA context + the caching allocator's reserved peak (what `nvidia-smi` shows "
                     "for the worker; the original sample's figures are of that kind).")
    else:
        lines.append("On CPU, footprint = the worker's peak RSS (Python, torch, the model in fp32 and the "
                     "activations): an upper bound on what the GPU would need, not a GPU figure.")
    if kind == "cuda":
        lines += ["", "Targets of issue 6 (one H100; p50 here on this run's GPU):", "",
                  "| target | limit | measured | met |", "| --- | --- | --- | --- |"]
        for (name, rname), limit in TARGETS_MS.items():
            req = (((data["models"].get(name) or {}).get("runs") or {}).get("handler") or {}).get("requests", {}).get(rname)
            got = req.get("p50_ms") if req and not req.get("error") else None
            shown = _ms(got) + (" ms" if got is not None and got < 10000 else "")
            lines.append(f"| {name} {rname} | {limit} ms | {shown} | "
                         f"{'yes' if got is not None and got <= limit else ('no' if got is not None else 'not measured')} |")
        for name, orig in ORIGINAL_A10G_MIB.items():
            run = ((data["models"].get(name) or {}).get("runs") or {}).get("handler") or {}
            fp = (run.get("memory") or {}).get("footprint_mib")
            lines.append(f"| {name} footprint below the original sample's | {orig:,} MiB | {_f(fp, '{:,.0f}')} MiB | "
                         f"{'yes' if fp is not None and fp < orig else ('no' if fp is not None else 'not measured')} |")
    estimates = [(name, model["estimates"]) for name, model in data["models"].items() if model.get("estimates")]
    for name, est in estimates:
        def show(k: str, v: Any) -> str:
            if isinstance(v, str):
                return v
            return f"{k.replace('_', ' ').removesuffix(' ms')} {_ms(v) if k.endswith('_ms') else _f(v, '{:.2f}')}"

        lines += ["", f"{name}, extrapolated from the 1- and 2-step runs (per step = t2 - t1; total = t1 + "
                  "(steps - 1) x per step): " + "; ".join(show(k, v) for k, v in est.items())]
    return "\n".join(lines) + "\n"


def render_cost(results: list[dict]) -> str:
    """The cost planner's output: the post's example, then the footprints measured."""
    sys.path.insert(0, str(REPO))
    from mme import cost

    lines = ["Monthly cost, single-model endpoints vs one multi-model endpoint (`mme cost`, arithmetic of the "
             "AWS post: 720 h/month, 2 instances per endpoint; see `mme/cost.py`):", "", cost.MARKDOWN_HEADER]
    lines.append(cost.post_example().markdown_row("AWS post example, exact (4 models/instance stated)"))
    for name, fp in cost.ORIGINAL_SAMPLE_FOOTPRINTS_MIB.items():
        plan = cost.plan_costs([cost.ModelGroup(name, 100, fp)], "ml.g5.2xlarge")
        lines.append(plan.markdown_row(f"100 x {name}, original sample's A10G figure {fp:,.0f} MiB"))
    gpu = [r for r in results if r["device"]["kind"] == "cuda"]
    cpu = [r for r in results if r["device"]["kind"] == "cpu" and r.get("model_size") == "full"]
    source, allow_cpu = (gpu[-1], False) if gpu else ((cpu[-1], True) if cpu else (None, False))
    if source is not None:
        what = "measured on GPU" if not allow_cpu else "CPU peak RSS as a stand-in (fp32, no GPU here)"
        try:
            fps = cost.footprints_from_results(source, allow_cpu=allow_cpu)
        except cost.CostError as exc:
            lines.append(f"| footprints {what}: {exc} | | | | | | | | | |")
            fps = {}
        for name, fp in fps.items():
            label = f"100 x {name}, {fp:,.0f} MiB {what}"
            try:
                plan = cost.plan_costs([cost.ModelGroup(name, 100, fp)], "ml.g5.2xlarge")
                lines.append(plan.markdown_row(label))
            except cost.CostError as exc:
                lines.append(f"| {label}: {exc} | | | | | | | | | |")
    lines += ["", "Default headroom 10% of GPU memory; models of one kind per instance = floor(usable / footprint) on "
              "the instance's one GPU (`--instance-type`: the single-GPU types AWS documents for GPU multi-model "
              "endpoints, ml.g5 and ml.g4dn xlarge to 16xlarge and ml.p3.2xlarge). "
              "Prices: the built-in table (ml.g5.2xlarge $1.52/h us-east-1, from the AWS post of 2023-09-06); "
              "override with `--price-per-hour` or `--prices FILE`."]
    return "\n".join(lines) + "\n"


STATIC_HEAD = """\
## Benchmarks of the handlers (`bench/`)

Generated by `python -m bench.run ... --write-docs` / `python -m bench.report` from
`bench/results/*.json`; edit `bench/report.py`, not this section.

### What is measured

- The **handlers as they serve**: each model and variant runs in its own process (as a TorchServe
  worker does), from a model dir with the archive layout (handler + common code + model-config.yaml
  + `weights/`), initialised with a real `ts.context.Context`, requests sent through `handle()`
  with the original sample's JSON. Latency = `handle()` wall time per request (base64/JPEG decode,
  model, PNG/JPEG encode), after untimed warm-up requests; p50/p95 over `n` requests. Every response
  is checked (status 200 and a `generated_image`).
- **Load** = `initialize(context)` (artifact dir -> ready) with the weight files evicted from the
  page cache first (`posix_fadvise(DONTNEED)` after `fsync`), against reading the same bytes from
  disk the same way (the cold read); the handler module's import (diffusers, segment_anything)
  is listed apart. How the handlers load (meta-device build, memory-mapped weights assigned, one
  device move, reads ahead on a thread): `model_sources/common/mme_serving/weights.py` and
  `model_sources/sd/sd_pipeline.py`. `load peak / loaded` = the worker's peak memory during the
  load over its memory once loaded (1.00x: no transient copy of the weights).
- **Before / now**: `--compare-sources DIR` runs each model also from an earlier version's
  `model_sources/` (variant `before`: same weights, same requests, same process set-up) and
  `--repeat N` interleaves N worker processes per variant and reports the median.
- **SAM cached click, per step** (`bench/stages.py`): the handler's own steps timed by wrapping
  them (parse = body validation; decode = prompt encoder + mask decoder; upscale = mask to the image
  size + threshold; dilate; encode_png; encode = base64), exclusive times, `other` = the rest.
- **LaMa on large images**: a 128 x 96 px object on 1024, 2048 and 4096 px images, the handler
  (a region around the mask, `model_sources/lama/region.py`) against the whole image at full
  resolution (`hd_strategy: original`, what the handler did before and the original sample does).
- **Memory**: on GPU `torch.cuda.max_memory_allocated` after load and over the requests, plus the
  CUDA context and reserved peak (`footprint`, comparable to `nvidia-smi` and to the original
  sample's A10G figures: SAM 3,362 MiB, SD inpaint 3,910 MiB, LaMa 852 MiB). On CPU the worker's
  peak RSS (`VmHWM`, reset between load and inference), which is not GPU memory.
- **Baseline in the same run**: the original sample's way (`bench/baselines.py`): SAM fp32 with
  `SamPredictor.set_image` on every click; SD with the pipeline defaults the sample used (PNDM,
  50 steps, guidance 10, fp16 on GPU / fp32 on CPU). LaMa's baseline is the same fp32 generator
  on the whole image at full resolution, as the sample ran it.

### Models (random weights, real shapes; latency and memory do not depend on weight values)

| model | built from | checked against |
| --- | --- | --- |
| SAM vit_h (641 M parameters) | `segment_anything.build_sam_vit_h(checkpoint=None)`, state dict as `.pth` | the builder is segment-anything's own (segment-anything-py 1.0.1) |
| big-lama generator (51 M) | `model_sources/lama/big_lama.py` with the published config (ngf 64, 3 downsamplings, 18 FFC blocks, ratio 0.75), saved as a Lightning `best.ckpt` | public `configs/training/big-lama.yaml` of advimman/lama; parameter names/shapes checked by `tests/handlers` |
| SD2 inpainting UNet (9 input channels; 865,925,124 parameters) | `bench/model_configs/sd2_inpaint_unet.json` | Stability-AI/stablediffusion `configs/stable-diffusion/v2-inpainting-inference.yaml`: `in_channels: 9`, `model_channels: 320`, `channel_mult: [1, 2, 4, 4]`, `attention_resolutions: [4, 2, 1]`, `num_res_blocks: 2`, `num_head_channels: 64` (= 5/10/20/20 heads), `use_linear_in_transformer: True`, `context_dim: 1024`, `image_size: 64` |
| SD2 VAE (83,653,863 parameters) | `bench/model_configs/sd2_vae.json` | same file, `first_stage_config`: `ch: 128`, `ch_mult: [1, 2, 4, 4]`, `num_res_blocks: 2`, `z_channels: 4` |
| SD2 text encoder (OpenCLIP ViT-H/14 text tower; 340,387,840 parameters) | `bench/model_configs/sd2_text_encoder.json` (23 layers, width 1024, 16 heads, MLP 4096, 77 tokens, vocab 49,408) | open_clip's `src/open_clip/model_configs/ViT-H-14.json` `text_cfg` (copy in tileb1/simzss: width 1024, heads 16, layers 24, vocab 49408, context 77); SD2 uses the penultimate layer, so the diffusers conversion (`convert_open_clip_checkpoint`) drops `resblocks.23`: 23 layers |
| SD2 tokenizer | written locally by `bench/full_size.py`: CLIP BPE layout with the real 49,408 ids (`!` = 0, BOS 49406, EOS 49407), generated merges | prompts pad to the same 77 ids, so the text encoder's compute is the real one |

SD weights are saved in the diffusers folder layout as the `fp16` variant files (`*.fp16.safetensors`,
what the GPU handler loads); the CPU handler upcasts them to fp32. The parameter counts above are
asserted by `tests/bench/test_full_size.py` (the UNet is SD2's 865,910,724 plus the inpainting
model's 5 extra input channels in `conv_in`, 320 x 5 x 3 x 3).
"""

STATIC_GPU = """\
### What remains: the GPU run (no GPU was lent to the session that built `bench/`)

The figures the issue's targets are about (one H100, full-size models: sam first click <= 60 ms,
cached click <= 10 ms; lama 1024 px <= 40 ms; sd 512 px at the default steps <= 0.5 s; each
footprint below the original sample's) need the lent H100/H200 (the project's `device` tool).
Its image has Python 3.12 with torch, torchvision, transformers, safetensors, numpy, pillow and
pyyaml, but not diffusers, segment-anything-py or TorchServe's `ts` package. Here, once:

```
python -m bench.prepare_device     # .whl/site (git-ignored, ~27 MiB): diffusers 0.42.1,
                                   # segment-anything-py 1.0.1, torchserve 0.12.0 (Python part only,
                                   # without its 46 MB Java frontend), importlib_metadata 8.7.0
```

Then one device `run` with `carry: [".whl"]`, `timeout_s: 600` (builds the full-size weights into
/tmp on the machine, ~1-2 min, then measures; the machine's own torch is used):

```
export PYTHONPATH=$PWD/.whl/site:$PWD PYTHONUNBUFFERED=1; set -o pipefail; nvidia-smi --query-gpu=name,memory.total --format=csv; python3 -m bench.run --device cuda --profile gpu --models sam,lama,sd --cache-dir /tmp/mme-bench --timeout 400 --out bench/results/gpu-h200.json 2>&1 | tee $OUT/bench.log; cp bench/results/gpu-h200.json $OUT/
```

(If it runs out of the 10 minutes, split it: `--models sam,lama --out bench/results/gpu-h200-sam-lama.json`
and `--models sd --out bench/results/gpu-h200-sd.json`, one call each.) Back here, copy the JSON
from the reply's `files_at` into `bench/results/` and re-render this section with
`python -m bench.report`; the cost table then uses the GPU footprints.
"""


def render_section(results: list[dict]) -> str:
    """The whole generated section (between the markers)."""
    parts = [STATIC_HEAD, "### Results", ""]
    if not results:
        parts.append("No results yet: run `python -m bench.run`.\n")
    for data in results:
        parts.append(render_results(data))
    if not any(r["device"]["kind"] == "cuda" for r in results):
        parts.append(STATIC_GPU)
    parts += ["### Cost planner", "", render_cost(results)]
    return "\n".join(parts)


def write_docs(results: list[dict], docs: Path = DOCS) -> Path:
    """Replace the section between the markers in ``docs`` (created if missing; the rest kept)."""
    block = f"{START}\n{render_section(results).rstrip()}\n{END}"
    docs = Path(docs)
    if docs.exists():
        text = docs.read_text(encoding="utf-8")
        i, j = text.find(START), text.find(END)
        if i != -1 and j != -1 and j > i:
            text = text[:i] + block + text[j + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        docs.parent.mkdir(parents=True, exist_ok=True)
        text = "# Performance\n\n" + block + "\n"
    docs.write_text(text, encoding="utf-8")
    return docs


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
