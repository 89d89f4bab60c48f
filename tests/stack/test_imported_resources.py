"""The constructs with resources they do not own: imports, tokens, other stacks. Real synth with the
five cdk-nag packs; each acknowledgement must match a finding that fires (see stack_helpers), and
what is left unacknowledged is exactly what depends on the app's own choices (a log key it did not
give, a store without a key, inline policies of its own roles)."""

from __future__ import annotations

import json
import re

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from mme_constructs import ModelArtifact, ModelBucket, ModelStore, MultiModelEndpoint, ServingImage

from stack_helpers import (
    REPO_ROOT,
    acknowledged,
    assert_every_acknowledgement_fires,
    findings_without_acknowledgements,
    resolve_for_test,
    resources,
    synth_report,
    synth_with_nag,
    template_of,
)

KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SOURCES = REPO_ROOT / "model_sources"


def serve(stack, store, **kwargs):
    """An endpoint + one artifact on ``store``, with an image from an imported ECR repository."""
    repo = ecr.Repository.from_repository_name(stack, "Repo", "platform/torchserve-mme")
    image = ServingImage.from_ecr_repository(stack, "Image", repository=repo, tag="2024-06-01")
    mme = MultiModelEndpoint(stack, "Mme", image=image, model_store=store, **kwargs)
    ModelArtifact.from_model_sources(stack, "Sam", model_sources_dir=SOURCES, model_name="sam", model_store=store)
    return mme


def imported_by_name(app):
    stack = cdk.Stack(app, "Serving")
    store = ModelStore(s3.Bucket.from_bucket_name(stack, "Shared", "shared-models"), model_prefix="mme/",
                       encryption_key=kms.Key.from_key_arn(stack, "Key", KEY_ARN))
    serve(stack, store)


def imported_by_arn_without_key(app):
    stack = cdk.Stack(app, "Serving")
    serve(stack, ModelStore(s3.Bucket.from_bucket_arn(stack, "Shared", "arn:aws:s3:::shared-models")))


def bucket_name_parameter(app):
    stack = cdk.Stack(app, "Serving")
    name = cdk.CfnParameter(stack, "ModelBucketName", type="String")
    endpoint_name = cdk.CfnParameter(stack, "EndpointName", type="String")
    store = ModelStore(s3.Bucket.from_bucket_name(stack, "Shared", name.value_as_string))
    serve(stack, store, endpoint_name=endpoint_name.value_as_string)


def other_stack(app):
    storage = cdk.Stack(app, "Storage")
    bucket = ModelBucket(storage, "Models")
    serve(cdk.Stack(app, "Serving"), bucket.model_store)


def logical_id_overridden_later(app):
    stack = cdk.Stack(app, "Serving")
    bucket = ModelBucket(stack, "Models")
    serve(stack, bucket.model_store)
    bucket.bucket.node.default_child.override_logical_id("PlatformModelBucket")


def immutable_role(app):
    stack = cdk.Stack(app, "Serving")
    role = iam.Role.from_role_arn(stack, "Role", "arn:aws:iam::123456789012:role/mme", mutable=False)
    serve(stack, ModelBucket(stack, "Models").model_store, role=role)


