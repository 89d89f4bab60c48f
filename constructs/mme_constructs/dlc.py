"""The SageMaker PyTorch inference DLC (GPU) per region, for ``ServingImage.from_dlc``, and how long
AWS patches it.

The registry account of each region comes from the ``sagemaker`` SDK's image-URI configuration
(sagemaker-core's ``image_uri_config/pytorch.json``), copied into ``_dlc_registries.py`` by
``python constructs/tools/dlc_sync.py`` and checked against the installed SDK by the test suite.
Synth never imports the SDK: this module is plain data.

``python -m mme_constructs.dlc REGION`` prints that region's image URI and the ``docker login``
that pulling it needs.

Support dates (:data:`DLC_SUPPORT`): AWS Deep Learning Containers' framework support policy
(https://docs.aws.amazon.com/deep-learning-containers/latest/devguide/support-policy.html, checked
2026-12-06): PyTorch 2.6 inference is the last PyTorch inference DLC with TorchServe, and its
patching ended on 2026-06-30. TorchServe itself is in limited maintenance (no planned updates,
fixes or security patches; its repository is archived) and 0.12.0 is its last release.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass

from mme_constructs._dlc_registries import FRAMEWORK_VERSION, PY_VERSION, REGISTRY_ACCOUNTS, REPOSITORY
from mme_constructs.gpu_runtime import DLC_PYTORCH_2_6_CU124, CudaBuild

#: Full tag of the GPU image (CUDA 12.4, Ubuntu 22.04, SageMaker flavour) the container is built for.
DLC_TAG = f"{FRAMEWORK_VERSION}-gpu-{PY_VERSION}-cu124-ubuntu22.04-sagemaker"
DLC_REPOSITORY = REPOSITORY
#: Where an environment-agnostic stack's image build pulls the base image from (any registry
#: works for a build: the built image is pushed to the stack's own region).
DEFAULT_DLC_REGION = "us-east-1"


@dataclass(frozen=True)
class DlcSupport:
    """One PyTorch inference DLC line: until when AWS patches it, and what it serves with."""

    framework_version: str
    end_of_patch: datetime.date
    model_server: str
    cuda_build: CudaBuild


#: PyTorch inference DLC lines by framework version (see the module docstring for the source).
DLC_SUPPORT: dict[str, DlcSupport] = {
    "2.6": DlcSupport("2.6", datetime.date(2026, 6, 30), "TorchServe 0.12.0", DLC_PYTORCH_2_6_CU124),
}


def dlc_support(tag: str) -> DlcSupport | None:
    """The support entry of the DLC line a tag (``2.6.0-gpu-py312-...``) belongs to, ``None`` if unknown."""
    major_minor = ".".join(tag.split("-", 1)[0].split(".")[:2])
    return DLC_SUPPORT.get(major_minor)


def end_of_patch_warning(tag: str, today: datetime.date | None = None) -> str | None:
    """The synth warning for a DLC tag whose patching has ended (or whose dates are unknown), else ``None``."""
    today = today or datetime.date.today()
    support = dlc_support(tag)
    if support is None:
        return (f"the PyTorch inference DLC {tag} is not in mme_constructs.dlc.DLC_SUPPORT: check its support "
                "dates in AWS's Deep Learning Containers support policy")
    if today <= support.end_of_patch:
        return None
    return (f"the PyTorch {support.framework_version} inference DLC ({tag}) has had no patches since "
            f"{support.end_of_patch.isoformat()} (AWS's Deep Learning Containers support policy), and its "
            f"{support.model_server} gets no fixes either; ServingImage.from_asset builds this library's own "
            "image on a Debian release that still gets security fixes")


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
