"""MultiModelEndpoint's behaviour methods, synthesized: grants, metrics, scaling, imports, VPC, roles."""

from __future__ import annotations

import inspect
import json

import aws_cdk as cdk
import pytest
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from mme_constructs import MultiModelEndpoint, MultiModelEndpointBase

from stack_helpers import make_endpoint as endpoint

SM, EP = "AWS/SageMaker", "/aws/sagemaker/Endpoints"
#: helper -> (namespace, metric name, unit, default statistic), as AWS documents them
DOCUMENTED = {
    "metric_invocations": (SM, "Invocations", "None", "Sum"),
    "metric_invocations_per_instance": (SM, "InvocationsPerInstance", "None", "Sum"),
    "metric_invocation_4xx_errors": (SM, "Invocation4XXErrors", "None", "Sum"),
    "metric_invocation_5xx_errors": (SM, "Invocation5XXErrors", "None", "Sum"),
    "metric_model_latency": (SM, "ModelLatency", "Microseconds", "Average"),
    "metric_overhead_latency": (SM, "OverheadLatency", "Microseconds", "Average"),
    "metric_model_loading_wait_time": (SM, "ModelLoadingWaitTime", "Microseconds", "Average"),
    "metric_model_downloading_time": (SM, "ModelDownloadingTime", "Microseconds", "Average"),
    "metric_model_loading_time": (SM, "ModelLoadingTime", "Microseconds", "Average"),
    "metric_model_unloading_time": (SM, "ModelUnloadingTime", "Microseconds", "Average"),
    "metric_model_cache_hit": (SM, "ModelCacheHit", "None", "Average"),
    "metric_loaded_model_count": (EP, "LoadedModelCount", "None", "Average"),
    "metric_cpu_utilization": (EP, "CPUUtilization", "Percent", "Average"),
    "metric_memory_utilization": (EP, "MemoryUtilization", "Percent", "Average"),
    "metric_disk_utilization": (EP, "DiskUtilization", "Percent", "Average"),
    "metric_gpu_utilization": (EP, "GPUUtilization", "Percent", "Average"),
    "metric_gpu_memory_utilization": (EP, "GPUMemoryUtilization", "Percent", "Average"),
}


def new_stack(**kwargs):
    return cdk.Stack(cdk.App(), "T", **kwargs)


def only(template: Template, type_: str) -> dict:
    found = template.find_resources(type_)
    assert len(found) == 1, list(found)
    return next(iter(found.values()))


def test_every_metric_helper_is_pinned():
    helpers = {n for n, _ in inspect.getmembers(MultiModelEndpointBase, inspect.isfunction) if n.startswith("metric_")}
    assert helpers == set(DOCUMENTED) | {"metric_instance_count"}  # the one derived metric, tested below


def test_instance_count_is_the_per_minute_sample_count_of_an_instance_metric():
    stack = new_stack()
    mme = endpoint(stack)
    mme.metric_instance_count().create_alarm(stack, "Alarm", threshold=2, evaluation_periods=1)
    metrics = only(Template.from_stack(stack), "AWS::CloudWatch::Alarm")["Properties"]["Metrics"]
    expression = next(m for m in metrics if "Expression" in m)
    (samples,) = [m for m in metrics if "MetricStat" in m]
    assert expression["Expression"] == f"{samples['Id']} / (PERIOD({samples['Id']}) / 60)"
    assert expression["ReturnData"] is True and samples["ReturnData"] is False
    stat = samples["MetricStat"]
    assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Stat"], stat["Period"]) == (
        EP, "CPUUtilization", "SampleCount", 60)
    assert stat["Metric"]["Dimensions"] == [{"Name": "EndpointName", "Value": "e"},
                                            {"Name": "VariantName", "Value": "AllTraffic"}]


@pytest.mark.parametrize("helper", list(DOCUMENTED))
def test_metric_namespace_name_unit_statistic_and_dimensions(helper):
    stack = new_stack()
    mme = endpoint(stack)
    getattr(mme, helper)().create_alarm(stack, "Alarm", threshold=1, evaluation_periods=1)
    props = only(Template.from_stack(stack), "AWS::CloudWatch::Alarm")["Properties"]
    namespace, name, unit, statistic = DOCUMENTED[helper]
    assert (props["Namespace"], props["MetricName"], props["Unit"], props["Statistic"]) == (
        namespace, name, unit, statistic)
    assert props["Dimensions"] == [{"Name": "EndpointName", "Value": "e"}, {"Name": "VariantName", "Value": "AllTraffic"}]
    assert props["Period"] == 300


