"""Deployment settings read from CDK context (``cdk.json`` or ``-c key=value``), validated.

Every invalid value raises ``SettingsError`` with a one-line message naming the context key,
so ``cdk synth`` stops with that line instead of a jsii stack trace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mme_constructs.instance_types import (
    GPU_INSTANCE_TYPES,
    MULTI_GPU_INSTANCE_TYPES,
    GpuInstanceType,
    gpu_instance_type,
    name_error,
    resolve_instance_type,
)

#: The models this app knows how to package and serve (folders in model_sources/).
KNOWN_MODELS = ("sam", "lama", "sd")

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,58}$")  # + "-mme" stays within SageMaker's 63
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")


class SettingsError(ValueError):
    """A context value is invalid; the message is one line and names the key."""


@dataclass(frozen=True)
class Settings:
    """The validated deployment settings. Field names are the context keys in snake case."""

    instance_type: str = "ml.g5.2xlarge"
    allow_undocumented_instance_type: bool = False
    instance_type_facts: GpuInstanceType | None = None  # an undocumented type's facts (instanceTypeFacts)
    initial_instance_count: int = 1
    min_instance_count: int = 1
    max_instance_count: int = 2
    invocations_per_instance_target: float = 60.0
    gpu_utilization_target: float = 70.0
    scale_out_cooldown_seconds: int = 120
    scale_in_cooldown_seconds: int = 900
    enabled_models: tuple[str, ...] = KNOWN_MODELS
    endpoint_name_prefix: str = "image-editing"
    vpc_subnet_ids: tuple[str, ...] = ()
    vpc_security_group_ids: tuple[str, ...] = ()
    network_isolation: bool = True
    model_prefix: str = "models/"
    base_image: str = ""

    @property
    def gpu_instance_type(self) -> GpuInstanceType:
        """What the endpoint gets: the catalog entry, or the facts given for an undocumented type."""
        return self.instance_type_facts or gpu_instance_type(self.instance_type)

    @property
    def endpoint_name(self) -> str:
        return f"{self.endpoint_name_prefix}-mme"


#: context key -> Settings field
CONTEXT_KEYS = {
    "instanceType": "instance_type",
    "allowUndocumentedInstanceType": "allow_undocumented_instance_type",
    "instanceTypeFacts": "instance_type_facts",
    "initialInstanceCount": "initial_instance_count",
    "minInstanceCount": "min_instance_count",
    "maxInstanceCount": "max_instance_count",
    "invocationsPerInstanceTarget": "invocations_per_instance_target",
    "gpuUtilizationTarget": "gpu_utilization_target",
    "scaleOutCooldownSeconds": "scale_out_cooldown_seconds",
    "scaleInCooldownSeconds": "scale_in_cooldown_seconds",
    "enabledModels": "enabled_models",
    "endpointNamePrefix": "endpoint_name_prefix",
    "vpcSubnetIds": "vpc_subnet_ids",
    "vpcSecurityGroupIds": "vpc_security_group_ids",
    "networkIsolation": "network_isolation",
    "modelPrefix": "model_prefix",
    "baseImage": "base_image",
}


def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise SettingsError(f"context {key}: expected a whole number, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SettingsError(f"context {key}: expected a whole number, got {value!r}") from None
    if number < minimum:
        raise SettingsError(f"context {key}: must be >= {minimum}, got {number}")
    return number


def _float(key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise SettingsError(f"context {key}: expected a number, got {value!r}")
    try:
        number = float(str(value).strip())
    except ValueError:
        raise SettingsError(f"context {key}: expected a number, got {value!r}") from None
    if not low < number <= high:
        raise SettingsError(f"context {key}: must be in ({low:g}, {high:g}], got {number:g}")
    return number


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise SettingsError(f"context {key}: expected true or false, got {value!r}")


def _list(key: str, value: Any) -> tuple[str, ...]:
    """A list from JSON (cdk.json) or from ``-c key=a,b`` / ``-c 'key=["a","b"]'``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise SettingsError(f"context {key}: invalid JSON list ({err.msg})") from None
        else:
            value = [part for part in (p.strip() for p in text.split(",")) if part]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"context {key}: expected a list of strings, got {value!r}")
    return tuple(v.strip() for v in value)


