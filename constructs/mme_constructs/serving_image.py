"""The container image a multi-model endpoint runs: built from a folder, taken from ECR, or the DLC itself."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Annotations, Aws, CfnMapping, Stack, Token
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct

from mme_constructs._dlc_registries import REGISTRY_ACCOUNTS
from mme_constructs.dlc import (
    DEFAULT_DLC_REGION,
    DLC_REPOSITORY,
    DLC_TAG,
    dlc_image_uri,
    dlc_registry_account,
    dlc_support,
    end_of_patch_warning,
)
from mme_constructs.dockerfile import dockerfile_base_image
from mme_constructs.gpu_runtime import CudaBuild

__all__ = ["DEFAULT_BASE_IMAGE", "ServingImage", "dlc_base_image", "dockerfile_base_image"]

#: The base of this library's serving image (``container/Dockerfile``, ``ARG BASE_IMAGE``): the Docker
#: official Debian 13 slim image on ECR Public, which any account pulls without a login.
DEFAULT_BASE_IMAGE = "public.ecr.aws/docker/library/debian:trixie-slim"
_DLC_MAPPING_ID = "PytorchInferenceDlcRegistry"


class ServingImage(Construct):
    """An image in an ECR repository, with ``image_uri`` and ``grant_pull``. Make one with a factory:

    * :meth:`from_asset`: build a folder with a Dockerfile at deploy time (``DockerImageAsset``;
      synth only hashes the folder, no Docker engine needed), e.g. this repository's
      ``container/`` (Debian 13, TorchServe 0.12, torch 2.10 CUDA 12.8);
    * :meth:`from_ecr_repository`: an image already pushed, by tag or digest;
    * :meth:`from_dlc`: the SageMaker PyTorch inference DLC (GPU) itself, resolved per region
      (a ``CfnMapping`` of the registry accounts for an environment-agnostic stack). Its PyTorch
      2.6 line, the last with TorchServe, gets no patches since 2026-06-30: synth warns
      (``mme-constructs:dlcPastEndOfPatch``).

    ``cuda_build`` (:class:`~mme_constructs.gpu_runtime.CudaBuild`) says which CUDA version and GPU
    architectures the image's framework was built for: :class:`MultiModelEndpoint` then picks an
    inference AMI whose driver runs it and refuses an instance type whose GPU it has no kernels
    for. ``None`` (not known): nothing is checked.

    Attributes: ``image_uri``, ``repository`` (``ecr.IRepository``), ``base_image`` (the build's
    base for :meth:`from_asset`: the one given, else the Dockerfile's ``ARG BASE_IMAGE`` default;
    else ``None``), ``cuda_build`` and ``asset`` (the ``DockerImageAsset`` or ``None``).
    """

    image_uri: str
    repository: ecr.IRepository
    base_image: str | None = None
    cuda_build: CudaBuild | None = None
    asset: ecr_assets.DockerImageAsset | None = None

    @classmethod
    def from_asset(cls, scope: Construct, construct_id: str, *, directory: str | Path,
                   base_image: str | None = None, build_args: dict[str, str] | None = None,
                   cuda_build: CudaBuild | None = None) -> "ServingImage":
        """Build ``directory`` (it must hold a ``Dockerfile``) at deploy time.

        ``base_image``: passed as the ``BASE_IMAGE`` build argument (e.g. your registry's mirror of
        the Dockerfile's base); default none, so the Dockerfile's own ``ARG BASE_IMAGE`` default
        applies. ``build_args`` are passed on. ``cuda_build``: the CUDA build of the image's
        framework (default unknown). The image is built for ``linux/amd64`` and pushed to the
        bootstrap ECR repository of the stack's account and region.
        """
        return _AssetImage(scope, construct_id, directory=Path(directory), base_image=base_image,
                           build_args=dict(build_args or {}), cuda_build=cuda_build)

    @classmethod
    def from_ecr_repository(cls, scope: Construct, construct_id: str, *, repository: ecr.IRepository,
                            tag: str = "latest", cuda_build: CudaBuild | None = None) -> "ServingImage":
        """The image ``tag`` (or digest ``sha256:...``) of ``repository`` (owned or imported);
        ``cuda_build`` as for :meth:`from_asset`."""
        return _RepositoryImage(scope, construct_id, repository=repository, tag=tag, cuda_build=cuda_build)

    @classmethod
    def from_dlc(cls, scope: Construct, construct_id: str, *, tag: str = DLC_TAG) -> "ServingImage":
        """The SageMaker PyTorch inference DLC image ``tag`` of the stack's region.

        For a stack with a concrete region the URI is a literal; for an environment-agnostic
        stack the registry account comes from a ``CfnMapping`` (region -> account) added to the
        stack once, so the template resolves it in whichever region it is deployed to. Synth warns
        when the tag's DLC line is past its end of patching (``mme_constructs.dlc.DLC_SUPPORT``).
        """
        return _DlcImage(scope, construct_id, tag=tag)

    def grant_pull(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` pull this image: its repository only, plus the account-wide auth token."""
        return self.repository.grant_pull(grantee)

    def pull_statements(self) -> list[iam.PolicyStatement]:
        """What :meth:`grant_pull` allows, as statements for a policy of one's own: the actions of
        aws-cdk-lib's ``Repository.grantPull`` on this repository, and ``ecr:GetAuthorizationToken``
        (which has no resource-level form)."""
        return [
            iam.PolicyStatement(sid="PullServingImage", resources=[self.repository.repository_arn],
                                actions=["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
                                         "ecr:BatchGetImage"]),
            iam.PolicyStatement(sid="EcrAuthorizationToken", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        ]


class _AssetImage(ServingImage):
    def __init__(self, scope: Construct, construct_id: str, *, directory: Path, base_image: str | None,
                 build_args: dict[str, str], cuda_build: CudaBuild | None) -> None:
        errors = []
        if not (directory / "Dockerfile").is_file():
            errors.append(f"directory: no Dockerfile in {directory}")
        if base_image is not None and (Token.is_unresolved(base_image) or not base_image.strip()
                                       or any(c.isspace() for c in base_image)):
            errors.append(f"base_image: must be a literal image reference (a Docker build argument), got {base_image!r}")
        _check_cuda_build(cuda_build, errors)
        if errors:
            raise ValueError("ServingImage.from_asset: " + "; ".join(errors))
        super().__init__(scope, construct_id)
        self.base_image = base_image or dockerfile_base_image(directory / "Dockerfile")
        self.cuda_build = cuda_build
        if base_image is not None:
            build_args = {**build_args, "BASE_IMAGE": base_image}
        self.asset = ecr_assets.DockerImageAsset(
            self, "Asset",
            directory=str(directory),
            platform=ecr_assets.Platform.LINUX_AMD64,
            build_args=build_args or None,
            exclude=["**/__pycache__", "**/*.pyc"],
        )
        self.image_uri = self.asset.image_uri
        self.repository = self.asset.repository


class _RepositoryImage(ServingImage):
    def __init__(self, scope: Construct, construct_id: str, *, repository: ecr.IRepository, tag: str,
                 cuda_build: CudaBuild | None) -> None:
        literal = not Token.is_unresolved(tag)
        errors = [] if not literal or tag.strip() else ["tag: give a tag or a sha256: digest"]
        _check_cuda_build(cuda_build, errors)
        if errors:
            raise ValueError("ServingImage.from_ecr_repository: " + "; ".join(errors))
        super().__init__(scope, construct_id)
        self.cuda_build = cuda_build
        self.repository = repository
        if literal and tag.startswith("sha256:"):
            self.image_uri = repository.repository_uri_for_digest(tag)
        else:
            self.image_uri = repository.repository_uri_for_tag(tag)


class _DlcImage(ServingImage):
    def __init__(self, scope: Construct, construct_id: str, *, tag: str) -> None:
        super().__init__(scope, construct_id)
        support = dlc_support(tag)
        self.cuda_build = support.cuda_build if support is not None else None
        warning = end_of_patch_warning(tag)
        if warning:
            Annotations.of(self).add_warning_v2("mme-constructs:dlcPastEndOfPatch", warning)
        stack = Stack.of(self)
        if Token.is_unresolved(stack.region):
            account = _dlc_mapping(stack).find_in_map(Aws.REGION, "account")
            self.image_uri = f"{account}.dkr.ecr.{Aws.REGION}.{Aws.URL_SUFFIX}/{DLC_REPOSITORY}:{tag}"
            arn = f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{account}:repository/{DLC_REPOSITORY}"
        else:
            try:
                account = dlc_registry_account(stack.region)
            except ValueError as err:
                raise ValueError(f"ServingImage.from_dlc: {err}") from None
            self.image_uri = dlc_image_uri(stack.region, tag)
            arn = f"arn:{stack.partition}:ecr:{stack.region}:{account}:repository/{DLC_REPOSITORY}"
        self.repository = ecr.Repository.from_repository_attributes(
            self, "Repository", repository_arn=arn, repository_name=DLC_REPOSITORY)


def _check_cuda_build(cuda_build, errors: list[str]) -> None:
    if cuda_build is not None and not isinstance(cuda_build, CudaBuild):
        errors.append(f"cuda_build: give a mme_constructs.gpu_runtime.CudaBuild or None, got {cuda_build!r}")


def dlc_base_image(scope: Construct) -> str:
    """The DLC image a build on ``scope``'s stack would start from: its region's, else ``us-east-1``'s.

    A Docker build argument is fixed at synth (the CLI builds the image before CloudFormation
    runs), so an environment-agnostic stack cannot pick the region's registry through a mapping;
    its build pulls from ``us-east-1``, which works from any region.
    """
    region = Stack.of(scope).region
    return dlc_image_uri(DEFAULT_DLC_REGION if Token.is_unresolved(region) else region)


def _dlc_mapping(stack: Stack) -> CfnMapping:
    existing = stack.node.try_find_child(_DLC_MAPPING_ID)
    if isinstance(existing, CfnMapping):
        return existing
    return CfnMapping(stack, _DLC_MAPPING_ID,
                      mapping={region: {"account": account} for region, account in REGISTRY_ACCOUNTS.items()})
