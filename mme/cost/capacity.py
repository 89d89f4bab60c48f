"""How many models fit on an instance: the memory of its one GPU (from the project's GPU catalog,
``mme_constructs.instance_types``) after headroom, divided by a model's footprint, or models of
different footprints packed first-fit decreasing."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mme_constructs import instance_types
from mme_constructs.instance_types import GpuInstanceType

from .errors import CostError
from .prices import POST_INSTANCE_TYPE

#: The instance type planned for unless told another: the AWS post's.
DEFAULT_INSTANCE_TYPE = POST_INSTANCE_TYPE
#: Fraction of GPU memory kept free.
DEFAULT_HEADROOM = 0.10


def instance(instance_type: str | GpuInstanceType) -> GpuInstanceType:
    """The catalog entry of a supported name, or a caller's ``GpuInstanceType`` (checked)."""
    try:
        return instance_types.resolve_instance_type(instance_type)
    except ValueError as exc:
        raise CostError(str(exc)) from None


def _types_that_fit(footprint_mib: float, headroom: float) -> str:
    """Advice (one clause): the supported types whose GPU holds ``footprint_mib``, if any."""
    fits = [n for n in instance_types.SUPPORTED_INSTANCE_TYPES
            if instance_types.GPU_INSTANCE_TYPES[n].gpu_memory_mib * (1.0 - headroom) >= footprint_mib]
    if fits:
        return f"choose a type with a larger GPU ({', '.join(fits)})"
    return ("no supported instance type's GPU holds it: make the model smaller (fp16, a smaller variant) "
            "or lower the headroom")


def check_headroom(headroom: float) -> None:
    """A :class:`CostError` unless ``headroom`` is a fraction in [0, 1)."""
    if not (0.0 <= headroom < 1.0) or math.isnan(headroom):
        raise CostError(f"headroom must be a fraction in [0, 1), got {headroom}")


def check_footprint(name: str, footprint_mib: float | None) -> float:
    """``footprint_mib`` as a float when it is a positive number of MiB, else a :class:`CostError`."""
    if footprint_mib is None:
        raise CostError(f"model '{name}' has no footprint: give its GPU memory in MiB or models per instance")
    if isinstance(footprint_mib, bool) or not isinstance(footprint_mib, (int, float)) \
            or not math.isfinite(footprint_mib) or footprint_mib <= 0:
        raise CostError(f"model '{name}' footprint must be a positive number of MiB, got {footprint_mib!r}")
    return float(footprint_mib)


def usable_gpu_mib(instance_type: str | GpuInstanceType, headroom: float = DEFAULT_HEADROOM) -> float:
    """GPU memory of ``instance_type``'s one GPU that models may use (MiB, after headroom)."""
    check_headroom(headroom)
    return instance(instance_type).gpu_memory_mib * (1.0 - headroom)


def models_per_instance(footprint_mib: float, instance_type: str | GpuInstanceType = DEFAULT_INSTANCE_TYPE,
                        headroom: float = DEFAULT_HEADROOM, name: str = "model") -> int:
    """How many models of ``footprint_mib`` fit on one instance (its one GPU).

    Raises :class:`CostError` when not even one fits.
    """
    footprint = check_footprint(name, footprint_mib)
    inst = instance(instance_type)
    usable = usable_gpu_mib(instance_type, headroom)
    fit = int(usable // footprint)
    if fit < 1:
        raise CostError(
            f"model '{name}' needs {footprint:,.0f} MiB but the GPU of {inst.name} ({inst.gpu_model}) has "
            f"{usable:,.0f} MiB usable ({inst.gpu_memory_gib} GiB minus {headroom:.0%} headroom); "
            f"{_types_that_fit(footprint, headroom)}"
        )
    return fit


def pack_instances(footprints: Sequence[float], instance_type: str | GpuInstanceType = DEFAULT_INSTANCE_TYPE,
                   headroom: float = DEFAULT_HEADROOM) -> int:
    """Instances needed to hold models of these footprints together (first-fit decreasing)."""
    usable = usable_gpu_mib(instance_type, headroom)
    free: list[float] = []  # free MiB per instance (its one GPU) in use
    for fp in sorted(footprints, reverse=True):
        for i, room in enumerate(free):
            if fp <= room:
                free[i] = room - fp
                break
        else:
            free.append(usable - fp)
    return len(free)
