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

from mme_constructs.gpu_runtime import INFERENCE_AMIS
from mme_constructs.instance_types import (
    DEFAULT_INSTANCE_TYPE,
    GPU_INSTANCE_TYPES,
    MULTI_GPU_INSTANCE_TYPES,
    GpuInstanceType,
    gpu_instance_type,
    name_error,
    resolve_instance_type,
)
from mme_constructs.model_store import archive_writer_arn_error
from mme_constructs.packager.key_prefix import checked_key_prefix

from mme.models import LATENCY_ALARM_P90_MS, MODELS
from mme.stack_outputs import default_target_model_parameter_prefix


_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,58}$")  # + "-mme" stays within SageMaker's 63
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")


class SettingsError(ValueError):
    """A context value is invalid; the message is one line and names the key."""


@dataclass(frozen=True)
class StackSettings:
    """The validated settings of the stack (from CDK context). Field names are the context keys in snake case."""

    instance_type: str = DEFAULT_INSTANCE_TYPE
    allow_undocumented_instance_type: bool = False
    instance_type_facts: GpuInstanceType | None = None  # an undocumented type's facts (instanceTypeFacts)
    initial_instance_count: int = 1
    min_instance_count: int = 1
    max_instance_count: int = 2
    invocations_per_instance_target: float = 60.0
    gpu_utilization_target: float = 70.0
    scale_out_cooldown_seconds: int = 120
    scale_in_cooldown_seconds: int = 900
    enabled_models: tuple[str, ...] = MODELS
    endpoint_name_prefix: str = "image-editing"
    vpc_subnet_ids: tuple[str, ...] = ()
    vpc_security_group_ids: tuple[str, ...] = ()
    network_isolation: bool = True
    model_cache_enabled: bool = True
    model_prefix: str = "models/"
    base_image: str = ""
    inference_ami_version: str = ""  # "": the endpoint's default for the image's CUDA build
    alarm_topic_arn: str = ""
    alarm_emails: tuple[str, ...] = ()
    #: (EndpointAlarms prop, value in the unit of ALARM_THRESHOLDS, or None for "off") for each
    #: threshold the context sets; the construct's own defaults apply to the others
    alarm_thresholds: tuple[tuple[str, float | None], ...] = ()
    log_retention_days: int = 365
    retain_log_groups: bool = False
    #: principals besides the packager that may write archives under the model prefix
    archive_writer_arns: tuple[str, ...] = ()
    #: how an endpoint update rolls out: one of DEPLOYMENTS ("auto": the stack's choice by instance count)
    deployment: str = "auto"
    deployment_wait_minutes: int | None = None  # None: the policy's own default
    deployment_bake_minutes: int | None = None
    #: SSM prefix of the TargetModel parameters; "" = /<endpoint name>/target-model, "off" = none
    target_model_parameter_prefix: str = ""
    retired_archive_expiration_days: int = 14
    #: per-model alarms: the 5xx % (None: off) and each model's latency p90 in ms (None: off)
    model_alarm_5xx_error_rate_percent: float | None = 5.0
    model_alarm_latency_p90_ms: tuple[tuple[str, float | None], ...] = tuple(LATENCY_ALARM_P90_MS.items())
    #: write SD's prompts into the request lines (they can be personal data: off by default)
    log_prompts: bool = False

    @property
    def gpu_instance_type(self) -> GpuInstanceType:
        """What the endpoint gets: the catalog entry, or the facts given for an undocumented type."""
        return self.instance_type_facts or gpu_instance_type(self.instance_type)

    @property
    def endpoint_name(self) -> str:
        return f"{self.endpoint_name_prefix}-mme"

    @property
    def target_model_parameters(self) -> str | None:
        """The SSM prefix the stack publishes each model's TargetModel under, ``None`` for none."""
        if self.target_model_parameter_prefix == "off":
            return None
        return self.target_model_parameter_prefix or default_target_model_parameter_prefix(self.endpoint_name)


#: context key -> StackSettings field
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
    "modelCacheEnabled": "model_cache_enabled",
    "modelPrefix": "model_prefix",
    "baseImage": "base_image",
    "inferenceAmiVersion": "inference_ami_version",
    "alarmTopicArn": "alarm_topic_arn",
    "alarmEmail": "alarm_emails",
    "logRetentionDays": "log_retention_days",
    "retainLogGroups": "retain_log_groups",
    "archiveWriterArns": "archive_writer_arns",
    "deployment": "deployment",
    "deploymentWaitMinutes": "deployment_wait_minutes",
    "deploymentBakeMinutes": "deployment_bake_minutes",
    "targetModelParameterPrefix": "target_model_parameter_prefix",
    "retiredArchiveExpirationDays": "retired_archive_expiration_days",
    "modelAlarm5xxErrorRatePercent": "model_alarm_5xx_error_rate_percent",
    "modelAlarmLatencyP90Ms": "model_alarm_latency_p90_ms",
    "logPrompts": "log_prompts",
}

