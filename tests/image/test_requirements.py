"""The serving image declares exactly what the handlers import, installs what the tests run, and
its hashed locks agree with both (no container engine needed: part of ``make test``).

- Every third-party import in ``model_sources/`` (found with ``ast``, including imports inside
  functions) comes from a distribution pinned in one of container/requirements-torch.txt,
  requirements-server.txt or requirements.txt; each line of requirements.txt is needed.
- One set of pins: every pin equals the version installed in this test environment (except the
  lines marked "image only"), and every package of the locks that constraints.txt also pins has
  its version there.
- The locks hold every pin with sha256 hashes, and the framework's lock agrees with the full one;
  :func:`mme.serving_image.lockfile.check` finds each kind of drift, named in one line.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import sys
from pathlib import Path

import pytest

from mme.serving_image import layout, lockfile

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_SOURCES = REPO_ROOT / "model_sources"
_VIA = re.compile(r"^via (?P<dist>[A-Za-z0-9][A-Za-z0-9._-]*)\b")


def local_modules(root: Path) -> set[str]:
    """Top-level names importable from inside a model archive: every module or package that a
    model folder (or common/) carries, since the packager puts them next to handler.py."""
    names = set()
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.suffix == ".py":
                names.add(entry.stem)
            elif entry.is_dir() and (entry / "__init__.py").exists():
                names.add(entry.name)
    return names


def imported_top_levels(path: Path) -> set[str]:
    """Top-level module names imported anywhere in one Python file (relative imports skipped)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party_imports(root: Path) -> dict[str, set[str]]:
    """``{top-level module: {files importing it}}`` for modules that are neither stdlib nor local."""
    local = local_modules(root)
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for name in imported_top_levels(path):
            if name in sys.stdlib_module_names or name in local or name == "__future__":
                continue
            found.setdefault(name, set()).add(str(path.relative_to(root)))
    return found


def check_imports(root: Path, declared: set[str], mapping: dict[str, list[str]] | None = None) -> list[str]:
    """Problems (one line each) with the third-party imports under ``root``: a module that no
    installed distribution provides, or whose distribution the image does not pin."""
    mapping = importlib.metadata.packages_distributions() if mapping is None else mapping
    problems = []
    for module, files in sorted(third_party_imports(root).items()):
        dists = {lockfile.normalize(d) for d in mapping.get(module, [])}
        where = ", ".join(sorted(files))
        if not dists:
            problems.append(f"{module} (imported by {where}) is not provided by any installed distribution")
        elif not dists & declared:
            problems.append(f"{module} (imported by {where}) comes from {sorted(dists)}, which no "
                            "container/requirements*.txt pins")
    return problems


@pytest.fixture(scope="module")
def pins() -> dict[str, lockfile.Pin]:
    return lockfile.declared_pins()


def test_every_handler_import_is_in_the_image(pins):
    imports = third_party_imports(MODEL_SOURCES)
    # the scan sees the real handlers (guards against a scan that silently finds nothing)
    assert {"torch", "numpy", "segment_anything", "diffusers", "ts", "PIL"} <= set(imports), sorted(imports)
    assert check_imports(MODEL_SOURCES, set(pins)) == []


def test_pins_equal_the_tested_versions(pins):
    for name, pin in pins.items():
        if pin.image_only:
            continue
        installed = importlib.metadata.version(name)
        assert pin.version == installed, f"{layout.relative(pin.source)} pins {name}=={pin.version}; tests ran {installed}"
    assert [p.name for p in pins.values() if p.image_only] == ["setuptools"]


def test_handler_requirements_hold_only_what_handlers_need():
    mapping = importlib.metadata.packages_distributions()
    imported = {lockfile.normalize(d) for module in third_party_imports(MODEL_SOURCES) for d in mapping.get(module, [])}
    for name, pin in lockfile.read_pins(layout.HANDLER_REQUIREMENTS).items():
        if name in imported:
            continue
        via = _VIA.match(pin.comment)
        assert via, f"{name} is not imported by model_sources/; say which imported package needs it ('# via <dist>: ...')"
        assert lockfile.normalize(via["dist"]) in imported, f"{name}: 'via {via['dist']}' names a package model_sources does not import"


def test_checker_flags_an_undeclared_import(tmp_path):
    """The import check can fail: a handler importing a package that is installed here but not
    pinned (scikit-image), one importing a module nobody provides; local modules and relative
    imports do not count."""
    model = tmp_path / "fake"
    model.mkdir()
    (model / "helper.py").write_text("X = 1\n")
    (model / "handler.py").write_text(
        "import os\nimport torch\nfrom . import sibling\nimport helper\n"
        "def f():\n    from skimage import data\n    import not_a_module_anyone_ships\n")
    problems = check_imports(tmp_path, declared={"torch"})
    assert len(problems) == 2, problems
    assert problems[0].startswith("not_a_module_anyone_ships") and "not provided by any" in problems[0]
    assert problems[1].startswith("skimage") and "scikit-image" in problems[1] and "fake/handler.py" in problems[1]
    assert check_imports(tmp_path, declared={"scikit-image", "torch"},
                         mapping={"skimage": ["scikit-image"], "torch": ["torch"],
                                  "not_a_module_anyone_ships": ["scikit-image"]}) == []


