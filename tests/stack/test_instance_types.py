"""The GPU instance catalog against AWS's page, and what the endpoint construct makes of every type."""

from __future__ import annotations

import re

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Annotations, Match, Template

from mme_constructs import ModelBucket, MultiModelEndpoint, ServingImage
from mme_constructs.instance_types import (
    GPU_INSTANCE_TYPES,
    MULTI_GPU_INSTANCE_TYPES,
    SUPPORTED_INSTANCE_TYPES,
    GpuInstanceType,
    UnsupportedInstanceType,
    gpu_instance_type,
    resolve_instance_type,
    supports_volume_kms_key,
)

from stack_helpers import REPO_ROOT, make_endpoint as endpoint

#: AWS, "Supported algorithms, frameworks, and instances for multi-model endpoints", GPU table
#: (type -> GPUs, GPU memory GiB), with the GPU model and instance storage of each family.
AWS_MME_GPU_TABLE = {
    "ml.p2.xlarge": (1, 12), "ml.p3.2xlarge": (1, 16),
    "ml.g5.xlarge": (1, 24), "ml.g5.2xlarge": (1, 24), "ml.g5.4xlarge": (1, 24), "ml.g5.8xlarge": (1, 24),
    "ml.g5.16xlarge": (1, 24),
    "ml.g4dn.xlarge": (1, 16), "ml.g4dn.2xlarge": (1, 16), "ml.g4dn.4xlarge": (1, 16), "ml.g4dn.8xlarge": (1, 16),
    "ml.g4dn.16xlarge": (1, 16),
}
FAMILY = {"p2": ("NVIDIA K80", False), "p3": ("NVIDIA V100", False), "g5": ("NVIDIA A10G", True),
          "g4dn": ("NVIDIA T4", True)}
L4 = GpuInstanceType("ml.g6.2xlarge", "NVIDIA L4", 24, instance_storage=True)


def test_catalog_is_exactly_the_documented_table():
    assert list(GPU_INSTANCE_TYPES) == list(AWS_MME_GPU_TABLE)
    for name, (gpus, memory) in AWS_MME_GPU_TABLE.items():
        entry = GPU_INSTANCE_TYPES[name]
        gpu, nvme = FAMILY[name.split(".")[1]]
        assert gpus == 1 and (entry.gpu_model, entry.gpu_memory_gib, entry.instance_storage) == (gpu, memory, nvme)
        assert entry.documented and re.search(r"\[MME\]", entry.source), name
    # the K80 cannot run CUDA 12.4: documented, but not usable with the serving image
    assert SUPPORTED_INSTANCE_TYPES == tuple(n for n in AWS_MME_GPU_TABLE if n != "ml.p2.xlarge")
    assert not set(MULTI_GPU_INSTANCE_TYPES) & set(GPU_INSTANCE_TYPES)
    assert all(count > 1 for count in MULTI_GPU_INSTANCE_TYPES.values())


@pytest.mark.parametrize(("name", "fragment"), [
    ("ml.g5.12xlarge", "ml.g5.12xlarge has 4 GPUs"),
    ("ml.g5.48xlarge", "ml.g5.48xlarge has 8 GPUs"),
    ("ml.g4dn.12xlarge", "ml.g4dn.12xlarge has 4 GPUs"),
    ("ml.p3.8xlarge", "ml.p3.8xlarge has 4 GPUs"),
    ("ml.p4d.24xlarge", "has 8 GPUs"),
    ("ml.p5.48xlarge", "has 8 GPUs"),
    ("ml.g6.12xlarge", "has 4 GPUs"),
    ("ml.g6e.xlarge", "'ml.g6e.xlarge' is not a GPU instance type AWS documents for multi-model endpoints"),
    ("ml.g5.3xlarge", "is not a GPU instance type AWS documents"),
    ("ml.m5.large", "is not a GPU instance type AWS documents"),
    ("ml.p2.xlarge", "ml.p2.xlarge (NVIDIA K80, compute capability 3.7) cannot run the serving image"),
])
def test_refusals_are_one_line_and_name_the_supported_list(name, fragment):
    with pytest.raises(UnsupportedInstanceType) as info:
        gpu_instance_type(name)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert message.endswith("supported: " + ", ".join(SUPPORTED_INSTANCE_TYPES))


