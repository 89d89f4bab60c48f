"""What the built serving image holds: exactly the locked packages on the image's Python, the CUDA
build the constructs check, and nothing of the build's secrets in any layer.

Every layer is read from the engine's ``save`` stream (each layer's own files, so a file added in
one layer and removed in a later one is still found): no certificate this machine added to its
CA bundle (such as its TLS-intercepting proxy's, which the build is given as a secret), no pip
configuration or cache, no credentials file, no key file of TorchServe.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from mme.serving_image import build, layout, lockfile

pytestmark = pytest.mark.image

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
#: Paths no layer may hold: credentials, pip's configuration and caches, TorchServe's keys.
_FORBIDDEN = re.compile(r"(^|/)(\.aws/credentials|\.netrc|\.docker/config\.json|pip\.conf|key_file\.json|"
                        r"\.cache/pip/.+|var/cache/mme-wheels/.+|run/secrets/.+)$")


def run_in_image(engine, image: str, *command: str) -> str:
    done = engine.run("run", "--rm", "--entrypoint", command[0], image, *command[1:], timeout=300)
    return done.stdout.decode()


def test_the_image_runs_debians_python_and_exactly_the_locked_packages(engine, serving_image):
    version = run_in_image(engine, serving_image, "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])")
    assert version.strip() == layout.LOCK_PYTHON_VERSION
    assert run_in_image(engine, serving_image, "readlink", "-f", "/opt/venv/bin/python").strip().startswith("/usr/bin/python3")
    frozen = run_in_image(engine, serving_image, "pip", "list", "--format=json")
    installed = {lockfile.normalize(p["name"]): p["version"] for p in json.loads(frozen)}
    installed.pop("pip", None)
    locked = {name: entry.version for name, entry in lockfile.read_lock(layout.FULL_LOCK).items()}
    assert installed == locked
    # the lock the image records is the repository's
    recorded = run_in_image(engine, serving_image, "cat", f"{layout.IMAGE_LOCK_DIR}/requirements.lock")
    assert recorded == layout.FULL_LOCK.read_text()


def test_the_images_torch_is_the_cuda_build_the_constructs_check(engine, serving_image):
    from mme_constructs.gpu_runtime import TORCH_BUILDS

    out = run_in_image(engine, serving_image, "python", "-c",
                       "import json, torch; print(json.dumps([torch.__version__, torch.version.cuda, "
                       "torch._C._cuda_getArchFlags()]))")
    version, cuda, arch_flags = json.loads(out)
    build_facts = TORCH_BUILDS[version.split("+")[0]]
    assert cuda == build_facts.cuda_version
    assert arch_flags.split() == [f"sm_{a}{b}" for a, b in build_facts.architectures]


def _pem_bodies(data: bytes) -> set[bytes]:
    return {b"".join(m.group(0).split()[2:-2]) for m in _PEM.finditer(data)}


def _proxy_certificates(engine, image: str) -> set[bytes]:
    """Base64 bodies of the certificates of the CA bundle the build was given (this machine's)
    that no public root store has: the ones added on this machine (Debian puts them in
    /usr/local/share/ca-certificates), such as a TLS-intercepting proxy's. Public roots are those
    Debian distributes (/usr/share/ca-certificates here, the image's bundle) and certifi's."""
    import certifi

    host = build.ca_bundle()
    if host is None:
        return set()
    public = _pem_bodies(run_in_image(engine, image, "cat", "/etc/ssl/certs/ca-certificates.crt").encode())
    assert public, "the image has no CA bundle to compare with"
    public |= _pem_bodies(Path(certifi.where()).read_bytes())
    for path in Path("/usr/share/ca-certificates").rglob("*.crt"):
        public |= _pem_bodies(path.read_bytes())
    return _pem_bodies(host.read_bytes()) - public


def _layers(engine, image: str):
    """``(layer name, tarfile member, member bytes or None)`` of every file of every layer, from
    ``<engine> save`` (docker-archive), streamed."""
    proc = subprocess.Popen(engine.command("save", "--format", "docker-archive", image) if engine.is_podman
                            else engine.command("save", image), env=engine.env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
        for member in outer:
            if not member.isfile() or not (member.name.endswith(".tar") or "/layer" in member.name):
                continue
            layer = outer.extractfile(member)
            with tarfile.open(fileobj=layer, mode="r|*") as inner:
                for item in inner:
                    small = item.isfile() and item.size < 4 * 2**20
                    data = inner.extractfile(item).read() if small else None
                    yield member.name, item, data
    assert proc.wait() == 0


def test_no_layer_holds_a_proxy_certificate_a_credential_or_a_build_only_file(engine, serving_image):
    proxy_certificates = _proxy_certificates(engine, serving_image)
    found, files = [], 0
    for layer, item, data in _layers(engine, serving_image):
        files += 1
        if _FORBIDDEN.search(item.name.lstrip("./")):
            found.append(f"{layer}: {item.name}")
        if data and b"CERTIFICATE" in data:
            body = b"".join(data.split())
            found += [f"{layer}: {item.name} holds a certificate of this machine's CA bundle"
                      for cert in proxy_certificates if cert in body]
    assert files > 10000  # the scan read the real layers (torch alone has thousands of files)
    assert found == []


def test_the_scan_finds_what_it_looks_for():
    """The patterns of the layer scan match what they must (so the scan above can fail)."""
    for path in ("root/.cache/pip/http-v2/a/b", "run/secrets/pip-ca", "opt/mme-local/key_file.json",
                 "root/.aws/credentials", "etc/pip.conf", "var/cache/mme-wheels/torch.whl"):
        assert _FORBIDDEN.search(path), path
    for path in ("opt/mme/requirements.lock", "etc/ssl/certs/ca-certificates.crt", "opt/venv/bin/pip"):
        assert not _FORBIDDEN.search(path), path
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\nAbC=\n-----END CERTIFICATE-----\n"
    assert [m.group(0) for m in _PEM.finditer(b"x" + pem)] == [pem.strip()]