_FACT_KEYS = {"gpuModel": "gpu_model", "gpuMemoryGiB": "gpu_memory_gib", "instanceStorage": "instance_storage"}
_FACTS_EXAMPLE = '{"gpuModel": "NVIDIA L4", "gpuMemoryGiB": 24, "instanceStorage": true}'


def _facts(name: str, value: Any) -> GpuInstanceType:
    """``instanceTypeFacts`` (an object, or its JSON from ``-c``) as the undocumented type ``name``."""
    key = "instanceTypeFacts"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise SettingsError(f"context {key}: invalid JSON object ({err.msg}), e.g. {_FACTS_EXAMPLE}") from None
    if not isinstance(value, dict) or not {"gpuMemoryGiB", "instanceStorage"} <= value.keys():
        raise SettingsError(f"context {key}: give an object with gpuMemoryGiB and instanceStorage (gpuModel "
                            f"optional), e.g. {_FACTS_EXAMPLE}; got {value!r}")
    unknown = sorted(set(value) - set(_FACT_KEYS))
    if unknown:
        raise SettingsError(f"context {key}: unknown field {unknown[0]!r} (fields: {', '.join(_FACT_KEYS)})")
    facts = {"gpu_model": "GPU of an undocumented type", **{_FACT_KEYS[k]: v for k, v in value.items()}}
    facts["gpu_memory_gib"] = _int(f"{key}.gpuMemoryGiB", facts["gpu_memory_gib"], 1)
    facts["instance_storage"] = _bool(f"{key}.instanceStorage", facts["instance_storage"])
    try:
        return GpuInstanceType(name=name, source="instanceTypeFacts (given by the deployer)", **facts)
    except ValueError as err:
        raise SettingsError(f"context {key}: {err}") from None


def _instance_type(raw: dict[str, Any]) -> dict[str, Any]:
    """``instanceType`` (+ ``allowUndocumentedInstanceType``, ``instanceTypeFacts``) as Settings values."""
    name = str(raw["instanceType"] if raw["instanceType"] is not None else Settings.instance_type).strip()
    allow = raw["allowUndocumentedInstanceType"] is not None and _bool(
        "allowUndocumentedInstanceType", raw["allowUndocumentedInstanceType"])
    facts = raw["instanceTypeFacts"]
    if name in GPU_INSTANCE_TYPES and facts is not None:
        raise SettingsError(f"context instanceTypeFacts: {name} is a documented type whose facts come from the "
                            "catalog; remove instanceTypeFacts")
    try:
        if name in GPU_INSTANCE_TYPES or name in MULTI_GPU_INSTANCE_TYPES or not allow:
            return {"instance_type": gpu_instance_type(name).name, "allow_undocumented_instance_type": allow}
    except ValueError as err:
        hint = "" if name in GPU_INSTANCE_TYPES or name in MULTI_GPU_INSTANCE_TYPES else (
            " (a newer single-GPU type AWS has not listed yet: set allowUndocumentedInstanceType=true and "
            "instanceTypeFacts)")
        raise SettingsError(f"context instanceType: {err}{hint}") from None
    if name_error(name):
        raise SettingsError(f"context instanceType: {name_error(name)}")
    if facts is None:
        raise SettingsError(f"context instanceTypeFacts: required for the undocumented type {name} with "
                            f"allowUndocumentedInstanceType, e.g. {_FACTS_EXAMPLE}")
    given = _facts(name, facts)
    try:
        return {"instance_type": name, "allow_undocumented_instance_type": True,
                "instance_type_facts": resolve_instance_type(given)}
    except ValueError as err:
        raise SettingsError(f"context instanceType: {err}") from None


