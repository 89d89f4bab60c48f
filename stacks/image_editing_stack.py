"""The deployable stack: model bucket, serving image, GPU multi-model endpoint, autoscaling, artifacts,
and what operators need: owned log groups, alarms with a topic, a dashboard."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Annotations, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from mme.stack_outputs import ENDPOINT_OUTPUT, target_model_parameter_name, target_output_key
from mme_constructs import (
    AlarmTopic,
    CapacitySize,
    EndpointAlarms,
    EndpointDashboard,
    EndpointDeployment,
    ModelAlarms,
    ModelArtifact,
    ModelBucket,
    ModelMetrics,
    ModelPackager,
    MultiModelEndpoint,
    ServingImage,
)
from mme.serving_image import layout, lockfile
from mme_constructs.gpu_runtime import CudaBuild, torch_build
from stacks.settings import ALARM_THRESHOLDS, LOG_RETENTION_DAYS, StackSettings, rolling_batch, rolling_fits

REPO_ROOT = Path(__file__).resolve().parent.parent

_R = logs.RetentionDays
#: ``logRetentionDays`` -> aws-cdk's enum (its Python members carry names, not day counts)
RETENTION = dict(zip(LOG_RETENTION_DAYS, (
    _R.ONE_DAY, _R.THREE_DAYS, _R.FIVE_DAYS, _R.ONE_WEEK, _R.TWO_WEEKS, _R.ONE_MONTH, _R.TWO_MONTHS,
    _R.THREE_MONTHS, _R.FOUR_MONTHS, _R.FIVE_MONTHS, _R.SIX_MONTHS, _R.ONE_YEAR, _R.THIRTEEN_MONTHS,
    _R.EIGHTEEN_MONTHS, _R.TWO_YEARS, _R.THREE_YEARS, _R.FIVE_YEARS, _R.SIX_YEARS, _R.SEVEN_YEARS,
    _R.EIGHT_YEARS, _R.NINE_YEARS, _R.TEN_YEARS), strict=True))
#: threshold unit -> the value EndpointAlarms takes
_UNITS = {"percent": float, "ratio": float, "ms": Duration.millis, "minutes": Duration.minutes}


class ImageEditingStack(Stack):
    """One GPU SageMaker multi-model endpoint serving SAM, LaMa and SD2 inpainting via TorchServe.

    ``settings`` comes from ``stacks.settings.settings_from_context``; the stack itself
    reads no context. Outputs: ``EndpointName``, ``VariantName``, ``ModelBucketName``,
    ``ModelPrefix``, ``ServingBaseImage``, ``TargetModel<Name>`` per enabled model
    (``TargetModelSam``, ...), and for operators ``DashboardName``, ``DashboardUrl``,
    ``AlarmTopicArn`` and ``EndpointLogGroupName``.

    Every log group of the stack (the endpoint's ``/aws/sagemaker/Endpoints/<name>``, the
    packager's and the Provider framework's) is created here with ``logRetentionDays``, encrypted
    with the model bucket's key, and removed on destroy unless ``retainLogGroups``.

    Only the packager (and the principals of ``archiveWriterArns``) may change archives under the
    model prefix (bucket policy); ``vpcSubnetIds`` / ``vpcSecurityGroupIds`` place the endpoint,
    the packager and its Provider framework in those subnets. Output ``ModelKeyArn`` too.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings

        self.model_bucket = ModelBucket(
            self, "ModelBucket", model_prefix=settings.model_prefix, archive_writers=settings.archive_writer_arns,
            retired_archive_expiration=Duration.days(settings.retired_archive_expiration_days))
        key = self.model_bucket.encryption_key
        log_props = dict(log_retention=RETENTION[settings.log_retention_days], log_encryption_key=key,
                         log_removal_policy=RemovalPolicy.RETAIN if settings.retain_log_groups else RemovalPolicy.DESTROY)
        network = self._imported_network(settings)
        self.serving_image = ServingImage.from_asset(
            self, "ServingImage", directory=layout.CONTAINER_DIR, base_image=settings.base_image or None,
            cuda_build=serving_image_cuda_build())
        self.endpoint = MultiModelEndpoint(
            self,
            "Endpoint",
            image=self.serving_image,
            model_store=self.model_bucket.model_store,
            endpoint_name=settings.endpoint_name,
            instance_type=settings.gpu_instance_type,
            inference_ami_version=settings.inference_ami_version or None,
            initial_instance_count=settings.initial_instance_count,
            network_isolation=settings.network_isolation,
            model_cache_enabled=settings.model_cache_enabled,
            deployment=endpoint_deployment(settings),
            environment={"MME_LOG_PROMPTS": "true"} if settings.log_prompts else None,
            **network,
            **log_props,
        )
        self.autoscaling = self._autoscaling(settings)

        # One packaging custom resource per enabled model: it streams the model source and
        # its weights into <prefix><name>-<digest>.tar.gz, the endpoint's TargetModel. The
        # packager is the bucket's archive writer (with archiveWriterArns), in the VPC if given.
        # A replaced archive is retired, not deleted: it stays loadable for retiredArchiveExpirationDays.
        packager = ModelPackager.of(self, model_store=self.model_bucket.model_store, **network, **log_props)
        prefix = settings.target_model_parameters
        self.model_artifacts: dict[str, ModelArtifact] = {
            name: ModelArtifact.from_model_sources(
                self,
                f"{name.capitalize()}Artifact",
                model_sources_dir=REPO_ROOT / "model_sources",
                model_name=name,
                model_store=self.model_bucket.model_store,
                packager=packager,
                target_model_parameter_name=target_model_parameter_name(prefix, name) if prefix else None,
            )
            for name in settings.enabled_models
        }
        self.alarm_topic = self._alarm_topic(settings)
        self.alarms = EndpointAlarms(self, "Alarms", endpoint=self.endpoint, topic=self.alarm_topic,
                                     **_alarm_thresholds(settings))
        # Per model, from the handlers' request lines in the endpoint's log group.
        self.model_metrics = ModelMetrics(self, "ModelMetrics", endpoint=self.endpoint,
                                          models=settings.enabled_models)
        latency = dict(settings.model_alarm_latency_p90_ms)
        self.model_alarms = ModelAlarms(
            self, "ModelAlarms", model_metrics=self.model_metrics, topic=self.alarm_topic,
            server_error_rate_percent=settings.model_alarm_5xx_error_rate_percent,
            latency_p90={m: None if latency.get(m) is None else Duration.millis(latency[m])
                         for m in settings.enabled_models})
        self.dashboard = EndpointDashboard(self, "Dashboard", endpoint=self.endpoint, alarms=self.alarms,
                                           dashboard_name=settings.endpoint_name, model_metrics=self.model_metrics,
                                           model_alarms=self.model_alarms)
        self._outputs()

    def _imported_network(self, settings: StackSettings) -> dict:
        """Context ``vpcSubnetIds`` / ``vpcSecurityGroupIds`` as imported subnets and security groups."""
        if not settings.vpc_subnet_ids:
            return {}
        subnets = [ec2.Subnet.from_subnet_id(self, f"Subnet{i}", s) for i, s in enumerate(settings.vpc_subnet_ids)]
        for subnet in subnets:
            Annotations.of(subnet).acknowledge_warning(
                "@aws-cdk/aws-ec2:noSubnetRouteTableId", "SageMaker takes subnet ids only; no route table is read")
        groups = [ec2.SecurityGroup.from_security_group_id(self, f"SecurityGroup{i}", g, mutable=False)
                  for i, g in enumerate(settings.vpc_security_group_ids)]
        return {"vpc_subnets": ec2.SubnetSelection(subnets=subnets), "security_groups": groups}

    def _alarm_topic(self, settings: StackSettings) -> sns.ITopic:
        """The topic of ``alarmTopicArn``, or a new encrypted, TLS-only one with ``alarmEmail`` subscribed."""
        if settings.alarm_topic_arn:
            return sns.Topic.from_topic_arn(self, "AlarmTopic", settings.alarm_topic_arn)
        return AlarmTopic(self, "AlarmTopic", encryption_key=self.model_bucket.encryption_key,
                          topic_name=f"{settings.endpoint_name}-alarms", emails=settings.alarm_emails,
                          display_name=f"Alarms of {settings.endpoint_name}").topic

    def _autoscaling(self, settings: StackSettings):
        scaling = self.endpoint.auto_scale_instance_count(
            min_capacity=settings.min_instance_count, max_capacity=settings.max_instance_count)
        cooldowns = dict(scale_out_cooldown=Duration.seconds(settings.scale_out_cooldown_seconds),
                         scale_in_cooldown=Duration.seconds(settings.scale_in_cooldown_seconds))
        scaling.scale_on_invocations(invocations_per_instance=settings.invocations_per_instance_target,
                                     policy_name=f"{settings.endpoint_name}-invocations-per-instance", **cooldowns)
        scaling.scale_on_gpu_utilization(target_utilization_percent=settings.gpu_utilization_target,
                                         policy_name=f"{settings.endpoint_name}-gpu-utilization", **cooldowns)
        return scaling

    def _outputs(self) -> None:
        CfnOutput(self, ENDPOINT_OUTPUT, value=self.endpoint.cfn_endpoint.attr_endpoint_name,
                  description="SageMaker endpoint to invoke")
        CfnOutput(self, "VariantName", value=self.endpoint.variant_name, description="Production variant")
        CfnOutput(self, "ModelBucketName", value=self.model_bucket.bucket.bucket_name,
                  description="Bucket holding the model archives")
        CfnOutput(self, "ModelPrefix", value=self.model_bucket.model_prefix,
                  description="Key prefix of the archives (the endpoint's ModelDataUrl)")
        CfnOutput(self, "ModelKeyArn", value=self.model_bucket.encryption_key.key_arn,
                  description="KMS key of the archives: uploads under the prefix must name it (mme package --kms-key-id)")
        CfnOutput(self, "ServingBaseImage", value=self.serving_image.base_image,
                  description="Debian base image the serving image is built on (container/Dockerfile)")
        CfnOutput(self, "InferenceAmiVersion", value=self.endpoint.inference_ami_version,
                  description="SageMaker host image (NVIDIA driver) the endpoint's instances run")
        for name, artifact in self.model_artifacts.items():
            CfnOutput(self, target_output_key(name), value=artifact.target_model,
                      description=f"TargetModel of {name}")
        if self.settings.target_model_parameters:
            CfnOutput(self, "TargetModelParameterPrefix", value=self.settings.target_model_parameters,
                      description="SSM parameters <prefix>/<model> hold each model's TargetModel (mme ... "
                                  "--target-model-parameters)")
        if self.endpoint.deployment is not None:
            CfnOutput(self, "DeploymentPolicy", value=self.endpoint.deployment.kind,
                      description="How an endpoint update rolls out (docs/operations.md, Updating the endpoint)")
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name,
                  description="CloudWatch dashboard of the endpoint (docs/operations.md explains each widget)")
        CfnOutput(self, "DashboardUrl", value=self.dashboard.dashboard_url, description="The dashboard in the console")
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn,
                  description="SNS topic the alarms notify (ALARM and OK); subscribe on-call here")
        CfnOutput(self, "EndpointLogGroupName", value=self.endpoint.log_group.log_group_name,
                  description="Container logs of the endpoint (TorchServe and the handlers' request lines)")
        CfnOutput(self, "ModelMetricsNamespace", value=self.model_metrics.namespace,
                  description="CloudWatch namespace of the per-model metrics (dimension Model)")


