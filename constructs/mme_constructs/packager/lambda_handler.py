"""``onEvent`` handler of the ``Custom::ModelArtifact`` resource (CDK ``custom_resources.Provider``).

The Provider framework invokes this function synchronously and reports to CloudFormation:
a returned ``{"PhysicalResourceId", "Data"}`` means SUCCESS, a raised exception means FAILED
with the exception's message as the first line of the reason. So every failure here ends as
one :class:`PackagingFailed` with a one-line message (the full traceback goes to the logs).

Resource properties (strings, as CloudFormation sends them):

``ModelName``          archive name stem (``sam``)
``Bucket``, ``Prefix`` destination (``models/``)
``Sources``            list of ``{"Bucket", "Key"}``: CDK zip assets of the model source folders,
                       merged at the archive root (``model_sources/<name>`` + ``model_sources/common``)
``WeightsSpec``        the weights spec as JSON (see :mod:`.specs`)
``KmsKeyId``           optional: SSE-KMS key for the archive
``GzipLevel``          optional, default 0
``PackagerFormat``     the format version (a change forces an Update)
``OnDelete``           optional: ``retire`` (default) or ``delete``

Semantics:

* **Create**: build ``<prefix><name>-<digest16>.tar.gz`` (skipped when the packager already wrote
  it from the same inputs and its bytes still match: ``S3Destination.existing``); ``PhysicalResourceId`` = ``s3://bucket/key``; ``Data``: ``TargetModel``,
  ``Sha256``, ``SizeBytes``, ``Key``, ``S3Uri``, ``InputDigest``, ``Skipped``.
* **Update**: the same; changed inputs give a new key, hence a new physical id, and CloudFormation
  later sends a Delete for the old one. Unchanged inputs keep the key (no re-upload).
* **Delete**: with ``OnDelete: retire`` (the default, also for resources deployed before the
  property existed) tag the object named by the physical id ``archive-state=retired`` and
  ``retired-at=<date>``: it stays loadable for clients and instances that still name it, and the
  bucket's lifecycle rule expires it; a later build from the same inputs takes the tag off. With
  ``delete``, remove it. Only a key this packager writes (under ``Prefix``, named
  ``<name>-<16 hex>.tar.gz``) is touched; anything else is left alone.
* **Time budget**: work stops ``margin`` seconds before the function's own timeout
  (``context.get_remaining_time_in_millis()``), aborts the upload and fails with a reason, so
  the framework always gets an answer to send.

Tuning (environment): ``MME_PACKAGER_PART_SIZE_MIB`` (16), ``MME_PACKAGER_MAX_IN_FLIGHT`` (4),
``MME_PACKAGER_SAFETY_MARGIN_S`` (60, capped at 10% of the remaining time, at least 5),
``MME_PACKAGER_RETRY_BASE_DELAY_S`` (0.25).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from urllib.parse import urlparse

from . import PACKAGER_FORMAT
from .core import PackageOptions, S3Destination, package, target_model_pattern
from .download_retry import DownloadRetryPolicy
from .errors import SourceError, SpecError, aws_error_message, describe
from .hub_token import secret_token_provider
from .key_prefix import normalize_key_prefix
from .progress_text import describe_progress, every_n_bytes
from .sources import SourceTree
from .specs import parse_spec
from .time_budget import Budget
from .upload import DEFAULT_MAX_IN_FLIGHT, DEFAULT_PART_SIZE

#: What a Delete does to the archive (resource property ``OnDelete``; the first is the default).
ON_DELETE = ("retire", "delete")
log = logging.getLogger("mme_packager")
# INFO from the packager's own loggers reaches the Lambda runtime's root handler (CloudWatch);
# the root logger and the AWS SDK stay at their levels.
for _logger in (log, logging.getLogger(__package__ or "packager")):
    _logger.setLevel(logging.INFO)

MAX_SOURCE_ZIP_BYTES = 256 << 20
#: The log gets one progress line per this many bytes archived (and one when the upload ends).
LOG_EVERY_BYTES = 256 << 20


class PackagingFailed(Exception):
    """Raised to the Provider framework: its message becomes CloudFormation's FAILED reason."""


