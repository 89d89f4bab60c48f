"""The deployed stack's name and the output keys a client reads (standard library only, so the
CDK app, the stack and the client all import these from here).

``EndpointName``
    the SageMaker endpoint to invoke.
``TargetModel<Name>``
    one per enabled model, ``<Name>`` = the model name capitalized (``TargetModelSam``,
    ``TargetModelLama``, ``TargetModelSd``); the value is the ``TargetModel`` to pass to
    ``invoke_endpoint`` (``sam-<digest>.tar.gz``, relative to the model prefix).

The same ``TargetModel`` values are also SSM parameters (String), for apps that do not read
CloudFormation outputs: ``<prefix>/<model>`` (:func:`target_model_parameter_name`), the prefix
``/<endpoint name>/target-model`` unless the ``targetModelParameterPrefix`` context says otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: The stack ``cdk deploy`` creates unless the ``stackName`` context says otherwise, and the one
#: the client reads unless told another (``--stack-name``, ``$MME_STACK_NAME``).
DEFAULT_STACK_NAME = "ImageEditingMme"
#: The output holding the endpoint's name.
ENDPOINT_OUTPUT = "EndpointName"
_TARGET_OUTPUT_PREFIX = "TargetModel"
_TARGET_OUTPUT = re.compile(rf"^{_TARGET_OUTPUT_PREFIX}(?P<name>[A-Z][A-Za-z0-9]*)$")


def target_output_key(model: str) -> str:
    """The output key holding ``model``'s TargetModel (``sam`` -> ``TargetModelSam``)."""
    return _TARGET_OUTPUT_PREFIX + model.capitalize()


def target_models_from_outputs(outputs: Mapping[str, str]) -> dict[str, str]:
    """``{model name: TargetModel}`` from a stack's outputs (``TargetModelSam`` -> ``sam``)."""
    found = {}
    for key, value in outputs.items():
        match = _TARGET_OUTPUT.match(key)
        if match and value:
            found[match["name"].lower()] = value
    return found


def default_target_model_parameter_prefix(endpoint_name: str) -> str:
    """``/<endpoint name>/target-model``: where the stack publishes each model's TargetModel."""
    return f"/{endpoint_name}/target-model"


def target_model_parameter_name(prefix: str, model: str) -> str:
    """The SSM parameter holding ``model``'s TargetModel (``/image-editing-mme/target-model/sam``)."""
    return f"{prefix.rstrip('/')}/{model}"
