"""``ModelStore``: where a multi-model endpoint's archives live, and who may read or write them."""

from __future__ import annotations

from aws_cdk import Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from mme_constructs._cfn import normalize_prefix
from mme_constructs._nag import acknowledge_wildcards

#: Object actions the packager needs on its own archives (multipart upload, HEAD, tags, delete).
ARCHIVE_WRITE_ACTIONS = (
    "s3:PutObject",
    "s3:GetObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "s3:PutObjectTagging",
    "s3:GetObjectTagging",
)


class ModelStore:
    """A bucket, a key prefix and (optionally) the bucket's KMS key: the ``ModelDataUrl`` of an MME.

    The one value handed to :class:`~mme_constructs.MultiModelEndpoint` and
    :class:`~mme_constructs.ModelArtifact`, so the endpoint reads exactly where the packager
    writes. :class:`~mme_constructs.ModelBucket` creates one (``ModelBucket.model_store``);
    for a bucket that exists already, build it from the imported bucket::

        store = ModelStore(s3.Bucket.from_bucket_name(self, "Shared", "shared-models"),
                           model_prefix="image-editing/",
                           encryption_key=kms.Key.from_key_arn(self, "Key", key_arn))

    Props:

    * ``bucket``: any ``s3.IBucket``, owned, imported or from another stack (tokens allowed);
    * ``model_prefix``: key prefix of the archives, default ``models/`` (normalised to end with
      ``/``; a literal, since IAM conditions and archive keys are derived from it);
    * ``encryption_key``: the bucket's SSE-KMS key, default none (SSE-S3 buckets). Readers get
      ``kms:Decrypt`` and writers ``kms:GenerateDataKey`` on it.

    Permissions are granted per prefix, never on the whole bucket; each wildcard that follows
    (``<bucket>/<prefix>*``) is acknowledged for cdk-nag with its reason, where it fires.
    """

    def __init__(self, bucket: s3.IBucket, *, model_prefix: str = "models/",
                 encryption_key: kms.IKey | None = None) -> None:
        if Token.is_unresolved(model_prefix):
            raise ValueError("model_prefix must be a literal key prefix like 'models/', not a token")
        self.bucket = bucket
        self.model_prefix = normalize_prefix(model_prefix)
        self.encryption_key = encryption_key

    @property
    def model_data_url(self) -> str:
        """``s3://<bucket>/<prefix>``: the ``ModelDataUrl`` of a multi-model endpoint."""
        return f"s3://{self.bucket.bucket_name}/{self.model_prefix}"

    def arn_for_archives(self, key_pattern: str = "*") -> str:
        """ARN of the objects ``<prefix><key_pattern>`` (e.g. ``sam-*.tar.gz``)."""
        return self.bucket.arn_for_objects(f"{self.model_prefix}{key_pattern}")

    def is_same_as(self, other: "ModelStore") -> bool:
        """Same bucket construct, prefix and key construct."""
        def path(c: IConstruct | None) -> str | None:
            return c.node.path if c is not None else None

        return (path(self.bucket) == path(other.bucket) and self.model_prefix == other.model_prefix
                and path(self.encryption_key) == path(other.encryption_key))

    def read_statements(self) -> list[iam.PolicyStatement]:
        """Read any archive under the prefix, list the prefix, decrypt with the key."""
        statements = [
            iam.PolicyStatement(sid="ReadModelArchives", actions=["s3:GetObject"],
                                resources=[self.arn_for_archives()]),
            iam.PolicyStatement(sid="ListModelPrefix", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
                                conditions={"StringLike": {"s3:prefix": [f"{self.model_prefix}*"]}}),
        ]
        if self.encryption_key is not None:
            statements.append(iam.PolicyStatement(sid="DecryptModelArchives", actions=["kms:Decrypt"],
                                                  resources=[self.encryption_key.key_arn]))
        return statements

    def write_statements(self, key_pattern: str) -> list[iam.PolicyStatement]:
        """Write, tag and delete the archives ``<prefix><key_pattern>`` (and encrypt them)."""
        statements = [
            iam.PolicyStatement(actions=list(ARCHIVE_WRITE_ACTIONS), resources=[self.arn_for_archives(key_pattern)]),
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
                                conditions={"StringLike": {"s3:prefix": [f"{self.model_prefix}{key_pattern}"]}}),
        ]
        if self.encryption_key is not None:
            statements.append(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"],
                                                  resources=[self.encryption_key.key_arn]))
        return statements

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read every archive under the prefix (what an endpoint's role needs)."""
        grant = _grant(grantee, self.read_statements())
        self.acknowledge_read_wildcard(grantee.grant_principal)
        return grant

    def grant_write(self, grantee: iam.IGrantable, key_pattern: str) -> iam.Grant:
        """Let ``grantee`` write the archives ``<prefix><key_pattern>`` (``key_pattern`` like ``sam-*.tar.gz``)."""
        grant = _grant(grantee, self.write_statements(key_pattern))
        self.acknowledge_write_wildcard(grantee.grant_principal, key_pattern)
        return grant

    def acknowledge_read_wildcard(self, scope: object) -> None:
        """cdk-nag: the ``<bucket>/<prefix>*`` read wildcard under ``scope`` (if it fires)."""
        if isinstance(scope, Construct):
            acknowledge_wildcards(scope, {self.arn_for_archives(): (
                "A multi-model endpoint loads any archive under its ModelDataUrl prefix on demand; the wildcard "
                "is limited to that prefix of the one model bucket.")})

    def acknowledge_write_wildcard(self, scope: object, key_pattern: str) -> None:
        """cdk-nag: the ``<bucket>/<prefix><key_pattern>`` write wildcard under ``scope`` (if it fires)."""
        if isinstance(scope, Construct):
            acknowledge_wildcards(scope, {self.arn_for_archives(key_pattern): (
                f"Archive names carry a content digest known only at deploy time; the wildcard is limited to "
                f"the archives {self.model_prefix}{key_pattern} in the model bucket.")})


def _grant(grantee: iam.IGrantable, statements: list[iam.PolicyStatement]) -> iam.Grant:
    grants = [
        iam.Grant.add_to_principal(grantee=grantee, actions=s.actions, resource_arns=s.resources,
                                   conditions=s.conditions or None)
        for s in statements
    ]
    combined = grants[0]
    for grant in grants[1:]:
        combined = combined.combine(grant)
    return combined
