"""The SageMaker PyTorch inference DLC (GPU) per region: the serving image's base, or the image itself.

The registry account of each region comes from the ``sagemaker`` SDK's image-URI configuration
(sagemaker-core's ``image_uri_config/pytorch.json``), copied into ``_dlc_registries.py`` by
``python -m mme_constructs.dlc_sync`` and checked against the installed SDK by the test suite.
Synth never imports the SDK: this module is plain data.

``python -m mme_constructs.dlc REGION`` prints that region's image URI and the ``docker login``
that ``cdk deploy`` needs to build the serving image on it.
"""

from __future__ import annotations

import sys

from mme_constructs._dlc_registries import FRAMEWORK_VERSION, PY_VERSION, REGISTRY_ACCOUNTS, REPOSITORY

#: Full tag of the GPU image (CUDA 12.4, Ubuntu 22.04, SageMaker flavour) the container is built for.
DLC_TAG = f"{FRAMEWORK_VERSION}-gpu-{PY_VERSION}-cu124-ubuntu22.04-sagemaker"
DLC_REPOSITORY = REPOSITORY
#: Where an environment-agnostic stack's image build pulls the base image from (any registry
#: works for a build: the built image is pushed to the stack's own region).
DEFAULT_DLC_REGION = "us-east-1"


def dlc_registry_account(region: str) -> str:
    """The DLC registry account of ``region``; ``ValueError`` naming the known regions otherwise."""
    try:
        return REGISTRY_ACCOUNTS[region]
    except KeyError:
        raise ValueError(
            f"no SageMaker PyTorch {FRAMEWORK_VERSION} inference DLC registry is known for region {region!r} "
            f"(known: {', '.join(sorted(REGISTRY_ACCOUNTS))}); pass the image URI yourself"
        ) from None


def url_suffix(region: str) -> str:
    """The partition's domain suffix (``amazonaws.com``, ``amazonaws.com.cn`` in China)."""
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


def dlc_registry(region: str) -> str:
    """``<account>.dkr.ecr.<region>.<suffix>``: the registry to ``docker login`` to."""
    return f"{dlc_registry_account(region)}.dkr.ecr.{region}.{url_suffix(region)}"


def dlc_image_uri(region: str, tag: str = DLC_TAG) -> str:
    """The PyTorch inference DLC image URI in ``region``."""
    return f"{dlc_registry(region)}/{DLC_REPOSITORY}:{tag}"


DEFAULT_BASE_IMAGE = dlc_image_uri(DEFAULT_DLC_REGION)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mme_constructs.dlc REGION", file=sys.stderr)
        return 2
    try:
        registry = dlc_registry(args[0])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(dlc_image_uri(args[0]))
    print(f"aws ecr get-login-password --region {args[0]} | "
          f"docker login --username AWS --password-stdin {registry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