def test_caller_described_types():
    assert resolve_instance_type(L4) is L4 and not L4.documented
    # a documented name with the catalog's facts resolves to the catalog entry; other facts are refused
    assert resolve_instance_type(GpuInstanceType("ml.g5.xlarge", "A10G", 24, True)) is GPU_INSTANCE_TYPES["ml.g5.xlarge"]
    with pytest.raises(UnsupportedInstanceType, match=r"ml.p3.2xlarge is a documented type \(NVIDIA V100, 16 GiB, "
                                                      r"no instance storage\); pass its name"):
        resolve_instance_type(GpuInstanceType("ml.p3.2xlarge", "NVIDIA V100", 16, True))
    with pytest.raises(UnsupportedInstanceType, match="ml.g6e.48xlarge has 8 GPUs"):
        resolve_instance_type(GpuInstanceType("ml.g6e.48xlarge", "NVIDIA L40S", 48, True))
    with pytest.raises(UnsupportedInstanceType, match=r"compute capability 3.5\) cannot run"):
        resolve_instance_type(GpuInstanceType("ml.g2.2xlarge", "NVIDIA GRID K520", 4, False, (3, 5)))
    with pytest.raises(ValueError, match=r"^GpuInstanceType: name 'ml.c5.xlarge' is not an NVIDIA GPU family.*"
                                         r"gpu_memory_gib must be a whole number of GiB >= 1, got 0"):
        GpuInstanceType("ml.c5.xlarge", "none", 0, False)
    with pytest.raises(ValueError, match="instance_storage must be True or False"):
        GpuInstanceType("ml.g7.xlarge", "next", 32, "yes")


def test_kms_rule_follows_instance_storage():
    assert [n for n in SUPPORTED_INSTANCE_TYPES if supports_volume_kms_key(n)] == ["ml.p3.2xlarge"]
    assert not supports_volume_kms_key(L4)
    assert supports_volume_kms_key(GpuInstanceType("ml.g7.xlarge", "next", 32, False))


def test_every_supported_type_synthesizes_with_its_kms_rule():
    """One endpoint per supported type on a shared store (with a key): KmsKeyId exactly where allowed."""
    stack = cdk.Stack(cdk.App(), "T")
    bucket = ModelBucket(stack, "B")
    image = ServingImage.from_asset(stack, "I", directory=REPO_ROOT / "container")
    for i, name in enumerate(SUPPORTED_INSTANCE_TYPES):
        mme = MultiModelEndpoint(stack, f"E{i}", image=image, model_store=bucket.model_store, endpoint_name=f"e{i}",
                                 instance_type=name)
        assert mme.instance_type == name and mme.volume_kms_key_set is (name == "ml.p3.2xlarge")
    template = Template.from_stack(stack)
    configs = [c["Properties"] for c in template.find_resources("AWS::SageMaker::EndpointConfig").values()]
    by_type = {c["ProductionVariants"][0]["InstanceType"]: "KmsKeyId" in c for c in configs}
    assert by_type == {n: n == "ml.p3.2xlarge" for n in SUPPORTED_INSTANCE_TYPES}
    assert Annotations.from_stack(stack).find_warning("*", Match.any_value()) == []


def test_undocumented_type_synthesizes_with_a_warning_and_its_kms_rule():
    stack = cdk.Stack(cdk.App(), "T")
    mme = endpoint(stack, instance_type=L4)
    assert mme.instance_type == "ml.g6.2xlarge" and mme.gpu_instance_type is L4 and not mme.volume_kms_key_set
    (warning,) = Annotations.from_stack(stack).find_warning("/T/E", Match.string_like_regexp("ml.g6.2xlarge"))
    text = warning.entry.data
    assert "not in AWS's list of GPU instance types for multi-model endpoints" in text
    assert "NVIDIA L4, 24 GiB, NVMe instance storage" in text and "single-GPU" in text
    config = next(iter(Template.from_stack(stack).find_resources("AWS::SageMaker::EndpointConfig").values()))
    assert config["Properties"]["ProductionVariants"][0]["InstanceType"] == "ml.g6.2xlarge"
    assert "KmsKeyId" not in config["Properties"]

    ebs_only = cdk.Stack(cdk.App(), "U")
    key = kms.Key(ebs_only, "VolumeKey")
    mme = endpoint(ebs_only, instance_type=GpuInstanceType("ml.g7.xlarge", "next", 32, False), volume_encryption_key=key)
    config = next(iter(Template.from_stack(ebs_only).find_resources("AWS::SageMaker::EndpointConfig").values()))
    assert mme.volume_kms_key_set and "KmsKeyId" in config["Properties"]


def test_explicit_volume_key_on_an_nvme_type_is_refused():
    stack = cdk.Stack(cdk.App(), "T")
    with pytest.raises(ValueError, match=r"volume_encryption_key: ml.g6.2xlarge has local NVMe instance storage"):
        endpoint(stack, instance_type=L4, volume_encryption_key=kms.Key(stack, "VolumeKey"))
