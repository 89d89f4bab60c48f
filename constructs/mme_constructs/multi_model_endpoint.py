"""A SageMaker multi-model endpoint (``Mode: MultiModel``) on GPU with a least-privilege role."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from aws_cdk import Acknowledgment, ArnFormat, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mme_constructs._cfn import logical_id, normalize_prefix
from mme_constructs.instance_types import gpu_instance_type, supports_volume_kms_key
from mme_constructs.serving_image import ServingImage

# SageMaker's pattern for endpoint and variant names
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class MultiModelEndpoint(Construct):
    """``CfnModel`` (multi-model) + ``CfnEndpointConfig`` + ``CfnEndpoint`` and their role.

    The execution role may only:

    * read objects under the model prefix (``s3:GetObject``) and list that prefix;
    * decrypt with the bucket's KMS key;
    * pull the serving image from its one ECR repository (plus the account-wide
      ``ecr:GetAuthorizationToken``, which has no resource-level form);
    * write its own log group ``/aws/sagemaker/Endpoints/<endpoint name>``;
    * put metrics, only into the ``/aws/sagemaker/Endpoints`` namespace.

    Network isolation is on by default (the container has no network access; SageMaker
    still fetches archives from S3 for it).  Pass ``subnet_ids`` and
    ``security_group_ids`` to place the model in a VPC.

    ``KmsKeyId`` is set on the endpoint config only for instance types without local
    instance storage: SageMaker rejects it on types with NVMe (all ml.g4dn, ml.g5,
    ml.g6, ml.g6e, ml.p4d, ml.p5), whose instance storage is hardware-encrypted.

    Attributes: ``role``, ``model``, ``endpoint_config``, ``endpoint``,
    ``endpoint_name``, ``variant_name``, ``instance_type``, ``volume_kms_key_set``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        image: ServingImage,
        bucket: s3.IBucket,
        encryption_key: kms.IKey,
        model_prefix: str = "models/",
        endpoint_name: str,
        instance_type: str = "ml.g5.2xlarge",
        initial_instance_count: int = 1,
        variant_name: str = "AllTraffic",
        network_isolation: bool = True,
        subnet_ids: Sequence[str] = (),
        security_group_ids: Sequence[str] = (),
        environment: Mapping[str, str] | None = None,
        container_startup_timeout_seconds: int = 600,
        model_download_timeout_seconds: int = 1200,
    ) -> None:
        super().__init__(scope, construct_id)
        gpu = gpu_instance_type(instance_type)
        if not _SAGEMAKER_NAME.match(endpoint_name):
            raise ValueError(f"endpoint_name {endpoint_name!r}: 1-63 letters, digits and hyphens")
        if not _SAGEMAKER_NAME.match(variant_name):
            raise ValueError(f"variant_name {variant_name!r}: 1-63 letters, digits and hyphens")
        if initial_instance_count < 1:
            raise ValueError(f"initial_instance_count must be >= 1, got {initial_instance_count}")
        if bool(subnet_ids) != bool(security_group_ids):
            raise ValueError("subnet_ids and security_group_ids go together: give both or neither")
        prefix = normalize_prefix(model_prefix)

        self.instance_type = gpu.name
        self.endpoint_name = endpoint_name
        self.variant_name = variant_name
        stack = Stack.of(self)

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Execution role of SageMaker multi-model endpoint {endpoint_name}",
        )
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"/aws/sagemaker/Endpoints/{endpoint_name}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        policy = iam.Policy(
            self,
            "ExecutionPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="ReadModelArchives",
                    actions=["s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{prefix}*")],
                ),
                iam.PolicyStatement(
                    sid="ListModelPrefix",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
                ),
                iam.PolicyStatement(
                    sid="DecryptModelArchives",
                    actions=["kms:Decrypt"],
                    resources=[encryption_key.key_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteEndpointLogs",
                    actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                    resources=[log_group_arn],
                ),
                iam.PolicyStatement(
                    sid="WriteEndpointLogStreams",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[f"{log_group_arn}:log-stream:*"],
                ),
                iam.PolicyStatement(
                    sid="PutEndpointMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
                ),
            ],
        )
        policy.attach_to_role(self.role)
        image.grant_pull(self.role)
        self.policy = policy

        Validations.of(policy).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{logical_id(bucket)}.Arn>/{prefix}*]",
                reason="A multi-model endpoint loads any archive under its ModelDataUrl prefix on demand; "
                "the wildcard is limited to that prefix of the one model bucket.",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
                f"log-group:/aws/sagemaker/Endpoints/{endpoint_name}:log-stream:*]",
                reason="SageMaker names one log stream per instance and model at run time; the wildcard "
                "covers only the streams of this endpoint's own log group.",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="cloudwatch:PutMetricData has no resource-level permissions; the statement is "
                "limited by a cloudwatch:namespace condition to /aws/sagemaker/Endpoints.",
            ),
        )
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken (from grant_pull) has no resource-level permissions; "
                "image layers can only be pulled from the serving image's one repository.",
            ),
        )

        vpc_config = None
        if subnet_ids:
            vpc_config = sagemaker.CfnModel.VpcConfigProperty(
                subnets=list(subnet_ids), security_group_ids=list(security_group_ids)
            )
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.image_uri,
                mode="MultiModel",
                model_data_url=f"s3://{bucket.bucket_name}/{prefix}",
                environment=dict(environment) if environment else None,
            ),
            enable_network_isolation=network_isolation,
            vpc_config=vpc_config,
        )
        # SageMaker checks the role's access (S3, ECR) when it creates the model: the policies must
        # exist first. The role itself is already a dependency through ExecutionRoleArn.
        self.model.node.add_dependency(policy)
        ecr_pull_policy = self.role.node.try_find_child("DefaultPolicy")
        if ecr_pull_policy is not None:
            self.model.node.add_dependency(ecr_pull_policy)
        if not subnet_ids:
            Validations.of(self.model).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SM1",
                    reason="No VPC was configured; the model runs with network isolation"
                    if network_isolation
                    else "No VPC was configured for this deployment (context vpcSubnetIds)",
                )
            )
        if not network_isolation:
            Validations.of(self.model).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SM3",
                    reason="Network isolation was turned off explicitly by the deployer "
                    "(context networkIsolation=false), for handlers that must reach a network service.",
                )
            )

        self.volume_kms_key_set = supports_volume_kms_key(gpu.name)
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=variant_name,
                    model_name=self.model.attr_model_name,
                    instance_type=gpu.name,
                    initial_instance_count=initial_instance_count,
                    initial_variant_weight=1.0,
                    container_startup_health_check_timeout_in_seconds=container_startup_timeout_seconds,
                    model_data_download_timeout_in_seconds=model_download_timeout_seconds,
                )
            ],
            kms_key_id=encryption_key.key_arn if self.volume_kms_key_set else None,
        )
        if not self.volume_kms_key_set:
            Validations.of(self.endpoint_config).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-SM2",
                    reason=f"{gpu.name} has local NVMe instance storage, which is hardware-encrypted; "
                    "SageMaker rejects KmsKeyId on endpoint configs for such instance types.",
                )
            )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
