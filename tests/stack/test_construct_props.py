"""The constructs used on their own, as other teams do: safe defaults and clear errors on bad props."""

from __future__ import annotations

import re

import aws_cdk as cdk
import pytest
from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from mme_constructs import ModelBucket, ModelStore, ScalableInstanceCount, ServingImage
from mme_constructs.instance_types import GPU_INSTANCE_TYPES

from stack_helpers import make_endpoint as endpoint

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def new_stack():
    return cdk.Stack(cdk.App(), "T")


def test_defaults_are_safe():
    stack = new_stack()
    mme = endpoint(stack)
    t = Template.from_stack(stack)
    model = next(iter(t.find_resources("AWS::SageMaker::Model").values()))["Properties"]
    assert model["EnableNetworkIsolation"] is True
    assert "VpcConfig" not in model and "MultiModelConfig" not in model["PrimaryContainer"]
    assert mme.instance_type == "ml.g5.2xlarge" and mme.volume_kms_key_set is False
    assert mme.variant_name == "AllTraffic" and mme.gpu_instance_type is GPU_INSTANCE_TYPES["ml.g5.2xlarge"]
    (variant,) = next(iter(t.find_resources("AWS::SageMaker::EndpointConfig").values()))["Properties"][
        "ProductionVariants"]
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 600
    assert variant["ModelDataDownloadTimeoutInSeconds"] == 1200


def test_endpoint_name_is_generated_when_omitted_and_named_in_the_role():
    stack = new_stack()
    mme = endpoint(stack, endpoint_name=None)
    assert SAGEMAKER_NAME.match(mme.endpoint_name) and len(mme.endpoint_name) <= 63
    t = Template.from_stack(stack)
    props = next(iter(t.find_resources("AWS::SageMaker::Endpoint").values()))["Properties"]
    assert props["EndpointName"] == mme.endpoint_name
    assert f"/aws/sagemaker/Endpoints/{mme.endpoint_name}:log-stream:*" in str(t.to_json())


def test_endpoint_name_may_be_a_token():
    stack = new_stack()
    name = cdk.CfnParameter(stack, "EndpointName", type="String")
    variant = cdk.CfnParameter(stack, "Variant", type="String")
    mme = endpoint(stack, endpoint_name=name.value_as_string, variant_name=variant.value_as_string)
    t = Template.from_stack(stack)
    props = next(iter(t.find_resources("AWS::SageMaker::Endpoint").values()))["Properties"]
    assert props["EndpointName"] == {"Ref": "EndpointName"}
    assert cdk.Token.is_unresolved(mme.endpoint_name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint_name": "bad_name"}, "endpoint_name 'bad_name'"),
        ({"variant_name": "-x"}, "variant_name '-x'"),
        ({"instance_type": "ml.m5.large"}, "instance_type: 'ml.m5.large' is not a GPU instance type"),
        ({"instance_type": "ml.g5.12xlarge"}, "instance_type: ml.g5.12xlarge has 4 GPUs"),
        ({"instance_type": "ml.p2.xlarge"}, "instance_type: ml.p2.xlarge (NVIDIA K80, compute capability 3.7)"),
        ({"initial_instance_count": 0}, "initial_instance_count must be >= 1"),
        ({"container_startup_health_check_timeout": Duration.seconds(30)}, "container_startup_health_check_timeout"),
        ({"model_data_download_timeout": Duration.hours(2)}, "model_data_download_timeout"),
        ({"vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)}, "vpc_subnets: without vpc"),
        ({"volume_encryption_key": "KEY"}, "volume_encryption_key: ml.g5.2xlarge has local NVMe"),
    ],
)
def test_endpoint_rejects_bad_props(kwargs, message):
    stack = new_stack()
    if kwargs.get("volume_encryption_key") == "KEY":
        kwargs = {"volume_encryption_key": kms.Key(stack, "VolumeKey")}
    with pytest.raises(ValueError, match=re.escape(message)):
        endpoint(stack, **kwargs)


def test_endpoint_reports_every_bad_prop_at_once():
    with pytest.raises(ValueError) as err:
        endpoint(new_stack(), endpoint_name="a_b", variant_name="c_d", initial_instance_count=0,
                 instance_type="ml.t3.medium")
    message = str(err.value)
    assert message.startswith("MultiModelEndpoint T/E: ")
    for prop in ("endpoint_name", "variant_name", "initial_instance_count", "instance_type"):
        assert prop in message, prop


def test_security_groups_alone_are_rejected():
    stack = new_stack()
    group = ec2.SecurityGroup.from_security_group_id(stack, "G", "sg-0123456789abcdef0")
    with pytest.raises(ValueError, match="security_groups: give vpc"):
        endpoint(stack, security_groups=[group])


def test_connections_need_a_vpc():
    mme = endpoint(new_stack())
    with pytest.raises(ValueError, match="only for an endpoint placed in a VPC"):
        _ = mme.connections


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_capacity": 0, "max_capacity": 2}, "min_capacity must be >= 1"),
        ({"min_capacity": 3, "max_capacity": 2}, "max_capacity (2) must be >= min_capacity (3)"),
    ],
)
def test_scalable_instance_count_rejects_bad_capacity(kwargs, message):
    stack = new_stack()
    mme = endpoint(stack, initial_instance_count=2)
    with pytest.raises(ValueError, match=re.escape(message)):
        ScalableInstanceCount(stack, "S", endpoint=mme, **kwargs)


