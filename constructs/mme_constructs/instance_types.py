"""Catalog of the GPU instance types a SageMaker multi-model endpoint can run on.

Two facts per type matter to the constructs:

* GPU count and memory: target tracking on ``GPUUtilization`` is summed over the
  instance's GPUs (a 4-GPU instance reports up to 400 %), and the cost planner
  fits models into GPU memory.
* Local instance storage (NVMe): SageMaker rejects ``KmsKeyId`` on an endpoint
  configuration whose instance type has instance storage, because that storage is
  encrypted by the hardware and no EBS volume is attached.  Only types without
  instance storage (ml.p3) accept a customer-managed key for the ML volume.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInstanceType:
    """One SageMaker GPU instance type."""

    name: str
    gpu_model: str
    gpu_count: int
    gpu_memory_gib: int  # per GPU
    instance_storage: bool  # local NVMe: KmsKeyId on the endpoint config is rejected

    @property
    def total_gpu_memory_gib(self) -> int:
        return self.gpu_count * self.gpu_memory_gib


def _family(prefix: str, gpu: str, mem: int, nvme: bool, sizes: dict[str, int]) -> list[GpuInstanceType]:
    return [GpuInstanceType(f"ml.{prefix}.{size}", gpu, count, mem, nvme) for size, count in sizes.items()]


_SINGLE_TO_48 = {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1,
                 "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}

GPU_INSTANCE_TYPES: dict[str, GpuInstanceType] = {
    t.name: t
    for t in [
        *_family("g4dn", "NVIDIA T4", 16, True,
                 {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4}),
        *_family("g5", "NVIDIA A10G", 24, True, _SINGLE_TO_48),
        *_family("g6", "NVIDIA L4", 24, True, _SINGLE_TO_48),
        *_family("g6e", "NVIDIA L40S", 48, True, _SINGLE_TO_48),
        *_family("p3", "NVIDIA V100", 16, False, {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}),
        *_family("p4d", "NVIDIA A100", 40, True, {"24xlarge": 8}),
        *_family("p5", "NVIDIA H100", 80, True, {"48xlarge": 8}),
    ]
}


def gpu_instance_type(name: str) -> GpuInstanceType:
    """Return the catalog entry for ``name`` or raise ``ValueError`` naming the valid choices."""
    try:
        return GPU_INSTANCE_TYPES[name]
    except KeyError:
        families = sorted({n.rsplit(".", 1)[0] for n in GPU_INSTANCE_TYPES})
        raise ValueError(
            f"{name!r} is not a GPU instance type for a multi-model endpoint "
            f"(families: {', '.join(families)}; e.g. ml.g5.2xlarge)"
        ) from None


def supports_volume_kms_key(name: str) -> bool:
    """True when an endpoint config on ``name`` may set ``KmsKeyId`` (no local instance storage)."""
    return not gpu_instance_type(name).instance_storage
