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

from .errors import EXIT_OK, CommandError, UsageError
from .terminal import StatusLine


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


class _PackagingLine:
    """The packaging progress (bytes done/total, rate, current file) on one terminal line."""

    WIDTH = 100

    def __init__(self, stream) -> None:  # noqa: ANN001
        self.line = StatusLine(stream)

    def __call__(self, status) -> None:  # noqa: ANN001
        from mme_constructs.packager.progress_text import describe_progress

        text = describe_progress(status)
        self.line.show(text if len(text) <= self.WIDTH else text[:self.WIDTH - 3] + "...")

    def close(self) -> None:
        self.line.end()


class _AwsSession:
    """One boto3 session, made on first use (``--profile`` or the standard AWS settings)."""

    def __init__(self, profile: str | None) -> None:
        self.profile = profile
        self._session = None

    def get(self):  # noqa: ANN201
        if self._session is None:
            import boto3

            self._session = boto3.Session(profile_name=self.profile) if self.profile else boto3.Session()
        return self._session

    def s3(self):  # noqa: ANN201
        from botocore.config import Config

        return self.get().client("s3", config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                                     max_pool_connections=12))


def run(args: argparse.Namespace) -> int:
    """Build the archive; print where it went with its sha256 and size."""
    from mme_constructs.packager.core import PackageOptions, package
    from mme_constructs.packager.errors import describe

    if args.part_size_mib < 5:
        raise UsageError("--part-size-mib must be at least 5 (the S3 minimum)")
    sources, spec = _inputs(args)
    aws = _AwsSession(args.profile)
    try:
        destination, s3 = _destination(args, aws)
        if spec.kind == "s3" and s3 is None:
            s3 = aws.s3()
        progress = None if args.quiet or not sys.stderr.isatty() else _PackagingLine(sys.stderr)
        options = PackageOptions(gzip_level=args.gzip_level, part_size=args.part_size_mib << 20,
                                 progress=progress, force=args.force)
        started = time.monotonic()
        try:
            result = package(args.model, sources, spec, destination, options=options, s3=s3,
                             token_provider=_token_provider(spec, aws))
        finally:
            if progress:
                progress.close()
    except CommandError:
        raise
    except Exception as err:  # packaging failures, botocore credential/endpoint errors and the like
        raise CommandError(describe(err)) from None
    _print_result(result, time.monotonic() - started, as_json=args.json)
    return EXIT_OK


def _inputs(args: argparse.Namespace):  # noqa: ANN202
    """The model's source tree and weights spec; a bad folder or spec is a usage error."""
    from mme_constructs.packager.errors import PackagingError
    from mme_constructs.packager.sources import SourceTree
    from mme_constructs.packager.specs import load_spec_file, parse_spec

    sources_root = Path(args.model_sources)
    model_dir = sources_root / args.model
    if not model_dir.is_dir():
        raise UsageError(f"{model_dir} is not a folder (run from the repository root or pass --model-sources)")
    source_dirs = [model_dir] + ([sources_root / "common"] if (sources_root / "common").is_dir() else [])
    try:
        if args.weights:
            weights = Path(args.weights)
            if weights.is_dir():
                spec = parse_spec({"kind": "local", "path": str(weights)})
            elif weights.is_file():
                spec = load_spec_file(weights)
            else:
                raise UsageError(f"--weights {weights}: no such file or folder")
        else:
            default = model_dir / "weights.yaml"
            spec = load_spec_file(default) if default.is_file() else parse_spec({"kind": "none"})
        return SourceTree.from_dirs(source_dirs), spec
    except PackagingError as err:
        raise UsageError(str(err)) from None


def _destination(args: argparse.Namespace, aws: _AwsSession):  # noqa: ANN202
    """Where ``--out`` names (a folder or an S3 prefix), and the S3 client it needs (or ``None``)."""
    from mme_constructs.packager.core import LocalDestination, S3Destination

    if not args.out.startswith("s3://"):
        return LocalDestination(args.out), None
    bucket, _, prefix = args.out[5:].partition("/")
    if not bucket:
        raise UsageError(f"--out {args.out}: expected s3://bucket/prefix/")
    s3 = aws.s3()
    return S3Destination(s3, bucket, prefix, args.kms_key_id), s3


def _token_provider(spec, aws: _AwsSession):  # noqa: ANN001, ANN202
    """The Hub token: from the spec's secret, else ``$HF_TOKEN``, else none."""
    from mme_constructs.packager.hub_token import secret_token_provider

    if spec.token_secret_arn:
        return secret_token_provider(aws.get().client("secretsmanager"), spec.token_secret_arn)
    token = os.environ.get("HF_TOKEN")
    return (lambda: token) if token else None


def _print_result(result, elapsed: float, *, as_json: bool) -> None:  # noqa: ANN001
    if as_json:
        print(json.dumps({**result.cfn_data(), "Skipped": result.skipped, "Location": result.location}))
        return
    note = "  (already built: skipped)" if result.skipped else f"  ({result.size_bytes / 1e6 / max(elapsed, 1e-9):.1f} MB/s)"
    print(f"{result.location}\n  TargetModel {result.target_model}\n  sha256 {result.sha256}\n"
          f"  size {result.size_bytes} bytes{note}")