def test_auto_scale_checks_the_initial_count_and_runs_once():
    mme = endpoint(new_stack(), initial_instance_count=2)
    with pytest.raises(ValueError, match=r"min_capacity \(3\) cannot exceed initial_instance_count \(2\)"):
        mme.auto_scale_instance_count(min_capacity=3, max_capacity=4)
    with pytest.raises(ValueError, match=r"max_capacity \(1\) cannot be below initial_instance_count \(2\)"):
        mme.auto_scale_instance_count(min_capacity=1, max_capacity=1)
    mme.auto_scale_instance_count(max_capacity=3)
    with pytest.raises(ValueError, match="already enabled"):
        mme.auto_scale_instance_count(max_capacity=3)


@pytest.mark.parametrize(
    ("method", "kwargs", "message"),
    [
        ("scale_on_invocations", {"invocations_per_instance": 0}, "invocations_per_instance must be > 0"),
        ("scale_on_gpu_utilization", {"target_utilization_percent": 0}, "percentage in (0, 100]"),
        ("scale_on_gpu_utilization", {"target_utilization_percent": 101}, "percentage in (0, 100]"),
        ("scale_on_invocations", {"invocations_per_instance": 10, "scale_in_cooldown": Duration.seconds(10),
                                  "scale_out_cooldown": Duration.minutes(1)}, "scale in slower than out"),
    ],
)
def test_scaling_policies_reject_bad_props(method, kwargs, message):
    scaling = endpoint(new_stack()).auto_scale_instance_count(max_capacity=2)
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(scaling, method)(**kwargs)


def test_model_bucket_prefix_is_normalised_and_validated():
    stack = new_stack()
    bucket = ModelBucket(stack, "B", model_prefix="/archives")
    assert bucket.model_prefix == bucket.model_store.model_prefix == "archives/"
    with pytest.raises(ValueError, match="model_prefix"):
        ModelBucket(new_stack(), "B", model_prefix="a*b/")


def test_model_store_needs_a_literal_prefix():
    stack = new_stack()
    bucket = s3.Bucket.from_bucket_name(stack, "B", "shared-models")
    param = cdk.CfnParameter(stack, "Prefix", type="String")
    with pytest.raises(ValueError, match="model_prefix must be a literal"):
        ModelStore(bucket, model_prefix=param.value_as_string)


def test_serving_image_props_are_checked(tmp_path):
    with pytest.raises(ValueError, match="directory: no Dockerfile"):
        ServingImage.from_asset(new_stack(), "I", directory=tmp_path)
    with pytest.raises(ValueError, match="directory: no Dockerfile.*base_image: must be a literal"):
        ServingImage.from_asset(new_stack(), "I", directory=tmp_path, base_image="two words")
    with pytest.raises(ValueError, match="tag: give a tag"):
        stack = new_stack()
        repo = cdk.aws_ecr.Repository.from_repository_name(stack, "R", "r")
        ServingImage.from_ecr_repository(stack, "I", repository=repo, tag=" ")


def test_packager_side_imports_do_not_start_the_cdk_runtime():
    """`mme package` / the Lambda import mme_constructs.* without aws-cdk-lib (no Node start)."""
    import subprocess
    import sys

    code = (
        "import sys, mme_constructs, mme_constructs.instance_types, mme_constructs.dlc\n"
        "assert 'aws_cdk' not in sys.modules and 'jsii' not in sys.modules, sorted(sys.modules)\n"
        "from mme_constructs import ModelBucket\n"
        "assert 'aws_cdk' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
