"""The serving image's requirement files and hashed lock files: read, checked, regenerated.

Three files of exact pins say what the image installs (``container/requirements-torch.txt``, the
framework; ``requirements-server.txt``, TorchServe and the SageMaker toolkit;
``requirements.txt``, the handlers' packages). ``make lock`` resolves them with uv for the image's
Python and platform into two locks with every transitive package and the sha256 of every file
PyPI serves for it: ``requirements-torch.lock`` (the framework's own layer) and
``requirements.lock`` (everything). The resolution is constrained by the test environment's
``constraints.txt``, so a package both install has one version (the suite tests what the image
runs).

:func:`check` finds drift before a build, each problem as one line naming the package: a pin
missing from a lock or locked at another version, a lock entry without hashes, the two locks
disagreeing, a lock disagreeing with ``constraints.txt``. pip's own ``--require-hashes`` check in
the build catches a file whose hash is not in the lock (:mod:`mme.serving_image.build` turns its
report into one line).

uv (``uv pip compile``) is used because it resolves for another Python version and platform than
the one running it (pip-tools' ``pip-compile`` resolves for its own interpreter only).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mme import paths
from mme.serving_image import layout

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s#;\\]+)\s*(?:#\s*(?P<comment>.*))?$")
_LOCK_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)(?:\s*;[^\\]*?)?"
                         r"(?P<hashes>(?:\s+--hash=\S+)*)\s*$")
_HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")
IMAGE_ONLY = "image only"


class LockError(ValueError):
    """A requirement or lock file that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` line of a requirement file."""

    name: str
    version: str
    comment: str
    source: Path

    @property
    def image_only(self) -> bool:
        """True for a pin the test environment does not install (its comment starts ``image only``)."""
        return self.comment.startswith(IMAGE_ONLY)


@dataclass(frozen=True)
class LockEntry:
    """One package of a lock: its version and the hashes pip accepts for it."""

    name: str
    version: str
    hashes: tuple[str, ...] = field(default=())


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, Pin]:
    """``{normalized name: Pin}`` of a file of exact pins (``#`` comments, one pin per line)."""
    pins: dict[str, Pin] = {}
    for number, raw in enumerate(_read(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if not match:
            raise LockError(f"{layout.relative(path)}:{number}: not an exact pin 'name==version': {line!r}")
        name = normalize(match["name"])
        if name in pins:
            raise LockError(f"{layout.relative(path)}:{number}: {name} is pinned twice")
        pins[name] = Pin(name, match["version"], (match["comment"] or "").strip(), path)
    return pins


def read_lock(path: Path) -> dict[str, LockEntry]:
    """``{normalized name: LockEntry}`` of a lock written by ``uv pip compile --generate-hashes``
    (continuation lines joined, ``# via`` annotations skipped)."""
    entries: dict[str, LockEntry] = {}
    for number, line in _logical_lines(_read(path)):
        match = _LOCK_ENTRY.match(line)
        if not match:
            raise LockError(f"{layout.relative(path)}:{number}: not a locked package 'name==version --hash=...': "
                            f"{line[:120]!r}")
        name = normalize(match["name"])
        hashes = tuple(h for h in match["hashes"].split() if h)
        if name in entries:
            raise LockError(f"{layout.relative(path)}:{number}: {name} is locked twice")
        entries[name] = LockEntry(name, match["version"], hashes)
    return entries


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LockError(f"cannot read {layout.relative(path)}: {exc.strerror or exc}") from None


def _logical_lines(text: str):
    """``(first line number, text)`` of each requirement, backslash continuations joined."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("--hash") else raw.rstrip()
        if not line.strip() and not pending:
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, (pending + line).strip()
        pending = ""
    if pending.strip():
        yield start, pending.strip()


def read_constraints(path: Path = layout.TEST_CONSTRAINTS) -> dict[str, str]:
    """``{normalized name: version}`` of the test environment's ``constraints.txt``."""
    return {name: pin.version for name, pin in read_pins(path).items()}


def declared_pins(files=layout.REQUIREMENT_FILES) -> dict[str, Pin]:
    """Every pin of the image's requirement files; a package pinned in two of them is an error."""
    found: dict[str, Pin] = {}
    for path in files:
        for name, pin in read_pins(path).items():
            if name in found:
                raise LockError(f"{name} is pinned in both {layout.relative(found[name].source)} and "
                                f"{layout.relative(path)}")
            found[name] = pin
    return found


def _missing_or_other(pins, lock: dict[str, LockEntry], lock_path: Path) -> list[str]:
    problems = []
    for pin in pins:
        entry = lock.get(pin.name)
        where = layout.relative(lock_path)
        if entry is None:
            problems.append(f"{pin.name}=={pin.version} ({layout.relative(pin.source)}) is missing from {where}: "
                            "run `make lock`")
        elif entry.version != pin.version:
            problems.append(f"{pin.name}: {layout.relative(pin.source)} pins {pin.version}, {where} has "
                            f"{entry.version}: run `make lock`")
    return problems


def _unhashed(lock: dict[str, LockEntry], lock_path: Path) -> list[str]:
    problems = []
    for entry in lock.values():
        bad = [h for h in entry.hashes if not _HASH.match(h)]
        if not entry.hashes or bad:
            why = f"a malformed hash {bad[0]!r}" if bad else "no --hash=sha256:..."
            problems.append(f"{entry.name}=={entry.version} in {layout.relative(lock_path)} has {why}: run `make lock`")
    return problems


def check(*, torch_lock: Path = layout.TORCH_LOCK, full_lock: Path = layout.FULL_LOCK,
          requirement_files=layout.REQUIREMENT_FILES,
          constraints: Path | None = layout.TEST_CONSTRAINTS) -> list[str]:
    """Every drift between the requirement files, the two locks and ``constraints``, one line each
    (empty when the locks can be built). Unreadable or malformed files raise :class:`LockError`."""
    pins = declared_pins(requirement_files)
    torch_pins = read_pins(requirement_files[0])
    torch_entries, full_entries = read_lock(torch_lock), read_lock(full_lock)
    problems = [*_missing_or_other(torch_pins.values(), torch_entries, torch_lock),
                *_missing_or_other(pins.values(), full_entries, full_lock),
                *_unhashed(torch_entries, torch_lock), *_unhashed(full_entries, full_lock)]
    for name, entry in torch_entries.items():
        other = full_entries.get(name)
        if other is None or (other.version, set(other.hashes)) != (entry.version, set(entry.hashes)):
            problems.append(f"{name}=={entry.version}: {layout.relative(torch_lock)} and {layout.relative(full_lock)} "
                            "differ for it (the framework layer must install what the full lock says): run `make lock`")
    if constraints is not None:
        tested = read_constraints(constraints)
        for name, entry in full_entries.items():
            if name in tested and tested[name] != entry.version:
                problems.append(f"{name}: {layout.relative(full_lock)} has {entry.version}, the test environment "
                                f"({layout.relative(constraints)}) {tested[name]}: one set of pins; run `make lock`")
    return problems


# ---------------------------------------------------------------------------------------------
# regeneration
# ---------------------------------------------------------------------------------------------
def _uv() -> str:
    candidate = Path(sys.executable).with_name("uv")
    found = str(candidate) if candidate.exists() else shutil.which("uv")
    if not found:
        raise LockError("uv is not installed: run `make setup-dev` (it pins uv in requirements-dev.txt)")
    return found


def compile_commands(uv: str) -> list[list[str]]:
    """The two ``uv pip compile`` runs of ``make lock`` (paths relative to the repository root)."""
    rel = layout.relative
    common = [uv, "pip", "compile", "--quiet", "--generate-hashes", "--no-strip-extras",
              "--python-version", layout.LOCK_PYTHON_VERSION, "--python-platform", layout.LOCK_PLATFORM,
              "--custom-compile-command", "make lock", "--constraint", rel(layout.TEST_CONSTRAINTS)]
    return [
        [*common, "--constraint", rel(layout.SERVER_REQUIREMENTS), "--output-file", rel(layout.TORCH_LOCK),
         rel(layout.TORCH_REQUIREMENTS)],
        [*common, "--constraint", rel(layout.TORCH_LOCK), "--output-file", rel(layout.FULL_LOCK),
         *map(rel, layout.REQUIREMENT_FILES)],
    ]


def regenerate(report=print) -> None:
    """Write both locks again (``make lock``); raises :class:`LockError` with uv's last line on failure.

    The torch lock is resolved first, constrained by the server pins (setuptools, which torch needs on
    Python >= 3.12); the full lock is then resolved with the torch lock as constraints, so both
    agree on every shared package."""
    uv = _uv()
    for command in compile_commands(uv):
        report(f"resolving {command[command.index('--output-file') + 1]}")
        done = subprocess.run(command, cwd=paths.REPO_ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            raise LockError(f"uv could not resolve the image's packages: {lines[-1] if lines else done.returncode}")
    problems = check()
    if problems:
        raise LockError(problems[0])