def _clients(max_in_flight: int):
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                    max_pool_connections=max_in_flight + 4)
    session = boto3.session.Session()  # per invocation: credentials and endpoint read from the environment now
    return session.client("s3", config=config), (lambda: session.client("secretsmanager", config=config))


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise SpecError(f"environment variable {name}={value!r} is not a number") from None


def _budget(context) -> Budget:  # noqa: ANN001
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return Budget(None)
    remaining = context.get_remaining_time_in_millis() / 1000.0
    margin = max(5.0, min(_env_number("MME_PACKAGER_SAFETY_MARGIN_S", 60.0), 0.1 * remaining))
    return Budget(max(0.0, remaining - margin))


def _props(event: dict) -> dict:
    props = event.get("ResourceProperties") or {}
    out = {}
    for name in ("ModelName", "Bucket"):
        value = props.get(name)
        if not isinstance(value, str) or not value:
            raise SpecError(f"resource property {name} is required")
        out[name] = value
    out["Prefix"] = str(props.get("Prefix", "models/"))
    out["KmsKeyId"] = props.get("KmsKeyId") or None
    try:
        out["GzipLevel"] = int(props.get("GzipLevel", 0))
    except (TypeError, ValueError):
        out["GzipLevel"] = -1
    if not 0 <= out["GzipLevel"] <= 9:
        raise SpecError(f"resource property GzipLevel must be 0-9, got {props.get('GzipLevel')!r}")
    if str(props.get("OnDelete", "retire")) not in ON_DELETE:
        raise SpecError(f"resource property OnDelete must be one of {', '.join(ON_DELETE)}, got {props.get('OnDelete')!r}")
    return out


def _sources(s3, event: dict) -> SourceTree:
    sources = (event.get("ResourceProperties") or {}).get("Sources")
    if isinstance(sources, str):
        try:
            sources = json.loads(sources)
        except json.JSONDecodeError:
            raise SpecError("resource property Sources is not valid JSON") from None
    if not isinstance(sources, list) or not sources:
        raise SpecError("resource property Sources must list the model source zips ({Bucket, Key})")
    tree = SourceTree()
    for i, src in enumerate(sources):
        if not isinstance(src, dict) or not src.get("Bucket") or not src.get("Key"):
            raise SpecError(f"Sources[{i}] must be {{Bucket, Key}}")
        where = f"s3://{src['Bucket']}/{src['Key']}"
        try:
            obj = s3.get_object(Bucket=src["Bucket"], Key=src["Key"])
            if obj["ContentLength"] > MAX_SOURCE_ZIP_BYTES:
                raise SourceError(f"model source {where} is larger than {MAX_SOURCE_ZIP_BYTES >> 20} MiB")
            data = obj["Body"].read()
        except SourceError:
            raise
        except Exception as err:  # noqa: BLE001
            raise SourceError(f"cannot read the model source {where}: {aws_error_message(err)}") from None
        tree.add_zip(data, where)
    return tree


