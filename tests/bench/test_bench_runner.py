"""The benchmark runner, run for real on the tiny models (CPU, 1 iteration): the JSON it writes
follows the schema, and the docs section is written between its markers with the rest of the
file left intact."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402

OTHER_SECTION = "## Packaging\n<!-- packager:start -->\ngzip level 1: 412 MB/s\n<!-- packager:end -->\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One real run of the runner: tiny sam, lama and sd, handler and baseline (about 30 s on an idle machine)."""
    tmp = tmp_path_factory.mktemp("bench")
    docs = tmp / "performance.md"
    docs.write_text("# Performance\n\nIntro kept.\n\n" + OTHER_SECTION + "\nTail kept.\n")
    out = tmp / "results" / "tiny.json"
    cmd = [sys.executable, "-m", "bench.run", "--device", "cpu", "--profile", "tiny", "--models", "sam,lama,sd",
           "--iterations", "1", "--warmup", "0", "--out", str(out), "--docs", str(docs), "--write-docs",
           "--cache-dir", str(tmp / "cache"), "--work-dir", str(tmp / "work"), "--timeout", "120"]
    # The timeout only stops a hung run; how fast the runner is belongs to the benchmark, not to a test.
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"data": json.loads(out.read_text()), "docs": docs.read_text(), "stderr": proc.stderr}


def test_results_follow_the_schema(tiny_run):
    data = tiny_run["data"]
    assert report.validate(data) == []
    assert data["schema"] == "mme-bench/1" and data["profile"] == "tiny" and data["model_size"] == "tiny"
    assert data["device"]["kind"] == "cpu" and data["device"]["cpu_count"] >= 1
    assert set(data["models"]) == {"sam", "lama", "sd"}
    expected_runs = {"sam": {"handler", "baseline"}, "lama": {"handler", "baseline"}, "sd": {"handler", "baseline"}}
    for name, model in data["models"].items():
        assert set(model["runs"]) == expected_runs[name]
        for variant, run in model["runs"].items():
            assert run.get("error") is None, (name, variant, run.get("error"))
            assert run["load_s"] > 0 and run["weights"]["bytes"] > 0 and run["weights"]["files"] >= 1
            mem = run["memory"]
            assert mem["metric"] == "peak_rss" and mem["unit"] == "MiB"
            assert 0 < mem["loaded_mib"] and mem["footprint_mib"] >= mem["load_peak_mib"] > 0
            for rname, req in run["requests"].items():
                assert req["n"] == 1 and req["warmup"] == 0 and len(req["samples_ms"]) == 1
                assert 0 < req["p50_ms"] <= req["p95_ms"] and req["peak_mib"] > 0
    for model in data["models"].values():  # both variants' rows: the median of the run's two cold reads
        reads = {(run["weights"]["read_cold_s"], run["weights"]["read_cold_of"]) for run in model["runs"].values()}
        assert len(reads) == 1 and reads.pop()[1] == 2
    sam = data["models"]["sam"]["runs"]["handler"]["requests"]
    assert {"first_click_128", "cached_click", "cached_click_resend"} <= set(sam)
    steps = sam["cached_click"]["stages_p50_ms"]  # bench.stages: exclusive time per step of the click
    assert list(steps) == ["parse", "decode", "upscale", "dilate", "encode_png", "encode", "other"]
    assert all(v >= 0 for v in steps.values()) and steps["decode"] > 0 and steps["encode_png"] > 0
    assert sum(steps.values()) == pytest.approx(sam["cached_click"]["p50_ms"], rel=0.5)
    lama = data["models"]["lama"]["runs"]
    assert set(lama["handler"]["requests"]) == {"inpaint_64", "inpaint_128", "inpaint_256_small_mask"}
    assert set(lama["baseline"]["requests"]) == {"inpaint_256_small_mask"}  # whole image, full resolution
    assert lama["baseline"]["settings"]["handler"]["hd_strategy"] == "original"
    assert lama["handler"]["settings"]["handler"]["hd_strategy"] == "crop"
    comps = {c["what"] for c in data["models"]["sam"]["comparisons"]}
    assert any(w.startswith("first click") for w in comps) and any(w.startswith("cached click (image_id)") for w in comps)
    sd_comp = [c for c in data["models"]["sd"]["comparisons"] if "PNDM 50" in c["what"]]
    assert sd_comp and sd_comp[0]["ratio"] > 0
    assert data["models"]["sd"]["runs"]["handler"]["handler_info"]["default_steps"]


