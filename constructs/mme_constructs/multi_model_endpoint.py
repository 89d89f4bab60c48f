"""A SageMaker multi-model endpoint (``Mode: MultiModel``) on GPU, with a least-privilege role."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import Annotations, ArnFormat, Duration, IStableAnyProducer, Lazy, Names, RemovalPolicy, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct, IConstruct, IValidation

from mme_constructs._nag import acknowledge, acknowledge_wildcards
from mme_constructs._network import network_errors, resolve_network
from mme_constructs.deployment import EndpointDeployment
from mme_constructs.endpoint_base import MultiModelEndpointBase
from mme_constructs.endpoint_metrics import INSTANCE_NAMESPACE
from mme_constructs.gpu_runtime import ami_error, architecture_error, default_inference_ami
from mme_constructs.instance_types import (
    DEFAULT_INSTANCE_TYPE,
    GpuInstanceType,
    resolve_instance_type,
    undocumented_warning,
)
from mme_constructs.log_groups import default_log_key, log_group_arn, owned_log_group
from mme_constructs.model_store import ModelStore
from mme_constructs.serving_image import ServingImage

# SageMaker's pattern for endpoint and variant names
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_TIMEOUT_RANGE_S = (60, 3600)  # ContainerStartupHealthCheckTimeout / ModelDataDownloadTimeout
#: Prefix of the log group SageMaker writes an endpoint's container logs to (streams named at run time)
ENDPOINT_LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"


class MultiModelEndpoint(MultiModelEndpointBase):
    """``CfnModel`` (``Mode: MultiModel``) + ``CfnEndpointConfig`` + ``CfnEndpoint`` and their role.

    Props (all keyword):

    * ``image`` (:class:`ServingImage`): the container; its pull is granted to the role.
    * ``model_store`` (:class:`ModelStore`): bucket + prefix (+ key) of the archives; the
      ``ModelDataUrl``. Read access to that prefix is granted to the role.
    * ``endpoint_name``: default a unique name derived from the construct path (known at synth,
      so the role's log permissions and log groups can name it). Tokens (``CfnParameter``) work.
    * ``instance_type``: default ``ml.g5.2xlarge``; the name of a supported single-GPU type of
      the catalog (``mme_constructs.instance_types.SUPPORTED_INSTANCE_TYPES``, the types AWS
      documents for GPU multi-model endpoints), a literal; or a :class:`GpuInstanceType` with
      the facts of a newer single-GPU type AWS has not listed yet (its GPU memory and whether it
      has NVMe instance storage), which adds a synth warning. Multi-GPU types are refused.
    * ``initial_instance_count``: default 1. ``variant_name``: default ``AllTraffic``.
    * ``role``: default a new role; an imported role gets the same statements (an immutable
      import gets none, and must already allow them).
    * ``network_isolation``: default ``True`` (the container has no network access; SageMaker
      still fetches archives from S3 for it).
    * ``vpc`` + ``vpc_subnets`` (default: the VPC's private subnets) + ``security_groups``
      (default: one new group, all outbound): places the model in a VPC. Without ``vpc``, give
      ``vpc_subnets=SubnetSelection(subnets=[...])`` and ``security_groups`` (imports) together.
      ``allow_all_outbound`` (default ``True``): ``False`` gives the new group no outbound rule;
      add the ones the endpoint needs through ``connections`` (S3 for the archives, ECR and
      CloudWatch Logs, by gateway or interface endpoints). Ignored for given groups.
    * ``environment``: container environment variables, default none.
    * ``inference_ami_version``: the host image SageMaker runs the container on (its NVIDIA
      driver), one of ``mme_constructs.gpu_runtime.INFERENCE_AMIS``; default the first AMI of
      ``DEFAULT_AMI_PREFERENCE`` whose driver runs the image's ``cuda_build``
      (``al2-ami-sagemaker-inference-gpu-3-1``, driver 550, for a CUDA 12 build). Without it
      SageMaker's default for ml.g4dn, ml.g5 and ml.p3 is driver 470 (CUDA 11.4), on which a CUDA 12
      image does not start. Synth refuses an AMI whose driver is too old for the image's
      ``cuda_build``, and an ``instance_type`` whose GPU that build has no kernels for.
    * ``container_startup_health_check_timeout`` (default 10 minutes: the image's ``serve``
      answers ``/ping`` within seconds once the container runs; the rest covers a slow host) and
      ``model_data_download_timeout`` (default 20 minutes): ``Duration`` between 60 s and 1 h.
    * ``model_cache_enabled``: default ``True`` (SageMaker keeps loaded models until memory
      pressure; ``False`` unloads each model after its request).
    * ``volume_encryption_key``: the ML storage volume's KMS key, default the model store's key.
      Set only for instance types without local NVMe storage (ml.p3.2xlarge): SageMaker rejects
      ``KmsKeyId`` on endpoint configs of types with instance storage (ml.g4dn, ml.g5 and a
      ``GpuInstanceType`` with ``instance_storage=True``), whose storage is hardware-encrypted.
      Giving it explicitly for such a type is an error.
    * ``log_retention``: default one year, of the endpoint's log group
      ``/aws/sagemaker/Endpoints/<endpoint name>``, which the construct creates (SageMaker would
      otherwise create it at run time, unencrypted and kept forever); the endpoint waits for it.
    * ``log_encryption_key``: default the model store's key when it is a key of this stack (its
      policy gets a statement that lets CloudWatch Logs use it for this log group only); none
      for an imported key, whose policy cannot be changed here: pass it explicitly once its policy
      allows CloudWatch Logs (see ``mme_constructs.log_groups``).
    * ``log_removal_policy``: default ``DESTROY``. The log group has a fixed name: one retained
      after a destroy makes the next deploy of the same endpoint name fail until it is deleted.

    The role may only read the model prefix (``s3:GetObject``, ``s3:ListBucket`` on that
    prefix, ``kms:Decrypt`` with the store's key through S3 for that bucket), pull the one image
    repository (plus ``ecr:GetAuthorizationToken``, which has no resource-level form), write streams
    of its own log group ``/aws/sagemaker/Endpoints/<endpoint name>`` (not create log groups) and
    put metrics into the ``/aws/sagemaker/Endpoints`` namespace only. A role the construct creates
    gets these as one customer-managed policy (``execution_policy``); a given role gets them
    through ``add_to_principal_policy``.

    cdk-nag: the endpoint config of an instance type with NVMe instance storage cannot carry
    ``KmsKeyId``; that finding of the NIST 800-53 R5, HIPAA and PCI DSS packs is acknowledged on
    ``cfn_endpoint_config`` with that reason (and only then).

    Imports: :meth:`from_endpoint_name`, :meth:`from_endpoint_arn`, :meth:`from_endpoint_attributes`.

    Rollouts: ``deployment`` (an :class:`~mme_constructs.deployment.EndpointDeployment`; default
    none: SageMaker replaces the fleet without guardrails or rollback) and ``rollback_alarms``
    (CloudWatch alarms that roll an update back while it bakes, at most 10; ``EndpointAlarms`` adds
    its 5xx-rate and latency alarms by itself). A stepped policy (canary, linear, rolling) is checked
    against ``initial_instance_count`` and, once autoscaling is enabled, its ``min_capacity`` and
    ``max_capacity``.

    Attributes: ``endpoint_name``, ``endpoint_arn``, ``variant_name``, ``instance_type``,
    ``gpu_instance_type``, ``inference_ami_version``, ``initial_instance_count``, ``role``, ``grant_principal``,
    ``model_store``, ``image``, ``model_data_url``, ``security_groups``, ``connections`` (VPC
    only), ``volume_kms_key_set``, ``log_group``, ``execution_policy`` (``None`` for a given
    role), ``deployment``, ``rollback_alarms``, ``cfn_model``, ``cfn_endpoint_config``,
    ``cfn_endpoint``; and those of :class:`~mme_constructs.endpoint_base.MultiModelEndpointBase`
    (``endpoint_ref``, ``invoker_roles``, ``grant_invoke``, ``add_invoker_role``, ``metric_*``,
    ``auto_scale_instance_count``, ``on_auto_scaling``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: ServingImage,
        model_store: ModelStore,
        endpoint_name: str | None = None,
        instance_type: str | GpuInstanceType = DEFAULT_INSTANCE_TYPE,
        initial_instance_count: int = 1,
        variant_name: str = "AllTraffic",
        role: iam.IRole | None = None,
        network_isolation: bool = True,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        security_groups: Sequence[ec2.ISecurityGroup] | None = None,
        allow_all_outbound: bool = True,
        environment: Mapping[str, str] | None = None,
        inference_ami_version: str | None = None,
        deployment: EndpointDeployment | None = None,
        rollback_alarms: Sequence[cloudwatch.IAlarm] = (),
        container_startup_health_check_timeout: Duration = Duration.minutes(10),
        model_data_download_timeout: Duration = Duration.minutes(20),
        model_cache_enabled: bool = True,
        volume_encryption_key: kms.IKey | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        log_encryption_key: kms.IKey | None = None,
        log_removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    ) -> None:
        _check_props(scope, construct_id, endpoint_name=endpoint_name, instance_type=instance_type,
                     initial_instance_count=initial_instance_count, variant_name=variant_name, vpc=vpc,
                     vpc_subnets=vpc_subnets, security_groups=security_groups,
                     container_startup_health_check_timeout=container_startup_health_check_timeout,
                     model_data_download_timeout=model_data_download_timeout,
                     volume_encryption_key=volume_encryption_key, image=image,
                     inference_ami_version=inference_ami_version, deployment=deployment)
        super().__init__(scope, construct_id, physical_name=endpoint_name)
        self.endpoint_name = endpoint_name or Names.unique_resource_name(self, max_length=63, separator="-")
        self.variant_name = variant_name
        self.gpu_instance_type = _resolve_instance_type(self, instance_type)
        self.instance_type = self.gpu_instance_type.name
        self.inference_ami_version = inference_ami_version or default_inference_ami(image.cuda_build)
        self.initial_instance_count = initial_instance_count
        self.model_store = model_store
        self.image = image

        self.role = role or iam.Role(
            self, "ExecutionRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Execution role of SageMaker multi-model endpoint {self.endpoint_name}")
        self._grant_execution_permissions()
        self.log_group = owned_log_group(
            self, "Logs", log_group_name=f"{ENDPOINT_LOG_GROUP_PREFIX}{self.endpoint_name}", retention=log_retention,
            encryption_key=log_encryption_key or default_log_key(self, model_store.encryption_key),
            removal_policy=log_removal_policy)
        self.security_groups, subnet_ids = resolve_network(
            self, vpc=vpc, vpc_subnets=vpc_subnets, security_groups=security_groups,
            allow_all_outbound=allow_all_outbound,
            description="SageMaker multi-model endpoint: reaches S3, ECR and logs, accepts nothing")
        self.cfn_model = self._create_model(network_isolation, subnet_ids, environment, model_cache_enabled)
        key = volume_encryption_key or model_store.encryption_key
        self.volume_kms_key_set = key is not None and not self.gpu_instance_type.instance_storage
        self.cfn_endpoint_config = self._create_endpoint_config(
            key if self.volume_kms_key_set else None,
            container_startup_health_check_timeout, model_data_download_timeout)
        if key is not None and not self.volume_kms_key_set:
            acknowledge(self.cfn_endpoint_config, (
                f"{self.instance_type} has local NVMe instance storage, which the instance encrypts with a hardware "
                "module; SageMaker rejects KmsKeyId on endpoint configs of instance types with instance storage, so "
                "the key is set only for types without it."),
                "NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured",
                "HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured",
                "PCI.DSS.321-SageMakerEndpointConfigurationKMSKeyConfigured")
        self.deployment = deployment
        self._rollback_alarms: list[cloudwatch.IAlarm] = []
        self.cfn_endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_name=self.endpoint_name,
            endpoint_config_name=self.cfn_endpoint_config.attr_endpoint_config_name)
        if deployment is not None:  # rendered at synth, with the rollback alarms added until then
            self.cfn_endpoint.add_property_override("DeploymentConfig", Lazy.any(_DeploymentConfig(self)))
        self.add_rollback_alarms(*rollback_alarms)
        if deployment is not None:
            self.on_auto_scaling(lambda scaling: self.node.add_validation(_ScalingAllowsDeployment(self, scaling)))
        else:
            self.node.add_validation(_RollbackNeedsDeployment(self))
        # With autoscaling, an update keeps the instance count autoscaling reached (not
        # initial_instance_count) and the variant's weight.
        self.on_auto_scaling(lambda _: self.cfn_endpoint.add_property_override("RetainAllVariantProperties", True))
        # The log group exists before SageMaker starts the instances, so SageMaker never creates it.
        self.cfn_endpoint.node.add_dependency(self.log_group)
        self.endpoint_arn = self.cfn_endpoint.ref  # Ref of AWS::SageMaker::Endpoint is its ARN

    # --- construction steps --------------------------------------------------------------

    def _grant_execution_permissions(self) -> None:
        """Model prefix (read), image (pull), own log streams, own metric namespace: one managed policy
        on a role the app owns, the role's own policy otherwise."""
        statements = [*self.model_store.read_statements(), *self._log_statements(), self._metric_statement()]
        self.execution_policy: iam.ManagedPolicy | None = None
        if isinstance(self.role, iam.Role):
            self.execution_policy = iam.ManagedPolicy(
                self.role, "Policy", roles=[self.role], statements=[*statements, *self.image.pull_statements()],
                description="Execution role policy of a SageMaker multi-model endpoint: read its model archives, "
                            "pull its image, write its own logs and metrics")
        else:
            for statement in statements:
                self.role.add_to_principal_policy(statement)
            self.image.grant_pull(self.role)
        self.model_store.acknowledge_read_wildcard(self.role)
        acknowledge_wildcards(self.role, {
            self._log_group_arn(":log-stream:*"): "SageMaker names one log stream per instance and model at run "
            "time; the wildcard covers only the streams of this endpoint's own log group.",
            "*": "cloudwatch:PutMetricData and ecr:GetAuthorizationToken have no resource-level permissions; "
            "PutMetricData is limited to the /aws/sagemaker/Endpoints namespace by a condition, and image "
            "layers can only be pulled from the serving image's one repository.",
        })

    def _log_group_arn(self, suffix: str = "") -> str:
        return log_group_arn(self, f"{ENDPOINT_LOG_GROUP_PREFIX}{self.endpoint_name}{suffix}")

    def _log_statements(self) -> list[iam.PolicyStatement]:
        """Streams of the endpoint's own log group; no ``logs:CreateLogGroup``: the construct owns the group."""
        return [
            iam.PolicyStatement(sid="DescribeEndpointLogStreams", actions=["logs:DescribeLogStreams"],
                                resources=[self._log_group_arn()]),
            iam.PolicyStatement(sid="WriteEndpointLogStreams", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                resources=[self._log_group_arn(":log-stream:*")]),
        ]

    @staticmethod
    def _metric_statement() -> iam.PolicyStatement:
        return iam.PolicyStatement(sid="PutEndpointMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"],
                                   conditions={"StringEquals": {"cloudwatch:namespace": INSTANCE_NAMESPACE}})

    def _create_model(self, network_isolation: bool, subnet_ids: list[str],
                      environment: Mapping[str, str] | None, model_cache_enabled: bool) -> sagemaker.CfnModel:
        vpc_config = None
        if subnet_ids:
            vpc_config = sagemaker.CfnModel.VpcConfigProperty(
                subnets=subnet_ids, security_group_ids=[g.security_group_id for g in self.security_groups])
        model = sagemaker.CfnModel(
            self, "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self.image.image_uri,
                mode="MultiModel",
                model_data_url=self.model_store.model_data_url,
                environment=dict(environment) if environment else None,
                multi_model_config=None if model_cache_enabled else
                sagemaker.CfnModel.MultiModelConfigProperty(model_cache_setting="Disabled"),
            ),
            enable_network_isolation=network_isolation,
            vpc_config=vpc_config,
        )
        # SageMaker checks the role's access (S3, ECR) when it creates the model: its policies must
        # exist first. The role itself is ordered by ExecutionRoleArn already.
        for policy in self.role.node.find_all():
            if isinstance(policy, (iam.Policy, iam.ManagedPolicy)):
                model.node.add_dependency(policy)
        return model

    def _create_endpoint_config(self, volume_key: kms.IKey | None, startup_timeout: Duration,
                                download_timeout: Duration) -> sagemaker.CfnEndpointConfig:
        return sagemaker.CfnEndpointConfig(
            self, "EndpointConfig",
            production_variants=[sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=self.variant_name,
                model_name=self.cfn_model.attr_model_name,
                instance_type=self.instance_type,
                inference_ami_version=self.inference_ami_version,
                initial_instance_count=self.initial_instance_count,
                initial_variant_weight=1.0,
                container_startup_health_check_timeout_in_seconds=int(startup_timeout.to_seconds()),
                model_data_download_timeout_in_seconds=int(download_timeout.to_seconds()),
            )],
            kms_key_id=volume_key.key_arn if volume_key is not None else None,
        )

    # --- attributes and behaviour ---------------------------------------------------------

    @property
    def grant_principal(self) -> iam.IPrincipal:
        """The execution role (``iam.IGrantable``): grant it what a handler needs at run time."""
        return self.role

    @property
    def model_data_url(self) -> str:
        return self.model_store.model_data_url

    @property
    def connections(self) -> ec2.Connections:
        """The model's security groups (only for an endpoint placed in a VPC)."""
        if not self.security_groups:
            raise ValueError(f"{self.node.path}: connections exist only for an endpoint placed in a VPC")
        return ec2.Connections(security_groups=self.security_groups)

    @property
    def scaling_dependency(self) -> IConstruct:
        return self.cfn_endpoint

    @property
    def rollback_alarms(self) -> list[cloudwatch.IAlarm]:
        """The alarms a deployment rolls back on (``rollback_alarms`` and :meth:`add_rollback_alarms`)."""
        return list(self._rollback_alarms)

    def add_rollback_alarms(self, *alarms: cloudwatch.IAlarm) -> None:
        """Roll an update back when one of ``alarms`` is in ALARM during its bake (with a
        ``deployment``; SageMaker takes at most 10). ``EndpointAlarms`` adds its 5xx rate and latency
        alarms here by itself."""
        for alarm in alarms:
            if all(alarm is not known for known in self._rollback_alarms):
                self._rollback_alarms.append(alarm)
        if len(self._rollback_alarms) > 10:
            raise ValueError(f"{self.node.path}: rollback_alarms: SageMaker watches at most 10 alarms, got "
                             f"{len(self._rollback_alarms)}")

    def add_to_role_policy(self, statement: iam.PolicyStatement) -> None:
        """Add a statement to the execution role's policy (no-op for an immutable imported role)."""
        if self.execution_policy is not None:
            self.execution_policy.add_statements(statement)
        else:
            self.role.add_to_principal_policy(statement)

    def _scaling_errors(self, min_capacity: int, max_capacity: int) -> list[str]:
        initial = self.initial_instance_count
        if any(Token.is_unresolved(v) for v in (initial, min_capacity, max_capacity)):
            return []
        errors = []
        if min_capacity > initial:
            errors.append(f"min_capacity ({min_capacity}) cannot exceed initial_instance_count ({initial})")
        if max_capacity < initial:
            errors.append(f"max_capacity ({max_capacity}) cannot be below initial_instance_count ({initial})")
        return errors

    # --- imports --------------------------------------------------------------------------

    @classmethod
    def from_endpoint_name(cls, scope: Construct, construct_id: str, endpoint_name: str, *,
                           variant_name: str = "AllTraffic",
                           instance_type: str | GpuInstanceType | None = None) -> MultiModelEndpointBase:
        """An endpoint made elsewhere, by name (tokens allowed). ``instance_type`` (optional, as for the
        constructor) sets ``gpu_instance_type``."""
        name = endpoint_name if Token.is_unresolved(endpoint_name) else endpoint_name.lower()
        arn = Stack.of(scope).format_arn(service="sagemaker", resource="endpoint", resource_name=name)
        return _ImportedEndpoint(scope, construct_id, endpoint_arn=arn, endpoint_name=endpoint_name,
                                 variant_name=variant_name, instance_type=instance_type)

    @classmethod
    def from_endpoint_arn(cls, scope: Construct, construct_id: str, endpoint_arn: str, *,
                          variant_name: str = "AllTraffic",
                          instance_type: str | GpuInstanceType | None = None) -> MultiModelEndpointBase:
        """An endpoint made elsewhere, by ARN. The name is read from the ARN, where SageMaker writes it in
        lower case: for metrics of a mixed-case name use :meth:`from_endpoint_name`."""
        name = Stack.of(scope).split_arn(endpoint_arn, ArnFormat.SLASH_RESOURCE_NAME).resource_name
        return _ImportedEndpoint(scope, construct_id, endpoint_arn=endpoint_arn, endpoint_name=name,
                                 variant_name=variant_name, instance_type=instance_type)


    @classmethod
    def from_endpoint_attributes(cls, scope: Construct, construct_id: str, *, endpoint_name: str | None = None,
                                 endpoint_arn: str | None = None, variant_name: str = "AllTraffic",
                                 instance_type: str | GpuInstanceType | None = None) -> MultiModelEndpointBase:
        """An endpoint made elsewhere, by ``endpoint_name`` or ``endpoint_arn`` (one of them, or both
        when the name's case matters for metrics and the ARN is at hand; tokens allowed)."""
        if endpoint_name is None and endpoint_arn is None:
            raise ValueError(f"MultiModelEndpoint import {construct_id}: give endpoint_name or endpoint_arn")
        if endpoint_arn is None:
            return cls.from_endpoint_name(scope, construct_id, endpoint_name, variant_name=variant_name,
                                          instance_type=instance_type)
        if endpoint_name is None:
            return cls.from_endpoint_arn(scope, construct_id, endpoint_arn, variant_name=variant_name,
                                         instance_type=instance_type)
        return _ImportedEndpoint(scope, construct_id, endpoint_arn=endpoint_arn, endpoint_name=endpoint_name,
                                 variant_name=variant_name, instance_type=instance_type)


