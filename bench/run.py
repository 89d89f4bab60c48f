"""Benchmark runner: measure the sam, lama and sd handlers as they serve, against the original
sample's way, and write JSON (+ the Markdown section of ``docs/performance.md``).

Examples::

    # GPU (e.g. one H100 or H200): full-size models, the request types of the GPU targets
    python -m bench.run --device cuda --models sam,lama,sd --out bench/results/gpu.json --write-docs
    # CPU: full-size models, few iterations, smaller inputs, sd at 1 and 2 steps (extrapolated)
    python -m bench.run --device cpu --profile cpu --models sam,lama,sd --out bench/results/cpu.json --write-docs
    # the runner itself, in seconds: tiny random-weight models
    python -m bench.run --device cpu --profile tiny --out /tmp/tiny.json --docs /tmp/performance.md --write-docs
    # cold start of this version against an earlier one (its model_sources/, e.g. from `git archive`)
    python -m bench.run --device cpu --profile load --compare-sources /tmp/prev/model_sources --out bench/results/cpu-load.json

Every (model, variant) runs in its own worker process (``bench.worker``), like a TorchServe worker,
so load time, memory peaks and imports are per model. ``--compare-sources DIR`` adds a ``before``
run of every model from another version's model sources (same weights, same requests, same
process set-up), so a change is measured side by side with what it replaces. Weights are built
once per size into the
cache dir (``--cache-dir``, default ``~/.cache/mme-bench``): tiny ones by ``mme.tiny``, full-size
ones by ``bench.full_size`` in a child process.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from bench.output import write_json  # noqa: E402
from bench.workloads import PROFILES  # noqa: E402
from mme.models import MODELS  # noqa: E402

DEFAULT_CACHE = Path(os.environ.get("MME_BENCH_CACHE", Path.home() / ".cache" / "mme-bench"))

LABELS = {
    ("sam", "handler"): "project handler (embedding cache; encoder autocast bf16/fp16 on GPU, fp32 on CPU)",
    ("sam", "baseline"): "original sample's way (fp32, SamPredictor.set_image on every click)",
    ("lama", "handler"): "project handler (fp32 big-lama generator; region around the mask on large images)",
    ("lama", "baseline"): "whole image at full resolution (hd_strategy: original; the original sample's way)",
    ("sd", "handler"): "project handler (crop at 512, scheduler and steps of model-config.yaml; fp16 on GPU)",
    ("sd", "baseline"): "original sample's way (pipeline defaults: PNDM, 50 steps, guidance 10; fp16 GPU / fp32 CPU)",
    ("sd", "fp16"): "project handler with dtype float16: the fp16 files kept as they are (the GPU path's load, on CPU)",
}


# ---------------------------------------------------------------------- weights
def ensure_weights(name: str, size: str, cache_dir: Path, sam_type: str = "vit_h", log=print) -> tuple[Path, float]:
    """The weights folder for ``name`` at ``size`` ("tiny"/"full"), built into the cache if missing.

    Returns (folder, build seconds; 0 when cached).
    """
    from bench.full_size import BUILDER_VERSION

    tag = f"{size}-{name}" + (f"-{sam_type}" if name == "sam" and size == "full" else "") + f"-v{BUILDER_VERSION}"
    target = Path(cache_dir) / tag
    if (target / ".complete").is_file():
        return target, 0.0
    tmp = Path(cache_dir) / (tag + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    if size == "tiny":
        from mme import tiny

        tiny.build(name, tmp)
    else:
        log(f"building full-size {name} weights into {target} (once)...")
        cmd = [sys.executable, "-m", "bench.full_size", name, str(tmp)]
        if name == "sam":
            cmd += ["--sam-type", sam_type]
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    (target / ".complete").write_text(_dt.datetime.now(_dt.timezone.utc).isoformat())
    return target, time.perf_counter() - start


# ---------------------------------------------------------------------- comparisons
def _req(run: dict | None, prefix: str) -> dict | None:
    for rname, req in ((run or {}).get("requests") or {}).items():
        if (rname == prefix or rname.startswith(prefix)) and not req.get("error") and "p50_ms" in req:
            return req
    return None


def _ratio(a, b):
    return (a / b) if (a is not None and b) else None


#: Runs of the project's handler (this version's, or ``before``: ``--compare-sources``) and the
#: handler settings a baseline variant runs with instead of a baseline class.
HANDLER_BASELINES = {"lama": {"hd_strategy": "original", "max_image_pixels": 4096 * 4096}}


def compare_versions(runs: dict) -> list[dict]:
    """``before`` (an earlier version's handler) against this one: load and its memory, the
    requests both served (ratio = before / now)."""
    h, b = runs.get("handler") or {}, runs.get("before")
    if not b or b.get("error") or h.get("error"):
        return []
    comps = []
    for key, what, unit in (("import_s", "handler import", "s"), ("load_s", "load (artifact dir -> ready)", "s"),
                            ("load_to_cold_read_ratio", "load / cold read of the weights", "x")):
        comps.append({"what": f"{what}: before vs now", "unit": unit, "handler": h.get(key), "baseline": b.get(key),
                      "ratio": _ratio(b.get(key), h.get(key)), "versions": True})
    hm, bm = h.get("memory") or {}, b.get("memory") or {}
    peak = lambda m: _ratio(m.get("load_peak_mib"), m.get("loaded_mib"))  # noqa: E731
    comps.append({"what": "load peak / loaded memory: before vs now", "unit": "x", "handler": peak(hm),
                  "baseline": peak(bm), "ratio": _ratio(peak(bm), peak(hm)), "versions": True})
    for rname, req in (h.get("requests") or {}).items():
        old = (b.get("requests") or {}).get(rname)
        if old and "p50_ms" in old and "p50_ms" in req:
            comps.append({"what": f"{rname} p50: before vs now", "unit": "ms", "handler": req["p50_ms"],
                          "baseline": old["p50_ms"], "ratio": _ratio(old["p50_ms"], req["p50_ms"]), "versions": True})
    return comps


def compare(name: str, runs: dict) -> tuple[list[dict], dict]:
    """Handler-vs-baseline comparisons (ratio = baseline / handler) and step extrapolations."""
    h, b = runs.get("handler") or {}, runs.get("baseline")
    comps: list[dict] = compare_versions(runs)
    estimates: dict = {}
    if h.get("error"):
        return comps, estimates
    if b and not b.get("error"):
        comps.append({"what": "load (artifact dir -> ready)", "unit": "s", "handler": h.get("load_s"),
                      "baseline": b.get("load_s"), "ratio": _ratio(b.get("load_s"), h.get("load_s"))})
        hm, bm = h.get("memory") or {}, b.get("memory") or {}
        comps.append({"what": f"inference peak memory ({hm.get('metric')})", "unit": "MiB",
                      "handler": hm.get("inference_peak_mib"), "baseline": bm.get("inference_peak_mib"),
                      "ratio": _ratio(bm.get("inference_peak_mib"), hm.get("inference_peak_mib"))})
    if name == "lama" and b and not b.get("error"):
        for rname, req in (h.get("requests") or {}).items():
            full = (b.get("requests") or {}).get(rname)
            if full and "p50_ms" in full and "p50_ms" in req:
                comps.append({"what": f"{rname}: p50 vs the whole image at full resolution", "unit": "ms",
                              "handler": req["p50_ms"], "baseline": full["p50_ms"],
                              "ratio": _ratio(full["p50_ms"], req["p50_ms"])})
                comps.append({"what": f"{rname}: peak memory vs the whole image at full resolution", "unit": "MiB",
                              "handler": req.get("peak_mib"), "baseline": full.get("peak_mib"),
                              "ratio": _ratio(full.get("peak_mib"), req.get("peak_mib"))})
    if name == "sam" and b and not b.get("error"):
        base = _req(b, "click_")
        for prefix, what in (("first_click_", "first click on a new image, p50"),
                             ("cached_click", "cached click (image_id), p50"),
                             ("cached_click_resend", "cached click (image resent), p50")):
            req = h.get("requests", {}).get(prefix) if prefix.startswith("cached") else _req(h, prefix)
            if req and base and not req.get("error"):
                comps.append({"what": what + " vs the sample's click", "unit": "ms", "handler": req["p50_ms"],
                              "baseline": base["p50_ms"], "ratio": _ratio(base["p50_ms"], req["p50_ms"])})
                on_cpu = str((h.get("handler_info") or {}).get("device", "cpu")).startswith("cpu")
                if on_cpu and req.get("cpu_p50_ms") and base.get("cpu_p50_ms"):
                    comps.append({"what": what.replace("p50", "CPU time p50") + " vs the sample's click",
                                  "unit": "ms", "handler": req["cpu_p50_ms"], "baseline": base["cpu_p50_ms"],
                                  "ratio": _ratio(base["cpu_p50_ms"], req["cpu_p50_ms"])})
    if name == "sd" and b and not b.get("error"):
        default_steps = int(((h.get("handler_info") or {}).get("default_steps") or 0) or 0) or None
        hreqs, breqs = h.get("requests") or {}, b.get("requests") or {}
        full_h = [r for n, r in hreqs.items() if not n.endswith("step") and "p50_ms" in r]
        full_b = [r for n, r in breqs.items() if n.endswith("_50step") and "p50_ms" in r]
        if full_h and full_b:
            size = (full_h[0].get("params") or {}).get("size", "?")
            comps.append({"what": f"{size} px request: handler defaults ({default_steps} steps) vs PNDM 50 steps, p50",
                          "unit": "ms", "handler": full_h[0]["p50_ms"], "baseline": full_b[0]["p50_ms"],
                          "ratio": _ratio(full_b[0]["p50_ms"], full_h[0]["p50_ms"])})
        for key, label in (("p50_ms", "wall"), ("cpu_p50_ms", "CPU time")):
            h1, h2 = _step_pair(hreqs, key)
            b1, b2 = _step_pair(breqs, key)
            if not (h1 and h2 and b1 and b2 and default_steps):
                continue
            hs, bs = h2 - h1, b2 - b1
            tag = "" if key == "p50_ms" else "cpu_"
            if hs <= 0 or bs <= 0:  # the second step cost nothing: noise (other jobs) swamped it
                estimates[f"{tag}note"] = f"{label}: 2 steps not slower than 1 step; no extrapolation"
                continue
            est_h = h1 + (default_steps - 1) * hs
            est_b = b1 + 49 * bs
            estimates.update({f"{tag}handler_per_step_ms": hs, f"{tag}handler_estimated_{default_steps}_steps_ms": est_h,
                              f"{tag}baseline_per_step_ms": bs, f"{tag}baseline_estimated_50_steps_ms": est_b})
            comps.append({"what": f"estimated from 1 and 2 steps ({label}): {default_steps} steps (handler) "
                                  "vs PNDM 50 (baseline)",
                          "unit": "ms", "handler": est_h, "baseline": est_b, "ratio": _ratio(est_b, est_h),
                          "estimated": True})
    return comps, estimates


def _step_pair(reqs: dict, key: str = "p50_ms") -> tuple[float | None, float | None]:
    one = next((r.get(key) for n, r in reqs.items() if n.endswith("_1step") and not r.get("error")), None)
    two = next((r.get(key) for n, r in reqs.items() if n.endswith("_2step") and not r.get("error")), None)
    return one, two


# ---------------------------------------------------------------------- running
def run_worker(spec: dict, work: Path, timeout: float, log=print, tag: str | None = None) -> dict:
    """Run one worker process; its result dict (``error`` set when it failed)."""
    tag = f"{spec['model']}-{tag or spec['variant']}"
    spec_path, out_path, log_path = work / f"{tag}.spec.json", work / f"{tag}.result.json", work / f"{tag}.log"
    spec_path.write_text(json.dumps(spec, indent=2))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    start = time.perf_counter()
    with open(log_path, "wb") as logfh:
        try:
            proc = subprocess.run([sys.executable, "-m", "bench.worker", str(spec_path), str(out_path)], cwd=REPO,
                                  stdout=logfh, stderr=subprocess.STDOUT, timeout=timeout, env=env)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
    wall = time.perf_counter() - start
    result = json.loads(out_path.read_text()) if out_path.is_file() else {}
    if rc is None:
        result["error"] = f"timed out after {timeout:.0f} s"
    elif not result:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        result = {"error": f"worker exited {rc}: {' | '.join(tail)[:300]}"}
    result.setdefault("variant", spec["variant"])
    result.setdefault("label", spec["label"])
    result["worker_wall_s"] = wall
    log(f"  {tag}: {'FAILED ' + result['error'] if result.get('error') else 'ok'} ({wall:.1f} s)")
    return result


def _requests(requests: list, args) -> list[dict]:
    out = []
    for rt in requests:
        if args.only_requests and rt.name not in args.only_requests:
            continue
        d = rt.to_dict()
        if args.iterations is not None:
            d["iterations"] = max(1, args.iterations)
        if args.warmup is not None:
            d["warmup"] = max(0, args.warmup)
        out.append(d)
    return out


def run_model(name: str, profile: dict, args, work: Path, threads: int, log=print) -> dict:
    """Every variant of one model (``before``, ``handler``, ``baseline``), each in its own worker."""
    from bench.serving import assemble_model_dir

    plan = profile[name]
    weights, build_s = ensure_weights(name, profile["size"], args.cache_dir, args.sam_type, log)
    overrides = {"device": args.device}
    if name == "sam" and profile["size"] == "full":
        overrides["model_type"] = args.sam_type
    variants = []  # (variant, implementation, model dir, yaml config, requests)
    if args.compare_sources is not None:
        before_dir, before_cfg = assemble_model_dir(name, weights, work / "before", overrides, args.compare_sources)
        variants.append(("before", "handler", before_dir, before_cfg, plan["handler"]))
    model_dir, yaml_cfg = assemble_model_dir(name, weights, work / "models", overrides)
    variants.append(("handler", "handler", model_dir, yaml_cfg, plan["handler"]))
    for variant, handler_overrides in (plan.get("handler_variants") or {}).items():
        extra_dir, extra_cfg = assemble_model_dir(name, weights, work / variant, {**overrides, **handler_overrides})
        variants.append((variant, "handler", extra_dir, extra_cfg, plan["handler"]))
    if plan["baseline"] and not args.no_baseline:
        if name in HANDLER_BASELINES:
            base_dir, base_cfg = assemble_model_dir(name, weights, work / "baseline",
                                                    {**overrides, **HANDLER_BASELINES[name]})
            variants.append(("baseline", "handler", base_dir, base_cfg, plan["baseline"]))
        else:
            variants.append(("baseline", "baseline", model_dir, yaml_cfg, plan["baseline"]))
    entry = {"weights_dir": str(weights), "weights_build_s": build_s, "runs": {}}
    specs = []
    for variant, implementation, mdir, cfg, requests in variants:
        requests = _requests(requests, args)
        if not requests and not plan.get("load_only"):
            continue
        label = LABELS.get((name, variant), variant)
        if variant == "before":
            label = f"the handler of {args.compare_label or args.compare_sources}"
        specs.append({"model": name, "variant": variant, "implementation": implementation, "label": label,
                      "device": args.device, "model_dir": str(mdir), "yaml_config": cfg,
                      "requests": requests, "threads": threads,
                      "settings": {"handler": cfg.get("handler", {})} if implementation == "handler" else {}})
    attempts: dict[str, list] = {spec["variant"]: [] for spec in specs}
    for round_ in range(max(1, args.repeat)):
        # variants interleaved, every other round in reverse (before, now, now, before, ...): what
        # one worker leaves behind (page cache, memory the host takes back) falls on each alike
        for spec in (specs if round_ % 2 == 0 else specs[::-1]):
            tag = spec["variant"] if args.repeat <= 1 else f"{spec['variant']}-{round_ + 1}"
            attempts[spec["variant"]].append(run_worker(spec, work, args.timeout, log, tag=tag))
    cold_reads = [r["weights"]["read_cold_s"] for results in attempts.values() for r in results
                  if not r.get("error") and (r.get("weights") or {}).get("read_cold_s")]
    for variant, results in attempts.items():
        entry["runs"][variant] = median_load_run(results, cold_reads)
    entry["comparisons"], entry["estimates"] = compare(name, entry["runs"])
    return entry


def median_load_run(results: list[dict], cold_reads: list[float] | None = None) -> dict:
    """One row for a variant's attempts (one worker process each): the attempt whose load time is
    the median, its load / cold read taken against the median of ``cold_reads`` (every cold read of
    the model's weight files in the run, all variants: the same files, read before each attempt;
    one read is a poor denominator where the disk's speed varies between reads). Every attempt's
    own figures are attached (``load_attempts``) when there were several."""
    good = [r for r in results if not r.get("error")]
    if len(results) == 1 or not good:
        chosen = dict(results[0])
    else:
        good.sort(key=lambda r: r.get("load_s") or 0.0)
        chosen = dict(good[(len(good) - 1) // 2])
        chosen["load_attempts"] = [
            {"load_s": r.get("load_s"), "read_cold_s": (r.get("weights") or {}).get("read_cold_s"),
             "load_to_cold_read_ratio": r.get("load_to_cold_read_ratio"),
             "loaded_mib": (r.get("memory") or {}).get("loaded_mib"),
             "load_peak_mib": (r.get("memory") or {}).get("load_peak_mib"),
             "import_s": r.get("import_s"), "error": r.get("error")} for r in results]
    if cold_reads and len(cold_reads) > 1 and not chosen.get("error") and chosen.get("load_s") is not None:
        cold = statistics.median(cold_reads)
        chosen["weights"] = {**chosen["weights"], "read_cold_s": cold, "read_cold_of": len(cold_reads)}
        chosen["load_to_cold_read_ratio"] = chosen["load_s"] / cold
    return chosen


def environment(device: str) -> dict:
    """Machine and software description (the worker module's, run here)."""
    from bench.worker import environment as env

    return env(device)


def parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    p.add_argument("--models", default="sam,lama,sd", help="comma-separated subset of sam,lama,sd")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="gpu (default on cuda), cpu (default on cpu), tiny (tiny models, seconds)")
    p.add_argument("--out", type=Path, required=True, help="results JSON to write")
    p.add_argument("--write-docs", action="store_true", help="re-render the docs section")
    p.add_argument("--docs", type=Path, default=report.DOCS, help="Markdown file (default docs/performance.md)")
    p.add_argument("--iterations", type=int, default=None, help="timed requests per type (overrides the profile)")
    p.add_argument("--warmup", type=int, default=None, help="untimed requests per type (overrides the profile)")
    p.add_argument("--no-baseline", action="store_true", help="skip the original sample's way")
    p.add_argument("--sam-type", default="vit_h", choices=["vit_h", "vit_l", "vit_b"],
                   help="full-size SAM variant (default vit_h, the production one)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--work-dir", type=Path, default=None, help="model dirs and logs (default: a temp dir)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker process")
    p.add_argument("--note", action="append", default=[], help="a note on the run's conditions (repeatable)")
    p.add_argument("--compare-sources", type=Path, default=None, metavar="DIR",
                   help="another version's model_sources/: each model also runs from it as variant 'before'")
    p.add_argument("--only-requests", type=lambda v: {n.strip() for n in v.split(",") if n.strip()},
                   default=None, metavar="NAMES", help="run only these request types (comma-separated names)")
    p.add_argument("--repeat", type=int, default=1,
                   help="worker processes per variant, interleaved; the attempt with the median load time is "
                        "reported against the median cold read of all the model's attempts, every attempt's "
                        "load figures with it (default 1)")
    p.add_argument("--compare-label", default=None,
                   help="what --compare-sources is (e.g. a commit); shown with the results")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads in the workers (default: the profile's; 0 = torch's default)")
    return p


def checked_args(p: argparse.ArgumentParser, argv: list[str] | None) -> tuple[argparse.Namespace, list[str], str]:
    """Parsed arguments, the models to run and the profile's name; a one-line error otherwise."""
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        p.error(f"--models must be a subset of {','.join(MODELS)}")
    if args.compare_sources is not None and not all((args.compare_sources / m / "handler.py").is_file()
                                                    for m in models):
        p.error(f"--compare-sources {args.compare_sources}: no <model>/handler.py there for {','.join(models)}")
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            p.error("--device cuda but torch.cuda.is_available() is False")
    profile_name = args.profile or ("gpu" if args.device == "cuda" else "cpu")
    missing = [m for m in models if m not in PROFILES[profile_name]]
    if missing:
        p.error(f"profile {profile_name} does not run {','.join(missing)}: "
                f"--models {','.join(m for m in MODELS if m in PROFILES[profile_name])}")
    return args, models, profile_name


def new_result(args: argparse.Namespace, argv: list[str] | None, models: list[str], profile_name: str,
               threads: int) -> dict:
    """The results dict before any model ran: command, machine, notes."""
    size = PROFILES[profile_name]["size"]
    result = {
        "schema": report.SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.run " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "profile": profile_name,
        "model_size": size,
        "device": environment(args.device),
        "notes": list(args.note),
        "models": {},
    }
    result["device"]["load_average_start"] = list(os.getloadavg())
    result["device"]["worker_threads"] = threads or result["device"].get("torch_threads")
    if size == "full" and args.sam_type != "vit_h" and "sam" in models:
        result["notes"].append(f"SAM measured as {args.sam_type} (reduced), not vit_h")
    if args.compare_sources is not None:
        result["notes"].append(f"'before' = the handlers of {args.compare_label or args.compare_sources}, "
                               "same weights and requests, run in the same way just before this version's")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    args, models, profile_name = checked_args(parser(), argv)
    profile = PROFILES[profile_name]
    threads = profile.get("threads", 0) if args.threads is None else args.threads
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="mme-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    result = new_result(args, argv, models, profile_name, threads)
    for name in models:
        log(f"{name}:")
        result["models"][name] = run_model(name, profile, args, work, threads, log)
    result["wall_s"] = time.perf_counter() - started
    result["device"]["load_average_end"] = list(os.getloadavg())

    problems = report.validate(result)
    log(f"wrote {write_json(args.out, result)} ({result['wall_s']:.0f} s)")
    if problems:
        log("schema problems: " + "; ".join(problems))
        return 1
    if args.write_docs:
        docs = report.write_docs(report.collect(sorted(args.out.parent.glob("*.json"))), args.docs)
        log(f"wrote {docs}")
    failed = [f"{n}/{v}" for n, m in result["models"].items() for v, r in m["runs"].items() if r.get("error")]
    if failed:
        log("failed runs: " + ", ".join(failed))
        return 1
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
