"""What a serving image's CUDA build needs from the GPU host, and what SageMaker's inference AMIs give.

A GPU endpoint runs its container on a host image that SageMaker picks from the production
variant's ``InferenceAmiVersion``; without one, SageMaker's default for ml.g4dn, ml.g5 and ml.p3
real-time endpoints is NVIDIA driver 470 (CUDA 11.4), on which no CUDA 12 build runs. So the
endpoint names the AMI, and synth checks that its driver runs the image's build and that the
build has kernels for the instance's GPU.

Sources (checked 2026-12-06):

* ``[API]`` SageMaker API reference, ``ProductionVariant.InferenceAmiVersion`` (botocore 1.44.8's
  service model, the same text): the AMI names, each with its NVIDIA driver and CUDA version;
  CloudFormation's resource schema of ``AWS::SageMaker::EndpointConfig`` (cfn-lint 1.58) allows
  exactly these names.
* ``[DRIVERS]`` SageMaker Developer Guide, "Best practices to minimize interruptions during GPU
  driver upgrades": real-time endpoints on ml.p3, ml.g4dn and ml.g5 default to driver 470, CUDA 11.4;
  ml.p5 and ml.g6 to 535, CUDA 12.2.
  https://docs.aws.amazon.com/sagemaker/latest/dg/inference-gpu-drivers.html
* ``[COMPAT]`` NVIDIA, "CUDA Compatibility", minor-version compatibility: an application built with
  any CUDA 12.x toolkit runs on a driver >= 525.60.13 (CUDA 11.x: >= 450.80.02), without PTX JIT
  of newer code; CUDA 13.x needs >= 580.
  https://docs.nvidia.com/deploy/cuda-compatibility/
* ``[WHEEL]`` the PyPI wheels themselves: ``torch.version.cuda`` and ``torch._C._cuda_getArchFlags()``
  of torch 2.10.0 (tests/stack/test_gpu_runtime.py checks them against the installed wheel, which
  is the one the serving image installs); the DLC's ``TORCH_CUDA_ARCH_LIST`` in
  aws/deep-learning-containers ``pytorch/inference/docker/2.6/py3/cu124/Dockerfile.gpu``.

A GPU of compute capability ``X.Y`` runs a kernel compiled for ``sm_X.y`` with ``y <= Y`` (same
major version), or JIT-compiles PTX of an older capability.

This module is plain data and stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Capability = tuple[int, int]


@dataclass(frozen=True)
class CudaBuild:
    """The CUDA build of a serving image's framework: its CUDA version, the GPU architectures it
    has kernels for (``architectures``, as compute capabilities) and those it carries PTX for
    (``ptx``, JIT-compiled for newer GPUs), and a description for messages."""

    cuda: Capability
    architectures: tuple[Capability, ...]
    ptx: tuple[Capability, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.cuda, tuple) and len(self.cuda) == 2 and all(type(v) is int for v in self.cuda)):
            raise ValueError(f"CudaBuild: cuda must be (major, minor), got {self.cuda!r}")
        for cc in (*self.architectures, *self.ptx):
            if not (isinstance(cc, tuple) and len(cc) == 2 and all(type(v) is int for v in cc)):
                raise ValueError(f"CudaBuild: architectures and ptx are (major, minor) tuples, got {cc!r}")
        if not self.architectures:
            raise ValueError("CudaBuild: architectures must name at least one compute capability")

    @property
    def cuda_version(self) -> str:
        return "%d.%d" % self.cuda

    @property
    def min_driver(self) -> int:
        """The oldest NVIDIA driver branch that runs this build ([COMPAT])."""
        return min_driver(self.cuda)

    def runs_on(self, capability: Capability) -> bool:
        """True when a GPU of ``capability`` runs this build (a kernel of its major version not newer
        than it, or PTX older than it)."""
        return (any(a[0] == capability[0] and a[1] <= capability[1] for a in self.architectures)
                or any(p <= capability for p in self.ptx))

    def describe(self) -> str:
        archs = ", ".join("%d.%d" % a for a in self.architectures)
        return f"{self.description or 'CUDA ' + self.cuda_version} (CUDA {self.cuda_version}, kernels for {archs})"


def min_driver(cuda: Capability) -> int:
    """The oldest driver branch that runs an application built with CUDA ``cuda`` ([COMPAT])."""
    floors = {11: 450, 12: 525, 13: 580}
    if cuda[0] not in floors:
        raise ValueError(f"no driver requirement is known for CUDA {cuda[0]}.{cuda[1]} (known: 11.x, 12.x, 13.x)")
    return floors[cuda[0]]


#: PyPI's torch 2.10.0 for Linux x86_64 (with torchvision 0.25.0): the serving image's framework ([WHEEL]).
TORCH_2_10_CU128 = CudaBuild((12, 8), ((7, 0), (7, 5), (8, 0), (8, 6), (9, 0), (10, 0), (12, 0)),
                             description="torch 2.10.0+cu128")
#: The SageMaker PyTorch 2.6 inference DLC: TORCH_CUDA_ARCH_LIST "5.0 7.0+PTX 7.5+PTX 8.0 8.6 9.0" ([WHEEL]).
DLC_PYTORCH_2_6_CU124 = CudaBuild((12, 4), ((5, 0), (7, 0), (7, 5), (8, 0), (8, 6), (9, 0)),
                                  ptx=((7, 0), (7, 5)), description="PyTorch 2.6 inference DLC")
#: Known framework builds by ``torch==<version>`` pin: what the stack reads from the image's lock.
TORCH_BUILDS: dict[str, CudaBuild] = {"2.10.0": TORCH_2_10_CU128}


def torch_build(version: str) -> CudaBuild:
    """The CUDA build of PyPI's ``torch==version`` wheel; ``ValueError`` naming the known ones."""
    try:
        return TORCH_BUILDS[version]
    except KeyError:
        raise ValueError(f"torch {version}: its CUDA version and GPU architectures are not in "
                         f"mme_constructs.gpu_runtime.TORCH_BUILDS (known: {', '.join(TORCH_BUILDS)}); add them "
                         "from the wheel (torch.version.cuda, torch._C._cuda_getArchFlags())") from None


