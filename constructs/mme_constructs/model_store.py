"""``ModelStore``: where a multi-model endpoint's archives live, and who may read or write them."""

from __future__ import annotations

import re
from collections.abc import Sequence

import jsii
from aws_cdk import Annotations, Duration, IStableListProducer, Lazy, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from mme_constructs._nag import acknowledge_wildcards
from mme_constructs.key_policies import keys_differ
from mme_constructs.packager.core import RETIRED_TAG
from mme_constructs.packager.key_prefix import checked_key_prefix

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
#: What the bucket policy denies under the model prefix to every principal but the archive writers:
#: each way of changing what an endpoint loads (content, tags the packager trusts, deletion, uploads
#: in flight, and replication into the bucket).
ARCHIVE_MUTATING_ACTIONS = (
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:DeleteObject*",
    "s3:AbortMultipartUpload",
    "s3:ReplicateObject",
    "s3:ReplicateDelete",
    "s3:ReplicateTags",
)
#: Warning id when the bucket's policy cannot be changed from the app (an imported bucket).
UNENFORCED_WARNING = "mme-constructs:archiveWritersNotEnforced"
# An IAM role or user ARN; '*' and '?' wildcards allowed (the bucket policy compares with ArnNotLike),
# e.g. IAM Identity Center roles: arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_Admin_*
_WRITER_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/*?-]+$")


def archive_writer_arn_error(arn: str) -> str | None:
    """Why ``arn`` cannot name an archive writer, or ``None`` (tokens are not checked)."""
    if Token.is_unresolved(arn) or _WRITER_ARN.match(arn):
        return None
    return (f"{arn!r} is not an IAM role or user ARN (arn:aws:iam::<account>:role/<path/name> or "
            ":user/<name>; * wildcards allowed)")


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
    * ``encryption_key``: the bucket's SSE-KMS key, default the bucket's own ``encryption_key``
      (an owned bucket's, or the one given to ``Bucket.from_bucket_attributes``), else none
      (SSE-S3 buckets). A key other than the bucket's is refused. Readers get ``kms:Decrypt`` and
      writers ``kms:GenerateDataKey`` on it, only through S3 and only for this bucket
      (``kms:ViaService``, ``kms:EncryptionContext:aws:s3:arn``);
    * ``archive_writers``: principals besides the stack's packager that may write archives
      (roles, users, or their ARNs; e.g. the operators who run ``mme package --out s3://...``),
      default none.

    **Who may write archives.** An archive carries ``handler.py``, which the endpoint runs:
    writing under the prefix is running code on the endpoint. The store adds to the bucket's
    policy statements that deny, under the prefix, every change of an object
    (:data:`ARCHIVE_MUTATING_ACTIONS`) to every principal but the archive writers (the
    ``ModelArtifactProvider``'s packager role, principals given ``grant_write``, and
    ``archive_writers``), and, with a key, every upload whose headers ask for another encryption
    than ``aws:kms`` with that key, given by its ARN (or for a customer-provided key). An upload
    without encryption headers gets the bucket's default encryption. For a bucket the app does not own the
    policy cannot be changed from here: synth warns (:data:`UNENFORCED_WARNING`) and
    :meth:`archive_write_policy_document` is what the bucket's owner must add.

    Permissions are granted per prefix, never on the whole bucket; each wildcard that follows
    (``<bucket>/<prefix>*``) is acknowledged for cdk-nag with its reason, where it fires.
    """

    def __init__(self, bucket: s3.IBucket, *, model_prefix: str = "models/",
                 encryption_key: kms.IKey | None = None,
                 archive_writers: Sequence[iam.IPrincipal | iam.IGrantable | str] = ()) -> None:
        if Token.is_unresolved(model_prefix):
            raise ValueError("model_prefix must be a literal key prefix like 'models/', not a token")
        bucket_key = getattr(bucket, "encryption_key", None)
        if encryption_key is not None and bucket_key is not None and keys_differ(encryption_key, bucket_key):
            raise ValueError(f"ModelStore: encryption_key {encryption_key.node.path} is not the key of bucket "
                             f"{bucket.node.path} ({bucket_key.node.path}): give the bucket's key, or leave "
                             "encryption_key out to use it")
        self.bucket = bucket
        self.model_prefix = checked_key_prefix(model_prefix, "model_prefix")
        self.encryption_key = encryption_key or bucket_key
        self._writer_arns: list[str] = []
        for writer in archive_writers:
            self.add_archive_writer(writer)
        self.archive_writers_enforced = self._add_to_bucket_policy()
        #: how long retired archives stay (:meth:`expire_retired_archives`), ``None``: no rule of this app
        self.retired_archive_expiration: Duration | None = None

    def expire_retired_archives(self, expiration: Duration = Duration.days(14)) -> bool:
        """Add the lifecycle rule ``expire-retired-archives`` to the bucket: archives under the prefix
        tagged ``archive-state=retired`` (what the packager does with a replaced archive) expire
        ``expiration`` (whole days) after they were retired. ``False`` for a bucket this app does not
        own, whose owner adds the rule (``retired_archive_rule``); ``ModelBucket`` calls it itself."""
        days = expiration.to_seconds() / 86400
        if days < 1 or days != int(days):
            raise ValueError(f"retired archive expiration must be whole days, at least 1, got "
                             f"{expiration.to_human_string()}")
        if not isinstance(self.bucket, s3.Bucket):
            return False
        self.bucket.add_lifecycle_rule(id="expire-retired-archives", prefix=self.model_prefix,
                                       tag_filters={RETIRED_TAG[0]: RETIRED_TAG[1]}, expiration=expiration)
        self.retired_archive_expiration = expiration
        return True

    def retired_archive_rule(self, days: int = 14) -> dict:
        """The S3 lifecycle rule (``PutBucketLifecycleConfiguration`` form) that expires retired
        archives ``days`` after their retirement: for the owner of a bucket this app does not own."""
        return {"ID": "expire-retired-archives", "Status": "Enabled", "Expiration": {"Days": days},
                "Filter": {"And": {"Prefix": self.model_prefix,
                                   "Tags": [{"Key": RETIRED_TAG[0], "Value": RETIRED_TAG[1]}]}}}

    @property
    def model_data_url(self) -> str:
        """``s3://<bucket>/<prefix>``: the ``ModelDataUrl`` of a multi-model endpoint."""
        return f"s3://{self.bucket.bucket_name}/{self.model_prefix}"

    def arn_for_archives(self, key_pattern: str = "*") -> str:
        """ARN of the objects ``<prefix><key_pattern>`` (e.g. ``sam-*.tar.gz``)."""
        return self.bucket.arn_for_objects(f"{self.model_prefix}{key_pattern}")

    def identity(self) -> str:
        """Bucket construct, prefix and key construct, as one string (what :meth:`is_same_as` compares)."""
        def path(c: IConstruct | None) -> str:
            return c.node.path if c is not None else ""

        return "|".join((path(self.bucket), self.model_prefix, path(self.encryption_key)))

    def is_same_as(self, other: "ModelStore") -> bool:
        """Same bucket construct, prefix and key construct."""
        def path(c: IConstruct | None) -> str | None:
            return c.node.path if c is not None else None

        return (path(self.bucket) == path(other.bucket) and self.model_prefix == other.model_prefix
                and path(self.encryption_key) == path(other.encryption_key))

    # --- who may write ------------------------------------------------------------------------

    @property
    def archive_writer_arns(self) -> list[str]:
        """ARNs of the principals the bucket policy lets write archives (tokens allowed)."""
        return list(self._writer_arns)

    def add_archive_writer(self, writer: iam.IPrincipal | iam.IGrantable | str) -> str:
        """Let ``writer`` (a role, a user, anything with one as ``grant_principal``, or an IAM role or
        user ARN, ``*`` wildcards allowed) past the bucket policy's archive-write denial; its own
        identity policy must still allow the writes (:meth:`grant_write`). Returns the ARN."""
        arn = _principal_arn(writer)
        if arn is None:
            raise ValueError(f"archive_writers: {writer!r} is not a role or user (the bucket policy names writers "
                             "by their ARN)")
        error = archive_writer_arn_error(arn)
        if error:
            raise ValueError(f"archive_writers: {error}")
        self._check_same_stack(writer, arn)
        if arn not in self._writer_arns:
            self._writer_arns.append(arn)
        return arn

    def archive_write_statements(self) -> list[iam.PolicyStatement]:
        """The bucket policy statements that keep archive writes to the archive writers (and, with a
        key, to uploads encrypted with it). Each Sid ends with the prefix in CamelCase
        (``...Models`` for ``models/``): stores of other prefixes share a bucket's policy."""
        archives = self.arn_for_archives()
        sid = self._sid
        statements = [iam.PolicyStatement(
            sid=sid("OnlyArchiveWritersChangeModelArchives"), effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=list(ARCHIVE_MUTATING_ACTIONS), resources=[archives],
            conditions={"ArnNotLike": {"aws:PrincipalArn": Lazy.list(_WriterArns(self))}})]
        statements.append(iam.PolicyStatement(
            sid=sid("DenyCustomerProvidedKeysForModelArchives"), effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"], resources=[archives],
            conditions={"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}}))
        if self.encryption_key is not None:
            # Each denial needs its header present (Null: false): the parts of a multipart upload
            # (UploadPart, also s3:PutObject) carry no encryption header, and an upload without one
            # gets the bucket's default encryption. A header naming anything else is refused, and so
            # is aws:kms without a key id (S3 would then use the AWS managed key aws/s3).
            key_id = "s3:x-amz-server-side-encryption-aws-kms-key-id"
            statements += [
                iam.PolicyStatement(
                    sid=sid("DenyModelArchivesNotSseKms"), effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
                    actions=["s3:PutObject"], resources=[archives],
                    conditions={"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                                "Null": {"s3:x-amz-server-side-encryption": "false"}}),
                iam.PolicyStatement(
                    sid=sid("DenyModelArchivesWithAnotherKey"), effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
                    actions=["s3:PutObject"], resources=[archives],
                    conditions={"StringNotEquals": {key_id: self.encryption_key.key_arn}, "Null": {key_id: "false"}}),
                iam.PolicyStatement(
                    sid=sid("DenyModelArchivesWithTheAwsManagedKey"), effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()], actions=["s3:PutObject"], resources=[archives],
                    conditions={"StringEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                                "Null": {key_id: "true"}}),
            ]
        return statements

    def archive_write_policy_document(self) -> iam.PolicyDocument:
        """:meth:`archive_write_statements` as a document: what the owner of an imported bucket adds
        to its policy (e.g. ``CfnOutput(value=Stack.of(self).to_json_string(doc.to_json()))``)."""
        return iam.PolicyDocument(statements=self.archive_write_statements())

    def _sid(self, name: str) -> str:
        return name + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", self.model_prefix) if part)

    def _add_to_bucket_policy(self) -> bool:
        marker = f"ModelStore{self._sid('')}"
        if self.bucket.node.try_find_child(marker) is not None:
            raise ValueError(f"ModelStore: {self.bucket.node.path} has a ModelStore for {self.model_prefix} already; "
                             "hand that one around (ModelBucket.model_store) instead of making another")
        Construct(self.bucket, marker)  # the bucket's policy gets this prefix's statements once
        added = [self.bucket.add_to_resource_policy(s).statement_added for s in self.archive_write_statements()]
        if all(added):
            return True
        Annotations.of(self.bucket).add_warning_v2(UNENFORCED_WARNING, (
            f"ModelStore {self.model_prefix}: the policy of bucket {self.bucket.node.path} cannot be changed from "
            "this app, so any principal with s3:PutObject on it can write archives (code the endpoint runs). "
            "Add ModelStore.archive_write_policy_document() to the bucket's policy (docs/security.md), then "
            "acknowledge this warning."))
        return False

    def _check_same_stack(self, writer: object, arn: str) -> None:
        """A writer of another stack cannot be named by reference in this bucket's policy: the two stacks
        would depend on each other."""
        if not (Token.is_unresolved(arn) and isinstance(writer, Construct)):
            return
        if Stack.of(writer) is not Stack.of(self.bucket):
            raise ValueError(f"archive_writers: {writer.node.path} is in another stack than the bucket "
                             f"{self.bucket.node.path}, whose policy would then refer to it (a dependency cycle): "
                             "give the role a literal role_name, or pass its ARN as a string")

    # --- grants -------------------------------------------------------------------------------

    def _key_conditions(self) -> dict:
        """Key use only by S3 in this region, for this bucket (SSE-KMS with or without bucket keys:
        the encryption context is the bucket's ARN, or the object's)."""
        stack = Stack.of(self.bucket)
        return {"StringEquals": {"kms:ViaService": f"s3.{stack.region}.{stack.url_suffix}"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [self.bucket.bucket_arn, self.arn_for_archives()]}}

    def read_statements(self) -> list[iam.PolicyStatement]:
        """Read any archive under the prefix, list the prefix, decrypt with the key (through S3)."""
        statements = [
            iam.PolicyStatement(sid="ReadModelArchives", actions=["s3:GetObject"],
                                resources=[self.arn_for_archives()]),
            iam.PolicyStatement(sid="ListModelPrefix", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
                                conditions={"StringLike": {"s3:prefix": [f"{self.model_prefix}*"]}}),
        ]
        if self.encryption_key is not None:
            statements.append(iam.PolicyStatement(sid="DecryptModelArchives", actions=["kms:Decrypt"],
                                                  resources=[self.encryption_key.key_arn],
                                                  conditions=self._key_conditions()))
        return statements

    def write_statements(self, key_pattern: str) -> list[iam.PolicyStatement]:
        """Write, tag and delete the archives ``<prefix><key_pattern>`` (and encrypt them, through S3)."""
        statements = [
            iam.PolicyStatement(actions=list(ARCHIVE_WRITE_ACTIONS), resources=[self.arn_for_archives(key_pattern)]),
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
                                conditions={"StringLike": {"s3:prefix": [f"{self.model_prefix}{key_pattern}"]}}),
        ]
        if self.encryption_key is not None:
            statements.append(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"],
                                                  resources=[self.encryption_key.key_arn],
                                                  conditions=self._key_conditions()))
        return statements

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read every archive under the prefix (what an endpoint's role needs)."""
        grant = _grant(grantee, self.read_statements())
        self.acknowledge_read_wildcard(grantee.grant_principal)
        return grant

    def grant_write(self, grantee: iam.IGrantable, key_pattern: str) -> iam.Grant:
        """Let ``grantee`` (a role or user, or a construct with one) write the archives
        ``<prefix><key_pattern>`` (``key_pattern`` like ``sam-*.tar.gz``); it becomes an archive writer."""
        self.add_archive_writer(grantee)
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


@jsii.implements(IStableListProducer)
class _WriterArns:
    """The archive writers' ARNs when the policy is synthesized (writers may be added after the store).
    With none, the account's root user: the statement then denies every IAM principal."""

    def __init__(self, store: ModelStore) -> None:
        self._store = store

    def produce(self) -> list[str]:
        if self._store.archive_writer_arns:
            return self._store.archive_writer_arns
        return [Stack.of(self._store.bucket).format_arn(service="iam", region="", resource="root")]


def _principal_arn(writer: object) -> str | None:
    if isinstance(writer, str):
        return writer
    principal = getattr(writer, "grant_principal", writer)
    for attribute in ("role_arn", "user_arn"):
        arn = getattr(principal, attribute, None)
        if arn:
            return arn
    return None


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
