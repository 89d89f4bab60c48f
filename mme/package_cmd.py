"""``mme package``: build a model's TorchServe archive locally or straight into S3.

    mme package sam --weights model_sources/sam/weights.yaml --out s3://my-bucket/models/
    mme package lama --weights ./tiny-lama-weights/ --out ./model_store/

The same code as the ``ModelArtifact`` custom resource (``mme_constructs.packager``): the same
inputs give the same ``<name>-<digest16>.tar.gz`` and the same bytes, so an archive built here
and uploaded is found (and skipped) by a later deploy. ``--weights`` takes a weights spec file
(YAML/JSON) or a folder whose files become ``weights/``; default: the model's ``weights.yaml``.
AWS settings come from the standard places (``--profile``/``AWS_PROFILE``, region,
``AWS_ENDPOINT_URL``); a gated Hub repo's token from the spec's secret or ``HF_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from mme.cli import CommandError


def register(subparsers) -> None:  # noqa: ANN001
    """Add the ``package`` subcommand."""
    p = subparsers.add_parser(
        "package",
        help="build a model archive (<name>-<digest>.tar.gz) into a folder or s3://bucket/prefix/",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model name: a folder under --model-sources (sam, lama, sd)")
    p.add_argument("--weights", metavar="SPEC|DIR",
                   help="weights spec file (.yaml/.json) or a folder of weight files "
                        "(default: <model-sources>/<model>/weights.yaml)")
    p.add_argument("--out", required=True, metavar="DIR|s3://BUCKET/PREFIX/",
                   help="where the archive goes: a local folder or an S3 prefix")
    p.add_argument("--model-sources", default="model_sources", metavar="DIR",
                   help="folder holding <model>/ and common/ (default: ./model_sources)")
    p.add_argument("--kms-key-id", help="SSE-KMS key for the S3 object (default: the bucket's default encryption)")
    p.add_argument("--profile", help="AWS profile (default: the standard AWS settings)")
    p.add_argument("--gzip-level", type=int, default=0, choices=range(10), metavar="0-9",
                   help="gzip level (default 0: weights barely compress; see docs/performance.md)")
    p.add_argument("--part-size-mib", type=int, default=16, help="S3 multipart part size (default 16)")
    p.add_argument("--force", action="store_true", help="rebuild even if the archive already exists")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


class _ProgressLine:
    """One self-updating line on a terminal (stderr): bytes done/total and the rate."""

    def __init__(self, stream) -> None:  # noqa: ANN001
        self.stream = stream
        self.width = 0

    def __call__(self, p) -> None:  # noqa: ANN001
        rate = p.bytes_done / p.elapsed / 1e6 if p.elapsed > 0 else 0.0
        total = f" / {p.bytes_total / 1e6:,.1f}" if p.bytes_total else ""
        text = f"{p.bytes_done / 1e6:,.1f}{total} MB  {rate:6.1f} MB/s  {p.current}"
        if len(text) > 100:
            text = text[:97] + "..."
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.width:
            self.stream.write("\n")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    """Build the archive; print where it went with its sha256 and size."""
    from mme_constructs.packager.core import LocalDestination, PackageOptions, S3Destination, package
    from mme_constructs.packager.errors import PackagingError
    from mme_constructs.packager.hub_token import secret_token_provider
    from mme_constructs.packager.sources import SourceTree
    from mme_constructs.packager.specs import load_spec_file, parse_spec

    sources_root = Path(args.model_sources)
    model_dir = sources_root / args.model
    if not model_dir.is_dir():
        raise CommandError(f"{model_dir} is not a folder (run from the repository root or pass --model-sources)", 2)
    if args.part_size_mib < 5:
        raise CommandError("--part-size-mib must be at least 5 (the S3 minimum)", 2)
    source_dirs = [model_dir] + ([sources_root / "common"] if (sources_root / "common").is_dir() else [])

    try:
        if args.weights:
            weights = Path(args.weights)
            if weights.is_dir():
                spec = parse_spec({"kind": "local", "path": str(weights)})
            elif weights.is_file():
                spec = load_spec_file(weights)
            else:
                raise CommandError(f"--weights {weights}: no such file or folder", 2)
        else:
            default = model_dir / "weights.yaml"
            spec = load_spec_file(default) if default.is_file() else parse_spec({"kind": "none"})
        sources = SourceTree.from_dirs(source_dirs)
    except PackagingError as err:
        raise CommandError(str(err), 2) from None

    session = None

    def boto_session():
        nonlocal session
        if session is None:
            import boto3

            session = boto3.Session(profile_name=args.profile) if args.profile else boto3.Session()
        return session

    s3 = None
    try:
        if args.out.startswith("s3://"):
            bucket, _, prefix = args.out[5:].partition("/")
            if not bucket:
                raise CommandError(f"--out {args.out}: expected s3://bucket/prefix/", 2)
            s3 = _s3_client(boto_session())
            destination = S3Destination(s3, bucket, prefix, args.kms_key_id)
        else:
            destination = LocalDestination(args.out)
        if spec.kind == "s3" and s3 is None:
            s3 = _s3_client(boto_session())
        token_provider = None
        if spec.token_secret_arn:
            token_provider = secret_token_provider(boto_session().client("secretsmanager"), spec.token_secret_arn)
        elif os.environ.get("HF_TOKEN"):
            token = os.environ["HF_TOKEN"]
            token_provider = lambda: token  # noqa: E731
        progress = None if args.quiet or not sys.stderr.isatty() else _ProgressLine(sys.stderr)
        options = PackageOptions(gzip_level=args.gzip_level, part_size=args.part_size_mib << 20,
                                 progress=progress, force=args.force)
        started = time.monotonic()
        try:
            result = package(args.model, sources, spec, destination, options=options, s3=s3,
                             token_provider=token_provider)
        finally:
            if progress:
                progress.close()
    except PackagingError as err:
        raise CommandError(str(err)) from None
    except CommandError:
        raise
    except Exception as err:  # botocore credential/endpoint errors and the like
        raise CommandError(_aws_error(err)) from None

    elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps({**result.cfn_data(), "Skipped": result.skipped, "Location": result.location}))
    else:
        note = "  (already built: skipped)" if result.skipped else f"  ({result.size_bytes / 1e6 / max(elapsed, 1e-9):.1f} MB/s)"
        print(f"{result.location}\n  TargetModel {result.target_model}\n  sha256 {result.sha256}\n"
              f"  size {result.size_bytes} bytes{note}")
    return 0


def _s3_client(session):  # noqa: ANN001, ANN202
    from botocore.config import Config

    return session.client("s3", config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                              max_pool_connections=12))


def _aws_error(err: Exception) -> str:
    from mme_constructs.packager.errors import describe

    return describe(err)