def test_docs_section_between_markers_rest_intact(tiny_run):
    text = tiny_run["docs"]
    assert text.startswith("# Performance\n\nIntro kept.\n\n" + OTHER_SECTION)
    # no markers yet: the section is appended after the existing text
    assert text.index("Tail kept.") < text.index(report.START)
    assert text.count(report.START) == 1 and text.count(report.END) == 1
    section = text[text.index(report.START):text.index(report.END)]
    assert "#### CPU: profile `tiny`, tiny-size models" in section
    assert "| sam | handler | first_click_128 | 1 |" in section
    assert "| sam | baseline | click_128 | 1 |" in section
    assert "| lama | handler | inpaint_128 | 1 |" in section
    assert "| lama | baseline | inpaint_256_small_mask | 1 |" in section
    assert "load peak / loaded" in section
    assert section.count(" (median of 2) | ") == 6  # every load row: cold read = median of the model's reads
    assert "sam handler `cached_click`, per step" in section
    assert "| sd | baseline | inpaint_64_pndm_50step | 1 |" in section
    assert "| $1.52 | 100 | 4 | 200 | $218,880 | 50 | $54,720 | 75% |" in section  # the post's example


def test_rewrite_keeps_everything_else(tiny_run, tmp_path):
    docs = tmp_path / "performance.md"
    docs.write_text(tiny_run["docs"])
    report.write_docs([tiny_run["data"]], docs)
    assert docs.read_text() == tiny_run["docs"]
    report.write_docs([], docs)
    again = docs.read_text()
    assert again.startswith("# Performance\n\nIntro kept.\n\n" + OTHER_SECTION) and "Tail kept." in again
    assert "No results yet" in again and again.count(report.START) == 1
    fresh = report.write_docs([], tmp_path / "sub" / "new.md")
    assert fresh.read_text().startswith("# Performance\n\n" + report.START)


def test_schema_rejects_broken_results(tiny_run):
    data = json.loads(json.dumps(tiny_run["data"]))
    assert report.validate({"schema": "other"})  # not empty
    del data["models"]["sam"]["runs"]["handler"]["load_s"]
    data["models"]["lama"]["runs"]["handler"]["requests"]["inpaint_64"].pop("p50_ms")
    data["device"]["kind"] = "tpu"
    problems = report.validate(data)
    assert any("load_s" in p for p in problems) and any("p50_ms" in p for p in problems)
    assert any("device.kind" in p for p in problems)


def test_versions_compare_load_memory_and_requests():
    """``--compare-sources`` runs ('before') against this version: ratio = before / now."""
    from bench.run import compare_versions

    def run(load, peak, p50):
        return {"import_s": 1.0, "load_s": load, "load_to_cold_read_ratio": load / 2.0,
                "memory": {"loaded_mib": 1000.0, "load_peak_mib": peak}, "requests": {"cached_click": _req(p50)}}

    comps = {c["what"]: c for c in compare_versions({"before": run(6.0, 1600.0, 300.0), "handler": run(2.0, 1000.0, 60.0)})}
    assert comps["load (artifact dir -> ready): before vs now"]["ratio"] == 3.0
    assert comps["load / cold read of the weights: before vs now"]["handler"] == 1.0
    assert comps["load peak / loaded memory: before vs now"]["baseline"] == 1.6
    assert comps["cached_click p50: before vs now"]["ratio"] == 5.0
    assert compare_versions({"handler": run(2.0, 1000.0, 60.0)}) == []
    assert compare_versions({"before": {"error": "x"}, "handler": run(2.0, 1000.0, 60.0)}) == []