def serving_image_cuda_build() -> CudaBuild:
    """The CUDA build of the serving image's framework: the torch version of
    ``container/requirements-torch.lock`` (what the image installs), looked up in
    ``mme_constructs.gpu_runtime.TORCH_BUILDS``. A torch the table does not know stops synth."""
    entry = lockfile.read_lock(layout.TORCH_LOCK).get("torch")
    if entry is None:
        raise lockfile.LockError(f"{layout.relative(layout.TORCH_LOCK)} locks no torch")
    return torch_build(entry.version)


#: Minutes a blue/green update bakes after its last traffic shift, by default: the 5xx-rate alarm
#: needs 2 and the latency alarm 3 of EndpointAlarms' 5-minute periods to fire, plus CloudWatch's
#: few minutes of reporting delay; a shorter bake would end before they could roll it back.
DEFAULT_BAKE_MINUTES = 20
#: Minutes between canary/linear steps and rolling batches, by default: the 5xx-rate alarm's window.
DEFAULT_STEP_WAIT_MINUTES = 10


def endpoint_deployment(settings: StackSettings) -> EndpointDeployment | None:
    """The rollout policy of context ``deployment`` (``None`` for "none").

    "auto", the default, picks by cost: with ``minInstanceCount`` 1 the only guardrail policy
    SageMaker allows is blue/green all at once (one extra GPU instance during the update and its
    bake); with two or more, a rolling update in batches of one instance (5% of
    ``maxInstanceCount`` when that is more), which never runs more than one batch of extra
    instances, where blue/green would run a whole second fleet of GPU instances for the update.
    When no batch size fits every fleet size autoscaling allows (at least 5% of the largest, at
    most half of the smallest: ``minInstanceCount`` 2 with ``maxInstanceCount`` over 20), it is
    all at once.
    """
    kind = settings.deployment
    if kind == "auto":
        kind = "rolling" if settings.min_instance_count >= 2 and rolling_fits(settings) else "all-at-once"
    if kind == "none":
        return None
    wait = Duration.minutes(DEFAULT_STEP_WAIT_MINUTES if settings.deployment_wait_minutes is None
                            else settings.deployment_wait_minutes)
    bake = Duration.minutes(DEFAULT_BAKE_MINUTES if settings.deployment_bake_minutes is None
                            else settings.deployment_bake_minutes)
    if kind == "all-at-once":
        return EndpointDeployment.all_at_once(bake=bake)
    if kind == "canary":
        return EndpointDeployment.canary(step=CapacitySize(instances=1), wait=wait, bake=bake)
    if kind == "linear":
        return EndpointDeployment.linear(step=CapacitySize(instances=max(1, settings.min_instance_count // 4)),
                                         wait=wait, bake=bake)
    return EndpointDeployment.rolling(batch=CapacitySize(instances=rolling_batch(settings.max_instance_count)),
                                      wait=wait)


def _alarm_thresholds(settings: StackSettings) -> dict:
    """EndpointAlarms props for the thresholds the context set (None leaves an alarm out)."""
    units = {prop: unit for prop, unit, _low, _high in ALARM_THRESHOLDS.values()}
    return {prop: None if value is None else _UNITS[units[prop]](value) for prop, value in settings.alarm_thresholds}