#: ``deployment`` values: the stack's choice by instance count, one of the guardrail policies of
#: ``mme_constructs.EndpointDeployment``, or "none" (SageMaker's update without guardrails or rollback)
DEPLOYMENTS = ("auto", "all-at-once", "canary", "linear", "rolling", "none")
_PARAMETER_PREFIX = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")

#: alarm context key -> (EndpointAlarms prop, unit, lowest, highest); the value "off" leaves the
#: alarm out. Units: "percent", "ratio", "ms" and "minutes" (the stack turns the last two into Durations).
ALARM_THRESHOLDS = {
    "alarm5xxErrorRatePercent": ("server_error_rate_percent", "percent", 0, 100),
    "alarmModelLatencyP90Ms": ("model_latency_p90", "ms", 0, 3_600_000),
    "alarmModelLoadingWaitP90Ms": ("model_loading_wait_p90", "ms", 0, 3_600_000),
    "alarmCacheHitRatioMin": ("cache_hit_ratio_min", "ratio", 0, 1),
    "alarmGpuMemoryPercent": ("gpu_memory_utilization_percent", "percent", 0, 100),
    "alarmDiskPercent": ("disk_utilization_percent", "percent", 0, 100),
    "alarmInstancesAtMaxMinutes": ("instances_at_max_for", "minutes", 0, 1440),
}

#: Retention periods CloudWatch Logs accepts (AWS::Logs::LogGroup RetentionInDays)
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


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
    """``instanceType`` (+ ``allowUndocumentedInstanceType``, ``instanceTypeFacts``) as StackSettings values."""
    name = str(raw.get("instanceType", StackSettings.instance_type)).strip()
    allow = raw.get("allowUndocumentedInstanceType") is not None and _bool(
        "allowUndocumentedInstanceType", raw["allowUndocumentedInstanceType"])
    facts = raw.get("instanceTypeFacts")
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


def settings_from_context(get: Callable[[str], Any]) -> StackSettings:
    """Build ``StackSettings`` from a context getter (``app.node.try_get_context``)."""
    raw = {key: get(key) for key in (*CONTEXT_KEYS, *ALARM_THRESHOLDS)}
    given = {key: value for key, value in raw.items() if value is not None}
    values = {**_endpoint_values(given), **_scaling_values(given), **_network_values(given),
              **_operations_values(given), **_rollout_values(given), **_model_alarm_values(given)}
    settings = StackSettings(**values)  # the dataclass defaults fill in what the context leaves out
    _check_relations(settings)
    return settings


