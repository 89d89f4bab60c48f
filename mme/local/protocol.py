"""The names the local endpoint, its clients and the container API share on the wire."""

from __future__ import annotations

#: The header that names the model of a multi-model endpoint invocation (SageMaker's ``TargetModel``);
#: SageMaker's agent passes it on to the container's invoke call too.
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
#: Header the local endpoint sets on its own (platform) errors, as opposed to a model's answer.
PLATFORM_ERROR_HEADER = "X-Mme-Platform-Error"
