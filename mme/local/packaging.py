"""What ``mme local up`` serves: the enabled models, their weights (tiny random-weight models built
here, or a folder of real weights) and their archives, packaged by the project's packager into the
same ``<name>-<digest>.tar.gz`` (the same ``TargetModel`` names) that the stack uploads.

Weights: ``tiny`` builds random-weight tiny models (``mme.tiny``; cached under
``$XDG_CACHE_HOME/mme/tiny/<builder digest>/``), or a directory with one subfolder per model
(``sam/``, ``lama/``, ``sd/``) holding that model's weight files as they go under ``weights/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from mme import paths
from mme.local.state import LocalModeError, Reporter, cache_dir
from mme.models import MODELS


def enabled_models() -> tuple[str, ...]:
    """The models ``cdk.json`` enables (``enabledModels``), else all three."""
    try:
        context = json.loads((paths.REPO_ROOT / "cdk.json").read_text()).get("context", {})
        models = tuple(m for m in context.get("enabledModels", MODELS) if m in MODELS)
        return models or MODELS
    except (OSError, ValueError, AttributeError):
        return MODELS


def parse_models(text: str | None) -> tuple[str, ...]:
    """``"sam,lama"`` -> ``("sam", "lama")`` (checked); None -> :func:`enabled_models`."""
    if text is None:
        return enabled_models()
    models = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise LocalModeError(f"unknown model(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODELS)}")
    return models


def model_sources_dir() -> Path:
    """``model_sources/`` of this checkout (``$MME_MODEL_SOURCES`` overrides)."""
    try:
        return paths.model_sources_dir()
    except FileNotFoundError as err:
        raise LocalModeError(str(err)) from None


def _tiny_builder_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((Path(paths.__file__).parent / "tiny").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def tiny_weights(models: Iterable[str], report: Reporter) -> dict[str, Path]:
    """Build (or reuse from the cache) the tiny random-weight models; ``{model: weights dir}``."""
    from mme import tiny

    root = cache_dir() / "tiny" / _tiny_builder_digest()
    found = {}
    for name in models:
        target = root / name
        if not (target / ".complete").exists():
            report(f"building the tiny {name} model")
            partial = root / f".{name}.partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            tiny.build(name, partial)
            (partial / ".complete").write_text("")
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
        found[name] = target
    return found


def dir_weights(directory: str | os.PathLike, models: Iterable[str]) -> dict[str, Path]:
    """``{model: DIR/model}``, checking every enabled model has its folder with files in it."""
    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise LocalModeError(f"--weights {directory}: not a directory (give 'tiny' or a folder with "
                             "one subfolder per model)")
    found = {}
    for name in models:
        folder = root / name
        if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
            raise LocalModeError(f"--weights {root}: no weight files in {folder} (expected one subfolder per "
                                 f"model: {', '.join(m + '/' for m in models)})")
        found[name] = folder
    return found


def package_models(weights: dict[str, Path], out_dir: Path, report: Reporter) -> dict[str, dict]:
    """Package each model (sources + its weights folder) with the project's packager into
    ``out_dir``; ``{model: {"artifact": path, "target_model": name, "sha256": ..}}``."""
    from mme_constructs.packager.core import LocalDestination, package
    from mme_constructs.packager.errors import PackagingError
    from mme_constructs.packager.sources import SourceTree
    from mme_constructs.packager.specs import parse_spec

    sources = model_sources_dir()
    destination = LocalDestination(out_dir)
    result = {}
    for name, folder in weights.items():
        try:
            tree = SourceTree.from_dirs([sources / "common", sources / name])
            built = package(name, tree, parse_spec({"kind": "local", "path": str(folder)}), destination)
        except PackagingError as exc:
            raise LocalModeError(f"packaging {name} failed: {exc}") from None
        report(f"{'found' if built.skipped else 'packaged'} {name}: {built.target_model} "
               f"({built.size_bytes / 1e6:.1f} MB)")
        result[name] = {"artifact": built.location, "target_model": built.target_model, "sha256": built.sha256}
    keep = {Path(info["artifact"]).name for info in result.values()}
    for old in out_dir.glob("*.tar.gz"):  # archives of earlier inputs
        if old.name not in keep:
            old.unlink(missing_ok=True)
    return result