def test_repeated_loads_report_the_median_load_against_the_median_cold_read():
    from bench.run import median_load_run

    def attempt(load, cold=1.0, error=None):
        return {"load_s": load, "weights": {"read_cold_s": cold, "files": 1}, "import_s": 0.1, "error": error,
                "load_to_cold_read_ratio": load / cold if load else None,
                "memory": {"loaded_mib": 10.0, "load_peak_mib": 11.0 + (load or 0)}}

    tries = [attempt(3.0, 1.0), attempt(1.0, 4.0), attempt(2.0, 0.5), attempt(None, error="boom")]
    chosen = median_load_run(tries, cold_reads=[1.0, 4.0, 0.5, 2.0, 3.0])
    assert chosen["load_s"] == 2.0 and chosen["memory"]["load_peak_mib"] == 13.0  # the median attempt's own figures
    assert chosen["weights"] == {"read_cold_s": 2.0, "files": 1, "read_cold_of": 5}
    assert chosen["load_to_cold_read_ratio"] == 1.0  # not that attempt's own 2.0 / 0.5
    assert [a["load_s"] for a in chosen["load_attempts"]] == [3.0, 1.0, 2.0, None]
    assert [a["load_to_cold_read_ratio"] for a in chosen["load_attempts"]] == [3.0, 0.25, 4.0, None]
    assert median_load_run([attempt(5.0)]) == attempt(5.0)  # one attempt, no other reads: as it is
    assert median_load_run([attempt(None, error="boom")], cold_reads=[1.0, 2.0])["error"] == "boom"


def test_compare_sources_must_hold_the_models(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--models", "lama", "--device", "cpu",
                           "--compare-sources", str(tmp_path), "--out", str(tmp_path / "x.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no <model>/handler.py there for lama" in proc.stderr


def test_bad_models_argument_fails_fast(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--models", "sam,gpt", "--device", "cpu",
                           "--out", str(tmp_path / "x.json")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--models must be a subset of sam,lama,sd" in proc.stderr
    assert not (tmp_path / "x.json").exists()


def _req(p50, cpu=None):
    return {"n": 1, "warmup": 0, "p50_ms": p50, "p95_ms": p50, "mean_ms": p50, "samples_ms": [p50],
            "cpu_p50_ms": cpu}


def test_sd_step_extrapolation_and_noise_guard():
    from bench.run import compare

    runs = {"handler": {"handler_info": {"default_steps": "25"}, "load_s": 2.0, "memory": {},
                        "requests": {"inpaint_512_1step": _req(1000, 2000), "inpaint_512_2step": _req(1100, 1900)}},
            "baseline": {"load_s": 4.0, "memory": {},
                         "requests": {"inpaint_512_pndm_1step": _req(1000, 2000),
                                      "inpaint_512_pndm_2step": _req(1100, 2300)}}}
    comps, est = compare("sd", runs)
    # wall: 100 ms per step -> 25 steps: 1000 + 24 * 100; 50 steps: 1000 + 49 * 100
    assert est["handler_estimated_25_steps_ms"] == 3400 and est["baseline_estimated_50_steps_ms"] == 5900
    assert any(c.get("estimated") and c["ratio"] == pytest.approx(5900 / 3400) for c in comps)
    # CPU time: the handler's second step "cost" -100 ms: noise, no extrapolation, said so
    assert "cpu_handler_per_step_ms" not in est and "no extrapolation" in est["cpu_note"]
    load = next(c for c in comps if c["what"].startswith("load"))
    assert load["ratio"] == 2.0


def test_sam_comparisons():
    from bench.run import compare

    runs = {"handler": {"load_s": 1.0, "memory": {"inference_peak_mib": 100},
                        "requests": {"first_click_1024": _req(60), "cached_click": _req(5),
                                     "cached_click_resend": _req(8)}},
            "baseline": {"load_s": 1.0, "memory": {"inference_peak_mib": 150}, "requests": {"click_1024": _req(300)}}}
    comps, _ = compare("sam", runs)
    ratios = {c["what"].split(",")[0]: c["ratio"] for c in comps}
    assert ratios["first click on a new image"] == 5.0 and ratios["cached click (image_id)"] == 60.0
    assert ratios["cached click (image resent)"] == 37.5
    assert any(c["unit"] == "MiB" and c["ratio"] == 1.5 for c in comps)
