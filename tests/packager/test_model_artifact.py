"""The ModelArtifact construct in its own minimal stack (KMS key + bucket): IAM, Lambda, cdk-nag, cfn-lint."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packager_helpers import REPO_ROOT

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-token-AbCdEf"
REV = "0123456789abcdef0123456789abcdef01234567"


def build(outdir: Path, *, extra=None):
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    from mme_constructs import ModelArtifact, ModelStore

    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "ArtifactTest")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    bucket = s3.Bucket(stack, "Models", encryption=s3.BucketEncryption.KMS, encryption_key=key, enforce_ssl=True,
                       block_public_access=s3.BlockPublicAccess.BLOCK_ALL)
    cdk.Validations.of(bucket).acknowledge(cdk.Acknowledgment(
        id="AwsSolutions-S1", reason="Test fixture bucket of the construct test; the real stack logs access."))
    sources = REPO_ROOT / "model_sources"
    store = ModelStore(bucket, encryption_key=key)
    sam = ModelArtifact.from_model_sources(stack, "SamArtifact", model_sources_dir=sources, model_name="sam",
                                           model_store=store)
    sd = ModelArtifact(stack, "SdArtifact", model_store=store, model_name="sd",
                       source_dirs=[sources / "sd", sources / "common"],
                       weights_spec={"kind": "huggingface", "repo_id": "org/sd", "revision": REV,
                                     "allow_patterns": ["*.json"], "token_secret_arn": SECRET})
    staged = ModelArtifact(stack, "LamaArtifact", model_store=store, model_name="lama",
                           source_dirs=[sources / "lama", sources / "common"],
                           weights_spec={"kind": "s3", "uri": "s3://staged-weights/lama/"})
    for name, artifact in (("Sam", sam), ("Sd", sd), ("Lama", staged)):
        cdk.CfnOutput(stack, f"{name}TargetModel", value=artifact.target_model)
    if extra:
        extra(stack)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    app.synth()
    return stack, json.loads((outdir / "ArtifactTest.template.json").read_text())


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("cdkout")
    _, template = build(outdir)
    return outdir, template


def resources(template, type_):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def logical(template, prefix):
    """The logical id made of ``prefix`` (the construct path) and CDK's 8-hex hash."""
    (found,) = [k for k in template["Resources"] if re.fullmatch(rf"{prefix}[0-9A-F]{{8}}", k)]
    return found


def test_one_shared_provider_and_lambda_settings(synthesized):
    _, template = synthesized
    functions = resources(template, "AWS::Lambda::Function")
    assert len(functions) == 2  # the packager + the Provider framework's onEvent, once per stack
    packager = functions[logical(template, "ModelArtifactProviderPackager")]["Properties"]
    assert packager["Runtime"] == "python3.14" and packager["Architectures"] == ["arm64"]
    assert packager["Handler"] == "packager.lambda_handler.handler"
    assert packager["MemorySize"] == 3008 and packager["Timeout"] == 14 * 60
    assert "EphemeralStorage" not in packager  # default 512 MB: the packager streams
    framework = functions[logical(template, "ModelArtifactProviderframeworkonEvent")]["Properties"]
    assert framework["Timeout"] == 900 > packager["Timeout"]
    assert framework["MemorySize"] == 128  # set explicitly: the framework only relays one event
    # Each function waits for its role's one managed policy; the role itself is ordered by the Role
    # GetAtt (listing it in DependsOn too is cfn-lint W3005). No inline policy, no AWS managed policy.
    assert functions[logical(template, "ModelArtifactProviderPackager")]["DependsOn"] == [
        logical(template, "ModelArtifactProviderPackagerPolicy")]
    assert functions[logical(template, "ModelArtifactProviderframeworkonEvent")]["DependsOn"] == [
        logical(template, "ModelArtifactProviderFrameworkRolePolicy")]
    assert not resources(template, "AWS::IAM::Policy")
    assert not [r for r in resources(template, "AWS::IAM::Role").values() if r["Properties"].get("ManagedPolicyArns")]
    assert "VpcConfig" not in packager and "VpcConfig" not in framework

    artifacts = resources(template, "Custom::ModelArtifact")
    assert len(artifacts) == 3
    props = {r["Properties"]["ModelName"]: r["Properties"] for r in artifacts.values()}
    sam = props["sam"]
    assert sam["Prefix"] == "models/" and sam["PackagerFormat"] == "mme-packager/1" and sam["GzipLevel"] == "0"
    assert sam["ServiceTimeout"] == "1200"
    assert json.loads(sam["WeightsSpec"])["files"][0]["sha256"].startswith("a7bf3b02")
    assert len(sam["Sources"]) == 2 and all(s["Key"].endswith(".zip") for s in sam["Sources"])
    assert sam["KmsKeyId"] == {"Fn::GetAtt": [logical(template, "Key"), "Arn"]}
    assert {o["Value"]["Fn::GetAtt"][1] for o in template["Outputs"].values()} == {"TargetModel"}


