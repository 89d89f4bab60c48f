"""The serving image, measured: its size (uncompressed, and compressed as a push sends it), its build
time from nothing and with warm caches, and the seconds from ``serve`` to the first ``/ping`` 200
and to the first answer of a tiny model, against the virtual environment's TorchServe on the same
machine (the same settings, started the same way: :mod:`mme.local.sagemaker_container`).

Examples::

    # everything, the build from nothing included (removes the image, its base and the wheel cache)
    python -m bench.image --cold-build --repeat 5 --out bench/results/image-cpu.json --write-docs
    # sizes and start times of the image already built
    python -m bench.image --repeat 5 --out /tmp/image.json

Sizes: the engine's own figure for the image (the sum of its uncompressed layers), and each layer of
``<engine> save`` gzip-compressed at level 6, the default of the gzip both docker's and podman's
pushes use (the registry stores what the push sent). Start: each way started ``--repeat`` times,
alternating, median reported; the tiny model is LaMa's (its archive from ``mme.local.packaging``),
registered the way SageMaker registers it, answering the original sample's payload.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.output import DOCS, RESULTS_DIR, load_average, number, write_json, write_section  # noqa: E402
from bench.serving_report import command_line, machine  # noqa: E402

SCHEMA = "mme-image/1"
START, END = "<!-- image-bench:start -->", "<!-- image-bench:end -->"
#: Where SageMaker refused a larger image (aws/deep-learning-containers#4616: "Image size 13494688833 is
#: greater than supported size 10737418240" for the PyTorch 2.0 GPU inference DLC).
SAGEMAKER_IMAGE_LIMIT_BYTES = 10 * 2**30
#: The PyTorch 2.0 GPU inference DLC's size in that report: the only published DLC figure found.
DLC_PUBLIC_SIZE = {"bytes": 13_494_688_833, "image": "pytorch-inference:2.0.0-gpu-py310-cu118-ubuntu20.04-sagemaker",
                   "source": "aws/deep-learning-containers issue 4616 (SageMaker's CreateEndpoint error, 2025-03-07)"}


# ---------------------------------------------------------------------- sizes
def compressed_layer_bytes(engine, image: str) -> list[int]:
    """Each layer of ``<engine> save`` gzip-compressed at level 6 (streamed; nothing written to disk)."""
    args = ("save", "--format", "docker-archive", image) if engine.is_podman else ("save", image)
    proc = subprocess.Popen(engine.command(*args), env=engine.env, stdout=subprocess.PIPE)
    sizes = []
    with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
        for member in outer:
            if not member.isfile() or not (member.name.endswith(".tar") or "/layer" in member.name):
                continue
            stream, packer, total = outer.extractfile(member), zlib.compressobj(6, zlib.DEFLATED, 31), 0
            while chunk := stream.read(8 * 2**20):
                total += len(packer.compress(chunk))
            sizes.append(total + len(packer.flush()))
    if proc.wait() != 0:
        raise RuntimeError(f"{engine.name} save {image} failed")
    return sizes


def sizes(engine, image: str) -> dict:
    """Uncompressed (the engine's figure) and compressed bytes, with the layer count."""
    uncompressed = int(engine.run("image", "inspect", "--format", "{{.Size}}", image).stdout.decode().strip())
    layers = compressed_layer_bytes(engine, image)
    return {"uncompressed_bytes": uncompressed, "compressed_bytes": sum(layers), "layers": len(layers),
            "largest_layer_compressed_bytes": max(layers)}


# ---------------------------------------------------------------------- builds
def clear_build_caches(engine, image: str, base: str) -> None:
    """The image, its base and the wheel cache removed: the next build starts from nothing."""
    for reference in (image, base):
        engine.run("rmi", "--force", reference, check=False, timeout=600)
    if engine.is_podman:
        for folder in Path("/var/tmp").glob("buildah-cache*/mme-wheels"):
            shutil.rmtree(folder, ignore_errors=True)
    else:
        engine.run("builder", "prune", "--force", "--filter", "type=exec.cachemount", check=False, timeout=600)


def timed_build(image: str, log, **kwargs) -> float:
    from mme.serving_image.build import build_image

    started = time.monotonic()
    build_image(image, report=log, **kwargs)
    return round(time.monotonic() - started, 1)


def build_times(engine, image: str, cold: bool, log) -> dict:
    """Seconds of a build from nothing (with ``cold``), of a rebuild of the unchanged folder, and of a
    rebuild after a change to the handlers' lock (a copy of ``container/`` with one comment added)."""
    from mme.serving_image import build, layout

    found: dict = {}
    if cold:
        clear_build_caches(engine, image, layout.dockerfile_base_image())
        found["from_nothing_s"] = timed_build(image, log)
    found["unchanged_s"] = timed_build(image, log)
    with tempfile.TemporaryDirectory(prefix="mme-image-bench-") as tmp:
        context = Path(tmp) / "container"
        shutil.copytree(layout.CONTAINER_DIR, context)
        with open(context / "requirements.lock", "a") as lock:
            lock.write("# a change to the handlers' lock\n")
        probe = image + "-layer-probe"
        command = build.build_command(engine, probe, layout.dockerfile_base_image(), ca=build.ca_bundle(),
                                      context=context)
        started = time.monotonic()
        subprocess.run(command, env=engine.env, check=True, capture_output=True)
        found["handler_lock_changed_s"] = round(time.monotonic() - started, 1)
        engine.run("rmi", "--force", probe, check=False)
    return found


# ---------------------------------------------------------------------- start
def start_once(way: str, engine, image: str, archive: dict, workdir: Path, body: bytes) -> dict:
    """One start of ``way`` (``image`` or ``venv``): seconds to ``/ping`` 200 and to the tiny model's
    first answer (registered from its unpacked archive, then invoked), both from the start call."""
    from mme.local.emulator import opaque_model_name, unpack
    from mme.local.image_container import ImageContainer
    from mme.local.sagemaker_container import SageMakerContainer

    if way == "image":
        container = ImageContainer(workdir / "server", image=image, engine=engine, models_dir=workdir / "models",
                                   sagemaker_exact=True)
        models = container.models_dir
    else:
        container, models = SageMakerContainer(workdir / "server"), workdir / "models"
    name = opaque_model_name(archive["target_model"])
    unpack(Path(archive["artifact"]), models / name / "model")
    started = time.monotonic()
    container.start()
    try:
        ping_s = time.monotonic() - started
        status, data = container.load_model(name, models / name / "model")
        if status != 200:
            raise RuntimeError(f"{way}: load failed: HTTP {status} {data[:200]!r}")
        status, _, data = container.invoke(name, body, archive["target_model"])
        if status != 200:
            raise RuntimeError(f"{way}: invoke failed: HTTP {status} {data[:200]!r}")
        return {"ping_s": round(ping_s, 2), "first_answer_s": round(time.monotonic() - started, 2)}
    finally:
        container.stop()


def start_times(engine, image: str, repeat: int, log) -> dict:
    """``repeat`` starts of each way, alternating; every run and the medians."""
    from mme import tiny
    from mme.local import packaging
    from bench.cold_start import first_request

    runs: dict[str, list[dict]] = {"image": [], "venv": []}
    with tempfile.TemporaryDirectory(prefix="mme-image-bench-") as tmp:
        tmp = Path(tmp)
        tiny.build("lama", tmp / "weights" / "lama")
        archive = packaging.package_models({"lama": tmp / "weights" / "lama"}, tmp / "artifacts", log)["lama"]
        body = first_request("lama", 1)
        for i in range(repeat):
            for way in (("image", "venv") if i % 2 == 0 else ("venv", "image")):
                run = start_once(way, engine, image, archive, tmp / f"{way}-{i}", body)
                log(f"{way} start {i + 1}: /ping after {run['ping_s']:.2f}s, first answer after {run['first_answer_s']:.2f}s")
                runs[way].append(run)
    median = {way: {key: round(statistics.median(r[key] for r in found), 2) for key in ("ping_s", "first_answer_s")}
              for way, found in runs.items()}
    return {"runs": runs, "median": median}


# ---------------------------------------------------------------------- report
def _gb(value) -> str:
    return number(value / 1e9 if value is not None else None, "{:,.2f} GB")


def render_section(data: dict) -> str:
    """The image section of docs/performance.md."""
    size, builds, start = data["sizes"], data["builds"], data["start"]["median"]
    dlc = DLC_PUBLIC_SIZE
    lines = ["## The serving image (`bench/image.py`)", "",
             f"Machine: {data['device']['cpu_count']} cores, {data['device']['memory_gib']} GiB RAM, "
             f"{'GPU ' + '; '.join(data['device']['gpus']) if data['device'].get('gpus') else 'no GPU'}"
             f"{load_average(data['device'])}; engine {data['engine']}; {data['created'][:10]}.", "",
             f"Command: `{data['command']}`", "",
             "| image | uncompressed | compressed (gzip -6 per layer, as pushed) | layers |", "| --- | --- | --- | --- |",
             f"| `{data['image']}` ({data['image_id'][:12]}) | {_gb(size['uncompressed_bytes'])} | "
             f"{_gb(size['compressed_bytes'])} | {size['layers']} |",
             f"| {dlc['image']} (published figure) | {_gb(dlc['bytes'])} | – | – |", "",
             f"The only published size of a PyTorch GPU inference DLC found: {dlc['source']}, where SageMaker refused "
             f"it as larger than {_gb(SAGEMAKER_IMAGE_LIMIT_BYTES)} ({SAGEMAKER_IMAGE_LIMIT_BYTES:,} bytes). No size of "
             "the 2.6 GPU image was published in the sources available; this image is "
             f"{size['uncompressed_bytes'] / dlc['bytes']:.2f}x that figure and "
             f"{size['uncompressed_bytes'] / SAGEMAKER_IMAGE_LIMIT_BYTES:.2f}x that limit.", "",
             "| build | seconds |", "| --- | --- |"]
    labels = {"from_nothing_s": "from nothing (base made with mmdebstrap where ECR Public is out of reach, every wheel downloaded)",
              "unchanged_s": "again, nothing changed (every layer cached)",
              "handler_lock_changed_s": "after a change to requirements.lock (the torch layer kept, wheels from the cache mount)"}
    lines += [f"| {labels[key]} | {builds[key]:,.1f} |" for key in labels if key in builds]
    ratio = start["image"]["ping_s"] / start["venv"]["ping_s"] if start["venv"]["ping_s"] else float("nan")
    lines += ["", f"Start, median of {data['repeat']} each, alternating (`serve` -> first `/ping` 200 -> tiny LaMa "
              "registered and answering the original sample's payload):", "",
              "| way | to /ping 200 s | to the first answer s |", "| --- | --- | --- |",
              f"| the image, started as SageMaker starts it | {start['image']['ping_s']:.2f} | {start['image']['first_answer_s']:.2f} |",
              f"| the virtual environment's TorchServe, same settings | {start['venv']['ping_s']:.2f} | {start['venv']['first_answer_s']:.2f} |",
              "", f"Ratio image / venv to `/ping`: {ratio:.2f}x (the container's start and the toolkit's `serve` "
              "writing the properties come on top of TorchServe's own start)."]
    return "\n".join(lines)


def write_docs(data: dict, docs: Path = DOCS) -> Path:
    return write_section(docs, START, END, render_section(data))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.image", description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=None, help="image to measure (default localhost/mme-serving:dev)")
    parser.add_argument("--cold-build", action="store_true", help="also time a build from nothing (removes the "
                        "image, its base and the wheel cache first)")
    parser.add_argument("--repeat", type=int, default=5, help="starts of each way (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "image-cpu.json")
    parser.add_argument("--write-docs", action="store_true", help="write the section of docs/performance.md")
    args = parser.parse_args(argv)
    from mme.serving_image.engine import require_engine
    from mme.serving_image.layout import DEV_IMAGE

    engine, image = require_engine(), args.image or DEV_IMAGE
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    result = {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "command": command_line("python -m bench.image", argv), "device": machine(), "engine": engine.name,
              "image": image, "repeat": args.repeat}
    result["builds"] = build_times(engine, image, args.cold_build, log)
    result["image_id"] = engine.image_id(image)
    result["sizes"] = sizes(engine, image)
    result["start"] = start_times(engine, image, args.repeat, log)
    import os

    result["device"]["load_average_end"] = list(os.getloadavg())
    log(f"wrote {write_json(args.out, result)}")
    if args.write_docs:
        log(f"wrote {write_docs(result)}")
    print(json.dumps({k: result[k] for k in ("sizes", "builds")} | {"start": result["start"]["median"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
