#!/usr/bin/env python3
"""Packager throughput and memory benchmark: streaming packager vs the by-hand baseline.

    .venv/bin/python bench/package_throughput.py [--gib 2] [--small-gib 0.5] [--workdir DIR] [--no-docs]

Setup (this process): moto's S3 server and an HTTP file server, both on 127.0.0.1, serving a
file of incompressible (random) bytes as the model's weights.

Measured, each in its own child process (wall time, CPU time from ``wait4``, peak RSS = VmHWM of
the child's own process image, sampled from ``/proc/<pid>/status`` and reported by the child):

* **packager**: the Lambda handler itself (``packager.lambda_handler.handler``, imported the way
  the Lambda runtime imports it) with a CloudFormation Create event: download -> verify sha256
  -> tar -> gzip (level 0) -> S3 multipart upload, one pass; at ``--small-gib`` and ``--gib``;
* **baseline**, what a user does by hand: download the weights to disk (urllib, like curl), then
  ``tar czf`` (GNU tar + gzip -6) of the model folder, then boto3 ``upload_file`` (default
  ``TransferConfig``); the phases' times add up, the peak is the largest of the phases.

Also measures gzip levels 0/1/6/9 (compress and inflate speed, ratio) on random bytes, on
normal-distributed fp16 "weights" and on a Python source tree (the handler code), which is how
the default level was chosen.

Prints the numbers and writes them between ``<!-- packager-bench:start -->`` and
``<!-- packager-bench:end -->`` in docs/performance.md (other sections are left alone).
Everything it creates lives under ``--workdir`` (a temp dir by default) and is removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report_text as text  # noqa: E402
from bench.output import DOCS as DOC  # noqa: E402
from bench.output import write_json, write_section  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
START, END = "<!-- packager-bench:start -->", "<!-- packager-bench:end -->"


# ---------------------------------------------------------------------------------------------
# children (run as `python package_throughput.py --child <mode> ...`)
# ---------------------------------------------------------------------------------------------
def child_packager(event_file: str) -> None:
    """Run the Lambda handler exactly as Lambda imports it (``packager`` as a top-level package)."""
    sys.path.insert(0, str(REPO / "constructs" / "mme_constructs"))
    import logging

    logging.basicConfig(level=logging.WARNING)
    from packager.lambda_handler import handler  # noqa: PLC0415

    out = handler(json.loads(Path(event_file).read_text()), None)
    print(json.dumps(out["Data"]))


def child_download(url: str, dest: str) -> None:
    """``curl -o``: stream a URL to a file."""
    import urllib.request

    with urllib.request.urlopen(url) as resp, open(dest, "wb") as fh:
        shutil.copyfileobj(resp, fh, MiB)


def child_upload(path: str, bucket: str, key: str) -> None:
    """boto3 ``upload_file`` with its default transfer settings."""
    import boto3

    boto3.client("s3").upload_file(path, bucket, key)


# ---------------------------------------------------------------------------------------------
# measuring a child
# ---------------------------------------------------------------------------------------------
def own_peak_kib() -> int:
    """VmHWM of this process image (reset by exec, unlike ``ru_maxrss``, which keeps the forking
    parent's RSS from before the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(argv: list[str], env: dict | None = None) -> dict:
    """Run argv; wall time, CPU time, and the peak RSS of the child's own image.

    The peak is the VmHWM the child reports itself at exit (Python children print
    ``VmHWM-KiB: <n>`` on stderr), or for other programs (tar) VmHWM sampled every 0.1 s from
    ``/proc/<pid>/status`` once the process runs its own image.
    ``ru_maxrss`` from ``wait4`` is not used: it includes the parent's RSS copied at fork time.
    """
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    samples: list[int] = []
    stop = threading.Event()

    expected_name = Path(argv[0]).name[:15]  # /proc's Name field; before exec it is still the parent's

    def sample() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while not stop.is_set():
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
                if fields.get("Name", "").strip() == expected_name:
                    samples.append(int(fields["VmHWM"].split()[0]))
            except (OSError, ValueError, KeyError):
                pass
            stop.wait(0.1)

    if argv[0] != sys.executable:  # Python children report their own peak
        threading.Thread(target=sample, daemon=True).start()
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True),
               threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)]
    for r in readers:
        r.start()
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    stop.set()
    for r in readers:
        r.join()
    err = b"".join(err_chunks).decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[:4]} failed: {err[-2000:]}")
    reported = [int(line.split()[1]) for line in err.splitlines() if line.startswith("VmHWM-KiB:")]
    peak_kib = max(samples + reported + [0])
    return {"wall_s": wall, "peak_rss_mib": peak_kib / 1024, "cpu_s": rusage.ru_utime + rusage.ru_stime,
            "stdout": b"".join(out_chunks).decode()}


