"""The deployable stack: model bucket, serving image, GPU multi-model endpoint, autoscaling, artifacts."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Annotations, CfnOutput, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from mme_constructs import ModelArtifact, ModelBucket, MultiModelEndpoint, ServingImage
from stacks.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


class ImageEditingStack(Stack):
    """One GPU SageMaker multi-model endpoint serving SAM, LaMa and SD2 inpainting via TorchServe.

    ``settings`` comes from ``stacks.settings.settings_from_context``; the stack itself
    reads no context. Outputs: ``EndpointName``, ``VariantName``, ``ModelBucketName``,
    ``ModelPrefix``, ``ServingBaseImage`` and ``TargetModel<Name>`` per enabled model
    (``TargetModelSam``, ...).
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings

        self.model_bucket = ModelBucket(self, "ModelBucket", model_prefix=settings.model_prefix)
        self.serving_image = ServingImage.from_asset(
            self, "ServingImage", directory=REPO_ROOT / "container", base_image=settings.base_image or None)
        self.endpoint = MultiModelEndpoint(
            self,
            "Endpoint",
            image=self.serving_image,
            model_store=self.model_bucket.model_store,
            endpoint_name=settings.endpoint_name,
            instance_type=settings.gpu_instance_type,
            initial_instance_count=settings.initial_instance_count,
            network_isolation=settings.network_isolation,
            **self._imported_network(settings),
        )
        self.autoscaling = self._autoscaling(settings)

        # One packaging custom resource per enabled model: it streams the model source and
        # its weights into <prefix><name>-<digest>.tar.gz, the endpoint's TargetModel.
        self.model_artifacts: dict[str, ModelArtifact] = {
            name: ModelArtifact.from_model_sources(
                self,
                f"{name.capitalize()}Artifact",
                model_sources_dir=REPO_ROOT / "model_sources",
                model_name=name,
                model_store=self.model_bucket.model_store,
            )
            for name in settings.enabled_models
        }
        self._outputs()

    def _imported_network(self, settings: Settings) -> dict:
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

    def _autoscaling(self, settings: Settings):
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
        CfnOutput(self, "EndpointName", value=self.endpoint.cfn_endpoint.attr_endpoint_name,
                  description="SageMaker endpoint to invoke")
        CfnOutput(self, "VariantName", value=self.endpoint.variant_name, description="Production variant")
        CfnOutput(self, "ModelBucketName", value=self.model_bucket.bucket.bucket_name,
                  description="Bucket holding the model archives")
        CfnOutput(self, "ModelPrefix", value=self.model_bucket.model_prefix,
                  description="Key prefix of the archives (the endpoint's ModelDataUrl)")
        CfnOutput(self, "ServingBaseImage", value=self.serving_image.base_image,
                  description="SageMaker PyTorch DLC the serving image is built on (docker login to its registry)")
        for name, artifact in self.model_artifacts.items():
            CfnOutput(self, f"TargetModel{name.capitalize()}", value=artifact.target_model,
                      description=f"TargetModel of {name}")
