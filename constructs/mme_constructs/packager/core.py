"""The one packaging code path (Lambda custom resource and ``mme package`` CLI).

``package(model_name, sources, weights_spec, destination)``:

1. **Input digest, before any download.** sha256 over a canonical JSON of: the packager format
   (:data:`~mme_constructs.packager.PACKAGER_FORMAT`), the model name, the gzip level, every
   source file's path/size/sha256, and the weights identity: the spec fields that define the
   bytes (Hub repo + pinned commit + patterns, URLs + pinned digests) plus, for ``s3`` and
   ``local`` weights, the listed objects (path, size, ETag or sha256), since those can change
   under the same name. Transport details (mirror URL, token secret, KMS key) are left out.
2. **Versioned key** ``<prefix><name>-<first 16 hex of the input digest>.tar.gz`` (the
   ``TargetModel``). If that key already holds an archive this packager wrote from the same
   inputs (its upload metadata, its key, its ``sha256`` tag, and bytes that still hash to it:
   :meth:`S3Destination.existing`), nothing is downloaded or uploaded: same inputs -> skip.
3. **One streaming pass** otherwise: weights are read (digests verified while streaming) into
   a deterministic tar, through gzip, into an S3 multipart upload (or a local file). The
   archive bytes' sha256 and size are computed on the way and reported after (``Sha256``,
   ``SizeBytes``), and stored as the object's ``sha256`` tag for later skips.
4. Any failure aborts the upload (parts removed and verified), deletes an object completed by
   this run if tagging it failed, and raises a one-line :class:`~.errors.PackagingError`.

Why not key by the archive's own sha256: it is only known after the whole upload, so a repeat
could not skip, and an Update could not know its new key up front. Because the bytes are a pure
function of the inputs (deterministic tar/gzip), the input digest names them just as well.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from . import PACKAGER_FORMAT
from .archive import DEFAULT_GZIP_LEVEL, DigestSink, GzipWriter, TarWriter, manifest_json, member_order, parent_dirs
from .bucket_source import list_s3_weights
from .download_retry import DownloadRetryPolicy
from .errors import PackagingError, SourceError, SpecError, UploadError, aws_error_message
from .key_prefix import checked_key_prefix
from .local_source import file_sha256, list_local_weights
from .sources import SourceTree
from .specs import WeightsSpec, parse_spec
from .time_budget import UNLIMITED, Budget
from .upload import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PART_SIZE,
    LocalFileWriter,
    MultipartUploadWriter,
    abort_stale_uploads,
)
from .weight_stream import WeightFile
from .weights import resolve_weights

log = logging.getLogger(__name__)

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
SHORT_DIGEST = 16
HANDLER_FILE = "handler.py"
CONFIG_FILE = "model-config.yaml"
MANIFEST_PATH = "MAR-INF/MANIFEST.json"
WEIGHTS_DIR = "weights"
#: The tag a deleted (replaced) archive gets instead of being deleted: it stays loadable for clients
#: that still name it, and the model bucket's lifecycle rule expires it (``ModelBucket``,
#: ``retired_archive_expiration``). A build from the same inputs takes the tag off again.
RETIRED_TAG = ("archive-state", "retired")
RETIRED_AT_TAG = "retired-at"
CONTENT_TYPE = "application/gzip"
READ_CHUNK = 8 << 20


def target_model_name(model_name: str, input_digest: str) -> str:
    """``<name>-<16 hex>.tar.gz``: the archive's file name and the endpoint's ``TargetModel``."""
    return f"{model_name}-{input_digest[:SHORT_DIGEST]}.tar.gz"


def target_model_pattern(model_name: str) -> re.Pattern:
    """Regex of the archive names this packager writes for ``model_name``."""
    return re.compile(rf"^{re.escape(model_name)}-[0-9a-f]{{{SHORT_DIGEST}}}\.tar\.gz$")


@dataclass
class PackagingProgress:
    """Where a packaging run stands: bytes written so far, the total when known, the member being
    written; what :attr:`PackageOptions.progress` receives (for a progress line or a log)."""

    bytes_done: int
    bytes_total: int | None
    current: str
    elapsed: float


@dataclass
class PackageOptions:
    """Tuning and hooks; the defaults are what the Lambda uses."""

    gzip_level: int = DEFAULT_GZIP_LEVEL
    part_size: int = DEFAULT_PART_SIZE
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    retry: DownloadRetryPolicy = field(default_factory=DownloadRetryPolicy)
    budget: Budget = UNLIMITED
    progress: Callable[[PackagingProgress], None] | None = None
    force: bool = False


@dataclass(frozen=True)
class PackageResult:
    """What was built (or found): the custom resource's attributes come from here."""

    model_name: str
    target_model: str
    key: str
    location: str
    sha256: str
    size_bytes: int
    input_digest: str
    skipped: bool

    def cfn_data(self) -> dict[str, str]:
        """Attributes for ``Fn::GetAtt`` (strings, as CloudFormation returns them anyway)."""
        return {
            "TargetModel": self.target_model,
            "Sha256": self.sha256,
            "SizeBytes": str(self.size_bytes),
            "Key": self.key,
            "S3Uri": self.location,
            "InputDigest": self.input_digest,
        }


