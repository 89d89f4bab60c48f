"""Template assertions for every construct of the stack, synthesized with cdk-nag on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

ENDPOINT = "image-editing-mme"


def resources(template, type_):
    return template.find_resources(type_)


def only(template, type_):
    found = resources(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {list(found)}"
    return next(iter(found.values()))


POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


def policies(template):
    """Every inline and customer-managed IAM policy of the template, by logical id."""
    return {k: v for type_ in POLICY_TYPES for k, v in resources(template, type_).items()}


def statements(template):
    """Every IAM statement of every policy in the template, with its policy's logical id."""
    out = []
    for logical_id, policy in policies(template).items():
        for stmt in policy["Properties"]["PolicyDocument"]["Statement"]:
            out.append((logical_id, stmt))
    return out


def as_list(value):
    return value if isinstance(value, list) else [value]


# --- ModelBucket ---------------------------------------------------------------------------


def model_bucket(template):
    buckets = resources(template, "AWS::S3::Bucket")
    (logical_id,) = [k for k, v in buckets.items() if "LoggingConfiguration" in v["Properties"]]
    return logical_id, buckets[logical_id]


def test_model_bucket_is_kms_encrypted_with_a_rotating_key(default_stack):
    _, _, t = default_stack
    _, bucket = model_bucket(t)
    rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    key_ref = rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::GetAtt"][0]
    assert rule["BucketKeyEnabled"] is True
    key = resources(t, "AWS::KMS::Key")[key_ref]
    assert key["Properties"]["EnableKeyRotation"] is True


def test_model_bucket_blocks_public_access_and_is_versioned(default_stack):
    _, _, t = default_stack
    _, bucket = model_bucket(t)
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_model_bucket_lifecycle_aborts_multipart_and_expires_noncurrent(default_stack):
    _, _, t = default_stack
    _, bucket = model_bucket(t)
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert all(r["Status"] == "Enabled" for r in rules.values())


def test_access_logs_go_to_a_separate_private_bucket(default_stack):
    _, _, t = default_stack
    logical_id, bucket = model_bucket(t)
    log_ref = bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert log_ref != logical_id
    log_bucket = resources(t, "AWS::S3::Bucket")[log_ref]["Properties"]
    assert log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ] == {"SSEAlgorithm": "AES256"}
    assert log_bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert "AccessControl" not in log_bucket  # log delivery is granted by bucket policy, not ACL
    # versioned (a deleted or overwritten log is kept), old versions expire with the model bucket's
    assert log_bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = log_bucket["LifecycleConfiguration"]["Rules"]
    assert (rule["ExpirationInDays"], rule["NoncurrentVersionExpiration"]) == (365, {"NoncurrentDays": 30})


@pytest.mark.parametrize("which", ["model", "logs"])
def test_bucket_policies_deny_non_tls_and_old_tls(default_stack, which):
    _, _, t = default_stack
    logical_id, bucket = model_bucket(t)
    if which == "logs":
        logical_id = bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    (policy,) = [
        p for p in resources(t, "AWS::S3::BucketPolicy").values() if p["Properties"]["Bucket"] == {"Ref": logical_id}
    ]
    tls = {"Bool": {"aws:SecureTransport": "false"}}, {"NumericLessThan": {"s3:TlsVersion": 1.2}}
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
              if s["Effect"] == "Deny" and s["Condition"] in tls]
    assert [s["Condition"] for s in denies] == list(tls)
    for s in denies:
        assert s["Principal"] == {"AWS": "*"} and s["Action"] == "s3:*"


# --- MultiModelEndpoint --------------------------------------------------------------------


def test_model_is_multi_model_with_network_isolation(default_stack):
    _, _, t = default_stack
    model = only(t, "AWS::SageMaker::Model")["Properties"]
    assert model["PrimaryContainer"]["Mode"] == "MultiModel"
    bucket_id, _ = model_bucket(t)
    assert model["PrimaryContainer"]["ModelDataUrl"] == {"Fn::Join": ["", ["s3://", {"Ref": bucket_id}, "/models/"]]}
    assert model["EnableNetworkIsolation"] is True
    assert "VpcConfig" not in model
    assert "container-assets" in json.dumps(model["PrimaryContainer"]["Image"])


