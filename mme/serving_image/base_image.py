"""The Dockerfile's base image on this machine: already there, pulled, or made from Debian's packages.

The serving image builds ``FROM`` the Docker official Debian slim image on ECR Public
(``public.ecr.aws/docker/library/debian:<release>-slim``). Where that registry cannot be reached
(a machine that reaches only package mirrors), :func:`ensure_base_image` makes an equivalent root
filesystem with ``mmdebstrap --variant=minbase`` from the same Debian release and its security
and updates suites, with documentation left out as the slim images leave it out, and imports it
under the Dockerfile's own reference. The Dockerfile that builds here is then the one ``cdk
deploy`` builds; the engine uses the local image instead of pulling (pull policy "missing").
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from mme.serving_image.engine import ContainerEngine, EngineError

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
#: Label on a base made here, so it can be told from the registry's.
MADE_HERE_LABEL = "mme.base=mmdebstrap"
#: What the slim images leave out (their dpkg path-exclude rules), as mmdebstrap options.
_SLIM_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
                  "/usr/share/groff/*", "/usr/share/linda/*", "/usr/share/lintian/*")
_DEBIAN_REFERENCE = re.compile(r"(?:^|/)debian:(?P<release>[a-z]+)(?:-\d{8})?-slim$")


def debian_release(reference: str) -> str:
    """``trixie`` for ``public.ecr.aws/docker/library/debian:trixie-slim`` (or ``...:trixie-20251117-slim``)."""
    match = _DEBIAN_REFERENCE.search(reference)
    if not match:
        raise EngineError(f"base image {reference!r} is not a Debian slim reference (debian:<release>-slim): "
                          "cannot make it from Debian's packages here")
    return match["release"]


def mmdebstrap_command(release: str, output: Path) -> list[str]:
    """The ``mmdebstrap`` call that makes the base's root filesystem as a tarball."""
    sources = [f"deb {DEBIAN_MIRROR} {release} main", f"deb {DEBIAN_MIRROR} {release}-updates main",
               f"deb {DEBIAN_SECURITY_MIRROR} {release}-security main"]
    excludes = [f"--dpkgopt=path-exclude={path}" for path in _SLIM_EXCLUDES]
    return ["mmdebstrap", "--variant=minbase", "--format=tar", *excludes, release, str(output), *sources]


def make_base_image(engine: ContainerEngine, reference: str, report: Callable[[str], None]) -> None:
    """mmdebstrap the Debian release of ``reference`` and import it under ``reference``."""
    release = debian_release(reference)
    if not shutil.which("mmdebstrap"):
        raise EngineError(f"{reference} cannot be pulled and mmdebstrap is missing to make it: run "
                          "`make container-engine` (installs Debian's mmdebstrap) or `sudo apt-get install mmdebstrap`")
    with tempfile.TemporaryDirectory(prefix="mme-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        report(f"making the base image from Debian {release} packages (mmdebstrap)")
        done = subprocess.run(mmdebstrap_command(release, tarball), capture_output=True, text=True)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise EngineError(f"mmdebstrap {release} failed: {lines[-1] if lines else done.returncode}")
        engine.run("import", "--change", 'CMD ["bash"]', "--change", "ENV LANG=C.UTF-8",
                   "--change", f"LABEL {MADE_HERE_LABEL}", str(tarball), reference, timeout=600)
    report(f"tagged it {reference}")


def ensure_base_image(engine: ContainerEngine, reference: str, report: Callable[[str], None] = print) -> str:
    """Make sure ``reference`` is in the engine's store: ``"present"``, ``"pulled"`` or ``"made"``."""
    if engine.image_exists(reference):
        return "present"
    report(f"pulling {reference}")
    why = engine.pull(reference)
    if why is None:
        return "pulled"
    report(f"cannot pull it ({why})")
    make_base_image(engine, reference, report)
    return "made"