# ---------------------------------------------------------------------------------------------
# destinations
# ---------------------------------------------------------------------------------------------
class S3Destination:
    """Archives under ``s3://bucket/prefix``; object metadata + a tag make repeats skippable.

    ``clean_stale_uploads``: before a build, abort uploads of the same key that a crashed run left
    (needs ``s3:ListBucketMultipartUploads`` on the bucket; the Lambda does not have it and
    leaves them to the bucket's lifecycle rule).
    """

    #: S3's single CopyObject takes at most 5 GiB; larger archives are copied in parts (UploadPartCopy).
    COPY_PART_THRESHOLD = 5 << 30
    COPY_PART_SIZE = 256 << 20

    def __init__(self, s3, bucket: str, prefix: str = "models/", kms_key_id: str | None = None, *,
                 clean_stale_uploads: bool = True) -> None:
        self.s3 = s3
        self.bucket = bucket
        try:
            self.prefix = checked_key_prefix(prefix, "key prefix")
        except ValueError as err:
            raise SpecError(str(err)) from None
        self.kms_key_id = kms_key_id
        self.clean_stale_uploads = clean_stale_uploads

    def key_for(self, target_model: str) -> str:  # noqa: D102
        return self.prefix + target_model

    def location(self, key: str) -> str:  # noqa: D102
        return f"s3://{self.bucket}/{key}"

    def existing(self, key: str, metadata: Mapping[str, str], budget: Budget = UNLIMITED) -> tuple[str, int] | None:
        """(sha256, size) of the archive at ``key`` when this packager wrote it from the same inputs, else None.

        Written by it means: the object's metadata, fixed when it was uploaded, is the packager's own
        (``metadata``: format, model name, input digest); it is encrypted with ``kms_key_id`` when one
        is given; its tags record the sha256 the packager computed while writing it; and its bytes
        still hash to that sha256 (the object is read once; cheaper than a rebuild, and it makes the
        reported ``Sha256`` a fact about what the endpoint will load). Tags alone are never trusted.
        """
        try:
            listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("Contents", [])
            if not listed or listed[0]["Key"] != key:
                return None
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
            tags = self.s3.get_object_tagging(Bucket=self.bucket, Key=key).get("TagSet", [])
        except Exception as err:  # noqa: BLE001
            raise UploadError(f"cannot check {self.location(key)}: {aws_error_message(err)}") from None
        recorded = {t["Key"]: t["Value"] for t in tags}
        why = self._not_ours(head, recorded, metadata)
        if why:
            log.warning("%s exists but %s; rebuilding it", self.location(key), why)
            return None
        size = int(head["ContentLength"])
        if self._content_sha256(key, budget) != recorded["sha256"]:
            log.warning("%s exists but its bytes do not hash to its recorded sha256; rebuilding it", self.location(key))
            return None
        if recorded.get(RETIRED_TAG[0]) == RETIRED_TAG[1]:
            self._tag(key, [t for t in tags if t["Key"] not in (RETIRED_TAG[0], RETIRED_AT_TAG)])  # current again
            log.info("%s was retired; its inputs are current again, so it is kept", self.location(key))
        return recorded["sha256"], size

    def retire(self, key: str, today: str) -> bool:
        """Mark the archive at ``key`` retired on ``today``; ``False`` when it does not exist.

        S3 lifecycle rules count days from an object's creation, not from when it was tagged: an
        archive current for a month would expire the night after it was retired. So the archive is
        first copied onto itself (server-side; multipart above 5 GiB through boto3's managed copy,
        its metadata and encryption kept), which restarts that clock, and then tagged
        ``archive-state=retired`` + ``retired-at`` next to its own tags.
        """
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
            tags = self.s3.get_object_tagging(Bucket=self.bucket, Key=key).get("TagSet", [])
        except Exception as err:  # noqa: BLE001
            if _missing(err):
                return False
            raise UploadError(f"cannot read {self.location(key)} to retire it: {aws_error_message(err)}") from None
        kept = [t for t in tags if t["Key"] not in (RETIRED_TAG[0], RETIRED_AT_TAG)]
        try:
            self._copy_onto_itself(key, head)
            self.s3.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": [
                *kept, {"Key": RETIRED_TAG[0], "Value": RETIRED_TAG[1]}, {"Key": RETIRED_AT_TAG, "Value": today}]})
        except Exception as err:  # noqa: BLE001
            raise UploadError(f"cannot retire {self.location(key)}: {aws_error_message(err)}") from None
        return True

    def _tag(self, key: str, tags: list[dict]) -> None:
        try:
            self.s3.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": tags})
        except Exception as err:  # noqa: BLE001
            raise UploadError(f"cannot tag {self.location(key)}: {aws_error_message(err)}") from None

    def _copy_onto_itself(self, key: str, head: Mapping) -> None:
        """A server-side copy of ``key`` to itself with its metadata, content type and encryption."""
        from boto3.s3.transfer import TransferConfig  # noqa: PLC0415 - boto3 only where S3 is used

        args = {"MetadataDirective": "REPLACE", "Metadata": dict(head.get("Metadata", {})),
                "ContentType": head.get("ContentType") or CONTENT_TYPE, "ChecksumAlgorithm": "CRC32"}
        if head.get("ServerSideEncryption") == "aws:kms":
            # boto3's managed copy takes no BucketKeyEnabled: the bucket's default applies to the copy.
            args.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=head["SSEKMSKeyId"])
        # A fresh CRC32 is asked for so S3 stores a whole-object checksum for the copy, not the
        # upload's per-part one.
        config = TransferConfig(multipart_threshold=self.COPY_PART_THRESHOLD, multipart_chunksize=self.COPY_PART_SIZE,
                                max_concurrency=8, use_threads=True)
        self.s3.copy({"Bucket": self.bucket, "Key": key}, self.bucket, key, ExtraArgs=args, Config=config)

    def _not_ours(self, head: dict, tags: dict[str, str], metadata: Mapping[str, str]) -> str | None:
        """Why the object is not an archive this packager wrote from these inputs (None when it is)."""
        stored = head.get("Metadata", {})
        different = sorted(k for k, v in metadata.items() if stored.get(k) != v)
        if different:
            return f"was not written by this packager from these inputs (metadata {', '.join(different)})"
        if self.kms_key_id and not (head.get("ServerSideEncryption") == "aws:kms"
                                    and _same_key(head.get("SSEKMSKeyId"), self.kms_key_id)):
            return f"is not encrypted with {self.kms_key_id}"
        if not tags.get("sha256") or tags.get("input-digest") != metadata.get("input-digest"):
            return "has no sha256 tag of this packager (an interrupted run?)"
        return None

    def _content_sha256(self, key: str, budget: Budget) -> str:
        digest = hashlib.sha256()
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(READ_CHUNK):
                budget.check(f"checking {self.location(key)}")
                digest.update(chunk)
        except PackagingError:
            raise
        except Exception as err:  # noqa: BLE001
            raise UploadError(f"cannot read {self.location(key)} to check it: {aws_error_message(err)}") from None
        return digest.hexdigest()

    def prepare(self, key: str) -> None:
        """Abort orphaned uploads of ``key`` left by crashed runs (``clean_stale_uploads``)."""
        if self.clean_stale_uploads and abort_stale_uploads(self.s3, self.bucket, key):
            log.info("aborted stale multipart uploads of %s", self.location(key))

    def writer(self, key: str, metadata: dict[str, str], options: PackageOptions) -> MultipartUploadWriter:  # noqa: D102
        args: dict = {"ContentType": CONTENT_TYPE, "Metadata": metadata}
        if self.kms_key_id:
            args.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_id, BucketKeyEnabled=True)
        return MultipartUploadWriter(self.s3, self.bucket, key, part_size=options.part_size,
                                     max_in_flight=options.max_in_flight, create_args=args, budget=options.budget)

    def finalize(self, key: str, sha256: str, size: int, input_digest: str) -> None:
        """Tag the new object with its sha256 and check its size."""
        try:
            self.s3.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": [
                {"Key": "sha256", "Value": sha256}, {"Key": "input-digest", "Value": input_digest}]})
            stored = int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except Exception as err:  # noqa: BLE001
            raise UploadError(f"cannot tag {self.location(key)}: {aws_error_message(err)}") from None
        if stored != size:
            raise UploadError(f"{self.location(key)} holds {stored} bytes, {size} were written")

    def discard(self, key: str) -> None:
        """Delete an object this run completed but could not finalize."""
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        except Exception as err:  # noqa: BLE001
            log.error("could not delete the unfinished %s: %s", self.location(key), aws_error_message(err))