def test_endpoint_config_and_endpoint(default_stack):
    _, _, t = default_stack
    config = only(t, "AWS::SageMaker::EndpointConfig")["Properties"]
    (variant,) = config["ProductionVariants"]
    assert variant["InstanceType"] == "ml.g5.2xlarge"
    assert variant["InitialInstanceCount"] == 1
    assert variant["VariantName"] == "AllTraffic"
    assert "KmsKeyId" not in config  # ml.g5 has NVMe instance storage: SageMaker rejects KmsKeyId
    endpoint = only(t, "AWS::SageMaker::Endpoint")["Properties"]
    assert endpoint["EndpointName"] == ENDPOINT


def test_kms_key_id_is_set_for_instance_types_without_instance_storage(synth_stack):
    _, _, t = synth_stack(instanceType="ml.p3.2xlarge")
    config = only(t, "AWS::SageMaker::EndpointConfig")["Properties"]
    key_id = config["KmsKeyId"]["Fn::GetAtt"]
    assert key_id[1] == "Arn" and key_id[0] in resources(t, "AWS::KMS::Key")
    # no SM2 acknowledgement is needed (or present) when the key is set
    meta = only(t, "AWS::SageMaker::EndpointConfig").get("Metadata", {})
    assert "AwsSolutions-SM2" not in json.dumps(meta)


def test_vpc_and_network_isolation_off(synth_stack):
    _, _, t = synth_stack(
        vpcSubnetIds=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        vpcSecurityGroupIds=["sg-0123456789abcdef0"],
        networkIsolation=False,
    )
    model = only(t, "AWS::SageMaker::Model")["Properties"]
    assert model["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    }
    assert model["EnableNetworkIsolation"] is False
    # the packager and its Provider framework run in the same subnets, with Lambda's VPC access policy
    functions = resources(t, "AWS::Lambda::Function")
    assert len(functions) == 2
    for function in functions.values():
        props = function["Properties"]
        assert props["VpcConfig"] == {"SubnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
                                      "SecurityGroupIds": ["sg-0123456789abcdef0"]}
        role = resources(t, "AWS::IAM::Role")[props["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert role["ManagedPolicyArns"] == [{"Fn::Join": ["", [
            "arn:", {"Ref": "AWS::Partition"}, ":iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"]]}]


def execution_role_statements(template):
    model = only(template, "AWS::SageMaker::Model")["Properties"]
    role_id = model["ExecutionRoleArn"]["Fn::GetAtt"][0]
    return [
        stmt
        for logical_id, stmt in statements(template)
        if {"Ref": role_id} in policies(template)[logical_id]["Properties"]["Roles"]
    ]


