"""The TorchServe serving image of the multi-model endpoint, built from ``container/`` at deploy time."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct

#: SageMaker PyTorch inference DLC (GPU) the image builds on, in us-east-1. Pulling it needs
#: ``aws ecr get-login-password --region us-east-1 | docker login --username AWS
#: --password-stdin 763104351884.dkr.ecr.us-east-1.amazonaws.com`` before ``cdk deploy``.
DEFAULT_BASE_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
    "pytorch-inference:2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker"
)


class ServingImage(Construct):
    """A ``DockerImageAsset`` of the serving container, based on a SageMaker PyTorch DLC.

    Synth only hashes the build context (no Docker engine needed); ``cdk deploy``
    builds the image for ``linux/amd64`` and pushes it to the bootstrap ECR repository.
    The base image is the ``BASE_IMAGE`` build argument so a team can move to another
    DLC release or region without editing the Dockerfile.

    Attributes: ``asset`` (the DockerImageAsset), ``image_uri`` and ``base_image``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        directory: str | Path,
        base_image: str = DEFAULT_BASE_IMAGE,
        build_args: dict[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        directory = Path(directory)
        if not (directory / "Dockerfile").is_file():
            raise ValueError(f"no Dockerfile in {directory}")
        if not base_image or any(c.isspace() for c in base_image):
            raise ValueError(f"base_image must be an image reference, got {base_image!r}")
        self.base_image = base_image
        self.asset = ecr_assets.DockerImageAsset(
            self,
            "Asset",
            directory=str(directory),
            platform=ecr_assets.Platform.LINUX_AMD64,
            build_args={**(build_args or {}), "BASE_IMAGE": base_image},
            exclude=["**/__pycache__", "**/*.pyc"],
        )
        self.image_uri = self.asset.image_uri

    def grant_pull(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` pull this image (its repository only, plus the account-wide auth token)."""
        return self.asset.repository.grant_pull(grantee)
