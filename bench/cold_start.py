"""Cold start as a multi-model endpoint does it: from an archive in S3 to the first response, per
model and per stage, the project's way and the original sample's way side by side.

Examples::

    python -m bench.cold_start --size tiny --out bench/results/cold-start-tiny-cpu.json --write-docs
    python -m bench.cold_start --size full --models lama --out bench/results/cold-start-full-cpu-lama.json
    # a GPU machine (same command; the handlers pick the GPU TorchServe gives them)
    python -m bench.cold_start --size full --out bench/results/cold-start-full-gpu.json

S3 is moto's server on 127.0.0.1 (the bucket lives in this process). For each model:

- **project**: the archive the stack's packager writes (streamed into S3, gzip level 0, the
  files at the root), the project's handler;
- **sample**: the original sample's way: ``torch-model-archiver --archive-format no-archive`` of its
  handler (``bench/baselines.py``: SAM fp32 via ``sam_model_registry`` + ``SamPredictor``; SD via
  ``StableDiffusionInpaintPipeline.from_pretrained``; LaMa: the same generator and handler as the
  project's, so only the archive differs), then ``tar czf`` of that folder (gzip's default level 6),
  uploaded with boto3.

Then the platform emulator (:mod:`mme.local.emulator`, the same code ``mme local`` runs) in
front of TorchServe started with the serving container's settings (:mod:`mme.local.sagemaker_container`)
gets the first ``InvokeEndpoint`` for the ``TargetModel`` and the stages are timed: **download**
(one S3 GetObject streamed to disk), **unpack** (tar.gz into the model folder),
**register** (the Load Model call up to a live worker: TorchServe's bookkeeping and the worker
process start), **initialize** (the worker's LOAD: handler import + ``initialize()``, TorchServe's
own ``Backend response time`` of that LOAD in its console output) and **first request** (the original
sample's payload: JPEG image and mask, ``gen_args`` as a JSON string; SD at ``--sd-steps``).
Then the model is unloaded so the next measurement starts cold again (new worker; the archive's
bytes may still be in the page cache, for both ways alike). Before a model's measurements, one
unmeasured load and unload primes the container (its first worker reads Python's and torch's
libraries from disk; an endpoint instance has served other models before). ``--repeats``
measurements per way, alternating; the median is reported.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import io
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.workloads import ellipse_mask, synthetic_image  # noqa: E402
from mme.models import MODELS  # noqa: E402

SCHEMA = "mme-coldstart/1"
STAGES = ("download_s", "unpack_s", "register_s", "initialize_s", "first_request_s")
BASELINE_CLASSES = {"sam": "SampleSamHandler", "sd": "SampleSDHandler"}
LOG_WAIT_S = 10.0


# ---------------------------------------------------------------------- archives
def project_archive(s3, bucket: str, name: str, weights: Path) -> dict:
    """The stack's packager into ``s3://bucket/models/``: ``{"target_model", "bytes"}``."""
    from mme_constructs.packager.core import S3Destination, package
    from mme_constructs.packager.sources import SourceTree
    from mme_constructs.packager.specs import parse_spec

    sources = REPO / "model_sources"
    built = package(name, SourceTree.from_dirs([sources / "common", sources / name]),
                    parse_spec({"kind": "local", "path": str(weights)}), S3Destination(s3, bucket, "models/"))
    return {"target_model": built.target_model, "bytes": built.size_bytes}


def sample_archive(s3, bucket: str, name: str, weights: Path, work: Path) -> dict:
    """The original sample's way: torch-model-archiver folder, ``tar czf`` (level 6), upload."""
    staging = work / f"sample-{name}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "extra").mkdir(parents=True)
    (staging / "extra" / "weights").symlink_to(weights.resolve(), target_is_directory=True)
    sources = REPO / "model_sources"
    if name in BASELINE_CLASSES:
        handler = staging / "handler.py"
        handler.write_text(f'"""The original sample\'s {name} handler (bench/baselines.py) for TorchServe."""\n'
                           f"from baselines import {BASELINE_CLASSES[name]} as _Sample\n\n\n"
                           f"class Handler(_Sample):\n    pass\n")
        shutil.copy2(REPO / "bench" / "baselines.py", staging / "extra" / "baselines.py")
    else:  # lama: the sample ran the same generator; its archive is what differs
        handler = sources / name / "handler.py"
        for entry in [*(sources / "common").iterdir(), *(sources / name).iterdir()]:
            if entry.name not in ("handler.py", "__pycache__", "weights.yaml", "model-config.yaml"):
                target = staging / "extra" / entry.name
                (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, target)
    export = staging / "export"
    export.mkdir()
    env = dict(os.environ, TMPDIR=str(staging))  # the archiver copies everything through its temp dir
    archiver = Path(sys.executable).with_name("torch-model-archiver")  # the venv's, activated or not
    subprocess.run([str(archiver) if archiver.exists() else "torch-model-archiver", "--model-name", name, "--version", "1.0", "--handler", str(handler),
                    "--extra-files", str(staging / "extra"), "--config-file", str(sources / name / "model-config.yaml"),
                    "--archive-format", "no-archive", "--export-path", str(export), "-f"],
                   check=True, env=env, cwd=staging)
    archive = staging / f"sample-{name}.tar.gz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(export / name), "."], check=True)
    target = archive.name
    s3.upload_file(str(archive), bucket, "models/" + target)
    size = archive.stat().st_size
    shutil.rmtree(staging, ignore_errors=True)
    return {"target_model": target, "bytes": size}