def _create_or_update(event: dict, context) -> dict:  # noqa: ANN001
    budget = _budget(context)  # first: the clock runs from the start of the invocation
    props = _props(event)
    spec = parse_spec((event.get("ResourceProperties") or {}).get("WeightsSpec") or {"kind": "none"},
                      where="WeightsSpec")
    if spec.kind == "local":
        raise SpecError("WeightsSpec kind 'local' only works with `mme package`; use huggingface, url or s3 here")
    max_in_flight = int(_env_number("MME_PACKAGER_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT))
    s3, secrets_factory = _clients(max_in_flight)
    options = PackageOptions(
        gzip_level=props["GzipLevel"],
        part_size=int(_env_number("MME_PACKAGER_PART_SIZE_MIB", DEFAULT_PART_SIZE >> 20) * (1 << 20)),
        max_in_flight=max_in_flight,
        retry=DownloadRetryPolicy(base_delay=_env_number("MME_PACKAGER_RETRY_BASE_DELAY_S", 0.25)),
        budget=budget,
        progress=every_n_bytes(lambda status: log.info("progress: %s", describe_progress(status)), LOG_EVERY_BYTES),
    )
    token_provider = secret_token_provider(secrets_factory(), spec.token_secret_arn) if spec.token_secret_arn else None
    sources = _sources(s3, event)
    # No stale-upload cleanup here: it needs s3:ListBucketMultipartUploads on the whole bucket, which the
    # packager's role does not get; the bucket's lifecycle rule aborts what a crashed run leaves.
    destination = S3Destination(s3, props["Bucket"], props["Prefix"], props["KmsKeyId"], clean_stale_uploads=False)
    result = package(props["ModelName"], sources, spec, destination, options=options, s3=s3,
                     token_provider=token_provider)
    data = result.cfn_data()
    data["Skipped"] = "true" if result.skipped else "false"
    old = event.get("PhysicalResourceId")
    if event.get("RequestType") == "Update" and old and old != result.location:
        log.info("inputs changed: %s replaces %s (CloudFormation deletes the old one)", result.location, old)
    return {"PhysicalResourceId": result.location, "Data": data}


def _delete(event: dict) -> dict:
    # Only the properties that name the object are read, and none is validated beyond that: a
    # resource whose Create failed on a bad property gets a Delete with the same properties,
    # and failing it too would leave the stack in ROLLBACK_FAILED / DELETE_FAILED.
    physical = event.get("PhysicalResourceId") or ""
    props = event.get("ResourceProperties") or {}
    bucket, model_name = props.get("Bucket"), props.get("ModelName")
    parsed = urlparse(physical)
    key = parsed.path.lstrip("/")
    prefix = normalize_key_prefix(str(props.get("Prefix", "models/")))
    name = key[len(prefix):] if key.startswith(prefix) else ""
    if parsed.scheme != "s3" or not bucket or parsed.netloc != bucket or not isinstance(model_name, str) \
            or not target_model_pattern(model_name).match(name):
        log.info("physical id %r is not an archive this packager wrote; nothing to delete", physical)
        return {"PhysicalResourceId": physical}
    s3, _ = _clients(1)
    if str(props.get("OnDelete", ON_DELETE[0])) != "delete":
        destination = S3Destination(s3, bucket, prefix, clean_stale_uploads=False)
        retired = destination.retire(key, datetime.date.today().isoformat())
        log.info("retired %s (kept until the bucket's lifecycle rule expires it)" if retired else
                 "%s is gone already; nothing to retire", physical)
        return {"PhysicalResourceId": physical}
    try:
        s3.delete_object(Bucket=bucket, Key=key)
    except Exception as err:  # noqa: BLE001
        raise SourceError(f"cannot delete {physical}: {aws_error_message(err)}") from None
    log.info("deleted %s", physical)
    return {"PhysicalResourceId": physical}


def handler(event: dict, context) -> dict:  # noqa: ANN001
    """Lambda entry point (``packager.lambda_handler.handler``)."""
    request = event.get("RequestType")
    log.info("%s %s (%s) format %s", request, event.get("LogicalResourceId"), event.get("PhysicalResourceId", "-"),
             PACKAGER_FORMAT)
    try:
        if request == "Delete":
            return _delete(event)
        if request in ("Create", "Update"):
            return _create_or_update(event, context)
        raise SpecError(f"unknown RequestType {request!r}")
    except Exception as err:  # noqa: BLE001 - everything becomes one FAILED reason
        log.exception("%s failed", request)
        raise PackagingFailed(f"{request} {event.get('LogicalResourceId', 'ModelArtifact')}: {describe(err)}") \
            from None

