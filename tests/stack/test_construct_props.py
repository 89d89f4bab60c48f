"""The constructs used on their own, as other teams do: safe defaults and clear errors on bad props."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import Duration
from aws_cdk.assertions import Template

from mme_constructs import EndpointAutoscaling, ModelBucket, MultiModelEndpoint, ServingImage
from mme_constructs.instance_types import GPU_INSTANCE_TYPES, gpu_instance_type, supports_volume_kms_key

from stack_helpers import REPO_ROOT


def new_stack():
    return cdk.Stack(cdk.App(), "T")


def endpoint(stack, **kwargs):
    bucket = ModelBucket(stack, "B")
    image = ServingImage(stack, "I", directory=REPO_ROOT / "container")
    props = dict(image=image, bucket=bucket.bucket, encryption_key=bucket.encryption_key, endpoint_name="e")
    props.update(kwargs)
    return MultiModelEndpoint(stack, "E", **props)


def test_defaults_are_safe():
    stack = new_stack()
    mme = endpoint(stack)
    t = Template.from_stack(stack)
    model = next(iter(t.find_resources("AWS::SageMaker::Model").values()))["Properties"]
    assert model["EnableNetworkIsolation"] is True
    assert mme.instance_type == "ml.g5.2xlarge" and mme.volume_kms_key_set is False
    assert mme.variant_name == "AllTraffic"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint_name": "bad_name"}, "endpoint_name"),
        ({"variant_name": "-x"}, "variant_name"),
        ({"instance_type": "ml.m5.large"}, "not a GPU instance type"),
        ({"initial_instance_count": 0}, "initial_instance_count"),
        ({"subnet_ids": ["subnet-0123456789abcdef0"]}, "security_group_ids go together"),
    ],
)
def test_endpoint_rejects_bad_props(kwargs, message):
    with pytest.raises(ValueError, match=message):
        endpoint(new_stack(), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_capacity": 0}, "min_capacity"),
        ({"min_capacity": 3, "max_capacity": 2}, "max_capacity"),
        ({"gpu_utilization_target": 0}, "percentage"),
        ({"invocations_per_instance_target": -1}, "invocations_per_instance_target"),
        ({"scale_in_cooldown": Duration.seconds(10), "scale_out_cooldown": Duration.seconds(60)}, "slower"),
        ({"gpu_count": 0}, "gpu_count"),
    ],
)
def test_autoscaling_rejects_bad_props(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EndpointAutoscaling(new_stack(), "A", endpoint_name="e", **kwargs)


def test_model_bucket_prefix_is_normalised_and_validated():
    stack = new_stack()
    assert ModelBucket(stack, "B", model_prefix="/archives").model_prefix == "archives/"
    with pytest.raises(ValueError, match="model_prefix"):
        ModelBucket(new_stack(), "B", model_prefix="a*b/")


def test_serving_image_needs_a_dockerfile(tmp_path):
    with pytest.raises(ValueError, match="no Dockerfile"):
        ServingImage(new_stack(), "I", directory=tmp_path)


def test_instance_catalog_kms_rule():
    assert supports_volume_kms_key("ml.p3.2xlarge")
    for name, t in GPU_INSTANCE_TYPES.items():
        if name.startswith(("ml.g4dn.", "ml.g5.", "ml.g6.", "ml.g6e.", "ml.p4d.", "ml.p5.")):
            assert t.instance_storage and not supports_volume_kms_key(name), name
    assert gpu_instance_type("ml.g5.12xlarge").gpu_count == 4
    assert gpu_instance_type("ml.g5.2xlarge").total_gpu_memory_gib == 24


def test_packager_side_imports_do_not_start_the_cdk_runtime():
    """`mme package` / the Lambda import mme_constructs.* without aws-cdk-lib (no Node start)."""
    import subprocess
    import sys

    code = (
        "import sys, mme_constructs, mme_constructs.instance_types\n"
        "assert 'aws_cdk' not in sys.modules and 'jsii' not in sys.modules, sorted(sys.modules)\n"
        "from mme_constructs import ModelBucket\n"
        "assert 'aws_cdk' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