def grants_to_other_principals(app):
    stack = cdk.Stack(app, "Serving")
    store = ModelBucket(stack, "Models").model_store
    reader = iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("batch.amazonaws.com"))
    writer = iam.Role(stack, "Writer", assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"))
    assert store.grant_read(reader).success and store.grant_write(writer, "custom-*.tar.gz").success


SCENARIOS = {f.__name__: f for f in (imported_by_name, imported_by_arn_without_key, bucket_name_parameter,
                                     other_stack, logical_id_overridden_later, immutable_role,
                                     grants_to_other_principals)}


#: Unacknowledged findings each scenario keeps: (rule without its pack, construct path under the stack).
#: Log groups are unencrypted when the store's key is not a key of this stack and no log key is given
#: (an imported key's policy cannot be changed here); an endpoint on a store without a key has no
#: volume key either; a team's own role's grants are its own inline policy. None is the constructs'.
_LOG_GROUPS = {"Mme/Logs/Resource", "ModelArtifactProvider/PackagerLogs/Resource",
               "ModelArtifactProvider/FrameworkLogs/Resource"}
_NO_LOG_KEY = {("CloudWatchLogGroupEncrypted", p) for p in _LOG_GROUPS}
_NO_VOLUME_KEY = {("SageMakerEndpointConfigurationKMSKeyConfigured", "Mme/EndpointConfig")}
TEAM_DECISIONS = {
    "imported_by_name": _NO_LOG_KEY,
    "imported_by_arn_without_key": _NO_LOG_KEY | _NO_VOLUME_KEY,
    "bucket_name_parameter": _NO_LOG_KEY | _NO_VOLUME_KEY,
    "other_stack": _NO_LOG_KEY,
    "logical_id_overridden_later": set(),
    "immutable_role": set(),
    "grants_to_other_principals": {("IAMNoInlinePolicy", "Reader/DefaultPolicy/Resource"),
                                   ("IAMNoInlinePolicy", "Writer/DefaultPolicy/Resource")},
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_synthesizes_with_nag_and_every_acknowledgement_fires(scenario, tmp_path, monkeypatch):
    build = SCENARIOS[scenario]
    app, left = synth_report(build, tmp_path / "acked")
    assert {(rule.split("-", 1)[1], path.split("/", 1)[1]) for rule, path in left} == TEAM_DECISIONS[scenario]
    assert all(rule.startswith(("NIST", "HIPAA", "PCI")) for rule, _ in left)  # AwsSolutions is clean
    findings = findings_without_acknowledgements(build, tmp_path / "raw", monkeypatch)
    assert_every_acknowledgement_fires(acknowledged(app), findings)


def test_imported_bucket_acknowledgements_name_the_bucket_arn(tmp_path):
    app, _ = synth_report(imported_by_name, tmp_path)
    ids = {rule for _, rule in acknowledged(app)}
    assert "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::shared-models/mme/*]" in ids
    assert "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::shared-models/mme/sam-*.tar.gz]" in ids
    template = template_of(app, "Serving")
    model = next(iter(resources(template, "AWS::SageMaker::Model").values()))["Properties"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://shared-models/mme/"
    assert json.dumps(model["PrimaryContainer"]["Image"]).endswith('/platform/torchserve-mme:2024-06-01"]]}')
    (artifact,) = resources(template, "Custom::ModelArtifact").values()
    assert artifact["Properties"]["KmsKeyId"] == KEY_ARN and artifact["Properties"]["Prefix"] == "mme/"


def test_store_without_key_grants_no_kms(tmp_path):
    app, _ = synth_report(imported_by_arn_without_key, tmp_path)
    template = template_of(app, "Serving")
    text = json.dumps(resources(template, "AWS::IAM::Policy"))
    assert "kms:" not in text
    (artifact,) = resources(template, "Custom::ModelArtifact").values()
    assert "KmsKeyId" not in artifact["Properties"]


def test_cross_stack_bucket_is_acknowledged_by_its_import(tmp_path):
    app, _ = synth_report(other_stack, tmp_path)
    ids = {rule for path, rule in acknowledged(app) if path.startswith("Serving/")}
    assert any(i.startswith("AwsSolutions-IAM5[Resource::Storage:ExportsOutputFnGetAttModels") for i in ids), ids


def _archive_writers(template: dict) -> list:
    (only,) = [s for p in resources(template, "AWS::S3::BucketPolicy").values()
               for s in p["Properties"]["PolicyDocument"]["Statement"]
               if s.get("Sid", "").startswith("OnlyArchiveWritersChangeModelArchives")]
    return only["Condition"]["ArnNotLike"]["aws:PrincipalArn"]


def test_a_packager_in_another_stack_is_named_in_the_bucket_policy_without_a_reference(tmp_path):
    """The bucket's stack cannot refer to the packager's (the packager's stack refers to the bucket):
    the packager's role gets a fixed name, and the bucket policy names it by ARN."""
    app, _ = synth_report(other_stack, tmp_path)
    (writer,) = _archive_writers(template_of(app, "Storage"))
    serving = template_of(app, "Serving")
    (role,) = [r for k, r in resources(serving, "AWS::IAM::Role").items() if k.startswith("ModelArtifactProviderPackagerRole")]
    name = resolve_for_test(role["Properties"]["RoleName"])
    assert re.fullmatch(r"Serving-ModelArtifactProvider-[0-9A-F]{8}-packager-<Ref:AWS::Region>", name), name
    assert resolve_for_test(writer) == f"arn:<Ref:AWS::Partition>:iam::<Ref:AWS::AccountId>:role/{name}"
    assert "Fn::ImportValue" not in json.dumps(template_of(app, "Storage"))


def test_grant_write_makes_the_grantee_an_archive_writer(tmp_path):
    app, _ = synth_report(grants_to_other_principals, tmp_path)
    (writer,) = _archive_writers(template_of(app, "Serving"))  # no ModelArtifact in this app: no packager
    assert writer["Fn::GetAtt"][0].startswith("Writer") and writer["Fn::GetAtt"][1] == "Arn"


def test_archive_writers_are_checked(tmp_path):
    stack = cdk.Stack(cdk.App(), "Serving")
    bucket = s3.Bucket.from_bucket_name(stack, "Shared", "shared-models")
    with pytest.raises(ValueError, match=r"archive_writers: 'arn:aws:s3:::x' is not an IAM role or user ARN"):
        ModelStore(bucket, archive_writers=["arn:aws:s3:::x"])
    with pytest.raises(ValueError, match="is not a role or user"):
        ModelStore(bucket).add_archive_writer(iam.ServicePrincipal("lambda.amazonaws.com"))
    other = cdk.Stack(stack.node.scope, "Other")
    role = iam.Role(other, "Writer", assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"))
    owned = ModelBucket(stack, "Models").model_store
    with pytest.raises(ValueError, match="Other/Writer is in another stack than the bucket"):
        owned.add_archive_writer(role)
    store = ModelStore(bucket, model_prefix="ops/",
                       archive_writers=["arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/*/Admin_*"])
    assert not store.archive_writers_enforced  # an imported bucket's policy is not the app's