class _ImportedEndpoint(MultiModelEndpointBase):
    def __init__(self, scope: Construct, construct_id: str, *, endpoint_arn: str, endpoint_name: str,
                 variant_name: str, instance_type: str | GpuInstanceType | None) -> None:
        if instance_type is not None:
            _check_instance_type(f"MultiModelEndpoint import {construct_id}", instance_type)
        super().__init__(scope, construct_id, environment_from_arn=endpoint_arn)
        self.endpoint_arn = endpoint_arn
        self.endpoint_name = endpoint_name
        self.variant_name = variant_name
        self.gpu_instance_type = _resolve_instance_type(self, instance_type) if instance_type is not None else None


def _check_props(scope: Construct, construct_id: str, **props) -> None:
    """Every invalid prop of a MultiModelEndpoint, named, in one ``ValueError``."""
    errors = [*_name_errors(props), *_capacity_errors(props), *_timeout_errors(props),
              *network_errors(props["vpc"], props["vpc_subnets"], props["security_groups"])]
    gpu, error = _instance_type_error(props["instance_type"])
    build = getattr(props["image"], "cuda_build", None)
    if error:
        errors.append(error)
    else:
        if props["volume_encryption_key"] is not None and gpu.instance_storage:
            errors.append(f"volume_encryption_key: {gpu.name} has local NVMe instance storage (hardware-encrypted); "
                          "SageMaker rejects KmsKeyId on its endpoint configs")
        arch = architecture_error(gpu.compute_capability, build)
        if arch:
            errors.append(f"instance_type {gpu.name} ({gpu.gpu_model}): {arch}")
    if props["deployment"] is not None:
        errors += props["deployment"].errors(props["initial_instance_count"])
    ami = props["inference_ami_version"]
    if ami is not None and not Token.is_unresolved(ami):
        reason = ami_error(ami, build)
        if reason:
            errors.append(f"inference_ami_version: {reason}")
    if errors:
        path = f"{scope.node.path}/{construct_id}" if scope.node.path else construct_id
        raise ValueError(f"MultiModelEndpoint {path}: " + "; ".join(errors))


