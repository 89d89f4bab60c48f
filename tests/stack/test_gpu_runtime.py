"""The endpoint asks for the NVIDIA driver its image needs: the CUDA build facts are the installed
(= the image's) torch wheel's, the AMI table is what SageMaker and CloudFormation accept, the
default AMI runs the build, and a wrong AMI or a GPU the build has no kernels for stops synth with
one error naming the prop."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import aws_cdk as cdk
import pytest
import torch
from aws_cdk.assertions import Template

from mme.serving_image import layout, lockfile
from mme_constructs import ServingImage
from mme_constructs.gpu_runtime import (
    DEFAULT_INFERENCE_AMI,
    DLC_PYTORCH_2_6_CU124,
    INFERENCE_AMIS,
    TORCH_2_10_CU128,
    TORCH_BUILDS,
    CudaBuild,
    ami_error,
    architecture_error,
    default_inference_ami,
    min_driver,
    torch_build,
)
from mme_constructs.instance_types import GPU_INSTANCE_TYPES, SUPPORTED_INSTANCE_TYPES
from stacks.image_editing_stack import serving_image_cuda_build
from stacks.settings import SettingsError, settings_from_context

from stack_helpers import REPO_ROOT, make_endpoint

CUDA_13 = CudaBuild((13, 0), ((7, 5), (8, 0), (8, 6), (9, 0), (10, 0), (12, 0)), description="a CUDA 13 build")


def test_the_torch_build_facts_are_the_installed_wheels():
    """The venv runs the torch the image installs (one set of pins): its facts are the table's."""
    version = importlib.metadata.version("torch")
    assert lockfile.read_lock(layout.TORCH_LOCK)["torch"].version == version
    build = torch_build(version)
    assert build is TORCH_2_10_CU128 and serving_image_cuda_build() is build
    assert torch.version.cuda == build.cuda_version
    assert torch._C._cuda_getArchFlags().split() == [f"sm_{a}{b}" for a, b in build.architectures]
    # the lock pins the CUDA runtime of that version
    runtime = lockfile.read_lock(layout.TORCH_LOCK)["nvidia-cuda-runtime-cu12"].version
    assert runtime.startswith(build.cuda_version + ".")
    with pytest.raises(ValueError, match=r"torch 9\.9\.9: its CUDA version and GPU architectures are not in"):
        torch_build("9.9.9")


def test_every_supported_instance_type_has_kernels_in_the_image():
    """T4 7.5, A10G 8.6, V100 7.0: the image serves every supported type; the K80 (3.7) stays refused."""
    for name in SUPPORTED_INSTANCE_TYPES:
        gpu = GPU_INSTANCE_TYPES[name]
        assert TORCH_2_10_CU128.runs_on(gpu.compute_capability), name
    assert not TORCH_2_10_CU128.runs_on(GPU_INSTANCE_TYPES["ml.p2.xlarge"].compute_capability)
    assert "ml.p2.xlarge" not in SUPPORTED_INSTANCE_TYPES
    # binary compatibility within a major version, PTX forward
    assert TORCH_2_10_CU128.runs_on((8, 9)) and not CUDA_13.runs_on((7, 0))
    assert DLC_PYTORCH_2_6_CU124.runs_on((8, 9)) and DLC_PYTORCH_2_6_CU124.runs_on((7, 2))


def test_the_ami_table_is_what_cloudformation_and_sagemaker_accept():
    import botocore.session
    import cfnlint

    schemas = Path(cfnlint.__file__).parent / "data" / "schemas" / "resources"
    enums = set()
    for path in schemas.glob("*.json"):
        text = path.read_text()
        if '"InferenceAmiVersion"' in text and "AWS::SageMaker::EndpointConfig" in text:
            for match in re.finditer(r'"InferenceAmiVersion":\s*\{[^{}]*?"enum":\s*(\[[^\]]*\])', text):
                enums.update(json.loads(match[1]))
    assert enums == set(INFERENCE_AMIS)
    model = botocore.session.get_session().get_service_model("sagemaker")
    assert set(model.shape_for("ProductionVariantInferenceAmiVersion").enum) == set(INFERENCE_AMIS)


def test_driver_requirements_and_the_default_ami():
    assert (min_driver((12, 8)), min_driver((11, 8)), min_driver((13, 0))) == (525, 450, 580)
    with pytest.raises(ValueError, match="no driver requirement is known for CUDA 14.0"):
        min_driver((14, 0))
    assert default_inference_ami(TORCH_2_10_CU128) == DEFAULT_INFERENCE_AMI == "al2-ami-sagemaker-inference-gpu-3-1"
    assert INFERENCE_AMIS[DEFAULT_INFERENCE_AMI].driver == 550
    assert default_inference_ami(CUDA_13) == "al2023-ami-sagemaker-inference-gpu-4-1"
    assert default_inference_ami(None) == DEFAULT_INFERENCE_AMI
    # every GPU AMI runs a CUDA 12 build (minor-version compatibility from driver 525)
    assert all(ami_error(n, TORCH_2_10_CU128) is None for n, a in INFERENCE_AMIS.items() if a.gpu)


