"""Which result file the cost table's measured rows come from (bench/report.py footprint_source)."""

from __future__ import annotations

from bench.report import footprint_source


def _run(kind: str, created: str, served: dict[str, bool], size: str = "full", profile: str = "p") -> dict:
    models = {name: {"runs": {"handler": {"memory": {"inference_peak_mib": 1000.0 if has else None}}}}
              for name, has in served.items()}
    return {"device": {"kind": kind}, "created": created, "model_size": size, "profile": profile, "models": models}


def test_the_run_that_served_the_most_models_wins_over_a_newer_partial_one():
    full = _run("cpu", "2026-01-01", {"sam": True, "lama": True, "sd": True}, profile="cpu")
    click = _run("cpu", "2026-02-01", {"sam": True, "lama": False, "sd": False}, profile="click")
    load_only = _run("cpu", "2026-03-01", {"sam": False, "lama": False, "sd": False}, profile="load")
    assert footprint_source([full, click, load_only]) is full
    newer_full = _run("cpu", "2026-04-01", {"sam": True, "lama": True, "sd": True})
    assert footprint_source([full, click, newer_full]) is newer_full


def test_a_gpu_run_wins_over_cpu_runs_and_tiny_or_load_only_runs_never_count():
    cpu = _run("cpu", "2026-05-01", {"sam": True, "lama": True, "sd": True})
    gpu = _run("cuda", "2026-01-01", {"sd": True}, size="tiny")
    assert footprint_source([cpu, gpu]) is gpu
    tiny_cpu = _run("cpu", "2026-06-01", {"sam": True}, size="tiny")
    load_only = _run("cpu", "2026-07-01", {"sam": False})
    assert footprint_source([tiny_cpu, load_only]) is None
