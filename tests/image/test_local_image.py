"""``mme local up --image``: the local endpoint in front of the built serving image instead of the
virtual environment's TorchServe (same state directory, status, memory accounting, token-protected
ports on 127.0.0.1), then ``down`` with no container and no process left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from client_support import processes_mentioning, sample_photo

from mme.local.image_container import ImageContainer

pytestmark = pytest.mark.image
REPO_ROOT = Path(__file__).resolve().parents[2]


def mme(*args, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("mme")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "mme.cli"]
    return subprocess.run([*command, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT)


@pytest.fixture
def env(tmp_path) -> dict:
    found = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), AWS_EC2_METADATA_DISABLED="true")
    found.pop("MME_STATE_DIR", None)
    return found


def test_select_erase_replace_through_the_image(serving_image, engine, env, tmp_path):
    state = tmp_path / "state"
    local = ("--local", "--state-dir", state)
    up = mme("local", "up", "--weights", "tiny", "--image", serving_image, "--state-dir", state, env=env)
    assert up.returncode == 0, up.stderr
    container = ImageContainer.attach(state / "server")
    try:
        assert f"image {serving_image}" in up.stdout
        # TorchServe's token authorization is on, on two ports of 127.0.0.1 only
        assert (state / "server" / "key_file.json").is_file()
        assert container.ports["inference"] != container.ports["management"]
        ports = engine.run("port", container.container_name).stdout.decode()
        assert ports and all(line.split(" -> ")[1].startswith("127.0.0.1:") for line in ports.strip().splitlines())
        status, _, _ = container._http("GET", container.management_url + "/models")
        assert status in (400, 401)  # no key: refused

        photo = sample_photo("chelsea.png")
        select = mme("select", photo, "--point", "150,100", "-o", tmp_path / "mask.png", *local, env=env)
        assert select.returncode == 0, select.stderr
        erase = mme("erase", photo, "--mask", tmp_path / "mask.png", "-o", tmp_path / "erased.png", *local, env=env)
        assert erase.returncode == 0, erase.stderr
        replace = mme("replace", photo, "--mask", tmp_path / "mask.png", "--prompt", "a red vase", "--seed", "3",
                      "--steps", "2", "-o", tmp_path / "vase.png", *local, env=env)
        assert replace.returncode == 0, replace.stderr
        bad = mme("select", photo, "--point", "5000,5000", "-o", tmp_path / "x.png", *local, env=env)
        assert bad.returncode == 2 and "outside" in bad.stderr

        info = json.loads(mme("local", "status", "--json", "--state-dir", state, env=env).stdout)
        assert info["running"] and info["container"] == {"kind": "image", "image": serving_image}
        for name in ("sam", "lama", "sd"):
            model = info["models"][name]
            # the workers' memory is measured on this machine through their namespace's pids
            assert model["state"] == "loaded" and model["size_bytes"] > 50 * 2**20, (name, model)
        assert info["used_bytes"] >= sum(info["models"][n]["size_bytes"] for n in ("sam", "lama", "sd"))
        # a second `up` with another container is refused, not mixed
        again = mme("local", "up", "--weights", "tiny", "--state-dir", state, env=env)
        assert again.returncode != 0 and "run `mme local down` first" in again.stderr
    finally:
        down = mme("local", "down", "--state-dir", state, env=env)
    assert down.returncode == 0, down.stderr
    assert engine.container_state(container.container_name) is None
    assert processes_mentioning(str(state)) == []
