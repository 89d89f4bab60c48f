"""The serving benchmarks' arithmetic and report: figures from known records (statuses, latency
percentiles, worker memory start/middle/end, restarts), the targets line, and the generated
section written between its markers with the rest of docs/performance.md kept."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import load, serving_report  # noqa: E402

TARGETS = {"sam": "sam-1.tar.gz", "lama": "lama-1.tar.gz"}


def sample(t, sam_size, lama_state="loaded", sam_pids=(11,), restarts=0, loads=1):
    return {"t": t, "used_bytes": 0, "models": {
        "sam-1.tar.gz": {"state": "loaded", "size_bytes": sam_size, "worker_pids": list(sam_pids),
                         "worker_restarts": restarts, "loads": 1, "unloads": 0, "hits": 10 * t, "misses": 0},
        "lama-1.tar.gz": {"state": lama_state, "size_bytes": 500 * 2**20 if lama_state == "loaded" else None,
                          "worker_pids": [22] if lama_state == "loaded" else [], "worker_restarts": 0,
                          "loads": loads, "unloads": loads - 1, "hits": 0, "misses": loads}}}


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert load.percentile(values, 50) == 50 and load.percentile(values, 99) == 99
    assert load.percentile([7.0], 99) == 7.0 and load.percentile([], 50) is None
    assert load.percentile([3, 1, 2], 50) == 2


def test_summary_counts_every_status_and_reads_the_samples():
    records = [(0.0, 0.1 * i, "sam", 200) for i in range(1, 11)]
    records += [(0.0, 5.0, "sam", 503), (0.0, 0.2, "lama", 200), (0.0, 0.3, "lama", "error: ConnectionResetError")]
    samples = [sample(0, 1000 * 2**20), sample(10, 1050 * 2**20), sample(20, 1080 * 2**20, restarts=1,
                                                                           sam_pids=(11, 12), loads=3),
               {"t": 21, "error": "not answering"}]
    out = load.summarize(records, samples, wall=20.0, targets=TARGETS)
    assert out["requests"] == 13 and out["rps"] == 13 / 20
    assert out["statuses"] == {"200": 11, "503": 1, "error: ConnectionResetError": 1}
    assert out["errors"] == 1 and out["backpressure_503"] == 1
    sam = out["per_model"]["sam"]
    assert (sam["requests"], sam["ok"], sam["p50_ms"], sam["p99_ms"]) == (11, 10, 500.0, 1000.0)
    assert sam["statuses"] == {"200": 10, "503": 1}
    mem = out["worker_memory"]["sam"]
    assert (mem["start_mib"], mem["middle_mib"], mem["end_mib"]) == (1000, 1050, 1080)
    assert mem["change_pct"] == pytest.approx(8.0)
    counters = out["endpoint_counters"]
    assert counters["sam"]["worker_restarts"] == 1 and counters["sam"]["distinct_worker_pids"] == 2
    assert counters["lama"]["loads"] == 2 and counters["lama"]["misses"] == 2
    assert out["samples"] == 3


def test_mix_is_checked_and_normalised():
    assert load.parse_mix("select=3,erase=1") == {"select": 0.75, "erase": 0.25}
    with pytest.raises(ValueError, match="unknown request kind 'paint'"):
        load.parse_mix("select=1,paint=1")
    with pytest.raises(ValueError, match="more than 0"):
        load.parse_mix("select=0")


def _load_result(change_pct: float, errors: int, restarts: int) -> dict:
    mem = {"start_mib": 100.0, "middle_mib": 100.0, "end_mib": 100 + change_pct, "change_pct": change_pct}
    per_model = {"sam": {"requests": 10, "rps": 1.0, "ok": 10, "p50_ms": 1500.0, "p99_ms": 2500.0,
                         "statuses": {"200": 10}}}
    counters = {"sam": {"loads": 0, "unloads": 0, "hits": 10, "misses": 0, "worker_restarts": restarts}}
    run = {"kind": "steady", "clients": 32, "wall_s": 10.0, "requests": 10, "rps": 1.0, "statuses": {"200": 10},
           "errors": errors, "per_model": per_model, "worker_memory": {"sam": mem}, "endpoint_counters": counters}
    return {"schema": load.SCHEMA, "created": "2026-12-01T00:00:00+00:00", "command": "python -m bench.load",
            "weights": "tiny", "mix": {"select": 1.0}, "request_bytes": {"select": [1024, 2048]},
            "device": {"cpu_count": 2, "memory_gib": 23.5}, "runs": [run]}


@pytest.mark.parametrize("change,errors,restarts,verdicts", [
    (2.0, 0, 0, ("(met)", "(met)", "(met)")),
    (12.5, 0, 0, ("(met)", "(NOT met)", "(met)")),
    (-11.0, 3, 1, ("(NOT met)", "(NOT met)", "(NOT met)")),
])
def test_targets_line(change, errors, restarts, verdicts):
    text = serving_report.render_load(_load_result(change, errors, restarts))
    targets = next(line for line in text.splitlines() if line.startswith("Targets:"))
    parts = targets.split(";")
    for part, verdict in zip(parts, verdicts):
        assert part.rstrip(".").endswith(verdict), targets
    assert "| steady | 32 | sam | 10 | 1.00 | 1.50 | 2.50 | 200: 10 |" in text


def test_section_is_written_between_its_markers(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "load-x.json").write_text(json.dumps(_load_result(1.0, 0, 0)))
    (results / "handler.json").write_text(json.dumps({"schema": "mme-bench/1"}))  # another section's file
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n\nKept above.\n\n<!-- bench:start -->\nhandler tables\n<!-- bench:end -->\n")
    serving_report.write_docs(docs, results)
    first = docs.read_text()
    assert first.startswith("# Performance\n\nKept above.\n\n<!-- bench:start -->\nhandler tables\n<!-- bench:end -->")
    assert first.count(serving_report.START) == 1 and "| steady | 32 | sam |" in first
    assert "No results yet: run `python -m bench.cold_start`" in first
    serving_report.write_docs(docs, results)           # again: replaced, not appended
    assert docs.read_text() == first
