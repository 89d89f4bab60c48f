"""The S3 bucket that holds the TorchServe model archives a multi-model endpoint loads."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mme_constructs._cfn import normalize_prefix
from mme_constructs.model_store import ModelStore


class ModelBucket(Construct):
    """Encrypted, TLS-only, versioned bucket for model archives, with access logs.

    * SSE-KMS with a customer-managed key (rotation on) and S3 bucket keys (fewer KMS
      calls when SageMaker loads many archives).
    * A bucket policy that denies any request not made over TLS 1.2+.
    * Block Public Access on, object ownership enforced (no ACLs).
    * Versioning, so an overwritten archive can be recovered; noncurrent versions
      expire after ``noncurrent_version_expiration``.
    * Incomplete multipart uploads (the packager streams archives in parts) are
      aborted after ``abort_incomplete_multipart_upload_after``.
    * Server access logs go to a separate bucket (SSE-S3: S3 log delivery cannot
      write SSE-KMS objects), itself TLS-only and private, expiring logs after
      ``access_log_retention``.

    Props: ``model_prefix`` (default ``models/``), ``encryption_key`` (default a new key with
    rotation; an imported ``kms.IKey`` works), ``noncurrent_version_expiration`` (default 30 days),
    ``abort_incomplete_multipart_upload_after`` (default 1 day), ``access_log_retention``
    (default 365 days), ``removal_policy`` (default ``RETAIN``, for the key and both buckets).

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
        noncurrent_version_expiration: Duration = Duration.days(30),
        abort_incomplete_multipart_upload_after: Duration = Duration.days(1),
        access_log_retention: Duration = Duration.days(365),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        normalize_prefix(model_prefix)  # a bad prefix fails before any resource is made
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

        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=access_log_retention,
                    abort_incomplete_multipart_upload_after=abort_incomplete_multipart_upload_after,
                )
            ],
            removal_policy=removal_policy,
        )
        # No AwsSolutions-S1 finding to acknowledge: cdk-nag treats a bucket that receives another
        # bucket's access logs as compliant (logging the log bucket would loop).

        self.bucket = s3.Bucket(
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
        self.model_store = ModelStore(self.bucket, model_prefix=model_prefix, encryption_key=self.encryption_key)

    @property
    def model_prefix(self) -> str:
        """The archives' key prefix (ends with ``/``)."""
        return self.model_store.model_prefix

    @property
    def model_data_url(self) -> str:
        """``s3://<bucket>/<prefix>``: the ``ModelDataUrl`` of a multi-model endpoint."""
        return self.model_store.model_data_url