@dataclass(frozen=True)
class InferenceAmi:
    """One ``InferenceAmiVersion``: its NVIDIA driver branch and CUDA version ([API])."""

    name: str
    driver: int | None
    cuda: Capability | None
    notes: str = ""

    @property
    def gpu(self) -> bool:
        return self.driver is not None

    def describe(self) -> str:
        if not self.gpu:
            return f"{self.name} ({self.notes})"
        return f"{self.name} (NVIDIA driver {self.driver}, CUDA {self.cuda[0]}.{self.cuda[1]}{', ' + self.notes if self.notes else ''})"


#: Every ``InferenceAmiVersion`` SageMaker and CloudFormation accept ([API]).
INFERENCE_AMIS: dict[str, InferenceAmi] = {a.name: a for a in (
    InferenceAmi("al2-ami-sagemaker-inference-gpu-2", 535, (12, 2), "Amazon Linux 2"),
    InferenceAmi("al2-ami-sagemaker-inference-gpu-2-1", 535, (12, 2),
                 "Amazon Linux 2, NVIDIA container toolkit with CUDA-compat mounting disabled"),
    InferenceAmi("al2-ami-sagemaker-inference-gpu-3-1", 550, (12, 4),
                 "Amazon Linux 2, NVIDIA container toolkit with CUDA-compat mounting disabled"),
    InferenceAmi("al2023-ami-sagemaker-inference-gpu-4-1", 580, (13, 0),
                 "Amazon Linux 2023, NVIDIA container toolkit with CUDA-compat mounting disabled"),
    InferenceAmi("al2-ami-sagemaker-inference-neuron-2", None, None, "Inferentia2 and Trainium, Neuron driver 2.19"),
)}
#: Which AMI an endpoint gets when none is named, in order of preference: the first whose driver
#: runs the image's build. al2-...-gpu-3-1 (driver 550) first: the newest driver of the CUDA 12
#: AMIs, used on ml.g4dn and ml.g5 by public deployments; al2023-...-gpu-4-1 (driver 580) where a
#: build needs CUDA 13.
DEFAULT_AMI_PREFERENCE = ("al2-ami-sagemaker-inference-gpu-3-1", "al2023-ami-sagemaker-inference-gpu-4-1")
DEFAULT_INFERENCE_AMI = DEFAULT_AMI_PREFERENCE[0]

_AMI_NAME = re.compile(r"^[a-z0-9-]+$")


def default_inference_ami(build: CudaBuild | None) -> str:
    """The AMI an endpoint gets for an image of ``build`` (unknown build: the first of the preference)."""
    if build is None:
        return DEFAULT_INFERENCE_AMI
    for name in DEFAULT_AMI_PREFERENCE:
        if INFERENCE_AMIS[name].driver >= build.min_driver:
            return name
    raise ValueError(f"no inference AMI has a driver for {build.describe()} (needs >= {build.min_driver})")


def ami_error(name: str, build: CudaBuild | None) -> str | None:
    """Why the AMI ``name`` cannot run an image of ``build`` on a GPU endpoint, or ``None``."""
    ami = INFERENCE_AMIS.get(name)
    if ami is None:
        return f"{name!r} is not an InferenceAmiVersion SageMaker accepts; choose from {', '.join(INFERENCE_AMIS)}"
    if not ami.gpu:
        return f"{ami.describe()} has no NVIDIA driver; a GPU endpoint needs one of the gpu AMIs"
    if build is not None and ami.driver < build.min_driver:
        fitting = [n for n, a in INFERENCE_AMIS.items() if a.gpu and a.driver >= build.min_driver]
        return (f"{ami.describe()} cannot run the image's {build.describe()}: it needs an NVIDIA driver >= "
                f"{build.min_driver}; use {' or '.join(fitting) or 'a newer AMI'}")
    return None


def architecture_error(capability: Capability | None, build: CudaBuild | None) -> str | None:
    """Why a GPU of ``capability`` cannot run ``build``, or ``None`` (also when either is unknown)."""
    if capability is None or build is None or build.runs_on(capability):
        return None
    return f"the image's {build.describe()} has no kernels for compute capability {capability[0]}.{capability[1]}"