class LocalDestination:
    """Archives as files in a local folder (``mme package --out DIR``)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def key_for(self, target_model: str) -> str:  # noqa: D102
        return target_model

    def location(self, key: str) -> str:  # noqa: D102
        return str(self.directory / key)

    def existing(self, key: str, metadata: Mapping[str, str], budget: Budget = UNLIMITED) -> tuple[str, int] | None:
        """The file's own sha256 and size when it exists (its name carries the input digest)."""
        path = self.directory / key
        if not path.is_file():
            return None
        return file_sha256(path), path.stat().st_size

    def prepare(self, key: str) -> None:  # noqa: D102
        self.directory.mkdir(parents=True, exist_ok=True)

    def writer(self, key: str, metadata: dict[str, str], options: PackageOptions) -> LocalFileWriter:  # noqa: D102
        return LocalFileWriter(self.directory / key)

    def finalize(self, key: str, sha256: str, size: int, input_digest: str) -> None:  # noqa: D102
        stored = (self.directory / key).stat().st_size
        if stored != size:
            raise UploadError(f"{self.location(key)} holds {stored} bytes, {size} were written")

    def discard(self, key: str) -> None:  # noqa: D102
        (self.directory / key).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """Everything known before the first weight byte: input digest, archive name, the inputs' listings."""

    model_name: str
    input_digest: str
    target_model: str
    sources: SourceTree
    spec: WeightsSpec
    s3_listing: list[dict] | None = None
    local_listing: list[dict] | None = None


