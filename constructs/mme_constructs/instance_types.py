"""The GPU instance types a SageMaker multi-model endpoint runs on, and where each fact comes from.

Sources (each catalog row below names the ones it uses):

* ``[MME]`` Amazon SageMaker Developer Guide, "Supported algorithms, frameworks, and instances for
  multi-model endpoints" (section "... using GPU backed instances"): the GPU instance types
  multi-model endpoints support, each with 1 GPU and its GPU memory (GiB): ml.p2.xlarge (12),
  ml.p3.2xlarge (16), ml.g5.xlarge to ml.g5.16xlarge (24), ml.g4dn.xlarge to ml.g4dn.16xlarge (16).
  https://docs.aws.amazon.com/sagemaker/latest/dg/multi-model-support.html
* ``[MME-INSTANCES]`` same guide, "Instance recommendations for multi-model endpoint deployments":
  "Multi-model endpoints are currently supported for all CPU instances types and on single-GPU
  instance types." https://docs.aws.amazon.com/sagemaker/latest/dg/multi-model-endpoint-instance.html
* ``[NVME]`` same guide, "Managing storage paths for different types of instance local storage"
  (also the ``ResourceConfig.VolumeSizeInGB`` API reference): "ML instance families with the
  NVMe-type instance storage include ml.p4d, ml.g4dn, and ml.g5 ... ML instance families that use
  EBS volumes include ml.c5 and ml.p2."
  https://docs.aws.amazon.com/sagemaker/latest/dg/model-train-storage-tips-considerations.html
* ``[P3]`` AWS News Blog, "New - Amazon EC2 Instances with Up to 8 NVIDIA Tesla V100 GPUs (P3)"
  (2017-10-25): the three P3 sizes are "VPC-only and EBS-only" (no instance storage).
* ``[EC2-GPU]`` Amazon EC2 User Guide, "Accelerated computing instances", and AWS Batch User Guide,
  "GPU jobs" (https://docs.aws.amazon.com/batch/latest/userguide/gpu-jobs.html): GPU model and GPU
  count per size (P2: NVIDIA K80, P3: V100, G4dn: T4, G5: A10G, G6: L4, G6e: L40S, P4d: A100,
  P5: H100).
* ``[CC]`` NVIDIA, "CUDA GPUs - Compute Capability" (https://developer.nvidia.com/cuda-gpus):
  K80 3.7, V100 7.0, T4 7.5, A10G 8.6.

Two facts per type matter to the constructs:

* GPU memory: the cost planner fits models into it. Every supported type has exactly one GPU, so
  ``GPUUtilization`` (which SageMaker sums over an instance's GPUs) is a per-GPU percentage.
* Local instance storage (NVMe): SageMaker rejects ``KmsKeyId`` on an endpoint configuration whose
  instance type has instance storage, because that storage is encrypted by the hardware (API
  reference of ``CreateEndpointConfig``, ``KmsKeyId``). Only types without it (ml.p3.2xlarge here)
  take a customer-managed key for the ML storage volume.

The serving images are CUDA 12 builds (this repository's image: torch 2.10.0, CUDA 12.8; the
SageMaker PyTorch 2.6 DLC: CUDA 12.4). CUDA 12 runs on GPUs of compute capability 5.0 and newer (it
dropped Kepler), so ml.p2.xlarge's K80 (3.7), although documented for multi-model endpoints,
cannot run them: it is in the catalog and refused by :func:`resolve_instance_type`. Which of the
other GPUs an image has kernels for is checked against the image's own build by
``MultiModelEndpoint`` (:mod:`mme_constructs.gpu_runtime`).

A newer single-GPU type AWS has not listed yet (say an ml.g6 or ml.g6e size) is described by the
caller as a :class:`GpuInstanceType` (its GPU memory and whether it has NVMe instance storage) and
used at the caller's risk: the constructs accept it and add a synth warning.

This module is plain data and stdlib only: the cost planner loads it without aws-cdk-lib.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: CUDA 12 (every serving image here) needs compute capability 5.0 or newer [CC].
MIN_COMPUTE_CAPABILITY = (5, 0)
SERVING_IMAGE_CUDA = "a CUDA 12 build"
#: The instance type a MultiModelEndpoint (and the app's stack) uses when none is given: an A10G
#: with 24 GiB, which holds SAM, LaMa and SD together.
DEFAULT_INSTANCE_TYPE = "ml.g5.2xlarge"

_NAME = re.compile(r"^ml\.([a-z][a-z0-9-]*)\.([a-z0-9]+)$")


@dataclass(frozen=True)
class GpuInstanceType:
    """One single-GPU SageMaker instance type: the facts the constructs and the cost planner use.

    ``name`` (``ml.<family>.<size>``), ``gpu_model``, ``gpu_memory_gib`` (its one GPU's memory),
    ``instance_storage`` (local NVMe: SageMaker rejects ``KmsKeyId`` on the endpoint config),
    ``compute_capability`` (``(major, minor)``, ``None`` when not known: then not checked) and
    ``source`` (where the facts come from; not compared).

    The catalog holds the documented types; build one yourself only for a newer single-GPU type
    AWS has not listed for multi-model endpoints yet, e.g.
    ``GpuInstanceType("ml.g6.2xlarge", "NVIDIA L4", 24, instance_storage=True)``.
    """

    name: str
    gpu_model: str
    gpu_memory_gib: int
    instance_storage: bool
    compute_capability: tuple[int, int] | None = None
    source: str = field(default="given by the caller", compare=False)

    def __post_init__(self) -> None:
        errors = [f"name {e}" for e in [name_error(self.name)] if e]
        if not isinstance(self.gpu_model, str) or not self.gpu_model.strip():
            errors.append("gpu_model must be a non-empty string")
        if isinstance(self.gpu_memory_gib, bool) or not isinstance(self.gpu_memory_gib, int) or self.gpu_memory_gib < 1:
            errors.append(f"gpu_memory_gib must be a whole number of GiB >= 1, got {self.gpu_memory_gib!r}")
        if not isinstance(self.instance_storage, bool):
            errors.append(f"instance_storage must be True or False, got {self.instance_storage!r}")
        cc = self.compute_capability
        if cc is not None and not (isinstance(cc, tuple) and len(cc) == 2 and all(type(v) is int for v in cc)):
            errors.append(f"compute_capability must be (major, minor) or None, got {cc!r}")
        if errors:
            raise ValueError("GpuInstanceType: " + "; ".join(errors))

    @property
    def gpu_memory_mib(self) -> int:
        return self.gpu_memory_gib * 1024

    @property
    def documented(self) -> bool:
        """True for a catalog entry: a type AWS lists for GPU multi-model endpoints."""
        return GPU_INSTANCE_TYPES.get(self.name) == self

    def describe(self) -> str:
        """``NVIDIA A10G, 24 GiB, NVMe instance storage`` (one line, for messages)."""
        storage = "NVMe instance storage" if self.instance_storage else "no instance storage"
        return f"{self.gpu_model}, {self.gpu_memory_gib} GiB, {storage}"


def name_error(name: str) -> str | None:
    """Why ``name`` cannot be a GPU instance type name (``ml.<g or p family>.<size>``), or ``None``."""
    match = _NAME.match(name) if isinstance(name, str) else None
    if match is None:
        return f"{name!r} is not of the form ml.<family>.<size>"
    if not match.group(1).startswith(("g", "p")):
        return f"{name!r} is not an NVIDIA GPU family (ml.g*, ml.p*)"
    return None


def _family(family: str, sizes: tuple[str, ...], gpu: str, memory_gib: int, nvme: bool,
            cc: tuple[int, int], source: str) -> list[GpuInstanceType]:
    return [GpuInstanceType(f"ml.{family}.{size}", gpu, memory_gib, nvme, cc, source) for size in sizes]


_SIZES = ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")

#: Exactly the GPU instance types AWS documents for multi-model endpoints [MME], in that page's order.
#: Each row: family, sizes, GPU model [EC2-GPU], GPU memory GiB [MME], local NVMe [NVME]/[P3],
#: compute capability [CC], and the sources of the row.
GPU_INSTANCE_TYPES: dict[str, GpuInstanceType] = {
    t.name: t
    for t in [
        *_family("p2", ("xlarge",), "NVIDIA K80", 12, False, (3, 7), "[MME] [NVME: ml.p2 uses EBS] [EC2-GPU] [CC]"),
        *_family("p3", ("2xlarge",), "NVIDIA V100", 16, False, (7, 0), "[MME] [P3: EBS-only] [EC2-GPU] [CC]"),
        *_family("g5", _SIZES, "NVIDIA A10G", 24, True, (8, 6), "[MME] [NVME: ml.g5] [EC2-GPU] [CC]"),
        *_family("g4dn", _SIZES, "NVIDIA T4", 16, True, (7, 5), "[MME] [NVME: ml.g4dn] [EC2-GPU] [CC]"),
    ]
}

#: GPU counts of multi-GPU sizes of the GPU families [EC2-GPU]: refused with their count, even as
#: an undocumented :class:`GpuInstanceType` (multi-model endpoints run on single-GPU types [MME-INSTANCES]).
MULTI_GPU_INSTANCE_TYPES: dict[str, int] = {
    "ml.p2.8xlarge": 8, "ml.p2.16xlarge": 16,
    "ml.p3.8xlarge": 4, "ml.p3.16xlarge": 8, "ml.p3dn.24xlarge": 8,
    "ml.g4dn.12xlarge": 4,
    "ml.g5.12xlarge": 4, "ml.g5.24xlarge": 4, "ml.g5.48xlarge": 8,
    "ml.g6.12xlarge": 4, "ml.g6.24xlarge": 4, "ml.g6.48xlarge": 8,
    "ml.g6e.12xlarge": 4, "ml.g6e.24xlarge": 4, "ml.g6e.48xlarge": 8,
    "ml.p4d.24xlarge": 8, "ml.p5.48xlarge": 8,
}


def _runs_serving_image(t: GpuInstanceType) -> bool:
    return t.compute_capability is None or t.compute_capability >= MIN_COMPUTE_CAPABILITY


#: The documented types this project's serving image runs on: what ``instance_type`` accepts by name.
SUPPORTED_INSTANCE_TYPES: tuple[str, ...] = tuple(n for n, t in GPU_INSTANCE_TYPES.items() if _runs_serving_image(t))


class UnsupportedInstanceType(ValueError):
    """An instance type a GPU multi-model endpoint of this project cannot use; one line, naming the list."""


def _supported() -> str:
    return "supported: " + ", ".join(SUPPORTED_INSTANCE_TYPES)


def _multi_gpu(name: str) -> str | None:
    gpus = MULTI_GPU_INSTANCE_TYPES.get(name)
    if not gpus:
        return None
    return f"{name} has {gpus} GPUs; GPU multi-model endpoints run on single-GPU instance types only; {_supported()}"


def _image_refusal(t: GpuInstanceType) -> str | None:
    if _runs_serving_image(t):
        return None
    cc = ".".join(map(str, t.compute_capability))
    return (f"{t.name} ({t.gpu_model}, compute capability {cc}) cannot run the serving image "
            f"({SERVING_IMAGE_CUDA} needs compute capability {'.'.join(map(str, MIN_COMPUTE_CAPABILITY))} "
            f"or newer); {_supported()}")


def gpu_instance_type(name: str) -> GpuInstanceType:
    """The catalog entry for a supported ``name``; :class:`UnsupportedInstanceType` (one line) otherwise."""
    entry = GPU_INSTANCE_TYPES.get(name) if isinstance(name, str) else None
    if entry is None:
        reason = (_multi_gpu(name) if isinstance(name, str) else None) or (
            f"{name!r} is not a GPU instance type AWS documents for multi-model endpoints; {_supported()}")
    else:
        reason = _image_refusal(entry)
    if reason:
        raise UnsupportedInstanceType(reason)
    return entry


def resolve_instance_type(value: str | GpuInstanceType) -> GpuInstanceType:
    """A supported name (its catalog entry) or a caller's :class:`GpuInstanceType`;
    :class:`UnsupportedInstanceType` (one line, naming the supported list) otherwise.

    A ``GpuInstanceType`` of a documented name must agree with the catalog (GPU memory, instance
    storage) and resolves to the catalog entry; one of an undocumented name (``not
    result.documented``) is taken as given, unless it is a known multi-GPU size or its GPU cannot
    run the serving image. The caller should warn about it (:func:`undocumented_warning`).
    """
    if not isinstance(value, GpuInstanceType):
        return gpu_instance_type(value)
    catalog = GPU_INSTANCE_TYPES.get(value.name)
    if catalog is None:
        reason = _multi_gpu(value.name) or _image_refusal(value)
        if reason:
            raise UnsupportedInstanceType(reason)
        return value
    if (catalog.gpu_memory_gib, catalog.instance_storage) != (value.gpu_memory_gib, value.instance_storage):
        raise UnsupportedInstanceType(
            f"{value.name} is a documented type ({catalog.describe()}); pass its name, not other facts "
            f"({value.describe()})")
    return gpu_instance_type(value.name)


def undocumented_warning(t: GpuInstanceType) -> str:
    """The synth warning for a type AWS does not list for GPU multi-model endpoints (one line)."""
    return (f"{t.name} is not in AWS's list of GPU instance types for multi-model endpoints; using the facts "
            f"given for it ({t.describe()}). It must be a single-GPU type, and SageMaker may reject it at deploy. "
            f"{_supported().capitalize()}")


def supports_volume_kms_key(value: str | GpuInstanceType) -> bool:
    """True when an endpoint config on this type may set ``KmsKeyId`` (no local instance storage)."""
    return not resolve_instance_type(value).instance_storage
