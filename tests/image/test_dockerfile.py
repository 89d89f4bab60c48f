"""The serving image's Dockerfile, TorchServe settings and build tooling, checked without building
(part of ``make test``): the base the constructs name, layers that keep torch when a handler
package changes, hashed installs only, nothing secret copied in, SageMaker's labels and
entrypoint, and a failed build explained in one line from pip's real report.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mme.serving_image import base_image, build, engine, layout
from mme.serving_image.build import summarize_failure

DOCKERFILE = layout.DOCKERFILE.read_text()


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#")))
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


def test_the_base_is_the_constructs_debian_slim_image():
    from mme_constructs.serving_image import DEFAULT_BASE_IMAGE

    assert layout.dockerfile_base_image() == DEFAULT_BASE_IMAGE
    assert re.fullmatch(r"public\.ecr\.aws/docker/library/debian:[a-z]+-slim", DEFAULT_BASE_IMAGE)
    assert base_image.debian_release(DEFAULT_BASE_IMAGE) == "trixie"
    assert ("FROM", "${BASE_IMAGE}") in instructions()


def test_every_copied_file_exists_and_no_secret_is_copied():
    copied = [arg.split()[:-1] for kind, arg in instructions() if kind in ("COPY", "ADD")]
    assert not [arg for kind, arg in instructions() if kind == "ADD"], "ADD fetches and unpacks: use COPY"
    for sources in copied:
        for source in sources:
            assert (layout.CONTAINER_DIR / source).is_file(), f"COPY {source}: missing from container/"
            assert not re.search(r"(cert|\.pem|\.crt|key|credential|netrc|pip\.conf)", source, re.I), source


def test_torch_has_its_own_layer_before_the_handler_packages():
    steps = instructions()
    order = [i for i, (kind, arg) in enumerate(steps) if "requirements-torch.lock" in arg or "requirements.lock" in arg]
    kinds = [(steps[i][0], "torch" if "requirements-torch.lock" in steps[i][1] else "full") for i in order]
    # COPY torch lock, RUN install it, COPY full lock, RUN install it: a new full lock keeps the torch layer
    assert [k for k in kinds if k[0] == "COPY"] == [("COPY", "torch"), ("COPY", "full")]
    first_full_copy = next(i for i in order if steps[i] == ("COPY", "requirements.lock /opt/mme/"))
    torch_run = next(i for i in order if steps[i][0] == "RUN" and "requirements-torch.lock" in steps[i][1])
    assert torch_run < first_full_copy


def test_every_pip_install_is_hashed_and_every_secret_is_a_mount():
    runs = [arg for kind, arg in instructions() if kind == "RUN"]
    installs = [cmd for run in runs for cmd in re.split(r";\s*", run) if re.search(r"\bpip (install|download)\b", cmd)]
    assert len(installs) == 4
    for cmd in installs:
        assert "--require-hashes" in cmd and "--no-deps" in cmd, cmd
    for run in runs:
        if "PIP_CERT" in run:
            assert "--mount=type=secret,id=pip-ca" in run
    assert "PIP_CERT" not in " ".join(arg for kind, arg in instructions() if kind == "ENV")
    assert not re.search(r"(AWS_SECRET|AWS_ACCESS_KEY|HF_TOKEN|PASSWORD)", DOCKERFILE)


def test_labels_environment_and_entrypoint_for_sagemaker():
    steps = instructions()
    labels = " ".join(arg for kind, arg in steps if kind == "LABEL")
    assert "com.amazonaws.sagemaker.capabilities.multi-models=true" in labels
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in labels
    env = " ".join(arg for kind, arg in steps if kind == "ENV")
    assert "NVIDIA_VISIBLE_DEVICES=all" in env and "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in env
    assert "SAGEMAKER_MULTI_MODEL=true" in env
    assert ("ENTRYPOINT", '["/usr/bin/tini", "--"]') in steps and ("CMD", '["serve"]') in steps
    # the system packages TorchServe needs at run time (a JRE; `kill` to stop workers)
    apt = next(arg for kind, arg in steps if kind == "RUN" and "apt-get install" in arg)
    for package in ("python3", "python3-venv", "openjdk-21-jre-headless", "tini", "procps"):
        assert re.search(rf"\s{re.escape(package)}\s", apt + " "), package


def test_torchserve_settings_for_mme():
    props = {}
    for raw in (layout.CONTAINER_DIR / "config.properties").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert key not in props, f"{key} set twice"
            props[key.strip()] = value.strip()
    assert props["enable_model_api"] == "true"          # SageMaker registers models on demand
    assert props["disable_token_authorization"] == "true"  # SageMaker's MME front end has no TorchServe key
    assert "load_models" not in props and "models" not in props  # nothing preloaded in MME
    # big enough for a 6 MB InvokeEndpoint payload plus the JSON/base64 envelope
    assert int(props["max_request_size"]) >= 6 * 1024 * 1024 * 4 // 3
    assert int(props["max_response_size"]) >= 6 * 1024 * 1024 * 4 // 3
    # keys the toolkit writes itself must not be set here (its lines come after ours)
    assert not {"inference_address", "management_address", "default_response_timeout", "model_store"} & set(props)


# ---------------------------------------------------------------------------------------------
# a failed build, explained in one line from pip's real output
# ---------------------------------------------------------------------------------------------
def _wheel(folder: Path, name: str = "tinypkg", version: str = "0.1") -> Path:
    """A minimal, valid pure-Python wheel (what pip installs; made here, no download)."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": b"X = 1\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
                     for n, d in files.items()) + f"{dist}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for n, d in files.items():
            archive.writestr(n, d)
        archive.writestr(f"{dist}/RECORD", record)
    return path