def settings_from_context(get: Callable[[str], Any]) -> Settings:
    """Build ``Settings`` from a context getter (``app.node.try_get_context``)."""
    raw = {key: get(key) for key in CONTEXT_KEYS}
    values: dict[str, Any] = {}

    def given(key: str) -> bool:
        return raw[key] is not None

    values.update(_instance_type(raw))
    for key, minimum in (
        ("initialInstanceCount", 1),
        ("minInstanceCount", 1),
        ("maxInstanceCount", 1),
        ("scaleOutCooldownSeconds", 0),
        ("scaleInCooldownSeconds", 0),
    ):
        if given(key):
            values[CONTEXT_KEYS[key]] = _int(key, raw[key], minimum)
    if given("invocationsPerInstanceTarget"):
        values["invocations_per_instance_target"] = _float(
            "invocationsPerInstanceTarget", raw["invocationsPerInstanceTarget"], 0, 1_000_000
        )
    if given("gpuUtilizationTarget"):
        values["gpu_utilization_target"] = _float("gpuUtilizationTarget", raw["gpuUtilizationTarget"], 0, 100)
    if given("enabledModels"):
        models = _list("enabledModels", raw["enabledModels"])
        unknown = [m for m in models if m not in KNOWN_MODELS]
        if unknown:
            raise SettingsError(
                f"context enabledModels: unknown model {unknown[0]!r} (known: {', '.join(KNOWN_MODELS)})"
            )
        if not models:
            raise SettingsError("context enabledModels: enable at least one model")
        if len(set(models)) != len(models):
            raise SettingsError(f"context enabledModels: duplicate model in {list(models)}")
        values["enabled_models"] = models
    if given("endpointNamePrefix"):
        prefix = str(raw["endpointNamePrefix"]).strip()
        if not _NAME.match(prefix):
            raise SettingsError(
                f"context endpointNamePrefix: {prefix!r} must be 1-59 letters, digits and inner hyphens"
            )
        values["endpoint_name_prefix"] = prefix
    for key, pattern, what in (
        ("vpcSubnetIds", _SUBNET, "subnet-..."),
        ("vpcSecurityGroupIds", _SECURITY_GROUP, "sg-..."),
    ):
        if given(key):
            ids = _list(key, raw[key])
            bad = [i for i in ids if not pattern.match(i)]
            if bad:
                raise SettingsError(f"context {key}: {bad[0]!r} is not an id of the form {what}")
            values[CONTEXT_KEYS[key]] = ids
    if given("networkIsolation"):
        values["network_isolation"] = _bool("networkIsolation", raw["networkIsolation"])
    if given("modelPrefix"):
        prefix = str(raw["modelPrefix"]).strip().strip("/")
        if not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9._/-]*$", prefix):
            raise SettingsError(f"context modelPrefix: {raw['modelPrefix']!r} is not a plain S3 key prefix")
        values["model_prefix"] = prefix + "/"
    if given("baseImage"):
        image = str(raw["baseImage"]).strip()
        if not image or any(c.isspace() for c in image):
            raise SettingsError(f"context baseImage: {raw['baseImage']!r} is not an image reference")
        values["base_image"] = image

    settings = Settings(**values)  # the dataclass defaults fill in what the context leaves out
    if settings.max_instance_count < settings.min_instance_count:
        raise SettingsError(
            f"context maxInstanceCount: {settings.max_instance_count} is below "
            f"minInstanceCount {settings.min_instance_count}"
        )
    if not settings.min_instance_count <= settings.initial_instance_count <= settings.max_instance_count:
        raise SettingsError(
            f"context initialInstanceCount: {settings.initial_instance_count} must lie between "
            f"minInstanceCount {settings.min_instance_count} and maxInstanceCount {settings.max_instance_count}"
        )
    if settings.scale_in_cooldown_seconds < settings.scale_out_cooldown_seconds:
        raise SettingsError(
            f"context scaleInCooldownSeconds: {settings.scale_in_cooldown_seconds} is below "
            f"scaleOutCooldownSeconds {settings.scale_out_cooldown_seconds}; scale in slower than out"
        )
    if bool(settings.vpc_subnet_ids) != bool(settings.vpc_security_group_ids):
        missing = "vpcSecurityGroupIds" if settings.vpc_subnet_ids else "vpcSubnetIds"
        raise SettingsError(f"context {missing}: required when the other VPC setting is given")
    return settings
