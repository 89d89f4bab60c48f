"""Prepare ``.whl/site`` (git-ignored): the pure-Python packages a GPU machine's Python may lack,
for ``python -m bench.run --device cuda`` there.

A GPU machine with torch, torchvision, transformers, huggingface-hub, safetensors, numpy, pillow
and pyyaml installed (a typical CUDA image) still needs diffusers, accelerate, segment-anything-py
and TorchServe's ``ts`` package (the handlers subclass ``ts.torch_handler.base_handler.BaseHandler``
and the runner builds a ``ts.context.Context``). This downloads the pinned wheels for Python 3.12
with pip and unpacks them into ``.whl/site`` (all are ``py3-none-any``: unpacking is installing),
leaving out TorchServe's Java frontend (``ts/frontend/model-server.jar``, 46 MB: the benchmark
calls the handlers in-process), so the folder stays small enough to copy next to the checkout.

    python -m bench.prepare_device          # then PYTHONPATH=.whl/site:. on the GPU machine (docs/performance.md)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Same pins as requirements-dev.txt; importlib_metadata 8.x needs only zipp (in the image).
WHEELS = ["diffusers==0.42.1", "accelerate==1.15.0", "segment-anything-py==1.0.1", "torchserve==0.12.0",
          "importlib_metadata==8.7.0"]
SKIP_PREFIXES = ("ts/frontend/",)


def main() -> int:
    """Download and unpack the wheels into ``.whl/site``."""
    site = REPO / ".whl" / "site"
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp",
                        "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
                        "-d", tmp, "-q", *WHEELS], check=True)
        for wheel in sorted(Path(tmp).glob("*.whl")):
            with zipfile.ZipFile(wheel) as zf:
                members = [m for m in zf.namelist() if not m.startswith(SKIP_PREFIXES)]
                zf.extractall(site, members)
            print(f"unpacked {wheel.name}")
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    print(f"{site}: {size / (1 << 20):.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