def _pip(requirements: str, tmp_path: Path) -> str:
    folder = tmp_path / "wheels"
    folder.mkdir(exist_ok=True)
    _wheel(folder)
    (tmp_path / "req.txt").write_text(requirements)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--require-hashes", "--no-index",
                           "--find-links", str(folder), "--target", str(tmp_path / "target"), "-r",
                           str(tmp_path / "req.txt")], capture_output=True, text=True)
    assert done.returncode != 0
    return done.stdout + done.stderr


def test_a_hash_mismatch_is_one_line_naming_the_package(tmp_path):
    output = _pip("tinypkg==0.1 --hash=sha256:" + "0" * 64 + "\n", tmp_path)
    assert "DO NOT MATCH THE HASHES" in output  # pip's own report, multi-line
    line = summarize_failure("STEP 6/14: RUN ...\n" + output + "Error: building at STEP \"RUN ...\": exit status 1\n")
    assert "\n" not in line
    assert line.startswith("tinypkg==0.1: the downloaded file tinypkg-0.1-py3-none-any.whl")
    assert "matches no hash in the lock" in line and "make lock" in line


def test_a_missing_hash_is_one_line_naming_the_package(tmp_path):
    wheel_hash = hashlib.sha256((_wheel(tmp_path)).read_bytes()).hexdigest()
    output = _pip("tinypkg==0.1\nsix==1.17.0 --hash=sha256:" + wheel_hash + "\n", tmp_path)
    line = summarize_failure(output)
    assert line.startswith("tinypkg==0.1 has no hash in") or line.startswith("pip found no distribution"), line


def test_other_failures_are_one_line():
    assert summarize_failure("E: Unable to locate package openjdk-99-jre\n") == "apt-get: Unable to locate package openjdk-99-jre"
    dpkg = "dpkg: error processing package openjdk-21-jre-headless:amd64 (--configure):\nE: Sub-process failed\n"
    assert summarize_failure(dpkg).startswith("apt-get: dpkg could not configure openjdk-21-jre-headless:amd64")
    assert "no distribution for torch==9.9" in summarize_failure(
        "ERROR: Could not find a version that satisfies the requirement torch==9.9\n"
        "ERROR: No matching distribution found for torch==9.9\n")
    assert summarize_failure("something\nError: building at STEP 3: exit status 2\n") == \
        "Error: building at STEP 3: exit status 2"


