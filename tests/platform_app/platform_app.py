#!/usr/bin/env python3
"""A platform team's own CDK app built on ``mme_constructs`` (not this project's stack).

Everything it hands the constructs comes from elsewhere: the model bucket, its KMS key and the
VPC are imported, the serving image is a tag in the team's ECR repository, and the endpoint name
is a CloudFormation parameter. The team runs on ml.g6.xlarge, a single-GPU type AWS does not list
for GPU multi-model endpoints yet, so it states the type's facts (synth warns about it). It grants a
client Lambda the right to invoke the endpoint, scales on invocations and on GPU utilization,
alarms to the team's on-call topic and gets a dashboard; the endpoint's and the packager's log
groups use the team's key. The shared bucket belongs to the storage team: its policy cannot be
changed from here, so the statements that keep archive writes to the packager are a stack output
the storage team adds to the bucket's policy (and the construct's warning about it is acknowledged).
It runs with CDK's default feature flags (no context of this repository) and the AwsSolutions checks.

    cd tests/platform_app && npx cdk synth      # or: python3 platform_app.py
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
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
    EndpointAlarms,
    EndpointDashboard,
    GpuInstanceType,
    ModelArtifact,
    ModelArtifactProvider,
    ModelStore,
    MultiModelEndpoint,
    ServingImage,
)

MODEL_SOURCES = Path(__file__).resolve().parents[2] / "model_sources"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
ON_CALL_TOPIC_ARN = "arn:aws:sns:eu-west-1:111122223333:platform-on-call"
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
        store = ModelStore(s3.Bucket.from_bucket_name(self, "SharedModels", "platform-shared-models"),
                           model_prefix="image-editing/", encryption_key=key)
        vpc = ec2.Vpc.from_vpc_attributes(
            self, "Vpc", vpc_id="vpc-0a1b2c3d4e5f60718", availability_zones=["eu-west-1a", "eu-west-1b"],
            private_subnet_ids=["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"],
            private_subnet_route_table_ids=["rtb-0a1b2c3d4e5f60718", "rtb-0a1b2c3d4e5f60719"])
        repository = ecr.Repository.from_repository_name(self, "ServingRepo", "platform/torchserve-mme")

        endpoint = MultiModelEndpoint(
            self, "ImageEditing",
            image=ServingImage.from_ecr_repository(self, "ServingImage", repository=repository, tag="1.4.0"),
            model_store=store,
            endpoint_name=endpoint_name.value_as_string,
            instance_type=GpuInstanceType("ml.g6.xlarge", "NVIDIA L4", gpu_memory_gib=24, instance_storage=True),
            vpc=vpc,
            log_encryption_key=key,
            log_retention=logs.RetentionDays.THREE_MONTHS,
        )
        ModelArtifactProvider.of(self, model_store=store, log_encryption_key=key,
                                 log_retention=logs.RetentionDays.THREE_MONTHS)
        sam = ModelArtifact.from_model_sources(self, "Sam", model_sources_dir=MODEL_SOURCES, model_name="sam",
                                               model_store=store)
        self._archive_write_policy(store)

        client = self._client(endpoint.endpoint_name)
        endpoint.grant_invoke(client)

        scaling = endpoint.auto_scale_instance_count(min_capacity=1, max_capacity=4)
        scaling.scale_on_invocations(invocations_per_instance=40)
        scaling.scale_on_gpu_utilization(target_utilization_percent=65)

        alarms = EndpointAlarms(self, "Alarms", endpoint=endpoint,
                                topic=sns.Topic.from_topic_arn(self, "OnCall", ON_CALL_TOPIC_ARN),
                                cache_hit_ratio_min=0.9, gpu_memory_utilization_percent=85)
        dashboard = EndpointDashboard(self, "Dashboard", endpoint=endpoint, alarms=alarms)

        cdk.CfnOutput(self, "EndpointArn", value=endpoint.endpoint_arn)
        cdk.CfnOutput(self, "SamTargetModel", value=sam.target_model)
        cdk.CfnOutput(self, "DashboardUrl", value=dashboard.dashboard_url)

    def _archive_write_policy(self, store: ModelStore) -> None:
        """What the storage team adds to the shared bucket's policy: only this packager may change
        archives under image-editing/, and only with the team's key."""
        cdk.CfnOutput(self, "ArchiveWritePolicyStatements", description="Add to the policy of platform-shared-models",
                      value=self.to_json_string(store.archive_write_policy_document().to_json()["Statement"]))
        cdk.Annotations.of(store.bucket).acknowledge_warning(
            UNENFORCED_WARNING, "The storage team's stack adds the ArchiveWritePolicyStatements output to the "
            "shared bucket's policy on each release of this stack.")

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
    InferenceStack(app, "PlatformInference")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    return app


if __name__ == "__main__":
    build(cdk.App()).synth()
