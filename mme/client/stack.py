"""Read what a client needs from the deployed stack: its CloudFormation outputs, or the SSM
parameters that hold each model's TargetModel.

The stack name and the output keys (``EndpointName``, ``TargetModel<Name>``) are defined in
:mod:`mme.stack_outputs`, which the stack (``stacks/image_editing_stack.py``) uses to write them;
see docs/usage.md. Clients never guess archive names: a model without its output is an error,
unless the caller gives an explicit override.
"""

from __future__ import annotations

from .errors import ConfigurationError, EndpointError


def read_stack_outputs(stack_name: str, cloudformation) -> dict[str, str]:
    """``{OutputKey: OutputValue}`` of ``stack_name`` via ``DescribeStacks``.

    ``cloudformation`` is a boto3 CloudFormation client. Raises :class:`ConfigurationError` when
    the stack does not exist and :class:`EndpointError` for other API failures.
    """
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    region = getattr(getattr(cloudformation, "meta", None), "region_name", None) or "?"
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = error.get("Message", str(exc))
        if error.get("Code") == "ValidationError" and "does not exist" in message:
            raise ConfigurationError(
                f"stack {stack_name} not found in region {region}: deploy it, or pass --stack-name/--region "
                "(or --endpoint with --target-model NAME=KEY for every model)") from None
        raise EndpointError(f"cannot read the outputs of stack {stack_name}: {error.get('Code', '')}: {message}") from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise ConfigurationError(f"cannot read stack {stack_name}: {exc}") from None
    except BotoCoreError as exc:
        raise EndpointError(f"cannot read the outputs of stack {stack_name}: {exc}") from None
    if not stacks:
        raise ConfigurationError(f"stack {stack_name} not found in region {region}")
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", []) or []}


def read_target_model_parameters(prefix: str, models, ssm) -> dict[str, str]:
    """``{model: TargetModel}`` from the SSM parameters ``<prefix>/<model>`` (one ``GetParameters``).

    ``ssm`` is a boto3 SSM client. Raises :class:`ConfigurationError` naming the missing parameters,
    :class:`EndpointError` for other API failures."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    from ..stack_outputs import target_model_parameter_name

    names = {target_model_parameter_name(prefix, m): m for m in models}
    try:
        answer = ssm.get_parameters(Names=sorted(names))
    except (NoCredentialsError, NoRegionError) as exc:
        raise ConfigurationError(f"cannot read the TargetModel parameters under {prefix}: {exc}") from None
    except (ClientError, BotoCoreError) as exc:
        raise EndpointError(f"cannot read the TargetModel parameters under {prefix}: {exc}") from None
    found = {names[p["Name"]]: p["Value"] for p in answer.get("Parameters", []) if p.get("Name") in names}
    missing = sorted(answer.get("InvalidParameters", []) or set(names) - {p["Name"] for p in answer.get("Parameters", [])})
    if missing:
        raise ConfigurationError(f"no TargetModel parameter {', '.join(missing)}: is the stack deployed with "
                                 "targetModelParameterPrefix, and is the model enabled?")
    return found
