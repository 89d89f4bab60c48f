"""What an owned and an imported multi-model endpoint share: the SageMaker endpoint interface of
aws-cdk-lib (``aws_sagemaker.IEndpoint``: ``endpoint_name``, ``endpoint_arn``, ``grant_invoke``),
invoker roles for other accounts, metrics and instance-count scaling."""

from __future__ import annotations

import re

import jsii
from aws_cdk import CfnOutput, Duration, Resource, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk.interfaces import aws_sagemaker as sagemaker_refs
from constructs import IConstruct

from mme_constructs.endpoint_metrics import (
    INVOCATION_NAMESPACE,
    documented_metric,
    endpoint_metric,
    instance_count,
)
from mme_constructs.instance_types import GpuInstanceType
from mme_constructs.scaling import ScalableInstanceCount

_ACCOUNT = re.compile(r"^\d{12}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")


@jsii.implements(sagemaker.IEndpoint)
class MultiModelEndpointBase(Resource):
    """What an owned and an imported multi-model endpoint share: invoke grants, metrics, scaling.

    It implements aws-cdk-lib's ``aws_sagemaker.IEndpoint``, so constructs that take a SageMaker
    endpoint accept it (``aws_apigateway.SagemakerIntegration(endpoint)``, ...).

    Attributes: ``endpoint_name``, ``endpoint_arn``, ``endpoint_ref``, ``variant_name``,
    ``gpu_instance_type`` (the instance type's facts, ``None`` when an import did not name it),
    ``invoker_roles`` (``{construct id: iam.Role}`` of :meth:`add_invoker_role`).
    """

    variant_name: str
    gpu_instance_type: GpuInstanceType | None = None
    _scalable_instance_count: ScalableInstanceCount | None = None

    # Properties, not plain attributes: jsii finds a Python implementation of an interface's
    # properties (what aws-cdk-lib's constructs read from JavaScript) only among the class's
    # descriptors.
    @property
    def endpoint_name(self) -> str:
        """The endpoint's name (a token for a ``CfnParameter`` name)."""
        return self._endpoint_name

    @endpoint_name.setter
    def endpoint_name(self, value: str) -> None:
        self._endpoint_name = value

    @property
    def endpoint_arn(self) -> str:
        """The endpoint's ARN."""
        return self._endpoint_arn

    @endpoint_arn.setter
    def endpoint_arn(self, value: str) -> None:
        self._endpoint_arn = value

    @property
    def endpoint_ref(self) -> sagemaker_refs.EndpointReference:
        """A reference to this endpoint (aws-cdk-lib's ``IEndpointRef``)."""
        return sagemaker_refs.EndpointReference(endpoint_arn=self.endpoint_arn)

    @property
    def invoker_roles(self) -> dict[str, iam.Role]:
        return dict(getattr(self, "_invoker_roles", {}))

    @property
    def scaling_dependency(self) -> IConstruct | None:
        """What a scalable target must wait for (the owned endpoint; nothing for an import)."""
        return None

    @property
    def scalable_instance_count(self) -> ScalableInstanceCount | None:
        """What :meth:`auto_scale_instance_count` returned, ``None`` before (or without) it."""
        return self._scalable_instance_count

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``sagemaker:InvokeEndpoint`` on this endpoint only (MMEs have no async invocation),
        through ``grantee``'s identity policy.

        SageMaker endpoints have no resource policy, so a principal of another account cannot be
        granted here, nor one without an identity policy (a service or account principal): both
        raise a ``ValueError`` pointing at :meth:`add_invoker_role` (a role in this account that the
        other account assumes) instead of succeeding with nothing written. An immutable imported role
        (``mutable=False``) is taken at its word, as aws-cdk-lib does: its policy must already allow it.
        """
        principal = grantee.grant_principal
        other = _other_account(principal.principal_account, self.env.account)
        if other:
            raise ValueError(f"{self.node.path}: grant_invoke: {_describe(principal)} is in account {other}, not "
                             f"the endpoint's: {_CROSS_ACCOUNT}")
        grant = iam.Grant.add_to_principal(grantee=grantee, actions=["sagemaker:InvokeEndpoint"],
                                           resource_arns=[self.endpoint_arn])
        if not grant.success:
            raise ValueError(f"{self.node.path}: grant_invoke: nothing could be added to the policy of "
                             f"{_describe(principal)} (a principal of another account, or one without an identity "
                             f"policy): {_CROSS_ACCOUNT}")
        return grant

    def add_invoker_role(self, construct_id: str, *, trusted_account: str, external_id: str | None = None,
                         role_name: str | None = None, max_session_duration: Duration = Duration.hours(1),
                         output: bool = True) -> iam.Role:
        """A role in the endpoint's account that ``trusted_account`` may assume (with ``external_id``
        when given: ``sts:ExternalId`` must match) and whose only permission is
        ``sagemaker:InvokeEndpoint`` on this endpoint: how another account invokes an endpoint,
        which has no resource policy. The role's ARN is a stack output (``<id>Arn``) unless
        ``output`` is false; the other account's principals also need ``sts:AssumeRole`` on it in
        their own policies."""
        errors = []
        if not Token.is_unresolved(trusted_account) and not _ACCOUNT.match(trusted_account):
            errors.append(f"trusted_account {trusted_account!r}: a 12-digit AWS account id")
        elif _other_account(trusted_account, self.env.account) is None and not Token.is_unresolved(trusted_account) \
                and not Token.is_unresolved(self.env.account):
            errors.append(f"trusted_account {trusted_account} is the endpoint's own account: use grant_invoke")
        if external_id is not None and not Token.is_unresolved(external_id) and not _EXTERNAL_ID.match(external_id):
            errors.append("external_id: 2-1224 letters, digits and +=,.@:/- characters")
        if construct_id in self.invoker_roles:
            errors.append(f"an invoker role {construct_id!r} exists already")
        if errors:
            raise ValueError(f"{self.node.path}: add_invoker_role: " + "; ".join(errors))
        role = iam.Role(self, construct_id, role_name=role_name, max_session_duration=max_session_duration,
                        assumed_by=iam.AccountPrincipal(trusted_account),
                        external_ids=[external_id] if external_id else None,
                        description=f"Lets account {trusted_account} invoke SageMaker endpoint {self.endpoint_name}")
        iam.ManagedPolicy(role, "Policy", roles=[role], statements=[iam.PolicyStatement(
            sid="InvokeThisEndpoint", actions=["sagemaker:InvokeEndpoint"], resources=[self.endpoint_arn])],
            description="Invoke one SageMaker multi-model endpoint")
        if output:
            # An output's description must be a literal (CloudFormation takes no intrinsics there).
            name = "the endpoint" if Token.is_unresolved(self.endpoint_name) else self.endpoint_name
            account = "the trusted account" if Token.is_unresolved(trusted_account) else f"account {trusted_account}"
            CfnOutput(Stack.of(self), f"{construct_id}Arn", value=role.role_arn,
                      description=f"Role {account} assumes to invoke {name}")
        self._invoker_roles = {**self.invoker_roles, construct_id: role}
        return role

    def metric(self, metric_name: str, *, namespace: str = INVOCATION_NAMESPACE, **props) -> cloudwatch.Metric:
        """Any metric of this variant (dimensions ``EndpointName``, ``VariantName``); default statistic Sum.

        ``props`` are ``cloudwatch.MetricOptions`` keywords (``statistic``, ``period``, ``unit``,
        ``label``, ``dimensions_map`` to add dimensions, ...).
        """
        return endpoint_metric(self.endpoint_name, self.variant_name, metric_name, namespace=namespace, **props)

    def _documented(self, key: str, props: dict) -> cloudwatch.Metric:
        return documented_metric(self.endpoint_name, self.variant_name, key, **props)

    def metric_invocations(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``Invocations`` (unit None), Sum."""
        return self._documented("invocations", props)

    def metric_invocations_per_instance(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``InvocationsPerInstance`` (unit None), Sum."""
        return self._documented("invocations_per_instance", props)

    def metric_model_latency(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``ModelLatency`` (Microseconds), Average."""
        return self._documented("model_latency", props)

    def metric_overhead_latency(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``OverheadLatency`` (Microseconds), Average."""
        return self._documented("overhead_latency", props)

    def metric_invocation_4xx_errors(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``Invocation4XXErrors`` (unit None), Sum."""
        return self._documented("invocation_4xx_errors", props)

    def metric_invocation_5xx_errors(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``Invocation5XXErrors`` (unit None), Sum."""
        return self._documented("invocation_5xx_errors", props)

    def metric_model_loading_wait_time(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``ModelLoadingWaitTime`` (Microseconds), Average: requests waiting for a load."""
        return self._documented("model_loading_wait_time", props)

    def metric_model_downloading_time(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``ModelDownloadingTime`` (Microseconds), Average: archive download from S3."""
        return self._documented("model_downloading_time", props)

    def metric_model_loading_time(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``ModelLoadingTime`` (Microseconds), Average: the container's load call."""
        return self._documented("model_loading_time", props)

    def metric_model_unloading_time(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``ModelUnloadingTime`` (Microseconds), Average: the container's unload call."""
        return self._documented("model_unloading_time", props)

    def metric_model_cache_hit(self, **props) -> cloudwatch.Metric:
        """``AWS/SageMaker`` ``ModelCacheHit`` (unit None), Average: the ratio of requests served by a loaded model."""
        return self._documented("model_cache_hit", props)

    def metric_loaded_model_count(self, **props) -> cloudwatch.Metric:
        """``/aws/sagemaker/Endpoints`` ``LoadedModelCount`` (unit None), Average: models loaded per instance."""
        return self._documented("loaded_model_count", props)

    def metric_cpu_utilization(self, **props) -> cloudwatch.Metric:
        """``/aws/sagemaker/Endpoints`` ``CPUUtilization`` (Percent, summed over cores), Average."""
        return self._documented("cpu_utilization", props)

    def metric_memory_utilization(self, **props) -> cloudwatch.Metric:
        """``/aws/sagemaker/Endpoints`` ``MemoryUtilization`` (Percent), Average."""
        return self._documented("memory_utilization", props)

    def metric_disk_utilization(self, **props) -> cloudwatch.Metric:
        """``/aws/sagemaker/Endpoints`` ``DiskUtilization`` (Percent), Average."""
        return self._documented("disk_utilization", props)

    def metric_gpu_utilization(self, **props) -> cloudwatch.Metric:
        """``/aws/sagemaker/Endpoints`` ``GPUUtilization`` (Percent of the instance's one GPU), Average."""
        return self._documented("gpu_utilization", props)

    def metric_gpu_memory_utilization(self, **props) -> cloudwatch.Metric:
        """``/aws/sagemaker/Endpoints`` ``GPUMemoryUtilization`` (Percent of the one GPU's memory), Average."""
        return self._documented("gpu_memory_utilization", props)

    def metric_instance_count(self, *, period: Duration = Duration.minutes(1)) -> cloudwatch.MathExpression:
        """Instances in service: the per-minute sample count of ``CPUUtilization`` (each instance
        reports once a minute, idle or not), as a ``MathExpression`` that stays right for any period."""
        return instance_count(self.endpoint_name, self.variant_name, period=period)

    def auto_scale_instance_count(self, *, max_capacity: int, min_capacity: int = 1) -> ScalableInstanceCount:
        """Register the variant with Application Auto Scaling; add policies on the result.

        Once per endpoint. For an owned endpoint ``min_capacity`` may not exceed and
        ``max_capacity`` may not be below its ``initial_instance_count``.
        """
        errors = self._scaling_errors(min_capacity, max_capacity)
        if self._scalable_instance_count is not None:
            errors.append("auto scaling is already enabled for this endpoint")
        if errors:
            raise ValueError(f"{self.node.path}: auto_scale_instance_count: " + "; ".join(errors))
        self._scalable_instance_count = ScalableInstanceCount(
            self, "InstanceCount", endpoint=self, min_capacity=min_capacity, max_capacity=max_capacity)
        for listener in getattr(self, "_scaling_listeners", []):
            listener(self._scalable_instance_count)
        return self._scalable_instance_count

    def on_auto_scaling(self, listener) -> None:
        """Call ``listener(scalable_instance_count)`` once auto scaling is enabled (at once if it is):
        constructs made before :meth:`auto_scale_instance_count` (alarms, dashboards) complete themselves."""
        if self._scalable_instance_count is not None:
            listener(self._scalable_instance_count)
        else:
            self._scaling_listeners = [*getattr(self, "_scaling_listeners", []), listener]

    def _scaling_errors(self, min_capacity: int, max_capacity: int) -> list[str]:
        return []


_CROSS_ACCOUNT = ("SageMaker endpoints have no resource policy; use add_invoker_role(construct_id, "
                  "trusted_account=..., external_id=...) for a role in this account that the other account assumes")


def _other_account(account: str | None, endpoint_account: str | None) -> str | None:
    """``account`` when it is known to differ from the endpoint's account (both literal), else ``None``."""
    if not account or not endpoint_account or Token.is_unresolved(account) or Token.is_unresolved(endpoint_account):
        return None
    return account if account != endpoint_account else None


def _describe(principal: iam.IPrincipal) -> str:
    arn = getattr(principal, "role_arn", None) or getattr(principal, "user_arn", None)
    if arn and not Token.is_unresolved(arn):
        return arn
    node = getattr(principal, "node", None)
    return node.path if node is not None else type(principal).__name__