def test_ami_and_architecture_errors_say_what_to_use():
    error = ami_error("al2-ami-sagemaker-inference-gpu-3-1", CUDA_13)
    assert "driver 550" in error and "needs an NVIDIA driver >= 580" in error
    assert error.endswith("use al2023-ami-sagemaker-inference-gpu-4-1")
    assert "has no NVIDIA driver" in ami_error("al2-ami-sagemaker-inference-neuron-2", None)
    assert "is not an InferenceAmiVersion SageMaker accepts" in ami_error("al2-ami-sagemaker-inference-gpu-9", None)
    assert architecture_error((7, 0), CUDA_13) == ("the image's a CUDA 13 build (CUDA 13.0, kernels for 7.5, 8.0, 8.6, "
                                                    "9.0, 10.0, 12.0) has no kernels for compute capability 7.0")
    assert architecture_error(None, CUDA_13) is None and architecture_error((7, 0), None) is None


def _variant(stack) -> dict:
    (config,) = Template.from_stack(stack).find_resources("AWS::SageMaker::EndpointConfig").values()
    (variant,) = config["Properties"]["ProductionVariants"]
    return variant


def test_the_endpoint_names_the_default_ami_for_its_image():
    stack = cdk.Stack(cdk.App(), "T")
    image = ServingImage.from_asset(stack, "I2", directory=REPO_ROOT / "container", cuda_build=TORCH_2_10_CU128)
    mme = make_endpoint(stack, image=image)
    assert mme.inference_ami_version == DEFAULT_INFERENCE_AMI == _variant(stack)["InferenceAmiVersion"]
    stack = cdk.Stack(cdk.App(), "T")
    image = ServingImage.from_asset(stack, "I2", directory=REPO_ROOT / "container", cuda_build=CUDA_13)
    make_endpoint(stack, image=image, instance_type="ml.g5.xlarge")
    assert _variant(stack)["InferenceAmiVersion"] == "al2023-ami-sagemaker-inference-gpu-4-1"
    # an image of unknown build (no cuda_build) still gets an AMI with a CUDA 12 driver
    stack = cdk.Stack(cdk.App(), "T")
    make_endpoint(stack)
    assert _variant(stack)["InferenceAmiVersion"] == DEFAULT_INFERENCE_AMI


def test_a_chosen_ami_is_used_and_a_token_is_accepted():
    stack = cdk.Stack(cdk.App(), "T")
    make_endpoint(stack, inference_ami_version="al2-ami-sagemaker-inference-gpu-2-1")
    assert _variant(stack)["InferenceAmiVersion"] == "al2-ami-sagemaker-inference-gpu-2-1"
    stack = cdk.Stack(cdk.App(), "T")
    ami = cdk.CfnParameter(stack, "Ami", type="String")
    make_endpoint(stack, inference_ami_version=ami.value_as_string)
    assert _variant(stack)["InferenceAmiVersion"] == {"Ref": "Ami"}


@pytest.mark.parametrize(("props", "message"), [
    ({"cuda_build": CUDA_13, "inference_ami_version": "al2-ami-sagemaker-inference-gpu-2"},
     r"inference_ami_version: al2-ami-sagemaker-inference-gpu-2 \(NVIDIA driver 535, CUDA 12\.2, Amazon Linux 2\) "
     r"cannot run the image's a CUDA 13 build .* needs an NVIDIA driver >= 580"),
    ({"inference_ami_version": "al2-ami-sagemaker-inference-neuron-2"}, r"inference_ami_version: .*has no NVIDIA driver"),
    ({"inference_ami_version": "gpu-latest"}, r"inference_ami_version: 'gpu-latest' is not an InferenceAmiVersion"),
    ({"cuda_build": CUDA_13, "instance_type": "ml.p3.2xlarge"},
     r"instance_type ml\.p3\.2xlarge \(NVIDIA V100\): the image's a CUDA 13 build .* no kernels for compute capability 7\.0"),
])
def test_a_wrong_ami_or_gpu_stops_synth_naming_the_prop(props, message):
    stack = cdk.Stack(cdk.App(), "T")
    image = ServingImage.from_asset(stack, "I2", directory=REPO_ROOT / "container",
                                    cuda_build=props.pop("cuda_build", TORCH_2_10_CU128))
    with pytest.raises(ValueError, match=r"^MultiModelEndpoint T/E: .*" + message):
        make_endpoint(stack, image=image, **props)


def test_context_names_the_ami_and_bad_values_are_one_line(cdk_context):
    settings = settings_from_context({**cdk_context, "inferenceAmiVersion": "al2023-ami-sagemaker-inference-gpu-4-1"}.get)
    assert settings.inference_ami_version == "al2023-ami-sagemaker-inference-gpu-4-1"
    assert settings_from_context(cdk_context.get).inference_ami_version == ""
    for bad in ("al2-ami-sagemaker-inference-neuron-2", "latest", 3):
        with pytest.raises(SettingsError, match=r"^context inferenceAmiVersion: .* is not a GPU inference AMI"):
            settings_from_context({**cdk_context, "inferenceAmiVersion": bad}.get)


def test_cuda_build_must_be_a_cuda_build():
    stack = cdk.Stack(cdk.App(), "T")
    with pytest.raises(ValueError, match=r"ServingImage.from_asset: cuda_build: give a mme_constructs.gpu_runtime.CudaBuild"):
        ServingImage.from_asset(stack, "I", directory=REPO_ROOT / "container", cuda_build="12.8")
    with pytest.raises(ValueError, match=r"CudaBuild: cuda must be \(major, minor\)"):
        CudaBuild("12.8", ((8, 6),))
    assert TORCH_BUILDS == {"2.10.0": TORCH_2_10_CU128}
