"""Only the packager (and the operators of ``archiveWriterArns``) may write what the endpoint runs.

Two kinds of checks on the synthesized stack:

* the bucket policy statements as the template holds them;
* what AWS would decide: the policies of the template (the bucket policy, the roles' managed
  policies) evaluated for concrete requests by a real IAM policy evaluator,
  ``@cloud-copilot/iam-simulate`` (identity and resource policies, explicit denies, every condition
  operator; installed by ``make test`` in tests/stack/iam_simulator). moto's S3 server cannot do this:
  moto 5.2 evaluates only the caller's identity policies (and of the condition operators only
  ``StringEquals``), never a bucket policy, so an upload it accepts proves nothing here.

Requests carry the context keys AWS sets itself (``aws:PrincipalArn``, ``aws:SecureTransport``,
``s3:TlsVersion``, the SSE headers a client sends); a key the evaluator does not know for the action
fails the test rather than being silently dropped. The model key's conditions are checked as
statements (tests/stack/test_constructs.py): the evaluator drops encryption-context keys whose name
holds a colon (``kms:EncryptionContext:aws:s3:arn``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SIMULATOR = Path(__file__).resolve().parent / "iam_simulator"
ACCOUNT = "111122223333"
REGION = "us-east-1"
BUCKET = "image-editing-models"
OPERATOR = f"arn:aws:iam::{ACCOUNT}:role/release-engineers"
OTHER = f"arn:aws:iam::{ACCOUNT}:role/data-science"  # e.g. AmazonS3FullAccess, as many roles have
FULL_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


# --- the template, resolved to concrete names -------------------------------------------------------


def _arn(logical_id: str, type_: str) -> str:
    return {
        "AWS::S3::Bucket": f"arn:aws:s3:::{BUCKET}" if "AccessLogs" not in logical_id else "arn:aws:s3:::access-logs",
        "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{logical_id}",
        "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{logical_id}",
        "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}",
        "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{logical_id}:*",
    }.get(type_, f"arn:aws:cloudformation:::{logical_id}")


def resolve(value, template: dict):
    """CloudFormation intrinsics of a policy document, resolved as if deployed in ``ACCOUNT``/``REGION``."""
    pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}
    if isinstance(value, list):
        return [resolve(v, template) for v in value]
    if not isinstance(value, dict):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(resolve(p, template) for p in parts)
    if "Fn::Sub" in value:  # only pseudo parameters occur (CDK's bootstrap bucket and repository names)
        text = value["Fn::Sub"]
        for name, replacement in pseudo.items():
            text = text.replace("${" + name + "}", replacement)
        return text
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn", value
        return _arn(logical_id, template["Resources"][logical_id]["Type"])
    if "Ref" in value:
        ref = value["Ref"]
        if ref in pseudo:
            return pseudo[ref]
        return BUCKET if template["Resources"][ref]["Type"] == "AWS::S3::Bucket" else ref
    return {k: resolve(v, template) for k, v in value.items()}


def _of_type(template: dict, type_: str, prefix: str) -> tuple[str, dict]:
    (found,) = [(k, v) for k, v in template["Resources"].items() if v["Type"] == type_ and k.startswith(prefix)]
    return found


class Deployed:
    """The stack's policies and principals as deployed."""

    def __init__(self, template: dict) -> None:
        self.template = template
        bucket_id = next(k for k, v in template["Resources"].items()
                         if v["Type"] == "AWS::S3::Bucket" and "LoggingConfiguration" in v["Properties"])
        _, policy = next((k, v) for k, v in template["Resources"].items() if v["Type"] == "AWS::S3::BucketPolicy"
                         and v["Properties"]["Bucket"] == {"Ref": bucket_id})
        self.bucket_policy = resolve(policy["Properties"]["PolicyDocument"], template)
        self.key_arn = _arn(_of_type(template, "AWS::KMS::Key", "ModelBucketKey")[0], "AWS::KMS::Key")
        self.packager = _arn(_of_type(template, "AWS::IAM::Role", "ModelArtifactProviderPackagerRole")[0], "AWS::IAM::Role")
        self.role_policies = {}
        for _, policy in ((k, v) for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::ManagedPolicy"):
            for role in policy["Properties"]["Roles"]:
                self.role_policies.setdefault(_arn(role["Ref"], "AWS::IAM::Role"), []).append(
                    resolve(policy["Properties"]["PolicyDocument"], self.template))

    def identity(self, principal: str) -> list[dict]:
        """The principal's identity policies: the stack's for its own roles, full S3 access for others."""
        own = self.role_policies.get(principal)
        policies = own if own is not None else [FULL_S3]
        return [{"name": f"p{i}", "policy": p} for i, p in enumerate(policies)]

    def s3(self, principal: str, action: str, key: str, *, principal_arn: str | None = None, **context) -> dict:
        """A request of ``principal`` on ``<bucket>/<key>`` (``principal_arn``: its role, for a session)."""
        return self._simulation(principal, principal_arn or principal, action, f"arn:aws:s3:::{BUCKET}/{key}",
                                self.bucket_policy, context)

    def _simulation(self, principal: str, principal_arn: str, action: str, resource: str, resource_policy: dict,
                    context: dict) -> dict:
        variables = {"aws:PrincipalArn": principal_arn, "aws:PrincipalAccount": ACCOUNT, "aws:SecureTransport": "true",
                     "s3:TlsVersion": "1.3", **context}
        return {"request": {"principal": principal, "action": action, "contextVariables": variables,
                            "resource": {"resource": resource, "accountId": ACCOUNT}},
                "identityPolicies": self.identity(principal_arn), "resourcePolicy": resource_policy,
                "serviceControlPolicies": [], "resourceControlPolicies": []}


def evaluate(simulations: list[dict]) -> list[str]:
    """Each simulation's overall result (``Allowed``, ``ExplicitlyDenied``, ``ImplicitlyDenied``)."""
    if not (SIMULATOR / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
        pytest.fail("the IAM policy evaluator is not installed: run `make test` (npm ci in tests/stack/iam_simulator)")
    node = Path(sys.executable).parent / "node"
    proc = subprocess.run([str(node), "simulate.mjs"], cwd=SIMULATOR, input=json.dumps(simulations),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert not [r for r in results if r["result"] == "error"], results
    assert not [r["ignoredContextKeys"] for r in results if r["ignoredContextKeys"]], results
    return [r["result"] for r in results]


@pytest.fixture(scope="module")
def deployed(synth_stack):
    _, _, template = synth_stack(archiveWriterArns=[OPERATOR])
    return Deployed(template.to_json())


KMS_HEADERS = "s3:x-amz-server-side-encryption", "s3:x-amz-server-side-encryption-aws-kms-key-id"
ARCHIVE = "models/sam-0123456789abcdef.tar.gz"


def _kms(deployed: Deployed) -> dict:
    return dict(zip(KMS_HEADERS, ("aws:kms", deployed.key_arn)))


# --- the statements ---------------------------------------------------------------------------


def test_the_bucket_policy_keeps_archive_writes_to_the_writers(deployed):
    # each Sid ends with the prefix (models/ -> Models): stores of other prefixes share the policy
    statements = {s["Sid"].removesuffix("Models"): s for s in deployed.bucket_policy["Statement"] if "Sid" in s}
    only = statements["OnlyArchiveWritersChangeModelArchives"]
    assert only["Effect"] == "Deny" and only["Principal"] == {"AWS": "*"}
    assert only["Resource"] == f"arn:aws:s3:::{BUCKET}/models/*"
    assert set(only["Action"]) == {"s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectVersionTagging",
                                   "s3:DeleteObject*", "s3:AbortMultipartUpload", "s3:ReplicateObject",
                                   "s3:ReplicateDelete", "s3:ReplicateTags"}
    assert only["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": [OPERATOR, deployed.packager]}}
    sse, key_id = KMS_HEADERS
    assert statements["DenyModelArchivesNotSseKms"]["Condition"] == {
        "StringNotEquals": {sse: "aws:kms"}, "Null": {sse: "false"}}
    assert statements["DenyModelArchivesWithAnotherKey"]["Condition"] == {
        "StringNotEquals": {key_id: deployed.key_arn}, "Null": {key_id: "false"}}
    assert statements["DenyModelArchivesWithTheAwsManagedKey"]["Condition"] == {
        "StringEquals": {sse: "aws:kms"}, "Null": {key_id: "true"}}
    assert statements["DenyCustomerProvidedKeysForModelArchives"]["Condition"] == {
        "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}}
    for sid in ("DenyModelArchivesNotSseKms", "DenyModelArchivesWithAnotherKey", "DenyModelArchivesWithTheAwsManagedKey",
                "DenyCustomerProvidedKeysForModelArchives"):
        assert statements[sid]["Action"] == "s3:PutObject" and statements[sid]["Resource"] == only["Resource"]


def test_without_writers_no_iam_principal_may_write():
    """A store with no packager and no operators: only the account's root user is excepted."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from mme_constructs import ModelBucket

    stack = cdk.Stack(cdk.App(), "Bare")
    ModelBucket(stack, "Models")
    (only,) = [s for p in Template.from_stack(stack).find_resources("AWS::S3::BucketPolicy").values()
               for s in p["Properties"]["PolicyDocument"]["Statement"]
               if s.get("Sid") == "OnlyArchiveWritersChangeModelArchivesModels"]
    assert only["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": [{"Fn::Join": ["", [
        "arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}]}}


# --- what AWS decides ---------------------------------------------------------------------------


def test_a_second_role_cannot_change_archives_even_with_full_s3_access(deployed):
    kms = _kms(deployed)
    results = evaluate([
        deployed.s3(OTHER, "s3:PutObject", ARCHIVE, **kms),
        deployed.s3(OTHER, "s3:PutObject", "models/new-model-0123456789abcdef.tar.gz"),
        deployed.s3(OTHER, "s3:PutObjectTagging", ARCHIVE),
        deployed.s3(OTHER, "s3:DeleteObject", ARCHIVE),
        deployed.s3(OTHER, "s3:DeleteObjectVersion", ARCHIVE),
        deployed.s3(OTHER, "s3:AbortMultipartUpload", ARCHIVE),
        # a session of that role (what a person or a job really uses): aws:PrincipalArn is the role
        deployed.s3(f"arn:aws:sts::{ACCOUNT}:assumed-role/data-science/alice", "s3:PutObject", ARCHIVE,
                    principal_arn=OTHER, **kms),
    ])
    assert results == ["ExplicitlyDenied"] * 7


def test_the_same_role_may_still_read_archives_and_write_elsewhere(deployed):
    results = evaluate([
        deployed.s3(OTHER, "s3:GetObject", ARCHIVE),
        deployed.s3(OTHER, "s3:PutObject", "datasets/images.zip"),
    ])
    assert results == ["Allowed", "Allowed"]


def test_the_packager_writes_its_archives_with_the_key_and_nothing_else(deployed):
    kms = _kms(deployed)
    packager = deployed.packager
    results = evaluate([
        deployed.s3(packager, "s3:PutObject", ARCHIVE, **kms),           # CreateMultipartUpload / PutObject
        deployed.s3(packager, "s3:PutObject", ARCHIVE),                  # UploadPart: no SSE headers
        deployed.s3(packager, "s3:PutObjectTagging", ARCHIVE),
        deployed.s3(packager, "s3:DeleteObject", ARCHIVE),
        deployed.s3(packager, "s3:PutObject", ARCHIVE, **{KMS_HEADERS[0]: "AES256"}),
        deployed.s3(packager, "s3:PutObject", ARCHIVE, **{KMS_HEADERS[0]: "aws:kms"}),  # no key id: aws/s3
        deployed.s3(packager, "s3:PutObject", ARCHIVE, **{KMS_HEADERS[0]: "aws:kms",
                                                          KMS_HEADERS[1]: deployed.key_arn.replace("Key", "Other")}),
        deployed.s3(packager, "s3:PutObject", ARCHIVE, **{"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"}),
        deployed.s3(packager, "s3:PutObject", "models/other-0123456789abcdef.tar.gz", **kms),  # not its model
        deployed.s3(packager, "s3:PutObject", "elsewhere/sam-0123456789abcdef.tar.gz", **kms),
    ])
    assert results == ["Allowed"] * 4 + ["ExplicitlyDenied"] * 4 + ["ImplicitlyDenied"] * 2


def test_an_operator_of_archive_writer_arns_may_write(deployed):
    results = evaluate([deployed.s3(OPERATOR, "s3:PutObject", ARCHIVE, **_kms(deployed)),
                        deployed.s3(OPERATOR, "s3:DeleteObject", ARCHIVE)])
    assert results == ["Allowed", "Allowed"]


def test_stores_of_two_prefixes_share_a_bucket_and_one_prefix_has_one_store():
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from mme_constructs import ModelBucket, ModelStore

    stack = cdk.Stack(cdk.App(), "Shared")
    models = ModelBucket(stack, "Models")
    ModelStore(models.bucket, model_prefix="team-b/archives/", encryption_key=models.encryption_key,
               archive_writers=[OPERATOR])
    sids = [s.get("Sid") for p in Template.from_stack(stack).find_resources("AWS::S3::BucketPolicy").values()
            for s in p["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid")]
    assert len(sids) == len(set(sids)) == 10  # S3 refuses a policy with a Sid twice
    assert "OnlyArchiveWritersChangeModelArchivesTeamBArchives" in sids
    with pytest.raises(ValueError, match=r"has a ModelStore for models/ already; hand that one around"):
        ModelStore(models.bucket, encryption_key=models.encryption_key)
