"""The S3 bucket that holds the TorchServe model archives a multi-model endpoint loads."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mme_constructs._nag import acknowledge
from mme_constructs.model_store import ModelStore
from mme_constructs.packager.key_prefix import checked_key_prefix

_REPLICATION_RULES = ("NIST.800.53.R5-S3BucketReplicationEnabled", "HIPAA.Security-S3BucketReplicationEnabled",
                      "PCI.DSS.321-S3BucketReplicationEnabled")


class ModelBucket(Construct):
    """Encrypted, TLS-only, versioned bucket for model archives, with access logs.

    * SSE-KMS with a customer-managed key (rotation on) and S3 bucket keys (fewer KMS
      calls when SageMaker loads many archives).
    * A bucket policy that denies any request not made over TLS 1.2+, and (from its
      ``model_store``) any change under the model prefix by a principal that is not an archive
      writer, and any upload there not encrypted with the key.
    * Block Public Access on, object ownership enforced (no ACLs).
    * Versioning, so an overwritten archive can be recovered; noncurrent versions
      expire after ``noncurrent_version_expiration``.
    * Archives the packager retired (a model's previous archive after a change, or every archive
      of a deleted stack: tagged ``archive-state=retired``) stay loadable for
      ``retired_archive_expiration``, so clients and instances still naming them move on, then
      expire (their last version then follows ``noncurrent_version_expiration``).
    * Incomplete multipart uploads (the packager streams archives in parts) are
      aborted after ``abort_incomplete_multipart_upload_after``.
    * Server access logs go to a separate bucket (SSE-S3, written by the S3 log delivery
      service), itself TLS-only, private and versioned, expiring logs after
      ``access_log_retention`` and overwritten or deleted log versions after
      ``noncurrent_version_expiration``.

    Props: ``model_prefix`` (default ``models/``), ``encryption_key`` (default a new key with
    rotation; an imported ``kms.IKey`` works), ``archive_writers`` (principals besides the
    stack's packager that may write archives, see :class:`ModelStore`; default none),
    ``noncurrent_version_expiration`` (default 30 days), ``retired_archive_expiration`` (default
    14 days: a week of deploys and of clients that cache a ``TargetModel``, twice over),
    ``abort_incomplete_multipart_upload_after`` (default 1 day), ``access_log_retention`` (default
    365 days), ``removal_policy`` (default ``RETAIN``, for the key and both buckets).

    Reviewed cdk-nag findings (acknowledged on each bucket): replication (NIST 800-53 R5, HIPAA,
    PCI DSS) on both buckets, and SSE-KMS default encryption on the access-log bucket.

    Attributes: ``model_store`` (the :class:`ModelStore` to hand to the endpoint and the
    artifacts), ``bucket``, ``encryption_key``, ``access_log_bucket``, ``model_prefix`` (always
    ends with ``/``) and ``model_data_url`` (``s3://<bucket>/<prefix>``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        model_prefix: str = "models/",
        encryption_key: kms.IKey | None = None,
        archive_writers: Sequence[iam.IPrincipal | iam.IGrantable | str] = (),
        noncurrent_version_expiration: Duration = Duration.days(30),
        retired_archive_expiration: Duration = Duration.days(14),
        abort_incomplete_multipart_upload_after: Duration = Duration.days(1),
        access_log_retention: Duration = Duration.days(365),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        checked_key_prefix(model_prefix, "model_prefix")  # a bad prefix fails before any resource is made
        seconds = retired_archive_expiration.to_seconds()
        if seconds < 86400 or seconds % 86400:
            raise ValueError(f"ModelBucket {construct_id}: retired_archive_expiration must be whole days, at least 1, "
                             f"got {retired_archive_expiration.to_human_string()}")
        super().__init__(scope, construct_id)
        # Grant S3 log delivery through the log bucket's policy, never through an ACL, whatever
        # feature flags the surrounding app sets (ACLs are disabled on both buckets).
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)

        self.encryption_key = encryption_key or kms.Key(
            self,
            "Key",
            description="Encrypts the multi-model endpoint's model archives",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )

        self.access_log_bucket = self._access_log_bucket(
            access_log_retention, noncurrent_version_expiration, abort_incomplete_multipart_upload_after,
            removal_policy)
        self.bucket = self._model_bucket(noncurrent_version_expiration, abort_incomplete_multipart_upload_after,
                                         removal_policy)
        self.retired_archive_expiration = retired_archive_expiration
        self.model_store = ModelStore(self.bucket, model_prefix=model_prefix, encryption_key=self.encryption_key,
                                      archive_writers=archive_writers)
        self.model_store.expire_retired_archives(retired_archive_expiration)

    def _access_log_bucket(self, retention: Duration, noncurrent_version_expiration: Duration,
                           abort_incomplete_multipart_upload_after: Duration,
                           removal_policy: RemovalPolicy) -> s3.Bucket:
        """The bucket of the server access logs: SSE-S3, TLS-only, private, versioned, expiring."""
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=retention,
                    noncurrent_version_expiration=noncurrent_version_expiration,
                    abort_incomplete_multipart_upload_after=abort_incomplete_multipart_upload_after,
                )
            ],
            removal_policy=removal_policy,
        )
        # No AwsSolutions-S1 finding to acknowledge: cdk-nag treats a bucket that receives another
        # bucket's access logs as compliant (logging the log bucket would loop).
        acknowledge(bucket.node.default_child, (
            "Server access log objects are written by the S3 log delivery service; the bucket uses SSE-S3 so that "
            "no KMS key policy has to let that service principal use a key. The logs hold request metadata (who "
            "read or wrote which key), no model data; access is TLS-only and private."),
            "NIST.800.53.R5-S3DefaultEncryptionKMS", "HIPAA.Security-S3DefaultEncryptionKMS",
            "PCI.DSS.321-S3DefaultEncryptionKMS")
        acknowledge(bucket.node.default_child, (
            "Server access logs are an operational aid kept for access_log_retention, versioned against "
            "deletion; the durable audit trail is the account's CloudTrail (S3 data events) delivered to its "
            "log archive. Replicating needs a bucket in another region or account that the deployer owns."),
            *_REPLICATION_RULES)
        return bucket

    def _model_bucket(self, noncurrent_version_expiration: Duration,
                      abort_incomplete_multipart_upload_after: Duration, removal_policy: RemovalPolicy) -> s3.Bucket:
        """The archives' bucket: SSE-KMS with a bucket key, TLS-only, private, versioned, logged."""
        bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.encryption_key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="model-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=abort_incomplete_multipart_upload_after,
                ),
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=noncurrent_version_expiration,
                ),
            ],
            removal_policy=removal_policy,
        )
        acknowledge(bucket.node.default_child, (
            "The archives are derived data: the packager rebuilds each one from the model sources and the "
            "digest-pinned weights on any deploy, in any region, so a replica adds no recovery the stack lacks. "
            "Versioning keeps overwritten or deleted archives for noncurrent_version_expiration."),
            *_REPLICATION_RULES)
        return bucket

    @property
    def model_prefix(self) -> str:
        """The archives' key prefix (ends with ``/``)."""
        return self.model_store.model_prefix

    @property
    def model_data_url(self) -> str:
        """``s3://<bucket>/<prefix>``: the ``ModelDataUrl`` of a multi-model endpoint."""
        return self.model_store.model_data_url