def _instance_type_error(value) -> tuple[GpuInstanceType | None, str | None]:
    """The resolved instance type, or the ``instance_type`` error (one line, naming the supported list)."""
    if isinstance(value, str) and Token.is_unresolved(value):
        return None, "instance_type: must be a literal (the KmsKeyId rule and the GPU memory depend on it)"
    try:
        return resolve_instance_type(value), None
    except ValueError as err:
        return None, f"instance_type: {err}"


def _check_instance_type(where: str, value) -> None:
    _, error = _instance_type_error(value)
    if error:
        raise ValueError(f"{where}: {error}")


def _resolve_instance_type(scope: Construct, value: str | GpuInstanceType) -> GpuInstanceType:
    """The checked instance type; a synth warning on ``scope`` when AWS does not list it for GPU MMEs."""
    gpu = resolve_instance_type(value)
    if not gpu.documented:
        Annotations.of(scope).add_warning_v2("mme-constructs:undocumentedInstanceType", undocumented_warning(gpu))
    return gpu


def _name_errors(props: dict) -> list[str]:
    errors = []
    for key in ("endpoint_name", "variant_name"):
        value = props[key]
        if value is not None and not Token.is_unresolved(value) and not _SAGEMAKER_NAME.match(value):
            errors.append(f"{key} {value!r}: 1-63 letters, digits and hyphens, starting with a letter or digit")
    return errors


