"""``mme local up|down|status`` lifecycle on a real TorchServe and local endpoint (tiny models, their
own state dir): ``up`` twice is harmless, models load on first use and the least recently used one
is unloaded when the memory budget runs short, ``down`` leaves no process behind (endpoint, Java
frontend, Python launcher, model workers), and the state is reported honestly at each step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from client_support import processes_mentioning, sample_photo, session_processes
from PIL import Image

pytestmark = pytest.mark.torchserve


def workers(state) -> list:
    return [p for p in processes_mentioning(str(state)) if "model_service_worker" in " ".join(p.cmdline())]


@pytest.fixture
def state(tmp_path, run_mme):
    """A state dir, brought down after the test whatever happened in it."""
    yield tmp_path / "state"
    run_mme("local", "down", "--state-dir", tmp_path / "state")


def test_up_twice_then_down_leaves_nothing(tmp_path, state, run_mme, mme_env):
    weights = tmp_path / "weights"
    for model in ("sam", "lama"):
        built = subprocess.run([sys.executable, "-m", "mme.tiny", model, str(weights / model)], env=mme_env,
                               capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, built.stderr

    # a budget of 1 MiB holds one model at a time: each load unloads the other
    first = run_mme("local", "up", "--weights", weights, "--models", "sam,lama", "--memory-budget-mib", "1",
                    "--state-dir", state)
    assert first.returncode == 0, first.stderr
    assert "not loaded (loads on first use)" in first.stdout and "of 1 MiB in use" in first.stdout
    server = json.loads((state / "server" / "local_server.json").read_text())
    pgid = server["pgid"]
    endpoint = json.loads((state / "local.json").read_text())["endpoint"]
    java = [p for p in processes_mentioning(str(state)) if p.name() == "java"]
    assert len(java) == 1 and workers(state) == [], [p.cmdline()[:3] for p in processes_mentioning(str(state))]
    assert java[0].pid in {p.pid for p in session_processes(pgid)}
    assert [p.pid for p in session_processes(endpoint["pid"])] == [endpoint["pid"]]
    # detached: both outlived the `mme local up` process, each in a session of its own
    for leader in (pgid, endpoint["pid"]):
        assert psutil.pid_exists(leader) and os.getsid(leader) == leader != os.getsid(0)

    again = run_mme("local", "up", "--weights", weights, "--models", "sam,lama", "--state-dir", state)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("the local endpoint is already running")
    assert json.loads((state / "server" / "local_server.json").read_text())["pgid"] == pgid
    assert len([p for p in processes_mentioning(str(state)) if p.name() == "java"]) == 1

    other = run_mme("local", "up", "--weights", "tiny", "--models", "sam", "--state-dir", state)
    assert other.returncode == 1
    assert other.stderr.strip() == (f"mme local up: error: the local server already runs with weights {weights}; "
                                    "run `mme local down` first to switch")
    budget = run_mme("local", "up", "--weights", weights, "--models", "sam,lama", "--memory-budget-mib", "2",
                     "--state-dir", state)
    assert budget.returncode == 1 and "memory budget of 1 MiB" in budget.stderr

    photo = sample_photo("chelsea.png")
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((300, 451), 255, np.uint8)).save(mask)
    loc = ("--local", "--state-dir", state)
    assert run_mme("select", photo, "--point", "10,10", "-o", tmp_path / "m.png", *loc).returncode == 0
    assert len(workers(state)) == 1
    assert run_mme("erase", photo, "--mask", mask, "-o", tmp_path / "e.png", *loc).returncode == 0
    assert len(workers(state)) == 1                      # sam made room for lama

    status = run_mme("local", "status", "--json", "--state-dir", state)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["running"] and info["process_group"] == pgid and info["endpoint_pid"] == endpoint["pid"]
    assert info["memory_budget_bytes"] == 2**20 and info["endpoint_url"].startswith("http://127.0.0.1:")
    sam, lama = info["models"]["sam"], info["models"]["lama"]
    assert (sam["state"], sam["loads"], sam["unloads"], sam["hits"] + sam["misses"]) == ("unloaded", 1, 1, 1)
    assert (lama["state"], lama["loads"], lama["unloads"]) == ("loaded", 1, 0)
    assert lama["size_bytes"] == info["used_bytes"] > 0 and lama["worker_pids"] == [workers(state)[0].pid]
    # per model, from the handlers' request lines in TorchServe's console (as the dashboard counts them)
    deadline = time.monotonic() + 10
    while set(info.get("requests", {})) != {"sam", "lama"} and time.monotonic() < deadline:
        time.sleep(0.2)
        info = json.loads(run_mme("local", "status", "--json", "--state-dir", state).stdout)
    for model in ("sam", "lama"):
        figures = info["requests"][model]
        assert (figures["requests"], figures["ok"], figures["4xx"], figures["5xx"]) == (1, 1, 0, 0)
        assert 0 < figures["latency_ms"]["p50"] == figures["latency_ms"]["p99"]
    assert info["requests"]["sam"]["cache_hit_ratio"] == 0 and info["requests"]["lama"]["cache_hit_ratio"] is None
    text = run_mme("local", "status", "--state-dir", state).stdout
    assert "requests, from the handlers' request lines" in text and "  lama  requests 1 (ok 1, 4xx 0, 5xx 0)" in text
    everything = {p.pid for p in processes_mentioning(str(state))}

    down = run_mme("local", "down", "--state-dir", state)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "stopped the local endpoint"
    assert session_processes(pgid) == [] and session_processes(endpoint["pid"]) == []
    assert processes_mentioning(str(state)) == []
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in everything)
    assert not (state / "models").exists() and not (state / "endpoint_token").exists()

    status = run_mme("local", "status", "--state-dir", state)
    assert status.returncode == 1 and status.stdout.startswith("not running")
    down = run_mme("local", "down", "--state-dir", state)
    assert down.returncode == 0 and down.stdout.strip() == "the local endpoint is not running"


def test_up_rejects_bad_weights_and_models(tmp_path, run_mme):
    state = tmp_path / "state"
    result = run_mme("local", "up", "--weights", tmp_path / "missing", "--state-dir", state)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "--weights" in result.stderr and "one subfolder per model" in result.stderr
    result = run_mme("local", "up", "--models", "sam,gan", "--state-dir", state)
    assert result.returncode == 2 and "unknown model(s) gan" in result.stderr
    (tmp_path / "w" / "sam").mkdir(parents=True)
    result = run_mme("local", "up", "--weights", tmp_path / "w", "--models", "sam", "--state-dir", state)
    assert result.returncode == 1 and "no weight files in" in result.stderr and "Traceback" not in result.stderr
    assert not (state / "local.json").exists()