def _endpoint_values(given: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    values.update(_instance_type(given))
    if "enabledModels" in given:
        values["enabled_models"] = _enabled_models(_list("enabledModels", given["enabledModels"]))
    if "endpointNamePrefix" in given:
        prefix = str(given["endpointNamePrefix"]).strip()
        if not _NAME.match(prefix):
            raise SettingsError(
                f"context endpointNamePrefix: {prefix!r} must be 1-59 letters, digits and inner hyphens"
            )
        values["endpoint_name_prefix"] = prefix
    if "modelPrefix" in given:
        try:
            values["model_prefix"] = checked_key_prefix(str(given["modelPrefix"]).strip(), "context modelPrefix")
        except ValueError as err:
            raise SettingsError(str(err)) from None
    if "modelCacheEnabled" in given:
        values["model_cache_enabled"] = _bool("modelCacheEnabled", given["modelCacheEnabled"])
    if "baseImage" in given:
        image = str(given["baseImage"]).strip()
        if not image or any(c.isspace() for c in image):
            raise SettingsError(f"context baseImage: {given['baseImage']!r} is not an image reference")
        values["base_image"] = image
    if "inferenceAmiVersion" in given:
        values["inference_ami_version"] = _inference_ami(given["inferenceAmiVersion"])
    return values


def _inference_ami(value: Any) -> str:
    name = str(value).strip()
    gpu_amis = [n for n, ami in INFERENCE_AMIS.items() if ami.gpu]
    if name not in gpu_amis:
        raise SettingsError(f"context inferenceAmiVersion: {value!r} is not a GPU inference AMI SageMaker accepts "
                            f"(one of {', '.join(gpu_amis)})")
    return name


def _enabled_models(models: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SettingsError(f"context enabledModels: unknown model {unknown[0]!r} (known: {', '.join(MODELS)})")
    if not models:
        raise SettingsError("context enabledModels: enable at least one model")
    if len(set(models)) != len(models):
        raise SettingsError(f"context enabledModels: duplicate model in {list(models)}")
    return models


def _scaling_values(given: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, minimum in (
        ("initialInstanceCount", 1),
        ("minInstanceCount", 1),
        ("maxInstanceCount", 1),
        ("scaleOutCooldownSeconds", 0),
        ("scaleInCooldownSeconds", 0),
    ):
        if key in given:
            values[CONTEXT_KEYS[key]] = _int(key, given[key], minimum)
    if "invocationsPerInstanceTarget" in given:
        values["invocations_per_instance_target"] = _float(
            "invocationsPerInstanceTarget", given["invocationsPerInstanceTarget"], 0, 1_000_000
        )
    if "gpuUtilizationTarget" in given:
        values["gpu_utilization_target"] = _float("gpuUtilizationTarget", given["gpuUtilizationTarget"], 0, 100)
    return values


def _network_values(given: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, pattern, what in (
        ("vpcSubnetIds", _SUBNET, "subnet-..."),
        ("vpcSecurityGroupIds", _SECURITY_GROUP, "sg-..."),
    ):
        if key in given:
            ids = _list(key, given[key])
            bad = [i for i in ids if not pattern.match(i)]
            if bad:
                raise SettingsError(f"context {key}: {bad[0]!r} is not an id of the form {what}")
            values[CONTEXT_KEYS[key]] = ids
    if "networkIsolation" in given:
        values["network_isolation"] = _bool("networkIsolation", given["networkIsolation"])
    if "archiveWriterArns" in given:
        arns = _list("archiveWriterArns", given["archiveWriterArns"])
        errors = [e for e in map(archive_writer_arn_error, arns) if e]
        if errors:
            raise SettingsError(f"context archiveWriterArns: {errors[0]}")
        values["archive_writer_arns"] = arns
    return values


def _operations_values(given: dict[str, Any]) -> dict[str, Any]:
    """Alarm topic, alarm thresholds, log retention and removal."""
    values: dict[str, Any] = {}
    if "alarmTopicArn" in given:
        arn = str(given["alarmTopicArn"]).strip()
        if not _TOPIC_ARN.match(arn):
            raise SettingsError(f"context alarmTopicArn: {arn!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)")
        values["alarm_topic_arn"] = arn
    if "alarmEmail" in given:
        emails = _list("alarmEmail", given["alarmEmail"])
        bad = [e for e in emails if not _EMAIL.match(e)]
        if bad:
            raise SettingsError(f"context alarmEmail: {bad[0]!r} is not an email address")
        values["alarm_emails"] = emails
    values["alarm_thresholds"] = tuple(
        (prop, _threshold(key, given[key], unit, low, high))
        for key, (prop, unit, low, high) in ALARM_THRESHOLDS.items() if key in given)
    if "logRetentionDays" in given:
        days = _int("logRetentionDays", given["logRetentionDays"], 1)
        if days not in LOG_RETENTION_DAYS:
            raise SettingsError(f"context logRetentionDays: {days} is not a period CloudWatch Logs accepts "
                                f"({', '.join(map(str, LOG_RETENTION_DAYS))})")
        values["log_retention_days"] = days
    if "retainLogGroups" in given:
        values["retain_log_groups"] = _bool("retainLogGroups", given["retainLogGroups"])
    return values


def _rollout_values(given: dict[str, Any]) -> dict[str, Any]:
    """How updates roll out, and how the archives they replace stay servable."""
    values: dict[str, Any] = {}
    if "deployment" in given:
        kind = str(given["deployment"]).strip().lower()
        if kind not in DEPLOYMENTS:
            raise SettingsError(f"context deployment: {given['deployment']!r} is not one of {', '.join(DEPLOYMENTS)}")
        values["deployment"] = kind
    for key in ("deploymentWaitMinutes", "deploymentBakeMinutes"):
        if key in given:
            minutes = _int(key, given[key], 0)
            if minutes > 60:
                raise SettingsError(f"context {key}: SageMaker waits at most 60 minutes, got {minutes}")
            values[CONTEXT_KEYS[key]] = minutes
    if "targetModelParameterPrefix" in given:
        prefix = str(given["targetModelParameterPrefix"]).strip().rstrip("/")
        if prefix != "off" and (not _PARAMETER_PREFIX.match(prefix) or len(prefix) > 900
                                or prefix.lower().startswith(("/aws", "/ssm"))):
            raise SettingsError(f"context targetModelParameterPrefix: {given['targetModelParameterPrefix']!r} must be "
                                "'off' or an SSM path like /image-editing/target-model (letters, digits, '.', '-', "
                                "'_'; not under /aws or /ssm)")
        values["target_model_parameter_prefix"] = prefix
    if "retiredArchiveExpirationDays" in given:
        values["retired_archive_expiration_days"] = _int("retiredArchiveExpirationDays",
                                                         given["retiredArchiveExpirationDays"], 1)
    return values


def _model_alarm_values(given: dict[str, Any]) -> dict[str, Any]:
    """Per-model alarms (``off`` leaves one out) and whether prompts are logged."""
    values: dict[str, Any] = {}
    if "modelAlarm5xxErrorRatePercent" in given:
        values["model_alarm_5xx_error_rate_percent"] = _threshold(
            "modelAlarm5xxErrorRatePercent", given["modelAlarm5xxErrorRatePercent"], "percent", 0, 100)
    if "modelAlarmLatencyP90Ms" in given:
        values["model_alarm_latency_p90_ms"] = _model_latencies(given["modelAlarmLatencyP90Ms"])
    if "logPrompts" in given:
        values["log_prompts"] = _bool("logPrompts", given["logPrompts"])
    return values


def _model_latencies(value: Any) -> tuple[tuple[str, float | None], ...]:
    """``modelAlarmLatencyP90Ms``: ``off`` (no latency alarms), or an object ``{model: ms or "off"}``
    (JSON from ``-c``) over the defaults of ``mme.models.LATENCY_ALARM_P90_MS``."""
    key = "modelAlarmLatencyP90Ms"
    if isinstance(value, str) and value.strip().lower() == "off":
        return tuple((m, None) for m in LATENCY_ALARM_P90_MS)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise SettingsError(f"context {key}: 'off' or a JSON object like {{\"sam\": 2000}} ({err.msg})") from None
    if not isinstance(value, dict):
        raise SettingsError(f"context {key}: 'off' or an object of model -> milliseconds, got {value!r}")
    unknown = sorted(set(value) - set(MODELS))
    if unknown:
        raise SettingsError(f"context {key}: unknown model {unknown[0]!r} (known: {', '.join(MODELS)})")
    merged = dict(LATENCY_ALARM_P90_MS)
    merged.update({m: _threshold(f"{key}.{m}", v, "ms", 0, 3_600_000) for m, v in value.items()})
    return tuple(merged.items())


def _threshold(key: str, value: Any, unit: str, low: float, high: float) -> float | None:
    """A number in (low, high] (whole minutes for a "minutes" unit), or None for "off"."""
    if isinstance(value, str) and value.strip().lower() == "off":
        return None
    if unit == "minutes":
        minutes = _int(key, value, 1)
        if minutes > high:
            raise SettingsError(f"context {key}: must be <= {high:g}, got {minutes}")
        return minutes
    return _float(key, value, low, high)


def rolling_batch(max_instance_count: int) -> int:
    """Instances per batch of the stack's rolling update: one, or 5% of the largest fleet when that is
    more (SageMaker's lowest batch)."""
    return max(1, -(-max_instance_count * 5 // 100))


def rolling_fits(settings: StackSettings) -> bool:
    """Whether one batch size fits every fleet size autoscaling allows: at least 5% of
    ``maxInstanceCount`` and at most half of ``minInstanceCount``."""
    return rolling_batch(settings.max_instance_count) <= settings.min_instance_count // 2


def _check_relations(settings: StackSettings) -> None:
    """Rules between keys (each value is valid on its own by now)."""
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
    if settings.deployment in ("canary", "linear", "rolling") and settings.min_instance_count < 2:
        raise SettingsError(
            f"context deployment: {settings.deployment} moves traffic or capacity in steps of at most half the "
            f"instances, so it needs minInstanceCount >= 2 (got {settings.min_instance_count}); use all-at-once or auto")
    if settings.deployment == "rolling" and not rolling_fits(settings):
        raise SettingsError(
            f"context maxInstanceCount: a rolling update's batch must be at least 5% of {settings.max_instance_count} "
            f"instances ({rolling_batch(settings.max_instance_count)}) and at most half of minInstanceCount "
            f"{settings.min_instance_count}; raise minInstanceCount, lower maxInstanceCount, or set deployment to "
            "all-at-once")
    if bool(settings.vpc_subnet_ids) != bool(settings.vpc_security_group_ids):
        missing = "vpcSecurityGroupIds" if settings.vpc_subnet_ids else "vpcSubnetIds"
        raise SettingsError(f"context {missing}: required when the other VPC setting is given")
    if settings.alarm_topic_arn and settings.alarm_emails:
        raise SettingsError("context alarmEmail: subscribe the addresses to the topic of alarmTopicArn yourself, "
                            "or leave alarmTopicArn out to get a new topic with these subscriptions")