def test_the_locks_agree_with_the_pins_and_the_test_environment():
    assert lockfile.check() == []
    torch_lock, full_lock = lockfile.read_lock(layout.TORCH_LOCK), lockfile.read_lock(layout.FULL_LOCK)
    # the framework and its CUDA 12 libraries are in their own lock; the server is not
    assert {"torch", "torchvision", "nvidia-cuda-runtime-cu12", "setuptools"} <= set(torch_lock)
    assert "torchserve" not in torch_lock and {"torchserve", "diffusers"} <= set(full_lock)
    assert all(entry.hashes for entry in full_lock.values())
    assert not any(name.startswith("nvidia-") and not name.endswith("-cu12") and name != "nvidia-cusparselt-cu12"
                   for name in full_lock), "a CUDA 13 library (no -cu12 suffix) is in the lock"


@pytest.fixture
def copies(tmp_path) -> dict[str, Path]:
    """The requirement files, the locks and constraints.txt, copied to be spoiled."""
    found = {}
    for path in (*layout.REQUIREMENT_FILES, layout.TORCH_LOCK, layout.FULL_LOCK, layout.TEST_CONSTRAINTS):
        found[path.name] = tmp_path / path.name
        shutil.copy(path, found[path.name])
    return found


def _check(copies: dict[str, Path]) -> list[str]:
    return lockfile.check(torch_lock=copies["requirements-torch.lock"], full_lock=copies["requirements.lock"],
                          requirement_files=tuple(copies[p.name] for p in layout.REQUIREMENT_FILES),
                          constraints=copies["constraints.txt"])


def _drop_entry(lock: Path, name: str) -> None:
    """Remove ``name``'s entry (its line, its hashes and its annotations) from a uv lock."""
    lines, keep, skipping = lock.read_text().splitlines(), [], False
    for line in lines:
        if re.match(rf"^{re.escape(name)}==", line):
            skipping = True
            continue
        if skipping and (line.startswith(" ") or not line.strip()):
            continue
        skipping = False
        keep.append(line)
    lock.write_text("\n".join(keep) + "\n")


def test_drift_is_found_and_named(copies):
    assert _check(copies) == []
    _drop_entry(copies["requirements.lock"], "diffusers")
    assert _check(copies) == [f"diffusers==0.42.1 ({copies['requirements.txt']}) is missing from "
                              f"{copies['requirements.lock']}: run `make lock`"]


def test_a_version_the_lock_does_not_have_is_named(copies):
    text = copies["requirements.txt"].read_text().replace("safetensors==0.8.0", "safetensors==0.7.0")
    copies["requirements.txt"].write_text(text)
    problems = _check(copies)
    assert problems == [f"safetensors: {copies['requirements.txt']} pins 0.7.0, {copies['requirements.lock']} "
                        "has 0.8.0: run `make lock`"]


def test_an_unhashed_or_foreign_entry_is_named(copies):
    lock = copies["requirements.lock"]
    lock.write_text(re.sub(r"^(six==\S+) \\\n(?:\s+--hash=\S+(?: \\)?\n)+", r"\1\n", lock.read_text(), flags=re.M))
    problems = _check(copies)
    assert any(p.startswith("six==1.17.0 in") and "has no --hash=sha256" in p for p in problems), problems
    torch_lock = copies["requirements-torch.lock"]
    torch_lock.write_text(torch_lock.read_text().replace("sympy==1.14.0", "sympy==1.13.3"))
    assert any(p.startswith("sympy==1.13.3:") and "differ" in p for p in _check(copies))


def test_the_test_environment_and_the_image_share_one_version(copies):
    constraints = copies["constraints.txt"]
    constraints.write_text(constraints.read_text().replace("\nnumpy==2.4.6\n", "\nnumpy==2.4.5\n"))
    assert _check(copies) == [f"numpy: {copies['requirements.lock']} has 2.4.6, the test environment "
                              f"({constraints}) 2.4.5: one set of pins; run `make lock`"]


def test_malformed_files_are_refused_in_one_line(copies):
    copies["requirements.txt"].write_text("diffusers>=0.42\n")
    with pytest.raises(lockfile.LockError, match=r"requirements.txt:1: not an exact pin 'name==version'"):
        _check(copies)
    copies["requirements.txt"].write_text("torch==2.10.0\n")
    with pytest.raises(lockfile.LockError, match="torch is pinned in both"):
        _check(copies)


def test_make_lock_resolves_for_the_image_and_with_the_tests_pins():
    commands = lockfile.compile_commands("uv")
    for command in commands:
        assert command[command.index("--python-version") + 1] == layout.LOCK_PYTHON_VERSION
        assert "--generate-hashes" in command and "constraints.txt" in command
    # the torch lock first; the full lock is constrained by it, so both agree
    assert commands[0][commands[0].index("--output-file") + 1] == "container/requirements-torch.lock"
    assert "container/requirements-torch.lock" in commands[1][:commands[1].index("--output-file")]