def _capacity_errors(props: dict) -> list[str]:
    count = props["initial_instance_count"]
    if not Token.is_unresolved(count) and count < 1:
        return [f"initial_instance_count must be >= 1, got {count}"]
    return []


def _timeout_errors(props: dict) -> list[str]:
    low, high = _TIMEOUT_RANGE_S
    errors = []
    for key in ("container_startup_health_check_timeout", "model_data_download_timeout"):
        seconds = props[key].to_seconds()
        if not low <= seconds <= high:
            errors.append(f"{key} must be between {low} s and {high} s, got {seconds:g} s")
    return errors


@jsii.implements(IStableAnyProducer)
class _DeploymentConfig:
    """The endpoint's ``DeploymentConfig`` at synth: the rollback alarms added until then included."""

    def __init__(self, endpoint: MultiModelEndpoint) -> None:
        self._endpoint = endpoint

    def produce(self):
        names = [alarm.alarm_name for alarm in self._endpoint.rollback_alarms]
        return self._endpoint.deployment.render(names)


@jsii.implements(IValidation)
class _RollbackNeedsDeployment:
    """Rollback alarms do something only during a guarded deployment: say so instead of ignoring them."""

    def __init__(self, endpoint: MultiModelEndpoint) -> None:
        self._endpoint = endpoint

    def validate(self) -> list[str]:
        if self._endpoint.rollback_alarms:
            Annotations.of(self._endpoint).add_warning_v2(
                "mme-constructs:rollbackAlarmsWithoutDeployment",
                f"{len(self._endpoint.rollback_alarms)} rollback alarm(s) but no deployment: SageMaker watches "
                "rollback alarms only during a guarded update; give deployment=EndpointDeployment...(), or "
                "EndpointAlarms(use_for_rollback=False)")
        return []


@jsii.implements(IValidation)
class _ScalingAllowsDeployment:
    """A rolling or stepped deployment's step must fit every instance count autoscaling allows
    (at most half the fewest; for rolling, at least 5% of the most)."""

    def __init__(self, endpoint: MultiModelEndpoint, scaling) -> None:
        self._endpoint, self._scaling = endpoint, scaling

    def validate(self) -> list[str]:
        errors = []
        for name in ("min_capacity", "max_capacity"):
            count = getattr(self._scaling, name)
            errors += [f"{e} (autoscaling {name} {count})" for e in self._endpoint.deployment.errors(count)]
        return errors
