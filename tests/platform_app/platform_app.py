#!/usr/bin/env python3
"""A platform team's own CDK app built on ``mme_constructs`` (not this project's stack).

Everything it hands the production endpoint comes from elsewhere: the model bucket (imported with
its KMS key) and the VPC are imported, the serving image is a tag in the team's ECR repository, and
the endpoint name is a CloudFormation parameter. The team runs on ml.g6.xlarge, a single-GPU type
AWS does not list for GPU multi-model endpoints yet, so it states the type's facts (synth warns
about it). Its clients: a Lambda of its own (``grant_invoke``), a REST API in front of the endpoint
(aws-cdk-lib's SageMaker integration, IAM-authorized), and a partner account, which assumes an
invoker role of this account (``add_invoker_role``). It scales on invocations and on GPU
utilization, rolls updates out as a canary that the endpoint alarms roll back, pages the team's
on-call topic and gets a dashboard; the endpoint's and the packager's log groups use the team's
key. Each model's TargetModel is an SSM parameter its clients read. A second store, the team's
own bucket, holds the archives of a preview endpoint, built by its own packager. The shared bucket
belongs to the storage team: its policy cannot be changed from here, so the statements that keep
archive writes to the packager are a stack output the storage team adds to the bucket's policy,
and so is the lifecycle rule that expires retired archives (the constructs' warnings about both
are acknowledged). It runs with CDK's default feature flags
(no context of this repository) and the AwsSolutions checks.

    cd tests/platform_app && npx cdk synth      # or: python3 platform_app.py
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from mme_constructs import (
    UNENFORCED_WARNING,
    CapacitySize,
    EndpointAlarms,
    EndpointDashboard,
    EndpointDeployment,
    GpuInstanceType,
    ModelArtifact,
    ModelBucket,
    ModelPackager,
    ModelStore,
    MultiModelEndpoint,
    ServingImage,
)
from mme_constructs.key_policies import KEY_POLICY_WARNING

MODEL_SOURCES = Path(__file__).resolve().parents[2] / "model_sources"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
ON_CALL_TOPIC_ARN = "arn:aws:sns:eu-west-1:111122223333:platform-on-call"
PARTNER_ACCOUNT = "444455556666"
S3_PREFIX_LIST = "pl-6da54004"  # com.amazonaws.eu-west-1.s3 (the VPC's S3 gateway endpoint)
PARAMETERS = "/platform/image-editing/target-model"
CLIENT_CODE = '''
import os, boto3
runtime = boto3.client("sagemaker-runtime")
def handler(event, context):
    response = runtime.invoke_endpoint(EndpointName=os.environ["ENDPOINT_NAME"], TargetModel=event["target_model"],
                                       ContentType="application/json", Body=event["body"])
    return response["Body"].read().decode()
'''


class InferenceStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        endpoint_name = cdk.CfnParameter(self, "EndpointName", type="String", default="team-image-editing",
                                         allowed_pattern="^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
        # The team's key; its policy already lets CloudWatch Logs use it for this account's log groups.
        key = kms.Key.from_key_arn(self, "ModelKey", KEY_ARN)
        cdk.Annotations.of(self).acknowledge_warning(
            KEY_POLICY_WARNING, "The team's key policy lets CloudWatch Logs of this account use the key for "
            "log groups under /aws/sagemaker/Endpoints/ and /mme/ (the platform's key baseline).")
        shared = s3.Bucket.from_bucket_attributes(self, "SharedModels", bucket_name="platform-shared-models",
                                                  encryption_key=key)
        store = ModelStore(shared, model_prefix="image-editing/")  # the bucket's key
        vpc = ec2.Vpc.from_vpc_attributes(
            self, "Vpc", vpc_id="vpc-0a1b2c3d4e5f60718", vpc_cidr_block="10.20.0.0/16",
            availability_zones=["eu-west-1a", "eu-west-1b"],
            private_subnet_ids=["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"],
            private_subnet_route_table_ids=["rtb-0a1b2c3d4e5f60718", "rtb-0a1b2c3d4e5f60719"])
        repository = ecr.Repository.from_repository_name(self, "ServingRepo", "platform/torchserve-mme")
        image = ServingImage.from_ecr_repository(self, "ServingImage", repository=repository, tag="1.4.0")

        endpoint = MultiModelEndpoint(
            self, "ImageEditing",
            image=image,
            model_store=store,
            endpoint_name=endpoint_name.value_as_string,
            instance_type=GpuInstanceType("ml.g6.xlarge", "NVIDIA L4", gpu_memory_gib=24, instance_storage=True),
            initial_instance_count=2,
            vpc=vpc,
            allow_all_outbound=False,
            deployment=EndpointDeployment.canary(step=CapacitySize(instances=1), wait=cdk.Duration.minutes(10),
                                                 bake=cdk.Duration.minutes(20)),
            log_encryption_key=key,
            log_retention=logs.RetentionDays.THREE_MONTHS,
        )
        # No outbound rule but these: S3 (archives) through the gateway endpoint, ECR and CloudWatch
        # through the VPC's interface endpoints.
        endpoint.connections.allow_to(ec2.Peer.prefix_list(S3_PREFIX_LIST), ec2.Port.tcp(443), "S3 gateway endpoint")
        endpoint.connections.allow_to(ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(443), "VPC interface endpoints")

        packager = ModelPackager(self, "Packager", model_store=store, memory_size=4096,
                                 timeout=cdk.Duration.minutes(12), log_encryption_key=key,
                                 log_retention=logs.RetentionDays.THREE_MONTHS)
        sam = ModelArtifact.from_model_sources(self, "Sam", model_sources_dir=MODEL_SOURCES, model_name="sam",
                                               model_store=store, packager=packager,
                                               target_model_parameter_name=f"{PARAMETERS}/sam")
        self._archive_write_policy(store)
        self._preview(image)

        client = self._client(endpoint.endpoint_name)
        endpoint.grant_invoke(client)
        sam.grant_read_target_model(client)
        api = self._rest_api(endpoint)
        partner = endpoint.add_invoker_role("PartnerInvoker", trusted_account=PARTNER_ACCOUNT,
                                            external_id="partner-image-editing")

        scaling = endpoint.auto_scale_instance_count(min_capacity=2, max_capacity=4)
        scaling.scale_on_invocations(invocations_per_instance=40)
        scaling.scale_on_gpu_utilization(target_utilization_percent=65)

        alarms = EndpointAlarms(self, "Alarms", endpoint=endpoint,
                                topic=sns.Topic.from_topic_arn(self, "OnCall", ON_CALL_TOPIC_ARN),
                                cache_hit_ratio_min=0.9, gpu_memory_utilization_percent=85)
        dashboard = EndpointDashboard(self, "Dashboard", endpoint=endpoint, alarms=alarms)

        cdk.CfnOutput(self, "EndpointArn", value=endpoint.endpoint_arn)
        cdk.CfnOutput(self, "SamTargetModel", value=sam.target_model)
        cdk.CfnOutput(self, "DashboardUrl", value=dashboard.dashboard_url)
        cdk.CfnOutput(self, "ApiUrl", value=api.url)
        assert partner is endpoint.invoker_roles["PartnerInvoker"]

    def _preview(self, image: ServingImage) -> None:
        """The team's own bucket with its own packager (x86, its own log settings), serving a preview
        endpoint; preview archives are deleted, not retired, when replaced."""
        preview = ModelBucket(self, "PreviewModels", model_prefix="preview/",
                              retired_archive_expiration=cdk.Duration.days(7))
        packager = ModelPackager(self, "PreviewPackager", model_store=preview.model_store,
                                 architecture=lambda_.Architecture.X86_64)
        ModelArtifact.from_model_sources(self, "LamaPreview", model_sources_dir=MODEL_SOURCES, model_name="lama",
                                         model_store=preview.model_store, packager=packager, on_delete="delete",
                                         target_model_parameter_name=f"{PARAMETERS}/preview/lama")
        MultiModelEndpoint(self, "Preview", image=image, model_store=preview.model_store,
                           instance_type="ml.g5.xlarge")

    def _rest_api(self, endpoint: MultiModelEndpoint) -> apigateway.RestApi:
        """POST /invocations with an X-Target-Model header, IAM-authorized, straight to the endpoint."""
        access_logs = logs.LogGroup(self, "ApiAccessLogs", retention=logs.RetentionDays.THREE_MONTHS,
                                    removal_policy=cdk.RemovalPolicy.DESTROY)
        api = apigateway.RestApi(
            self, "Api", cloud_watch_role=False,  # the account's API Gateway logging role is the platform's
            deploy_options=apigateway.StageOptions(
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True, resource_path=True,
                    response_length=True, status=True, user=True),
                logging_level=apigateway.MethodLoggingLevel.ERROR, tracing_enabled=True))
        integration = apigateway.SagemakerIntegration(endpoint, request_parameters={
            "integration.request.header.X-Amzn-SageMaker-Target-Model": "method.request.header.X-Target-Model"})
        validator = api.add_request_validator("Requests", validate_request_parameters=True, validate_request_body=True)
        method = api.root.add_resource("invocations").add_method(
            "POST", integration, authorization_type=apigateway.AuthorizationType.IAM, request_validator=validator,
            request_parameters={"method.request.header.X-Target-Model": True})
        cdk.Validations.of(method).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-COG4", reason="Callers are the team's services with IAM credentials (SigV4); there "
            "are no end users to authenticate with Cognito."))
        cdk.Validations.of(api.deployment_stage).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-APIG3", reason="The platform's Firewall Manager policy associates its regional web "
            "ACL with every API stage of the account."))
        return api

    def _archive_write_policy(self, store: ModelStore) -> None:
        """What the storage team adds to the shared bucket's policy: only this packager may change
        archives under image-editing/, and only with the team's key."""
        cdk.CfnOutput(self, "ArchiveWritePolicyStatements", description="Add to the policy of platform-shared-models",
                      value=self.to_json_string(store.archive_write_policy_document().to_json()["Statement"]))
        cdk.Annotations.of(store.bucket).acknowledge_warning(
            UNENFORCED_WARNING, "The storage team's stack adds the ArchiveWritePolicyStatements output to the "
            "shared bucket's policy on each release of this stack.")
        # Replaced archives are retired, not deleted: the storage team's lifecycle rule expires them.
        cdk.CfnOutput(self, "RetiredArchiveRule", description="Add to the lifecycle rules of platform-shared-models",
                      value=self.to_json_string(store.retired_archive_rule(days=14)))
        cdk.Annotations.of(self).acknowledge_warning(
            "mme-constructs:retiredArchivesNotExpired", "The storage team adds the RetiredArchiveRule output to the "
            "shared bucket's lifecycle rules with the archive write statements.")

    def _client(self, endpoint_name: str) -> lambda_.Function:
        """The team's client Lambda, with its own role and log group."""
        log_group = logs.LogGroup(self, "ClientLogs", retention=logs.RetentionDays.THREE_MONTHS,
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        role = iam.Role(self, "ClientRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        log_group.grant_write(role)
        return lambda_.Function(
            self, "Client", runtime=lambda_.Runtime.PYTHON_3_14, handler="index.handler",
            code=lambda_.Code.from_inline(CLIENT_CODE), role=role, log_group=log_group,
            environment={"ENDPOINT_NAME": endpoint_name}, timeout=cdk.Duration.seconds(70))


def build(app: cdk.App) -> cdk.App:
    InferenceStack(app, "PlatformInference", env=cdk.Environment(account="111122223333", region="eu-west-1"))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    return app


if __name__ == "__main__":
    build(cdk.App()).synth()
