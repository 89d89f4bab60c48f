"""The serving image declares exactly what the model handlers import.

Every third-party import in ``model_sources/`` (found with ``ast``, including imports inside
functions) must come from a distribution that the base image (the SageMaker PyTorch DLC, listed in
``container/dlc-packages.txt``) ships or that ``container/requirements.txt`` pins; every pin must
equal the version installed in the test environment (what the handler tests ran with); and the
requirements hold nothing the handlers do not need.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_SOURCES = REPO_ROOT / "model_sources"
CONTAINER = REPO_ROOT / "container"

_REQ_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s#;]+)\s*(?:#\s*(?P<comment>.*))?$")
_VIA = re.compile(r"^via (?P<dist>[A-Za-z0-9][A-Za-z0-9._-]*)\b")


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path) -> dict[str, tuple[str, str]]:
    """``{normalized name: (version, comment)}`` of a file of exact pins (one per line)."""
    pins: dict[str, tuple[str, str]] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _REQ_LINE.match(line)
        assert match, f"{path.name}:{number}: not an exact pin 'name==version': {raw!r}"
        name = normalize(match["name"])
        assert name not in pins, f"{path.name}:{number}: {name} pinned twice"
        pins[name] = (match["version"], (match["comment"] or "").strip())
    return pins


def read_names(path: Path) -> set[str]:
    """Normalized names of a one-name-per-line file with # comments."""
    names = set()
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.add(normalize(line))
    return names


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


def check_imports(root: Path, requirements: set[str], dlc: set[str],
                  mapping: dict[str, list[str]] | None = None) -> list[str]:
    """Problems (one line each) with the third-party imports under ``root``: a module that no
    installed distribution provides, or whose distribution is neither pinned nor in the DLC."""
    mapping = importlib.metadata.packages_distributions() if mapping is None else mapping
    problems = []
    for module, files in sorted(third_party_imports(root).items()):
        dists = {normalize(d) for d in mapping.get(module, [])}
        where = ", ".join(sorted(files))
        if not dists:
            problems.append(f"{module} (imported by {where}) is not provided by any installed distribution")
        elif not dists & (requirements | dlc):
            problems.append(f"{module} (imported by {where}) comes from {sorted(dists)}, which is neither "
                            "in container/requirements.txt nor in container/dlc-packages.txt")
    return problems


@pytest.fixture(scope="module")
def requirements() -> dict[str, tuple[str, str]]:
    return read_requirements(CONTAINER / "requirements.txt")


@pytest.fixture(scope="module")
def dlc() -> set[str]:
    return read_names(CONTAINER / "dlc-packages.txt")


def test_every_handler_import_is_in_the_image(requirements, dlc):
    imports = third_party_imports(MODEL_SOURCES)
    # the scan sees the real handlers (guards against a scan that silently finds nothing)
    assert {"torch", "numpy", "segment_anything", "diffusers"} <= set(imports), sorted(imports)
    assert check_imports(MODEL_SOURCES, set(requirements), dlc) == []


def test_pins_equal_the_tested_versions(requirements):
    for name, (version, _) in requirements.items():
        installed = importlib.metadata.version(name)
        assert version == installed, f"container/requirements.txt pins {name}=={version}; tests ran {installed}"


def test_requirements_hold_only_what_handlers_need(requirements, dlc):
    mapping = importlib.metadata.packages_distributions()
    imported = {normalize(d) for module in third_party_imports(MODEL_SOURCES) for d in mapping.get(module, [])}
    for name, (_, comment) in requirements.items():
        assert name not in dlc, f"{name} is already in the DLC: pinning it again could replace the DLC's build"
        if name in imported:
            continue
        via = _VIA.match(comment)
        assert via, f"{name} is not imported by model_sources/; say which imported package needs it ('# via <dist>: ...')"
        assert normalize(via["dist"]) in imported, f"{name}: 'via {via['dist']}' names a package model_sources does not import"
        # declared by that package, as a dependency or in one of its extras
        needed_by = importlib.metadata.requires(via["dist"]) or []
        assert any(normalize(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0]) == name for r in needed_by), (
            f"{name}: {via['dist']} does not declare it as a dependency")


def test_checker_flags_an_undeclared_import(tmp_path, dlc):
    """The check can fail: a handler importing a package that is installed here but neither in the
    DLC nor pinned (scikit-image), one importing a module nobody provides, and local modules and
    relative imports that must not count."""
    model = tmp_path / "fake"
    model.mkdir()
    (model / "helper.py").write_text("X = 1\n")
    (model / "handler.py").write_text(
        "import os\nimport torch\nfrom . import sibling\nimport helper\n"
        "def f():\n    from skimage import data\n    import not_a_module_anyone_ships\n"
    )
    problems = check_imports(tmp_path, requirements=set(), dlc=dlc)
    assert len(problems) == 2, problems
    assert problems[0].startswith("not_a_module_anyone_ships") and "not provided by any" in problems[0]
    assert problems[1].startswith("skimage") and "scikit-image" in problems[1] and "fake/handler.py" in problems[1]
    # declared -> clean; and the distribution mapping is what decides (a fake mapping)
    assert check_imports(tmp_path, requirements={"scikit-image"}, dlc=dlc,
                         mapping={"skimage": ["scikit-image"], "torch": ["torch"],
                                  "not_a_module_anyone_ships": ["made-up-dist"]}) == [
        "not_a_module_anyone_ships (imported by fake/handler.py) comes from ['made-up-dist'], which is neither "
        "in container/requirements.txt nor in container/dlc-packages.txt"
    ]


def test_requirement_parser_rejects_loose_pins(tmp_path):
    bad = tmp_path / "requirements.txt"
    bad.write_text("diffusers>=0.42\n")
    with pytest.raises(AssertionError, match="not an exact pin"):
        read_requirements(bad)


def test_dockerfile_base_image_matches_the_construct():
    from mme_constructs.serving_image import DEFAULT_BASE_IMAGE

    dockerfile = (CONTAINER / "Dockerfile").read_text()
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert match, "container/Dockerfile must declare ARG BASE_IMAGE=<default>"
    assert match[1] == DEFAULT_BASE_IMAGE
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    assert "docker login" in dockerfile and "get-login-password" in dockerfile
    # every file the Dockerfile copies exists in the build context
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        for source in line.split()[:-1]:
            assert (CONTAINER / source).is_file(), f"COPY {source}: missing from container/"


def test_torchserve_settings_for_mme():
    props = {}
    for raw in (CONTAINER / "config.properties").read_text().splitlines():
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