# ---------------------------------------------------------------------------------------------
# servers
# ---------------------------------------------------------------------------------------------
class FileServer:
    """Serves ``/<name>`` -> the first ``size`` bytes of a file, with Content-Length."""

    def __init__(self, files: dict[str, tuple[Path, int]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # noqa: ANN002
                pass

            def do_GET(self):  # noqa: N802
                entry = files.get(self.path.lstrip("/"))
                if entry is None:
                    self.send_error(404)
                    return
                path, size = entry
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                left = size
                with open(path, "rb") as fh:
                    while left:
                        chunk = fh.read(min(MiB, left))
                        self.wfile.write(chunk)
                        left -= len(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_random(path: Path, size: int, head: int) -> tuple[str, str]:
    """Incompressible bytes; returns the sha256 of all of them and of the first ``head`` bytes."""
    whole, first = hashlib.sha256(), hashlib.sha256()
    with open(path, "wb") as fh:
        done = 0
        while done < size:
            chunk = os.urandom(min(16 * MiB, size - done))
            whole.update(chunk)
            if done < head:
                first.update(chunk[: head - done])
            fh.write(chunk)
            done += len(chunk)
    return whole.hexdigest(), first.hexdigest()


# ---------------------------------------------------------------------------------------------
# gzip levels
# ---------------------------------------------------------------------------------------------
def gzip_levels(sample_mib: int = 128) -> list[dict]:
    """Ratio, compress and inflate speed at levels 0/1/6/9 on three kinds of content."""
    n = sample_mib * MiB
    data = {"random bytes": os.urandom(n)}
    try:
        import numpy as np

        rng = np.random.default_rng(0)
        data["fp16 weights (normal)"] = (rng.standard_normal(n // 2, dtype=np.float32) * 0.02).astype(np.float16).tobytes()
    except ImportError:  # pragma: no cover
        pass
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for src in ("model_sources", "constructs/mme_constructs"):
            for path in sorted((REPO / src).rglob("*.py")) + sorted((REPO / src).rglob("*.yaml")):
                tf.add(path, arcname=str(path.relative_to(REPO)))
    data["handler source tree (tar)"] = buf.getvalue()
    rows = []
    for name, blob in data.items():
        for level in (0, 1, 6, 9):
            t = time.perf_counter()
            c = zlib.compressobj(level, zlib.DEFLATED, 31)
            packed = b"".join([c.compress(blob[i:i + MiB]) for i in range(0, len(blob), MiB)] + [c.flush()])
            comp_s = time.perf_counter() - t
            t = time.perf_counter()
            d = zlib.decompressobj(31)
            for i in range(0, len(packed), MiB):
                d.decompress(packed[i:i + MiB])
            infl_s = time.perf_counter() - t
            rows.append({"content": name, "bytes": len(blob), "level": level, "ratio": len(packed) / len(blob),
                         "compress_mb_s": len(blob) / comp_s / 1e6, "inflate_mb_s": len(blob) / infl_s / 1e6})
    return rows


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def model_source_zip() -> bytes:
    """A CDK-asset-like zip of a small model source (handler + config)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("handler.py", "def handle(data, context):\n    return data\n")
        zf.writestr("model-config.yaml", "minWorkers: 1\nmaxWorkers: 1\n")
    return buf.getvalue()


def start_s3(work: Path):
    """moto's S3 server on 127.0.0.1 with the buckets and the model source; returns (server,
    boto3 client, the environment the children run with)."""
    import boto3
    from moto.server import ThreadedMotoServer

    tempfile.tempdir = str(work / "moto-tmp")  # moto spools objects to temp files: keep them here
    Path(tempfile.tempdir).mkdir(exist_ok=True)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}",
           "MME_PACKAGER_PART_SIZE_MIB": "16", "MME_PACKAGER_MAX_IN_FLIGHT": "4"}
    env.pop("AWS_PROFILE", None)
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                           "AWS_ENDPOINT_URL")})
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="models")
    s3.create_bucket(Bucket="assets")
    s3.put_object(Bucket="assets", Key="src.zip", Body=model_source_zip())
    return moto, s3, env


def measure_packager(name: str, url: str, size: int, sha: str, s3, env: dict, work: Path) -> dict:
    """The Lambda handler in a child process with a Create event for the weights at ``url``."""
    event = {"RequestType": "Create", "LogicalResourceId": "Bench", "ResourceProperties": {
        "ModelName": name, "Bucket": "models", "Prefix": "models/",
        "Sources": [{"Bucket": "assets", "Key": "src.zip"}],
        "WeightsSpec": json.dumps({"kind": "url", "files": [
            {"url": url, "path": "weights.bin", "sha256": sha, "size": size}]})}}
    event_file = work / f"event-{name}.json"
    event_file.write_text(json.dumps(event))
    print(f"packager: {size / GiB:.2f} GiB ...", flush=True)
    m = measure([sys.executable, __file__, "--child", "packager", event_file.as_posix()], env)
    data = json.loads(m.pop("stdout").strip().splitlines()[-1])
    m["archive_bytes"] = int(data["SizeBytes"])
    m["mb_s"] = size / m["wall_s"] / 1e6
    s3.delete_object(Bucket="models", Key=data["Key"])
    return m


def measure_baseline(url: str, size: int, s3, env: dict, work: Path) -> dict:
    """By hand: download to disk, ``tar czf``, boto3 ``upload_file``; each phase in a child."""
    print("baseline: download, tar czf, upload_file ...", flush=True)
    model_dir = work / "baseline" / "big"
    (model_dir / "weights").mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(model_source_zip())) as zf:
        zf.extractall(model_dir)
    download = measure([sys.executable, __file__, "--child", "download", url,
                        str(model_dir / "weights" / "weights.bin")], env)
    archive = work / "baseline" / "big.tar.gz"
    tar = measure(["tar", "czf", str(archive), "-C", str(model_dir), "."], env)
    upload = measure([sys.executable, __file__, "--child", "upload", str(archive), "models", "baseline.tar.gz"], env)
    phases = {"download": download, "tar_czf": tar, "upload_file": upload}
    for phase in phases.values():
        phase.pop("stdout", None)
    total = sum(p["wall_s"] for p in phases.values())
    s3.delete_object(Bucket="models", Key="baseline.tar.gz")
    return {**phases, "wall_s": total, "mb_s": size / total / 1e6,
            "peak_rss_mib": max(p["peak_rss_mib"] for p in phases.values()),
            "archive_bytes": archive.stat().st_size,
            "disk_bytes": (model_dir / "weights" / "weights.bin").stat().st_size + archive.stat().st_size}


def run(args: argparse.Namespace) -> dict:
    """Every measurement (see the module docstring); the results dict."""
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mme-bench-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    big, small = int(args.gib * GiB), int(args.small_gib * GiB)
    results: dict = {"big_bytes": big, "small_bytes": small}
    server = moto = None
    try:
        moto, s3, env = start_s3(work)
        print(f"writing {big / GiB:.2f} GiB of random weights ...", flush=True)
        weights = work / "weights.bin"
        big_sha, small_sha = write_random(weights, big, small)  # the small run serves the first bytes
        server = FileServer({"big.bin": (weights, big), "small.bin": (weights, small)})
        results["packager_small"] = measure_packager("small", f"{server.url}/small.bin", small, small_sha, s3, env, work)
        results["packager_big"] = measure_packager("big", f"{server.url}/big.bin", big, big_sha, s3, env, work)
        results["baseline"] = measure_baseline(f"{server.url}/big.bin", big, s3, env, work)
        print("gzip levels ...", flush=True)
        results["gzip"] = gzip_levels(args.gzip_sample_mib)
    finally:
        if server:
            server.close()
        if moto:
            moto.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    results["date"] = time.strftime("%Y-%m-%d")
    return results


def report(r: dict) -> str:
    big, small = r["big_bytes"] / GiB, r["small_bytes"] / GiB
    pb, ps, b = r["packager_big"], r["packager_small"], r["baseline"]
    lines = [
        "## Packager throughput and memory",
        "",
        text.PACKAGER_INTRO.format(gib=big, date=r.get("date", "undated"), machine=r["machine"]),
        "",
        "| run | weights | wall (s) | MB/s | peak RSS (MiB) | CPU (s) | archive bytes | temp disk |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| packager (Lambda handler, gzip 0, 16 MiB parts x 4) | {small:g} GiB | {ps['wall_s']:.1f} | {ps['mb_s']:.0f} | "
        f"{ps['peak_rss_mib']:.0f} | {ps['cpu_s']:.1f} | {ps['archive_bytes']:,} | 0 |",
        f"| packager (Lambda handler, gzip 0, 16 MiB parts x 4) | {big:g} GiB | {pb['wall_s']:.1f} | {pb['mb_s']:.0f} | "
        f"{pb['peak_rss_mib']:.0f} | {pb['cpu_s']:.1f} | {pb['archive_bytes']:,} | 0 |",
        f"| baseline: download + `tar czf` + boto3 `upload_file` | {big:g} GiB | {b['wall_s']:.1f} | {b['mb_s']:.0f} | "
        f"{b['peak_rss_mib']:.0f} | {sum(b[p]['cpu_s'] for p in ('download', 'tar_czf', 'upload_file')):.1f} | "
        f"{b['archive_bytes']:,} | {b['disk_bytes'] / GiB:.1f} GiB |",
        "",
        "Baseline phases: " + ", ".join(
            f"{name} {b[name]['wall_s']:.1f} s ({r['big_bytes'] / b[name]['wall_s'] / 1e6:.0f} MB/s, peak "
            f"{b[name]['peak_rss_mib']:.0f} MiB)" for name in ("download", "tar_czf", "upload_file")) + ".",
        "",
        text.PACKAGER_FLAT_MEMORY.format(small_peak=ps["peak_rss_mib"], small=small, big_peak=pb["peak_rss_mib"],
                                         big=big),
        "",
        "### Gzip level",
        "",
        "| content | level | size ratio | compress MB/s | inflate MB/s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in r["gzip"]:
        lines.append(f"| {row['content']} ({row['bytes'] / MiB:.1f} MiB) | {row['level']} | {row['ratio']:.4f} | "
                     f"{row['compress_mb_s']:.0f} | {row['inflate_mb_s']:.0f} |")
    lines += [
        "",
        text.PACKAGER_GZIP_CHOICE,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=2.0, help="weights size of the main run (GiB)")
    parser.add_argument("--small-gib", type=float, default=0.5, help="weights size of the memory comparison run")
    parser.add_argument("--gzip-sample-mib", type=int, default=128)
    parser.add_argument("--workdir", help="scratch folder (default: a temp dir), removed at the end")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/performance.md")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, *rest = args.child
        {"packager": child_packager, "download": child_download, "upload": child_upload}[mode](*rest)
        print(f"VmHWM-KiB: {own_peak_kib()}", file=sys.stderr)
        return 0
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    results = run(args)
    section = report(results)
    print(section)
    if args.json:
        write_json(Path(args.json), results)
    if not args.no_docs:
        write_section(DOC, START, END, section)
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