def test_metric_options_override_and_generic_metric():
    stack = new_stack()
    mme = endpoint(stack)
    latency = mme.metric_model_latency(statistic="p99", period=Duration.minutes(1), unit=None)
    custom = mme.metric("ModelSetupTime", namespace=SM, dimensions_map={"Extra": "x"})
    assert latency.statistic == "p99" and latency.period.to_seconds() == 60 and latency.unit is None
    assert custom.namespace == SM and custom.metric_name == "ModelSetupTime" and custom.statistic == "Sum"
    assert custom.dimensions == {"EndpointName": "e", "VariantName": "AllTraffic", "Extra": "x"}


def test_grant_invoke_is_this_endpoint_only():
    stack = new_stack()
    mme = endpoint(stack)
    caller = iam.Role(stack, "Caller", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    grant = mme.grant_invoke(caller)
    assert grant.success
    t = Template.from_stack(stack)
    endpoint_id = next(iter(t.find_resources("AWS::SageMaker::Endpoint")))
    policy = [p for p in t.find_resources("AWS::IAM::Policy").values()
              if p["Properties"]["Roles"] == [{"Ref": next(k for k in t.find_resources("AWS::IAM::Role") if "Caller" in k)}]]
    (statement,) = policy[0]["Properties"]["PolicyDocument"]["Statement"]
    assert statement == {"Action": "sagemaker:InvokeEndpoint", "Effect": "Allow", "Resource": {"Ref": endpoint_id}}


def test_auto_scaling_waits_for_the_endpoint_and_tracks_the_gpu_target():
    stack = new_stack()
    mme = endpoint(stack, instance_type="ml.g4dn.2xlarge")
    scaling = mme.auto_scale_instance_count(max_capacity=3)
    scaling.scale_on_invocations(invocations_per_instance=30)
    scaling.scale_on_gpu_utilization(target_utilization_percent=50, scale_in_cooldown=Duration.minutes(20))
    t = Template.from_stack(stack)
    target_id, target = next(iter(t.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").items()))
    assert target["Properties"]["ResourceId"] == "endpoint/e/variant/AllTraffic"
    assert target["DependsOn"] == [next(iter(t.find_resources("AWS::SageMaker::Endpoint")))]
    assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in json.dumps(target["Properties"]["RoleARN"])
    assert not [r for r in t.find_resources("AWS::IAM::Role") if "InstanceCount" in r]  # the service-linked role
    configs = [p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
               for p in t.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()]
    gpu = next(c for c in configs if "CustomizedMetricSpecification" in c)
    inv = next(c for c in configs if "PredefinedMetricSpecification" in c)
    assert gpu["TargetValue"] == 50 and gpu["ScaleInCooldown"] == 1200  # the instance's one GPU and gpu["ScaleOutCooldown"] == 120
    assert gpu["CustomizedMetricSpecification"]["MetricName"] == "GPUUtilization"
    assert inv["TargetValue"] == 30 and inv["ScaleInCooldown"] == 900


def test_imported_endpoint_by_name_grants_metrics_and_scales():
    stack = new_stack()
    imported = MultiModelEndpoint.from_endpoint_name(stack, "Imp", "Shared-Mme", instance_type="ml.g5.xlarge")
    assert imported.gpu_instance_type.gpu_memory_gib == 24
    caller = iam.Role(stack, "Caller", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    imported.grant_invoke(caller)
    imported.metric_model_cache_hit().create_alarm(stack, "Alarm", threshold=0.5, evaluation_periods=1,
                                                   comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD)
    imported.auto_scale_instance_count(max_capacity=2).scale_on_gpu_utilization(target_utilization_percent=60)
    t = Template.from_stack(stack)
    (statement,) = only(t, "AWS::IAM::Policy")["Properties"]["PolicyDocument"]["Statement"]
    # SageMaker writes endpoint ARNs in lower case
    assert json.dumps(statement["Resource"]).endswith(':endpoint/shared-mme"]]}')
    alarm = only(t, "AWS::CloudWatch::Alarm")["Properties"]
    assert {"Name": "EndpointName", "Value": "Shared-Mme"} in alarm["Dimensions"]
    target = only(t, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Properties"]["ResourceId"] == "endpoint/Shared-Mme/variant/AllTraffic" and "DependsOn" not in target
    policy = only(t, "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 60


def test_imported_endpoint_by_arn_and_without_instance_type():
    stack = new_stack()
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/team-mme"
    imported = MultiModelEndpoint.from_endpoint_arn(stack, "Imp", arn)
    assert imported.endpoint_name == "team-mme" and imported.endpoint_arn == arn
    assert imported.env.region == "eu-west-1" and imported.env.account == "123456789012"
    assert imported.gpu_instance_type is None
    # single-GPU types only: the GPU target needs no instance type
    imported.auto_scale_instance_count(max_capacity=2).scale_on_gpu_utilization(target_utilization_percent=60)
    policy = only(Template.from_stack(stack), "AWS::ApplicationAutoScaling::ScalingPolicy")["Properties"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 60


def test_imported_endpoint_checks_its_instance_type():
    with pytest.raises(ValueError, match=r"^MultiModelEndpoint import Imp: instance_type: ml.g5.48xlarge has 8 GPUs"):
        MultiModelEndpoint.from_endpoint_name(new_stack(), "Imp", "shared", instance_type="ml.g5.48xlarge")


def test_model_cache_can_be_disabled_and_environment_set():
    stack = new_stack()
    endpoint(stack, model_cache_enabled=False, environment={"TS_DEFAULT_RESPONSE_TIMEOUT": "300"})
    container = only(Template.from_stack(stack), "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]
    assert container["MultiModelConfig"] == {"ModelCacheSetting": "Disabled"}
    assert container["Environment"] == {"TS_DEFAULT_RESPONSE_TIMEOUT": "300"}


def test_volume_key_only_where_sagemaker_accepts_it():
    stack = new_stack()
    key = kms.Key.from_key_arn(stack, "VolumeKey", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    mme = endpoint(stack, instance_type="ml.p3.2xlarge", volume_encryption_key=key)
    config = only(Template.from_stack(stack), "AWS::SageMaker::EndpointConfig")["Properties"]
    assert mme.volume_kms_key_set and config["KmsKeyId"] == key.key_arn


def test_vpc_gets_a_security_group_and_connections():
    stack = new_stack()
    vpc = ec2.Vpc.from_vpc_attributes(stack, "Vpc", vpc_id="vpc-0123456789abcdef0", availability_zones=["a", "b"],
                                      private_subnet_ids=["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"])
    mme = endpoint(stack, vpc=vpc)
    mme.connections.allow_to(ec2.Peer.ipv4("10.0.0.0/16"), ec2.Port.tcp(443))
    t = Template.from_stack(stack)
    model = only(t, "AWS::SageMaker::Model")["Properties"]
    group_id = next(iter(t.find_resources("AWS::EC2::SecurityGroup")))
    assert model["VpcConfig"] == {"SecurityGroupIds": [{"Fn::GetAtt": [group_id, "GroupId"]}],
                                  "Subnets": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]}


def test_imported_role_gets_the_statements_and_immutable_role_none():
    stack = new_stack()
    role = iam.Role.from_role_arn(stack, "Role", "arn:aws:iam::123456789012:role/platform-sagemaker")
    mme = endpoint(stack, role=role)
    mme.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["arn:aws:s3:::extra/one.json"]))
    assert mme.grant_principal is role
    t = Template.from_stack(stack)
    policy = only(t, "AWS::IAM::Policy")
    assert policy["Properties"]["Roles"] == ["platform-sagemaker"]
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"] for a in
               (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert {"s3:GetObject", "kms:Decrypt", "ecr:BatchGetImage", "logs:PutLogEvents", "cloudwatch:PutMetricData"} <= actions
    model = only(t, "AWS::SageMaker::Model")
    assert model["DependsOn"] == [next(iter(t.find_resources("AWS::IAM::Policy")))]
    assert model["Properties"]["ExecutionRoleArn"] == "arn:aws:iam::123456789012:role/platform-sagemaker"

    stack2 = new_stack()
    frozen = iam.Role.from_role_arn(stack2, "Role", "arn:aws:iam::123456789012:role/platform-sagemaker", mutable=False)
    endpoint(stack2, role=frozen)
    assert not Template.from_stack(stack2).find_resources("AWS::IAM::Policy")
