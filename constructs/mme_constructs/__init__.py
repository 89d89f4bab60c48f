"""CDK constructs for a GPU Amazon SageMaker multi-model endpoint running TorchServe.

The library is installed on its own (``pip install ./constructs``) and imported as
``mme_constructs``; it never shadows the ``constructs`` package from PyPI.
"""

from mme_constructs.endpoint_autoscaling import EndpointAutoscaling
from mme_constructs.instance_types import (
    GPU_INSTANCE_TYPES,
    GpuInstanceType,
    gpu_instance_type,
    supports_volume_kms_key,
)
from mme_constructs.model_bucket import ModelBucket
from mme_constructs.multi_model_endpoint import MultiModelEndpoint
from mme_constructs.serving_image import ServingImage

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