def test_lock_drift_stops_the_build_before_the_engine(monkeypatch):
    monkeypatch.setattr(build.lockfile, "check", lambda: ["diffusers==0.42.1 (requirements.txt) is missing", "x"])

    def no_engine():
        raise AssertionError("the engine must not be asked for")

    monkeypatch.setattr(build, "require_engine", no_engine)
    with pytest.raises(build.BuildError, match=r"^diffusers==0.42.1 \(requirements.txt\) is missing \(and 1 more"):
        build.build_image()


# ---------------------------------------------------------------------------------------------
# the base made from Debian's packages, the engine's settings
# ---------------------------------------------------------------------------------------------
def test_the_base_is_made_from_the_release_its_security_and_updates_suites(tmp_path):
    command = base_image.mmdebstrap_command("trixie", tmp_path / "rootfs.tar")
    assert command[:2] == ["mmdebstrap", "--variant=minbase"] and "trixie" in command
    sources = [arg for arg in command if arg.startswith("deb ")]
    assert sources == ["deb http://deb.debian.org/debian trixie main",
                       "deb http://deb.debian.org/debian trixie-updates main",
                       "deb http://deb.debian.org/debian-security trixie-security main"]
    assert "--dpkgopt=path-exclude=/usr/share/man/*" in command  # as slim: hence mkdir in the Dockerfile
    assert base_image.debian_release("registry.example/mirror/debian:trixie-20251117-slim") == "trixie"
    with pytest.raises(engine.EngineError, match="not a Debian slim reference"):
        base_image.debian_release("ubuntu:24.04")


def test_podman_settings_are_written_only_when_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert engine.podman_conf({}) is None
    path = engine.podman_conf({"containers": {"default_ulimits": []}, "engine": {"runtime": "runc"}})
    assert path == tmp_path / "mme" / "podman" / "containers.conf"
    assert path.read_text().splitlines()[1:] == ["[containers]", "default_ulimits = []", "[engine]", 'runtime = "runc"']


def test_the_build_passes_the_ca_as_a_secret_and_never_pulls(monkeypatch, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    podman = engine.ContainerEngine("podman", "/usr/bin/podman")
    command = build.build_command(podman, "localhost/x:dev", "public.ecr.aws/docker/library/debian:trixie-slim", ca=ca)
    assert command[:2] == ["/usr/bin/podman", "build"] and "--pull=never" in command
    assert f"id=pip-ca,src={ca}" in command and command[-1] == str(layout.CONTAINER_DIR)
    docker = engine.ContainerEngine("docker", "/usr/bin/docker")
    assert "--secret" not in build.build_command(docker, "x", "y", ca=None)
    for variable in build.CA_BUNDLE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert build.ca_bundle() is None
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    assert build.ca_bundle() == ca


def test_docker_is_used_where_its_engine_answers_else_podman(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(engine.ENGINE_ENV, raising=False)
    installed = {"docker": "/usr/bin/docker", "podman": "/usr/bin/podman"}
    monkeypatch.setattr(engine.shutil, "which", lambda name: installed.get(name))
    answers = {"yes": True}
    monkeypatch.setattr(engine, "_docker_answers", lambda executable: answers["yes"])
    assert engine.find_engine().name == "docker"
    answers["yes"] = False  # a docker client without an engine (as on this kind of machine)
    assert engine.find_engine().name == "podman"
    monkeypatch.setenv(engine.ENGINE_ENV, "docker")
    with pytest.raises(engine.EngineError, match="docker info` fails"):
        engine.find_engine()
    monkeypatch.setenv(engine.ENGINE_ENV, "containerd")
    with pytest.raises(engine.EngineError, match="give podman or docker"):
        engine.find_engine()
    monkeypatch.delenv(engine.ENGINE_ENV)
    installed.clear()
    assert engine.find_engine() is None
    with pytest.raises(engine.EngineError, match=r"no container engine: run `make container-engine`"):
        engine.require_engine()
