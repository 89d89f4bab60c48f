"""``make image``: build ``container/`` into ``localhost/mme-serving:dev`` with this machine's engine.

1. The locks are checked against the requirement files and the test environment's pins
   (:func:`mme.serving_image.lockfile.check`): drift stops the build with one line naming the
   package, before anything is downloaded.
2. The base image is made sure of (:mod:`mme.serving_image.base_image`: present, pulled, or
   made from Debian's packages).
3. The engine builds the Dockerfile as ``cdk deploy`` does, with two additions that leave nothing
   in the image: the CA bundle this machine's TLS-intercepting proxy needs (``$PIP_CERT``,
   ``$SSL_CERT_FILE`` or ``$REQUESTS_CA_BUNDLE``), passed as the build secret ``pip-ca``, and
   pip's download cache, a cache mount the engine keeps between builds (a second build does not
   download torch again).
4. A failed build ends with one line saying why (:func:`summarize_failure`: a hash mismatch or a
   missing hash named with its package and lock file, a package pip cannot find, ``pip check``,
   apt), after the engine's output; the whole output is in ``<cache>/image-build.log``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mme.serving_image import layout, lockfile
from mme.serving_image.base_image import ensure_base_image
from mme.serving_image.engine import ContainerEngine, EngineError, cache_dir, require_engine

CA_BUNDLE_VARIABLES = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
BUILD_LOG = "image-build.log"


class BuildError(RuntimeError):
    """The image could not be built; the message is one line."""


def ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts when it is not the default one (see step 3)."""
    for variable in CA_BUNDLE_VARIABLES:
        value = os.environ.get(variable)
        if value and Path(value).is_file():
            return Path(value)
    return None


def build_command(engine: ContainerEngine, tag: str, base_image: str, *, ca: Path | None,
                  context: Path = layout.CONTAINER_DIR) -> list[str]:
    """The engine's build command line."""
    args = ["build", "--tag", tag, "--file", str(context / "Dockerfile"), "--build-arg", f"BASE_IMAGE={base_image}"]
    if engine.is_podman:
        args += ["--layers", "--pull=never"]  # the base is in the store (step 2)
    if ca is not None:
        args += ["--secret", f"id=pip-ca,src={ca}"]
    return engine.command(*args, str(context))


def _lock_of(name: str, version: str) -> str:
    """The lock file a package is locked in (the framework's first)."""
    for path in (layout.TORCH_LOCK, layout.FULL_LOCK):
        try:
            entry = lockfile.read_lock(path).get(lockfile.normalize(name))
        except lockfile.LockError:
            continue
        if entry is not None and entry.version == version:
            return layout.relative(path)
    return "the lock"  # a package no lock of the repository has (a test's own file)


_HASH_MISMATCH = re.compile(r"^\s*(?P<name>[A-Za-z0-9][\w.-]*)==(?P<version>\S+) from (?P<url>\S+?)"
                            r"(?: \(from [^\n]*\))?:?[ \t]*\n"
                            r"\s*Expected sha256 (?P<expected>[0-9a-f]+)(?:\s*\n\s*or\s+[0-9a-f]+)*\s*\n"
                            r"\s*Got\s+(?P<got>[0-9a-f]+)", re.M)
_HASH_MISSING = re.compile(r"^\s*(?P<name>[A-Za-z0-9][\w.-]*)==(?P<version>\S+) --hash=sha256:(?P<got>[0-9a-f]+)", re.M)
_NOT_PINNED = re.compile(r"all requirements must have their versions pinned with ==\. These do not:\s*\n"
                         r"\s*(?P<req>\S+)", re.M)
_NOT_FOUND = re.compile(r"No matching distribution found for (?P<req>\S+)")
_PIP_CHECK = re.compile(r"^(?P<line>\S+ [\w.+-]+ (?:has requirement|requires) .+)$", re.M)
_DPKG = re.compile(r"^dpkg: error processing package (?P<package>\S+) \((?P<stage>[^)]+)\)", re.M)
_APT = re.compile(r"^E: (?P<line>.+)$", re.M)


def summarize_failure(output: str) -> str:
    """One line saying why a build failed, from the engine's output (pip's and apt's reports first)."""
    if "DO NOT MATCH THE HASHES" in output and (match := _HASH_MISMATCH.search(output)):
        return (f"{match['name']}=={match['version']}: the downloaded file {match['url'].rsplit('/', 1)[-1]} "
                f"(sha256 {match['got'][:16]}...) matches no hash in {_lock_of(match['name'], match['version'])}: "
                "check where it came from, then run `make lock`")
    if "Hashes are required in --require-hashes mode" in output and (match := _HASH_MISSING.search(output)):
        return (f"{match['name']}=={match['version']} has no hash in {_lock_of(match['name'], match['version'])} "
                "(a dependency the lock does not list?): run `make lock`")
    if match := _NOT_PINNED.search(output):
        return f"{match['req']} is not pinned with == in the lock: run `make lock`"
    if match := _NOT_FOUND.search(output):
        return f"pip found no distribution for {match['req']} for the image's Python and platform: check the pin"
    if "pip check" in output and (match := _PIP_CHECK.search(output)):
        return f"the installed packages conflict: {match['line']}: fix the pins, then run `make lock`"
    if match := _DPKG.search(output):
        return f"apt-get: dpkg could not {match['stage'].lstrip('-')} {match['package']} (its error is in the output above)"
    if match := _APT.search(output):
        return f"apt-get: {match['line']}"
    errors = [line.strip() for line in output.splitlines() if line.strip().lower().startswith(("error", "error:"))]
    return errors[-1][:300] if errors else "the build failed (see the output above)"


def _stream(command: list[str], env: dict, log_path: Path) -> tuple[int, str]:
    """Run ``command``, echoing its output and writing it to ``log_path``; ``(status, output)``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    chunks = []
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            chunks.append(line)
        status = proc.wait()
    return status, "".join(chunks)


def build_image(tag: str = layout.DEV_IMAGE, *, base_image: str | None = None, engine: ContainerEngine | None = None,
                report: Callable[[str], None] = print) -> dict:
    """Steps 1-4 of the module docstring; ``{"tag", "image_id", "engine", "base", "seconds"}``.
    Raises :class:`BuildError` with one line."""
    problems = lockfile.check()
    if problems:
        more = f" (and {len(problems) - 1} more: `mme image check`)" if len(problems) > 1 else ""
        raise BuildError(problems[0] + more)
    engine = engine or require_engine()
    base_image = base_image or layout.dockerfile_base_image()
    base = ensure_base_image(engine, base_image, report)
    env = dict(engine.env)
    if not engine.is_podman:
        env["DOCKER_BUILDKIT"] = "1"  # RUN --mount (cache and secret) needs BuildKit
    command = build_command(engine, tag, base_image, ca=ca_bundle())
    report(f"building {tag} with {engine.name}")
    started = time.monotonic()
    status, output = _stream(command, env, cache_dir() / BUILD_LOG)
    if status != 0:
        raise BuildError(summarize_failure(output))
    try:
        image_id = engine.image_id(tag)
    except EngineError as err:
        raise BuildError(str(err)) from None
    return {"tag": tag, "image_id": image_id, "engine": engine.name, "base": base,
            "seconds": round(time.monotonic() - started, 1)}