def test_source_assets_leave_out_caches_and_the_spec(synthesized):
    outdir, template = synthesized
    manifest = json.loads((outdir / "ArtifactTest.assets.json").read_text())
    zips = {a["source"]["path"] for a in manifest["files"].values() if a["source"].get("packaging") == "zip"}
    sam_asset = next(p for p in zips if (outdir / p / "handler.py").exists()
                     and "segment" in (outdir / p / "handler.py").read_text().lower())
    files = sorted(p.name for p in (outdir / sam_asset).rglob("*") if p.is_file())
    assert "weights.yaml" not in files and not [f for f in files if f.endswith(".pyc")]
    packager_asset = next(p for p in zips if (outdir / p / "packager" / "lambda_handler.py").exists())
    shipped = sorted(p.relative_to(outdir / packager_asset).as_posix() for p in (outdir / packager_asset).rglob("*")
                     if p.is_file())
    assert shipped and all(re.fullmatch(r"packager/[a-z_]+\.py", s) for s in shipped), shipped


def _statements(template, policy_prefix):
    policy = resources(template, "AWS::IAM::ManagedPolicy")[logical(template, policy_prefix)]
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _as_list(x):
    return x if isinstance(x, list) else [x]


def test_packager_iam_is_least_privilege(synthesized):
    _, template = synthesized
    bucket = logical(template, "Models")
    statements = _statements(template, "ModelArtifactProviderPackagerPolicy")
    by_action: dict[str, list] = {}
    for st in statements:
        assert st["Effect"] == "Allow"
        for action in _as_list(st["Action"]):
            by_action.setdefault(action, []).extend(_as_list(st["Resource"]))
    text = json.dumps(statements)
    assert '"*"' not in text and "s3:*" not in text and "kms:*" not in text

    archives = {json.dumps(r) for r in by_action["s3:PutObject"]}
    assert archives == {json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/models/{m}-*.tar.gz"]]})
                        for m in ("sam", "sd", "lama")}
    for action in ("s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
                   "s3:PutObjectTagging", "s3:GetObjectTagging"):
        assert {json.dumps(r) for r in by_action[action]} == archives, action
    reads = [r for r in by_action["s3:GetObject"] if json.dumps(r) not in archives]
    asset_reads = [r for r in reads if "cdk-hnb659fds-assets" in json.dumps(r)]
    assert len(asset_reads) == 6 and all(json.dumps(r).endswith('.zip"]]}') for r in asset_reads)  # exact objects
    assert [r for r in reads if r not in asset_reads] == [
        {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::staged-weights/lama/*"]]}]
    list_bucket = [st for st in statements if st["Action"] == "s3:ListBucket"]
    assert {tuple(st["Condition"]["StringLike"]["s3:prefix"]) for st in list_bucket} == {
        ("models/sam-*.tar.gz",), ("models/sd-*.tar.gz",), ("models/lama-*.tar.gz",), ("lama/*",)}
    assert by_action["kms:GenerateDataKey"] == by_action["kms:Decrypt"] == [{"Fn::GetAtt": [logical(template, "Key"), "Arn"]}]
    (kms,) = [st for st in statements if "kms:GenerateDataKey" in _as_list(st["Action"])]
    assert kms["Condition"]["StringEquals"] == {"kms:ViaService": {"Fn::Join": ["", [
        "s3.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}]]}}
    assert kms["Condition"]["StringLike"] == {"kms:EncryptionContext:aws:s3:arn": [
        {"Fn::GetAtt": [bucket, "Arn"]}, {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/models/*"]]}]}
    assert by_action["secretsmanager:GetSecretValue"] == [SECRET]
    assert by_action["logs:PutLogEvents"] == [{"Fn::GetAtt": [logical(template, "ModelArtifactProviderPackagerLogs"), "Arn"]}]
    assert set(by_action) == {
        "s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
        "s3:PutObjectTagging", "s3:GetObjectTagging", "s3:ListBucket",
        "kms:GenerateDataKey", "kms:Decrypt", "secretsmanager:GetSecretValue", "logs:CreateLogStream",
        "logs:PutLogEvents"}

    framework = _statements(template, "ModelArtifactProviderFrameworkRolePolicy")
    assert {a for st in framework for a in _as_list(st["Action"])} == {
        "lambda:InvokeFunction", "lambda:GetFunction", "logs:CreateLogStream", "logs:PutLogEvents"}
    packager = {"Fn::GetAtt": [logical(template, "ModelArtifactProviderPackager"), "Arn"]}
    (invoke,) = [st for st in framework if st["Action"] == "lambda:InvokeFunction"]
    assert invoke["Resource"] == [packager, {"Fn::Join": ["", [packager, ":*"]]}]


def test_nag_clean_with_specific_acknowledgements(synthesized):
    _, template = synthesized
    acks = {(k, rule["id"]) for k, v in template["Resources"].items()
            for rule in v.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
            if rule["id"].startswith("AwsSolutions")}
    bucket = logical(template, "Models")
    fn = logical(template, "ModelArtifactProviderPackager")
    policy = logical(template, "ModelArtifactProviderPackagerPolicy")
    role = logical(template, "ModelArtifactProviderFrameworkRole")
    default_policy = logical(template, "ModelArtifactProviderFrameworkRolePolicy")
    expected_ids = {f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/models/{m}-*.tar.gz]" for m in ("sam", "sd", "lama")}
    expected_ids.add("AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::staged-weights/lama/*]")
    assert {i for k, i in acks if k == policy} == expected_ids
    framework_ack = f"AwsSolutions-IAM5[Resource::<{fn}.Arn>:*]"
    assert {i for k, i in acks if k in (role, default_policy)} == {framework_ack}
    fixture = {bucket, logical(template, "ModelsPolicy")}  # the test bucket's own S1 acknowledgement
    assert {k for k, _ in acks} <= {policy, role, default_policy} | fixture  # scoped: no stack-wide acks
    for v in template["Resources"].values():
        for rule in v.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            assert len(rule["reason"].split()) >= 8


def test_an_unacknowledged_wildcard_fails_synth(tmp_path):
    """The checks are live: a wildcard the construct did not review stops synthesis."""
    from aws_cdk import aws_iam as iam

    def extra(stack):
        provider = stack.node.find_child("ModelArtifactProvider")
        provider.role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::x/*"]))

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        build(tmp_path, extra=extra)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for r in report["pluginReports"] for v in r["violations"]}
    assert rules == {"AwsSolutions-IAM5[Resource::arn:aws:s3:::x/*]"}


def test_cfn_lint_is_clean(synthesized):
    outdir, _ = synthesized
    proc = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), str(outdir / "ArtifactTest.template.json")],
                          capture_output=True, text=True, timeout=300, cwd=outdir)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_props_are_validated_at_synth():
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_s3 as s3

    from mme_constructs import ModelArtifact, ModelArtifactProvider, ModelStore

    stack = cdk.Stack(cdk.App(), "Invalid")
    key = kms.Key(stack, "Key")
    bucket = s3.Bucket(stack, "Bkt")
    common = dict(model_store=ModelStore(bucket, encryption_key=key), source_dirs=[REPO_ROOT / "model_sources" / "sam"])
    with pytest.raises(ValueError, match=r"revision: must be a pinned 40-hex commit"):
        ModelArtifact(stack, "A", model_name="a", **common,
                      weights_spec={"kind": "huggingface", "repo_id": "a/b", "revision": "main", "allow_patterns": ["*"]})
    with pytest.raises(ValueError, match=r"model_name 'a b'"):
        ModelArtifact(stack, "B", model_name="a b", weights_spec=None, **common)
    with pytest.raises(ValueError, match=r"only works with `mme package`"):
        ModelArtifact(stack, "C", model_name="c", weights_spec={"kind": "local", "path": "/tmp"}, **common)
    ModelArtifact(stack, "D", model_name="d", weights_spec=None, **common)
    with pytest.raises(ValueError, match=r"already has a ModelArtifact"):
        ModelArtifact(stack, "D2", model_name="d", weights_spec=None, **common)
    other = ModelArtifactProvider.of(stack, model_store=ModelStore(bucket, encryption_key=key, model_prefix="other/"))
    assert other.node.id.startswith("ModelArtifactProvider") and other.node.id != "ModelArtifactProvider"
    with pytest.raises(ValueError, match=r"model_name 'a b'.*gzip_level must be 0-9.*source_dirs: .* does not exist"):
        ModelArtifact(stack, "E", model_name="a b", weights_spec=None, gzip_level=10,
                      model_store=common["model_store"], source_dirs=[REPO_ROOT / "no-such-folder"])
