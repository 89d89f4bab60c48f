"""``mme local up|down|status`` lifecycle on a real TorchServe (one model, its own state dir):
``up`` twice is harmless, ``down`` leaves no process behind (Java frontend, Python launcher,
model workers), and the state is reported honestly at each step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psutil
import pytest
from client_support import processes_mentioning, session_processes

pytestmark = pytest.mark.torchserve


def test_up_twice_then_down_leaves_nothing(tmp_path, run_mme, mme_env):
    weights = tmp_path / "weights"
    built = subprocess.run([sys.executable, "-m", "mme.tiny", "sam", str(weights / "sam")], env=mme_env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    state = tmp_path / "state"

    first = run_mme("local", "up", "--weights", weights, "--models", "sam", "--state-dir", state)
    assert first.returncode == 0, first.stderr
    assert "sam" in first.stdout and "registered (READY)" in first.stdout
    server = json.loads((state / "server" / "local_server.json").read_text())
    pgid = server["pgid"]
    before = {p.pid for p in session_processes(pgid)}
    java = [p for p in processes_mentioning(str(state)) if p.name() == "java"]
    workers = [p for p in processes_mentioning(str(state)) if "model_service_worker" in " ".join(p.cmdline())]
    assert len(java) == 1 and len(workers) == 1, [p.cmdline()[:3] for p in processes_mentioning(str(state))]
    assert {java[0].pid, workers[0].pid} <= before
    # detached: it outlived the `mme local up` process, in a session of its own
    assert psutil.pid_exists(pgid) and os.getsid(pgid) == pgid != os.getsid(0)

    again = run_mme("local", "up", "--weights", weights, "--models", "sam", "--state-dir", state)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("the local TorchServe is already running")
    assert json.loads((state / "server" / "local_server.json").read_text())["pgid"] == pgid
    assert {p.pid for p in session_processes(pgid)} == before          # nothing new started
    assert len([p for p in processes_mentioning(str(state)) if p.name() == "java"]) == 1

    other = run_mme("local", "up", "--weights", "tiny", "--models", "sam", "--state-dir", state)
    assert other.returncode == 1
    assert other.stderr.strip() == (f"mme local up: error: the local server already runs with weights {weights}; "
                                    "run `mme local down` first to switch")

    status = run_mme("local", "status", "--json", "--state-dir", state)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["running"] and info["process_group"] == pgid
    assert info["models"]["sam"]["registered"] and info["models"]["sam"]["workers"] == ["READY"]
    assert info["inference_url"].startswith("http://127.0.0.1:")

    down = run_mme("local", "down", "--state-dir", state)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "stopped the local TorchServe"
    assert session_processes(pgid) == []
    assert processes_mentioning(str(state)) == []
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in before)

    status = run_mme("local", "status", "--state-dir", state)
    assert status.returncode == 1 and status.stdout.startswith("not running")
    down = run_mme("local", "down", "--state-dir", state)
    assert down.returncode == 0 and down.stdout.strip() == "the local TorchServe is not running"


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
