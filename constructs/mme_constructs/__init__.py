"""CDK constructs for a GPU Amazon SageMaker multi-model endpoint running TorchServe.

The library is installed on its own (``pip install ./constructs``) and imported as
``mme_constructs``; it never shadows the ``constructs`` package from PyPI.

The construct classes are imported on first use (PEP 562), so ``mme_constructs.packager``
(stdlib + boto3, also used by the ``mme`` CLI and the Lambda) can be imported without
starting aws-cdk-lib's Node runtime.
"""

from importlib import import_module

from mme_constructs.instance_types import (
    GPU_INSTANCE_TYPES,
    GpuInstanceType,
    gpu_instance_type,
    supports_volume_kms_key,
)

_LAZY = {
    "EndpointAutoscaling": "mme_constructs.endpoint_autoscaling",
    "ModelBucket": "mme_constructs.model_bucket",
    "MultiModelEndpoint": "mme_constructs.multi_model_endpoint",
    "ServingImage": "mme_constructs.serving_image",
}

__all__ = [
    "GPU_INSTANCE_TYPES",
    "EndpointAutoscaling",
    "GpuInstanceType",
    "ModelBucket",
    "MultiModelEndpoint",
    "ServingImage",
    "gpu_instance_type",
    "supports_volume_kms_key",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mme_constructs' has no attribute {name!r}")
