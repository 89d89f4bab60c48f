"""CDK constructs for a GPU Amazon SageMaker multi-model endpoint running TorchServe.

The library is installed on its own (``pip install ./constructs``) and imported as
``mme_constructs``; it never shadows the ``constructs`` package from PyPI.

The construct classes are imported on first use (PEP 562), so ``mme_constructs.packager``
(stdlib + boto3, also used by the ``mme`` CLI and the Lambda) can be imported without
starting aws-cdk-lib's Node runtime.
"""

from importlib import import_module

from mme_constructs._version import __version__
from mme_constructs.instance_types import (
    GPU_INSTANCE_TYPES,
    SUPPORTED_INSTANCE_TYPES,
    GpuInstanceType,
    UnsupportedInstanceType,
    gpu_instance_type,
    resolve_instance_type,
    supports_volume_kms_key,
)

_LAZY = {
    "AlarmTopic": "mme_constructs.alarm_topic",
    "CapacitySize": "mme_constructs.deployment",
    "CudaBuild": "mme_constructs.gpu_runtime",
    "DEFAULT_INFERENCE_AMI": "mme_constructs.gpu_runtime",
    "EndpointDeployment": "mme_constructs.deployment",
    "INFERENCE_AMIS": "mme_constructs.gpu_runtime",
    "KEY_POLICY_WARNING": "mme_constructs.key_policies",
    "ModelPackager": "mme_constructs.model_artifact",
    "ModelMetrics": "mme_constructs.model_metrics",
    "ModelAlarms": "mme_constructs.model_alarms",
    "LINE_METRICS": "mme_constructs.request_lines",
    "INSIGHTS_QUERIES": "mme_constructs.request_lines",
    "TORCH_2_10_CU128": "mme_constructs.gpu_runtime",
    "DLC_TAG": "mme_constructs.dlc",
    "DOCUMENTED_METRICS": "mme_constructs.endpoint_metrics",
    "dlc_image_uri": "mme_constructs.dlc",
    "dlc_registry": "mme_constructs.dlc",
    "ENDPOINT_METRICS": "mme_constructs.endpoint_metrics",
    "EndpointAlarms": "mme_constructs.endpoint_alarms",
    "EndpointDashboard": "mme_constructs.endpoint_dashboard",
    "EndpointMetric": "mme_constructs.endpoint_metrics",
    "ModelArtifact": "mme_constructs.model_artifact",
    "ModelArtifactProvider": "mme_constructs.model_artifact",
    "ModelBucket": "mme_constructs.model_bucket",
    "ModelStore": "mme_constructs.model_store",
    "MultiModelEndpoint": "mme_constructs.multi_model_endpoint",
    "MultiModelEndpointBase": "mme_constructs.endpoint_base",
    "NAG_PACKS": "mme_constructs._nag",
    "nag_packs": "mme_constructs._nag",
    "ScalableInstanceCount": "mme_constructs.scaling",
    "ServingImage": "mme_constructs.serving_image",
    "UNENFORCED_WARNING": "mme_constructs.model_store",
    "dlc_base_image": "mme_constructs.serving_image",
}

__all__ = [
    "__version__",
    "CapacitySize",
    "CudaBuild",
    "DEFAULT_INFERENCE_AMI",
    "EndpointDeployment",
    "INFERENCE_AMIS",
    "KEY_POLICY_WARNING",
    "ModelPackager",
    "ModelMetrics",
    "ModelAlarms",
    "LINE_METRICS",
    "INSIGHTS_QUERIES",
    "TORCH_2_10_CU128",
    "DLC_TAG",
    "DOCUMENTED_METRICS",
    "ENDPOINT_METRICS",
    "GPU_INSTANCE_TYPES",
    "AlarmTopic",
    "EndpointAlarms",
    "EndpointDashboard",
    "EndpointMetric",
    "GpuInstanceType",
    "ModelArtifact",
    "ModelArtifactProvider",
    "ModelBucket",
    "ModelStore",
    "MultiModelEndpoint",
    "MultiModelEndpointBase",
    "NAG_PACKS",
    "SUPPORTED_INSTANCE_TYPES",
    "ScalableInstanceCount",
    "ServingImage",
    "UNENFORCED_WARNING",
    "UnsupportedInstanceType",
    "dlc_base_image",
    "dlc_image_uri",
    "dlc_registry",
    "gpu_instance_type",
    "nag_packs",
    "resolve_instance_type",
    "supports_volume_kms_key",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mme_constructs' has no attribute {name!r}")
