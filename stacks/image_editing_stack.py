"""The deployable stack: model bucket, serving image, GPU multi-model endpoint, autoscaling."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Duration, Stack
from constructs import Construct

from mme_constructs import EndpointAutoscaling, ModelBucket, MultiModelEndpoint, ServingImage
from mme_constructs.instance_types import gpu_instance_type
from mme_constructs.model_artifact import ModelArtifact
from mme_constructs.serving_image import DEFAULT_BASE_IMAGE
from stacks.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


class ImageEditingStack(Stack):
    """One GPU SageMaker multi-model endpoint serving SAM, LaMa and SD2 inpainting via TorchServe.

    ``settings`` comes from ``stacks.settings.settings_from_context``; the stack itself
    reads no context.  Outputs: ``EndpointName``, ``VariantName``, ``ModelBucketName``,
    ``ModelPrefix`` and ``TargetModel<Name>`` per enabled model (``TargetModelSam``, ...).
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings

        self.model_bucket = ModelBucket(self, "ModelBucket", model_prefix=settings.model_prefix)
        self.serving_image = ServingImage(
            self,
            "ServingImage",
            directory=REPO_ROOT / "container",
            base_image=settings.base_image or DEFAULT_BASE_IMAGE,
        )
        self.endpoint = MultiModelEndpoint(
            self,
            "Endpoint",
            image=self.serving_image,
            bucket=self.model_bucket.bucket,
            encryption_key=self.model_bucket.encryption_key,
            model_prefix=self.model_bucket.model_prefix,
            endpoint_name=settings.endpoint_name,
            instance_type=settings.instance_type,
            initial_instance_count=settings.initial_instance_count,
            network_isolation=settings.network_isolation,
            subnet_ids=settings.vpc_subnet_ids,
            security_group_ids=settings.vpc_security_group_ids,
        )
        self.autoscaling = EndpointAutoscaling(
            self,
            "Autoscaling",
            endpoint_name=settings.endpoint_name,
            variant_name=self.endpoint.variant_name,
            min_capacity=settings.min_instance_count,
            max_capacity=settings.max_instance_count,
            invocations_per_instance_target=settings.invocations_per_instance_target,
            gpu_utilization_target=settings.gpu_utilization_target,
            gpu_count=gpu_instance_type(settings.instance_type).gpu_count,
            scale_out_cooldown=Duration.seconds(settings.scale_out_cooldown_seconds),
            scale_in_cooldown=Duration.seconds(settings.scale_in_cooldown_seconds),
            depends_on=self.endpoint.endpoint,
        )

        # One packaging custom resource per enabled model: it streams the model source and
        # its weights into <prefix><name>-<digest>.tar.gz, the endpoint's TargetModel.
        self.model_artifacts: dict[str, ModelArtifact] = {
            name: ModelArtifact.from_model_sources(
                self,
                f"{name.capitalize()}Artifact",
                model_sources_dir=REPO_ROOT / "model_sources",
                model_name=name,
                bucket=self.model_bucket.bucket,
                encryption_key=self.model_bucket.encryption_key,
                model_prefix=self.model_bucket.model_prefix,
            )
            for name in settings.enabled_models
        }

        CfnOutput(self, "EndpointName", value=self.endpoint.endpoint.attr_endpoint_name,
                  description="SageMaker endpoint to invoke")
        CfnOutput(self, "VariantName", value=self.endpoint.variant_name, description="Production variant")
        CfnOutput(self, "ModelBucketName", value=self.model_bucket.bucket.bucket_name,
                  description="Bucket holding the model archives")
        CfnOutput(self, "ModelPrefix", value=self.model_bucket.model_prefix,
                  description="Key prefix of the archives (the endpoint's ModelDataUrl)")
        for name, artifact in self.model_artifacts.items():
            CfnOutput(self, f"TargetModel{name.capitalize()}", value=artifact.target_model,
                      description=f"TargetModel of {name}")
