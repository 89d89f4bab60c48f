"""Application Auto Scaling of a multi-model endpoint's instance count."""

from __future__ import annotations

import math
from typing import Protocol

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct

from mme_constructs.number_props import check_number, range_rule


class ScalableEndpoint(Protocol):
    """What scaling needs of an endpoint (``MultiModelEndpoint`` and its imports have it)."""

    endpoint_name: str
    variant_name: str

    @property
    def scaling_dependency(self) -> IConstruct | None: ...

    def metric_gpu_utilization(self, **props) -> cloudwatch.Metric: ...

DEFAULT_SCALE_OUT_COOLDOWN = Duration.minutes(2)
DEFAULT_SCALE_IN_COOLDOWN = Duration.minutes(15)


class ScalableInstanceCount(Construct):
    """The scalable target ``endpoint/<name>/variant/<variant>`` (``sagemaker:variant:DesiredInstanceCount``).

    Usually made by :meth:`MultiModelEndpoint.auto_scale_instance_count`; it can be made
    directly with ``endpoint=`` (an owned or imported endpoint). The target waits for an owned
    endpoint (the variant must exist before it can be registered). Application Auto Scaling
    acts through its SageMaker service-linked role; no role is created.

    Props: ``endpoint``; ``min_capacity`` (default 1; SageMaker cannot scale a real-time
    endpoint to 0); ``max_capacity`` (required, >= ``min_capacity``).

    Policies (target tracking; scale-out fast, scale-in slow, because an instance that goes
    away takes its loaded models with it and reloading a model from S3 costs seconds to minutes):

    * :meth:`scale_on_invocations`: ``SageMakerVariantInvocationsPerInstance`` (per minute);
    * :meth:`scale_on_gpu_utilization`: ``GPUUtilization`` of ``/aws/sagemaker/Endpoints``.
      SageMaker sums it over an instance's GPUs; GPU multi-model endpoints run on single-GPU
      instance types only, so the target is the GPU's own percentage.

    Attributes: ``endpoint``, ``scalable_target`` (``appscaling.ScalableTarget``; its
    ``scale_on_schedule`` and ``scale_on_metric`` work too), ``min_capacity``, ``max_capacity``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, endpoint: ScalableEndpoint,
                 max_capacity: int, min_capacity: int = 1) -> None:
        errors = []
        literal = not (Token.is_unresolved(min_capacity) or Token.is_unresolved(max_capacity))
        if literal and min_capacity < 1:
            errors.append(f"min_capacity must be >= 1 (a real-time endpoint cannot scale to 0), got {min_capacity}")
        if literal and max_capacity < min_capacity:
            errors.append(f"max_capacity ({max_capacity}) must be >= min_capacity ({min_capacity})")
        if errors:
            raise ValueError("ScalableInstanceCount: " + "; ".join(errors))
        super().__init__(scope, construct_id)
        self.endpoint = endpoint
        self.min_capacity = min_capacity
        self.max_capacity = max_capacity
        self.scalable_target = appscaling.ScalableTarget(
            self, "Target",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=f"endpoint/{endpoint.endpoint_name}/variant/{endpoint.variant_name}",
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            role=_service_linked_role(self),
        )
        dependency = endpoint.scaling_dependency
        if dependency is not None:
            self.scalable_target.node.add_dependency(dependency)

    def scale_on_invocations(self, construct_id: str = "InvocationsPerInstance", *,
                             invocations_per_instance: float,
                             scale_out_cooldown: Duration = DEFAULT_SCALE_OUT_COOLDOWN,
                             scale_in_cooldown: Duration = DEFAULT_SCALE_IN_COOLDOWN,
                             disable_scale_in: bool = False,
                             policy_name: str | None = None) -> appscaling.TargetTrackingScalingPolicy:
        """Track ``invocations_per_instance`` invocations per instance per minute."""
        errors = check_number(self, "invocations_per_instance", invocations_per_instance,
                              range_rule(0, math.inf), "> 0")
        return self._track("scale_on_invocations", errors, construct_id, dict(
            target_value=invocations_per_instance,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_out_cooldown=scale_out_cooldown, scale_in_cooldown=scale_in_cooldown,
            disable_scale_in=disable_scale_in, policy_name=policy_name))

    def scale_on_gpu_utilization(self, construct_id: str = "GpuUtilization", *,
                                 target_utilization_percent: float,
                                 scale_out_cooldown: Duration = DEFAULT_SCALE_OUT_COOLDOWN,
                                 scale_in_cooldown: Duration = DEFAULT_SCALE_IN_COOLDOWN,
                                 disable_scale_in: bool = False,
                                 policy_name: str | None = None) -> appscaling.TargetTrackingScalingPolicy:
        """Track ``target_utilization_percent`` of the instance's one GPU."""
        errors = check_number(self, "target_utilization_percent", target_utilization_percent, range_rule(0, 100),
                              "a percentage in (0, 100]")
        return self._track("scale_on_gpu_utilization", errors, construct_id, dict(
            target_value=target_utilization_percent,
            custom_metric=self.endpoint.metric_gpu_utilization(period=Duration.minutes(1)),
            scale_out_cooldown=scale_out_cooldown, scale_in_cooldown=scale_in_cooldown,
            disable_scale_in=disable_scale_in, policy_name=policy_name))

    def _track(self, where: str, errors: list[str], construct_id: str,
               policy: dict) -> appscaling.TargetTrackingScalingPolicy:
        """Raise every error of ``where`` at once, else add the target-tracking ``policy``."""
        errors = errors + _cooldown_errors(policy["scale_out_cooldown"], policy["scale_in_cooldown"])
        if errors:
            raise ValueError(f"ScalableInstanceCount.{where}: " + "; ".join(errors))
        return self.scalable_target.scale_to_track_metric(construct_id, **policy)


def _service_linked_role(scope: Construct) -> iam.IRole:
    """SageMaker endpoints' Application Auto Scaling service-linked role (created by the service)."""
    stack = Stack.of(scope)
    return iam.Role.from_role_arn(
        scope, "ServiceLinkedRole",
        stack.format_arn(service="iam", region="", resource="role",
                         resource_name="aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                                       "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"),
        mutable=False,
    )


def _cooldown_errors(scale_out: Duration, scale_in: Duration) -> list[str]:
    if scale_in.to_seconds() >= scale_out.to_seconds():
        return []
    return [f"scale_in_cooldown ({scale_in.to_human_string()}) must be at least scale_out_cooldown "
            f"({scale_out.to_human_string()}): scale in slower than out, model reloads are expensive"]