def test_execution_role_is_least_privilege(default_stack):
    _, _, t = default_stack
    stmts = execution_role_statements(t)
    by_action = {}
    for s in stmts:
        assert s["Effect"] == "Allow"
        for action in as_list(s["Action"]):
            by_action.setdefault(action, []).append(s)
    assert not [a for a in by_action if a.endswith("*")], "no wildcard actions"
    assert set(by_action) == {
        "s3:GetObject",
        "s3:ListBucket",
        "kms:Decrypt",
        "logs:DescribeLogStreams",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "cloudwatch:PutMetricData",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "ecr:GetAuthorizationToken",
    }
    bucket_id, _ = model_bucket(t)
    (get,) = by_action["s3:GetObject"]
    assert get["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/models/*"]]}
    (lst,) = by_action["s3:ListBucket"]
    assert lst["Condition"] == {"StringLike": {"s3:prefix": ["models/*"]}}
    (dec,) = by_action["kms:Decrypt"]
    assert dec["Resource"]["Fn::GetAtt"][1] == "Arn"
    assert dec["Condition"] == {  # only through S3, only for this bucket
        "StringEquals": {"kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".",
                                                              {"Ref": "AWS::URLSuffix"}]]}},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [
            {"Fn::GetAtt": [bucket_id, "Arn"]}, {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/models/*"]]}]}}
    (pull,) = by_action["ecr:BatchGetImage"]
    assert "container-assets" in json.dumps(pull["Resource"])
    assert "logs:CreateLogGroup" not in by_action  # the stack owns the log group; SageMaker never creates it
    (logs,) = by_action["logs:PutLogEvents"]
    assert f"log-group:/aws/sagemaker/Endpoints/{ENDPOINT}:log-stream:*" in json.dumps(logs["Resource"])
    # "*" only where the action has no resource-level form
    star = sorted({a for s in stmts if s["Resource"] == "*" for a in as_list(s["Action"])})
    assert star == ["cloudwatch:PutMetricData", "ecr:GetAuthorizationToken"]
    (metrics,) = by_action["cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}}


def test_model_waits_for_its_policies(default_stack):
    _, _, t = default_stack
    model = only(t, "AWS::SageMaker::Model")
    assert set(model["DependsOn"]) == {p for p in policies(t) if p.startswith("Endpoint")}
    assert not [p for p in resources(t, "AWS::IAM::Policy") if p.startswith("Endpoint")]  # one managed policy


# --- ScalableInstanceCount -----------------------------------------------------------------


def test_autoscaling_target_and_both_policies(default_stack):
    _, _, t = default_stack
    target_id, target = next(iter(resources(t, "AWS::ApplicationAutoScaling::ScalableTarget").items()))
    props = target["Properties"]
    assert props["ResourceId"] == f"endpoint/{ENDPOINT}/variant/AllTraffic"
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert props["ServiceNamespace"] == "sagemaker"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (1, 2)
    endpoint_id = next(iter(resources(t, "AWS::SageMaker::Endpoint")))
    assert endpoint_id in target["DependsOn"]

    policies = {
        p["Properties"]["PolicyName"]: p["Properties"]
        for p in resources(t, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    }
    assert set(policies) == {f"{ENDPOINT}-invocations-per-instance", f"{ENDPOINT}-gpu-utilization"}
    for p in policies.values():
        assert p["PolicyType"] == "TargetTrackingScaling"
        assert p["ScalingTargetId"] == {"Ref": target_id}
        cfg = p["TargetTrackingScalingPolicyConfiguration"]
        assert cfg["ScaleInCooldown"] > cfg["ScaleOutCooldown"]
    inv = policies[f"{ENDPOINT}-invocations-per-instance"]["TargetTrackingScalingPolicyConfiguration"]
    assert inv["PredefinedMetricSpecification"] == {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
    assert inv["TargetValue"] == 60
    gpu = policies[f"{ENDPOINT}-gpu-utilization"]["TargetTrackingScalingPolicyConfiguration"]
    metric = gpu["CustomizedMetricSpecification"]
    assert metric["Namespace"] == "/aws/sagemaker/Endpoints"
    assert metric["MetricName"] == "GPUUtilization"
    assert {d["Name"]: d["Value"] for d in metric["Dimensions"]} == {"EndpointName": ENDPOINT, "VariantName": "AllTraffic"}
    assert gpu["TargetValue"] == 70


def test_g4dn_through_the_stack_one_gpu_target_and_no_kms_key_id(synth_stack):
    _, stack, t = synth_stack(instanceType="ml.g4dn.xlarge", maxInstanceCount=3, gpuUtilizationTarget=50)
    config = only(t, "AWS::SageMaker::EndpointConfig")["Properties"]
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.g4dn.xlarge"
    assert "KmsKeyId" not in config  # NVMe instance storage
    assert stack.endpoint.gpu_instance_type.gpu_model == "NVIDIA T4"
    gpu = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in resources(t, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if "CustomizedMetricSpecification" in p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    ]
    assert gpu[0]["TargetValue"] == 50  # the instance's one GPU
    target = only(t, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert target["MaxCapacity"] == 3


# --- ServingImage and outputs --------------------------------------------------------------


def test_serving_image_is_the_containers_dockerfile_on_its_own_base(default_stack):
    app, stack, t = default_stack
    manifest = json.loads((Path(app.outdir) / "ImageEditingMme.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["platform"] == "linux/amd64"
    assert "dockerBuildArgs" not in image["source"]  # the Dockerfile's ARG BASE_IMAGE default builds
    staged = Path(app.outdir) / image["source"]["directory"]
    assert (staged / "requirements-torch.lock").is_file() and (staged / "Dockerfile").is_file()
    assert t.find_outputs("ServingBaseImage")["ServingBaseImage"]["Value"] == \
        "public.ecr.aws/docker/library/debian:trixie-slim"
    assert t.find_outputs("InferenceAmiVersion")["InferenceAmiVersion"]["Value"] == \
        "al2-ami-sagemaker-inference-gpu-3-1"


def test_base_image_can_be_overridden(synth_stack):
    mirror = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/debian:trixie-slim"
    app, _, _ = synth_stack(baseImage=mirror)
    manifest = json.loads((Path(app.outdir) / "ImageEditingMme.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerBuildArgs"]["BASE_IMAGE"] == mirror


def test_outputs(default_stack):
    _, _, t = default_stack
    outputs = t.find_outputs("*")
    assert {"EndpointName", "VariantName", "ModelBucketName", "ModelPrefix"} <= set(outputs)
    assert outputs["VariantName"]["Value"] == "AllTraffic"
    assert outputs["ModelPrefix"]["Value"] == "models/"
    t.has_output("EndpointName", {"Value": Match.object_like({"Fn::GetAtt": Match.any_value()})})
    # uploads under the prefix must name the key by this ARN (bucket policy)
    key_id, _ = next(iter(resources(t, "AWS::KMS::Key").items()))
    assert outputs["ModelKeyArn"]["Value"] == {"Fn::GetAtt": [key_id, "Arn"]}


# --- Model artifacts -----------------------------------------------------------------------


def artifacts(template):
    return template.find_resources("Custom::ModelArtifact")


def test_one_artifact_per_enabled_model_with_its_target_model_output(default_stack):
    _, _, t = default_stack
    found = artifacts(t)
    names = sorted(r["Properties"]["ModelName"] for r in found.values())
    assert names == ["lama", "sam", "sd"]
    outputs = t.find_outputs("*")
    for name in names:
        out = outputs[f"TargetModel{name.capitalize()}"]
        (logical_id,) = [k for k, r in found.items() if r["Properties"]["ModelName"] == name]
        assert out["Value"] == {"Fn::GetAtt": [logical_id, "TargetModel"]}
        assert out["Description"] == f"TargetModel of {name}"
    # one shared packager function for all models
    functions = [f for f in resources(t, "AWS::Lambda::Function").values()
                 if "packager" in json.dumps(f["Properties"].get("Handler", ""))]
    assert len(functions) == 1


def test_enabled_models_select_the_artifacts(synth_stack):
    _, _, t = synth_stack(enabledModels=["sam"])
    assert [r["Properties"]["ModelName"] for r in artifacts(t).values()] == ["sam"]
    outputs = t.find_outputs("*")
    assert "TargetModelSam" in outputs and "TargetModelSd" not in outputs


def test_artifacts_write_under_the_endpoints_model_prefix(synth_stack):
    _, _, t = synth_stack(modelPrefix="archives/v2/")
    for r in artifacts(t).values():
        assert r["Properties"]["Prefix"] == "archives/v2/"
    model = only(t, "AWS::SageMaker::Model")["Properties"]
    assert model["PrimaryContainer"]["ModelDataUrl"]["Fn::Join"][1][-1] == "/archives/v2/"
