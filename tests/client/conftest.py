"""Fixtures of the client/CLI tests: how to run ``mme``, an isolated environment for it, sample
photos that ship with scikit-image, and one local endpoint (TorchServe behind the platform
emulator) with the tiny models per session (the packaged tiny archives are tests/conftest.py's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from client_support import processes_mentioning, session_processes

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 300


def mme_command() -> list[str]:
    """The ``mme`` console script of this venv (``python -m mme.cli`` where it is not installed)."""
    script = Path(sys.executable).with_name("mme")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mme.cli"]


@pytest.fixture(scope="session")
def mme_env(tmp_path_factory) -> dict:
    """Environment for ``mme`` subprocesses: private cache/state dirs, no real AWS config."""
    base = tmp_path_factory.mktemp("mme-env")
    env = dict(os.environ)
    env.update({
        "XDG_CACHE_HOME": str(base / "cache"),
        "XDG_STATE_HOME": str(base / "state"),
        "AWS_CONFIG_FILE": str(base / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(base / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    })
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "MME_STATE_DIR", "MME_STACK_NAME", "MME_DEBUG"):
        env.pop(key, None)
    # the venv's bin first (its Node for jsii, if anything imports the CDK)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="session")
def run_mme(mme_env):
    """``run_mme(*args, env=None, check=None)`` -> CompletedProcess (text)."""
    def run(*args, env: dict | None = None, timeout: float = CLI_TIMEOUT, cwd=None):
        return subprocess.run([*mme_command(), *map(str, args)], env=env or mme_env, capture_output=True,
                              text=True, timeout=timeout, cwd=cwd or REPO_ROOT)
    return run


@pytest.fixture(scope="session")
def local_server(tmp_path_factory, run_mme):
    """One ``mme local up --weights tiny`` (sam, lama, sd) for the session; ``down`` at the end,
    checking that nothing of it is left running."""
    state = tmp_path_factory.mktemp("local-state")
    result = run_mme("local", "up", "--weights", "tiny", "--models", "sam,lama,sd", "--state-dir", state)
    assert result.returncode == 0, result.stderr
    info = json.loads((state / "server" / "local_server.json").read_text())
    yield {"state_dir": state, "pgid": info["pgid"], "up": result}
    down = run_mme("local", "down", "--state-dir", state)
    assert down.returncode == 0, down.stderr
    assert session_processes(info["pgid"]) == []
    assert processes_mentioning(str(state)) == []


@pytest.fixture(scope="session")
def sagemaker_container(tmp_path_factory):
    """TorchServe started as the serving container starts it (toolkit properties +
    container/config.properties), one for the session; stopped at the end, nothing left."""
    from mme.local.sagemaker_container import SageMakerContainer

    container = SageMakerContainer(tmp_path_factory.mktemp("sagemaker-container") / "server").start()
    pgid = container.pgid
    yield container
    container.stop()
    assert session_processes(pgid) == []