def archive_metadata(the_plan: Plan) -> dict[str, str]:
    """The S3 object metadata the packager writes with an archive (fixed at upload; only a new upload
    changes it) and checks before it trusts an existing one."""
    return {"input-digest": the_plan.input_digest, "packager-format": PACKAGER_FORMAT,
            "model-name": the_plan.model_name}


def _missing(err: Exception) -> bool:
    """True for S3's "no such key" answer (boto3 ``ClientError``)."""
    code = getattr(err, "response", {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404", "NotFound")


def _same_key(stored: str | None, wanted: str) -> bool:
    """Whether S3's ``SSEKMSKeyId`` (a key ARN) is the key named ``wanted`` (an ARN or a key id)."""
    return bool(stored) and (stored == wanted or stored.endswith(f":key/{wanted}"))


def compute_input_digest(model_name: str, sources: SourceTree, weights_identity: dict, gzip_level: int) -> str:
    """sha256 of the canonical JSON that defines an archive's bytes (see the module docstring)."""
    doc = {
        "format": PACKAGER_FORMAT,
        "model_name": model_name,
        "gzip_level": gzip_level,
        "sources": sources.identity(),
        "weights": weights_identity,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


#: Top-level names of an archive the packager writes itself: a source file there would clash.
RESERVED_TOP_LEVEL = (WEIGHTS_DIR, "MAR-INF")


def check_sources(sources: SourceTree) -> None:
    """:class:`~.errors.SourceError` (one line) unless the merged sources have ``handler.py`` at their
    root and nothing under the names the packager writes itself (``weights/``, ``MAR-INF/``)."""
    if HANDLER_FILE not in sources.files:
        raise SourceError(f"the model sources have no {HANDLER_FILE} at their root "
                          f"(inputs: {', '.join(sorted({f.origin for f in sources.files.values()})) or 'none'})")
    for path, source in sorted(sources.files.items()):
        if path.split("/")[0] in RESERVED_TOP_LEVEL:
            raise SourceError(f"source file {path!r} (in {source.origin}) would clash with the archive's "
                              f"{path.split('/')[0]}/ folder, which the packager writes")


def plan(model_name: str, sources: SourceTree, spec: WeightsSpec, *, gzip_level: int = DEFAULT_GZIP_LEVEL,
         s3=None) -> Plan:
    """Validate the inputs and compute the input digest (lists S3/local weights; no download)."""
    if not MODEL_NAME.match(model_name or ""):
        raise SpecError(f"model name {model_name!r}: 1-63 letters, digits, '_' or '-', starting with a letter "
                        "or digit")
    check_sources(sources)
    identity = spec.identity()
    s3_listing = local_listing = None
    if spec.kind == "s3":
        if s3 is None:
            raise SpecError("an s3 weights spec needs an S3 client")
        s3_listing = list_s3_weights(s3, spec)
        identity["objects"] = [{"path": o["path"], "size": o["size"], "etag": o.get("etag")} for o in s3_listing]
    elif spec.kind == "local":
        local_listing = list_local_weights(spec.local_path)
        for entry in local_listing:
            entry["sha256"] = file_sha256(entry["full"])
        identity["files"] = [{"path": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in local_listing]
    digest = compute_input_digest(model_name, sources, identity, gzip_level)
    return Plan(model_name=model_name, input_digest=digest, target_model=target_model_name(model_name, digest),
                sources=sources, spec=spec, s3_listing=s3_listing, local_listing=local_listing)


# ---------------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------------
def package(model_name: str, sources: SourceTree | Sequence[str | Path], spec: WeightsSpec | Mapping | None,
            destination, *, options: PackageOptions | None = None, s3=None,
            token_provider: Callable[[], str | None] | None = None) -> PackageResult:
    """Build (or find) the archive of ``model_name`` at ``destination``; see the module docstring.

    ``sources``: a :class:`~.sources.SourceTree` or source folders (merged in order);
    ``spec``: a :class:`~.specs.WeightsSpec` or its mapping; ``destination``: an
    :class:`S3Destination` or a :class:`LocalDestination`. ``s3`` is the client used to read
    ``s3`` weights; ``token_provider`` returns the Hub token for gated repos.
    Returns a :class:`PackageResult` (``target_model``, ``sha256``, ``size_bytes``, ``key``...).
    Raises :class:`~.errors.PackagingError` (one line) on any failure.
    """
    options = options or PackageOptions()
    if not isinstance(sources, SourceTree):
        sources = SourceTree.from_dirs(sources)
    if not isinstance(spec, WeightsSpec):
        spec = parse_spec(spec)
    the_plan = plan(model_name, sources, spec, gzip_level=options.gzip_level, s3=s3)
    key = destination.key_for(the_plan.target_model)
    location = destination.location(key)
    if not options.force:
        found = destination.existing(key, archive_metadata(the_plan), options.budget)
        if found:
            sha, size = found
            log.info("%s already exists for these inputs (sha256 %s, %d bytes): skipped", location, sha, size)
            return PackageResult(model_name, the_plan.target_model, key, location, sha, size,
                                 the_plan.input_digest, skipped=True)
    options.budget.check("planning")
    destination.prepare(key)
    weights = resolve_weights(spec, budget=options.budget, retry=options.retry, token_provider=token_provider,
                              s3=s3, s3_listing=the_plan.s3_listing, local_listing=the_plan.local_listing)
    sha, size = _build(the_plan, weights, destination, key, options)
    log.info("built %s: sha256 %s, %d bytes", location, sha, size)
    return PackageResult(model_name, the_plan.target_model, key, location, sha, size, the_plan.input_digest,
                         skipped=False)


def _members(the_plan: Plan, weights: list[WeightFile]) -> list[tuple[str, str, object]]:
    files: dict[str, tuple[str, object]] = {}
    for path, src in the_plan.sources.files.items():
        files[path] = ("bytes", src.data)
    config = CONFIG_FILE if CONFIG_FILE in the_plan.sources.files else None
    files[MANIFEST_PATH] = ("bytes", manifest_json(the_plan.model_name, model_version=the_plan.input_digest[:SHORT_DIGEST],
                                                   config_file=config))
    for wf in weights:
        path = f"{WEIGHTS_DIR}/{wf.path}"
        if path in files:
            raise SpecError(f"weight file {wf.path!r} appears twice")
        files[path] = ("weight", wf)
    members = [(d, "dir", None) for d in parent_dirs(files)]
    members += [(path, kind, payload) for path, (kind, payload) in files.items()]
    return sorted(members, key=lambda m: member_order(m[0]))


def _build(the_plan: Plan, weights: list[WeightFile], destination, key: str,
           options: PackageOptions) -> tuple[str, int]:
    members = _members(the_plan, weights)
    total: int | None = sum(len(p) for _, k, p in members if k == "bytes")  # type: ignore[arg-type]
    for wf in weights:
        total = None if total is None or wf.size is None else total + wf.size
    writer = destination.writer(key, archive_metadata(the_plan), options)
    started = time.monotonic()
    done = 0
    last_report = 0.0

    def report(current: str, force: bool = False) -> None:
        nonlocal last_report
        now = time.monotonic()
        if options.progress and (force or now - last_report >= 0.5):
            last_report = now
            options.progress(PackagingProgress(done, total, current, now - started))

    try:
        sink = DigestSink(writer)
        gz = GzipWriter(sink, options.gzip_level)
        tar = TarWriter(gz)
        for path, kind, payload in members:
            options.budget.check(f"writing {path}")
            if kind == "dir":
                tar.add_dir(path)
            elif kind == "bytes":
                tar.add_bytes(path, payload)  # type: ignore[arg-type]
                done += len(payload)  # type: ignore[arg-type]
            else:
                stream = payload.open(options.budget, options.retry)  # type: ignore[union-attr]
                try:
                    tar.begin_file(path, stream.size)
                    while chunk := stream.read():
                        tar.write(chunk)
                        done += len(chunk)
                        report(path)
                    stream.verify()
                    tar.end_file()
                finally:
                    stream.close()
        tar.close()
        gz.close()
        report("uploading", force=True)
        writer.complete()
        destination.finalize(key, sink.hexdigest(), sink.size, the_plan.input_digest)
        report("done", force=True)
        return sink.hexdigest(), sink.size
    except BaseException as err:
        clean = writer.abort()
        if getattr(writer, "completed", False):
            destination.discard(key)
        if not clean:
            log.error("the aborted upload of %s may have left parts behind", key)
        if isinstance(err, PackagingError) or not isinstance(err, Exception):
            raise
        raise PackagingError(f"packaging {the_plan.model_name} failed: {type(err).__name__}: {err}") from err
