"""Application Auto Scaling for a SageMaker endpoint variant: invocations and GPU utilization."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as appscaling
from constructs import Construct, IConstruct


class EndpointAutoscaling(Construct):
    """Scalable target on ``endpoint/<name>/variant/<variant>`` with two target-tracking policies.

    * ``InvocationsPerInstance``: the predefined ``SageMakerVariantInvocationsPerInstance``
      metric (invocations per instance per minute) at ``invocations_per_instance_target``.
    * ``GpuUtilization``: the endpoint's ``GPUUtilization`` metric from the
      ``/aws/sagemaker/Endpoints`` namespace (average over instances). SageMaker sums it
      over an instance's GPUs, so the target is ``gpu_utilization_target * gpu_count``.

    Scale-out reacts fast and scale-in slowly (``scale_in_cooldown`` must be at least
    ``scale_out_cooldown``): a multi-model instance that goes away takes its loaded
    models with it, and reloading SD2 from S3 costs tens of seconds.

    Application Auto Scaling uses its SageMaker service-linked role; no role is created.

    Attributes: ``scalable_target``, ``invocations_policy``, ``gpu_utilization_policy``,
    ``resource_id``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_name: str,
        variant_name: str = "AllTraffic",
        min_capacity: int = 1,
        max_capacity: int = 2,
        invocations_per_instance_target: float = 60.0,
        gpu_utilization_target: float = 70.0,
        gpu_count: int = 1,
        scale_out_cooldown: Duration = Duration.seconds(120),
        scale_in_cooldown: Duration = Duration.seconds(900),
        depends_on: IConstruct | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if min_capacity < 1:
            raise ValueError(f"min_capacity must be >= 1 (a SageMaker endpoint cannot scale to 0), got {min_capacity}")
        if max_capacity < min_capacity:
            raise ValueError(f"max_capacity ({max_capacity}) must be >= min_capacity ({min_capacity})")
        if invocations_per_instance_target <= 0:
            raise ValueError(f"invocations_per_instance_target must be > 0, got {invocations_per_instance_target}")
        if not 0 < gpu_utilization_target <= 100:
            raise ValueError(f"gpu_utilization_target is a percentage in (0, 100], got {gpu_utilization_target}")
        if gpu_count < 1:
            raise ValueError(f"gpu_count must be >= 1, got {gpu_count}")
        if scale_in_cooldown.to_seconds() < scale_out_cooldown.to_seconds():
            raise ValueError("scale_in_cooldown must be at least scale_out_cooldown: scale in slower than out")

        self.resource_id = f"endpoint/{endpoint_name}/variant/{variant_name}"
        self.scalable_target = appscaling.CfnScalableTarget(
            self,
            "Target",
            service_namespace="sagemaker",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=self.resource_id,
            min_capacity=min_capacity,
            max_capacity=max_capacity,
        )
        if depends_on is not None:
            self.scalable_target.node.add_dependency(depends_on)

        def policy(cid: str, name: str, config) -> appscaling.CfnScalingPolicy:
            return appscaling.CfnScalingPolicy(
                self,
                cid,
                policy_name=name,
                policy_type="TargetTrackingScaling",
                scaling_target_id=self.scalable_target.ref,
                target_tracking_scaling_policy_configuration=config,
            )

        cooldowns = dict(
            scale_in_cooldown=int(scale_in_cooldown.to_seconds()),
            scale_out_cooldown=int(scale_out_cooldown.to_seconds()),
        )
        self.invocations_policy = policy(
            "InvocationsPolicy",
            f"{endpoint_name}-invocations-per-instance",
            appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(invocations_per_instance_target),
                predefined_metric_specification=appscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                ),
                **cooldowns,
            ),
        )
        self.gpu_utilization_policy = policy(
            "GpuUtilizationPolicy",
            f"{endpoint_name}-gpu-utilization",
            appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(gpu_utilization_target * gpu_count),
                customized_metric_specification=appscaling.CfnScalingPolicy.CustomizedMetricSpecificationProperty(
                    namespace="/aws/sagemaker/Endpoints",
                    metric_name="GPUUtilization",
                    statistic="Average",
                    unit="Percent",
                    dimensions=[
                        appscaling.CfnScalingPolicy.MetricDimensionProperty(name="EndpointName", value=endpoint_name),
                        appscaling.CfnScalingPolicy.MetricDimensionProperty(name="VariantName", value=variant_name),
                    ],
                ),
                **cooldowns,
            ),
        )