# ---------------------------------------------------------------------- requests
def jpeg_b64(array) -> str:
    """The sample's clients: ``img.save(output, format="JPEG")``, base64."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG")
    return base64.b64encode(buf.getvalue()).decode()


def first_request(name: str, sd_steps: int) -> bytes:
    """The original sample's client payload for ``name`` on a 1024x768 photo."""
    w, h = 1024, 768
    image = jpeg_b64(synthetic_image(w, h, seed=11))
    if name == "sam":
        body = {"image": image, "gen_args": json.dumps({"point_coords": [w // 2, h // 2], "point_labels": 1,
                                                        "dilate_kernel_size": 15})}
    else:
        mask = jpeg_b64(ellipse_mask(w, h).astype("uint8") * 255)
        body = {"image": image, "mask_image": mask}
        if name == "sd":
            body.update(prompt="a teddy bear on a bench", negative_prompt="ugly",
                        gen_args=json.dumps({"num_inference_steps": sd_steps, "guidance_scale": 10, "seed": 1}))
    return json.dumps(body).encode()


# ---------------------------------------------------------------------- measuring
def _log_offsets(container) -> int:
    """Where TorchServe's console output (its log and its metrics, as the image writes them) ends now."""
    return _size(container.console_log)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def worker_times(container, model_name: str, offset: int) -> dict:
    """TorchServe's own figures for the new worker: ``WorkerLoadTime`` (worker start to model
    loaded) and the LOAD's ``Backend response time`` (handler import + ``initialize``), ms, from its
    console output after ``offset``."""
    found: dict = {}
    patterns = {"worker_load_ms": rf"WorkerLoadTime\.Milliseconds:([\d.]+)\|#WorkerName:W-\d+-{model_name}_",
                "backend_load_ms": rf"W-\d+-{model_name}_\S* \S+ - Backend response time: (\d+)"}
    deadline = time.monotonic() + LOG_WAIT_S  # async logging: the lines may come a moment later
    while time.monotonic() < deadline and len(found) < len(patterns):
        with open(container.console_log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
        for key, pattern in patterns.items():
            match = key not in found and re.search(pattern, text)
            if match:
                found[key] = float(match[1])
        time.sleep(0.1)
    return found


def measure_once(emulator, container, target: str, body: bytes) -> dict:
    """One cold start of ``target``: the stages (s), then unload."""
    from mme.local.emulator import opaque_model_name

    offsets = _log_offsets(container)
    started = time.perf_counter()
    reply = emulator.invoke(target, body)
    total = time.perf_counter() - started
    view = next(m for m in emulator.status()["models"] if m["target_model"] == target)
    stages = view["last_load"]
    if stages is None or reply.platform:
        raise RuntimeError(f"{target} did not load: HTTP {reply.status} {reply.body[:300]!r}")
    ts = worker_times(container, opaque_model_name(target), offsets)
    load_s = stages["load_s"]
    initialize_s = ts["backend_load_ms"] / 1000 if "backend_load_ms" in ts else None
    run = {"download_s": stages["download_s"], "unpack_s": stages["unpack_s"],
           "register_s": load_s - initialize_s if initialize_s is not None else load_s,
           "initialize_s": initialize_s,
           "first_request_s": total - stages["download_s"] - stages["unpack_s"] - load_s,
           "total_s": total, "archive_bytes": stages["archive_bytes"], "unpacked_bytes": stages["unpacked_bytes"],
           "worker_load_s": ts["worker_load_ms"] / 1000 if "worker_load_ms" in ts else None,
           "worker_size_mib": (view["size_bytes"] or 0) / 2**20}
    if reply.status != 200:  # loaded, but the first request failed (e.g. TorchServe's response timeout)
        run.update(first_request_s=None, total_s=None,
                   first_request_error=f"HTTP {reply.status} after {run['first_request_s']:.0f} s: "
                                       f"{_message(reply.body)}")
    emulator.unload(target)
    return run


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
        return str((data.get("error") or {}).get("message") or data.get("message") or data)[:200]
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")


def prime(container, s3, target: str, work: Path) -> None:
    """Load and unload ``target`` once, unmeasured: the container's first worker also reads
    Python's, torch's and the handler's libraries from disk, which would count against whichever
    way is measured first (an endpoint instance has served other models before)."""
    from mme.local.emulator import unpack

    folder = work / "prime"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    s3.download_file("models", "models/" + target, str(folder / "model.tar.gz"))
    unpack(folder / "model.tar.gz", folder / "model")
    try:
        status, data = container.load_model("prime", folder / "model", timeout=1800)
        if status != 200:
            raise RuntimeError(f"priming with {target}: HTTP {status} {data[:300]!r}")
    finally:
        container.unload_model("prime")
        shutil.rmtree(folder, ignore_errors=True)


def median_of(runs: list[dict]) -> dict:
    """Median of every numeric field over the runs."""
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    return {k: statistics.median(r[k] for r in runs if r.get(k) is not None) for k in keys
            if any(r.get(k) is not None for r in runs)}


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """``python -m bench.cold_start`` (see the module docstring)."""
    import boto3
    from moto.server import ThreadedMotoServer

    from bench import serving_report
    from bench.run import DEFAULT_CACHE, ensure_weights
    from mme.local.emulator import EndpointEmulator
    from mme.model_data import S3ModelData
    from mme.local.sagemaker_container import SageMakerContainer

    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sam,lama,sd", help="comma-separated subset of sam,lama,sd")
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny",
                        help="tiny random-weight models, or full-size ones (bench/full_size.py)")
    parser.add_argument("--repeats", type=int, default=3, help="cold starts per model and way (default 3)")
    parser.add_argument("--sd-steps", type=int, default=2, help="denoising steps of SD's first request (default 2)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where built weights are cached")
    parser.add_argument("--work-dir", type=Path, default=None, help="scratch space (default: a temp dir)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--write-docs", action="store_true", help="re-render docs/performance.md")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or any(m not in MODELS for m in models):
        parser.error("--models must be a subset of sam,lama,sd")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="mme-cold-start-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    # the sample's tiny SAM handler builds its model with mme.tiny: the workers need the repo
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    result = {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "command": serving_report.command_line("python -m bench.cold_start", argv if argv is not None else sys.argv[1:]),
              "model_size": args.size, "repeats": args.repeats, "sd_steps": args.sd_steps,
              "device": serving_report.machine(), "models": {}}
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    container = None
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="models")
        container = SageMakerContainer(work / "server", start_timeout=300).start()
        emulator = EndpointEmulator(container, S3ModelData("s3://models/models/", s3), work / "models", 2**50,
                                    load_timeout=1800)
        for name in models:
            weights, _ = ensure_weights(name, args.size, args.cache_dir, log=log)
            log(f"{name}: packaging both archives into S3")
            archives = {"project": project_archive(s3, "models", name, weights),
                        "sample": sample_archive(s3, "models", name, weights, work)}
            body = first_request(name, args.sd_steps)
            prime(container, s3, archives["project"]["target_model"], work)
            runs: dict[str, list] = {way: [] for way in archives}
            for i in range(args.repeats):
                for way, archive in archives.items():
                    run = measure_once(emulator, container, archive["target_model"], body)
                    runs[way].append(run)
                    log(f"{name} {way} #{i + 1}: " + ", ".join(f"{k[:-2]} {run[k]:.2f}s" for k in STAGES
                                                             if run.get(k) is not None)
                        + (f", total {run['total_s']:.2f}s" if run["total_s"] else f"; {run['first_request_error']}"))
            result["models"][name] = {way: {**archives[way], "runs": runs[way], "median": median_of(runs[way])}
                                      for way in archives}
            for archive in archives.values():  # moto keeps objects on this disk: GBs per full-size model
                s3.delete_object(Bucket="models", Key="models/" + archive["target_model"])
            serving_report.save(result, args.out, False, log)  # what is measured survives an interruption
    finally:
        if container is not None:
            container.stop()
        server.stop()
    serving_report.save(result, args.out, args.write_docs, log)
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
