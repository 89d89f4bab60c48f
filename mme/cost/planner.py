"""The cost arithmetic: one endpoint per model vs a multi-model endpoint, per month (the rules
are in :mod:`mme.cost`'s docstring)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from mme_constructs.instance_types import GpuInstanceType

from .capacity import (
    DEFAULT_HEADROOM,
    DEFAULT_INSTANCE_TYPE,
    check_footprint,
    check_headroom,
    instance,
    models_per_instance,
    pack_instances,
    usable_gpu_mib,
)
from .errors import CostError
from .footprints import ORIGINAL_SAMPLE_FOOTPRINTS_MIB
from .plan import CostPlan, ModelGroup, money
from .prices import DEFAULT_PRICE_TABLE, POST_INSTANCE_TYPE, POST_PRICE, PriceTable, user_price

#: Hours in a month as the AWS post counts them (30 days x 24 h).
HOURS_PER_MONTH_POST = 720
#: Hours in a month as the AWS Pricing Calculator counts them (8,760 h / 12).
HOURS_PER_MONTH_CALCULATOR = 730
#: Instances behind each endpoint (or model group): the post's two.
DEFAULT_INSTANCES_PER_ENDPOINT = 2


def plan_costs(
    models: Iterable[ModelGroup],
    instance_type: str | GpuInstanceType = DEFAULT_INSTANCE_TYPE,
    *,
    price_per_hour: float | None = None,
    price_table: PriceTable = DEFAULT_PRICE_TABLE,
    instances_per_endpoint: int = DEFAULT_INSTANCES_PER_ENDPOINT,
    hours_per_month: float = HOURS_PER_MONTH_POST,
    headroom: float = DEFAULT_HEADROOM,
    models_per_instance_override: int | None = None,
) -> CostPlan:
    """Monthly cost of one endpoint per model vs a multi-model endpoint (see :mod:`mme.cost`).

    ``instance_type``: a supported name (``mme_constructs.instance_types.SUPPORTED_INSTANCE_TYPES``)
    or a ``GpuInstanceType`` for a newer single-GPU type.
    ``models_per_instance_override`` replaces the memory-based count (the post states 4); without
    it every model needs a footprint. A price comes from ``price_per_hour`` or ``price_table``.
    """
    groups = list(models)
    _check_inputs(groups, instances_per_endpoint, hours_per_month, headroom)
    inst = instance(instance_type)
    price = user_price(price_per_hour) if price_per_hour is not None else price_table.price(inst.name)
    notes: list[str] = [] if inst.documented else [
        f"{inst.name} is not documented by AWS for GPU multi-model endpoints; its GPU memory is as given"]
    # Every model must fit one GPU for its own single-model endpoint too.
    for g in groups:
        if g.footprint_mib is not None:
            models_per_instance(g.footprint_mib, instance_type, headroom, g.name)
    mpi, mme_groups = _multi_model_groups(groups, instance_type, headroom, models_per_instance_override, notes)

    total = sum(g.count for g in groups)
    r = instances_per_endpoint
    sme = money(price.usd_per_hour, total * r, hours_per_month)
    mme = money(price.usd_per_hour, mme_groups * r, hours_per_month)
    return CostPlan(
        instance_type=inst.name, gpu=inst.gpu_model, gpu_memory_mib=inst.gpu_memory_mib,
        usable_gpu_memory_mib=usable_gpu_mib(instance_type, headroom), headroom=headroom,
        price_per_hour=price.usd_per_hour, price_source=price.source, price_as_of=price.as_of,
        price_region=price.region, hours_per_month=hours_per_month, instances_per_endpoint=r,
        models=[{"name": g.name, "count": g.count, "footprint_mib": g.footprint_mib} for g in groups],
        total_models=total, models_per_instance=mpi,
        single_model_endpoints=total, single_model_instances=total * r, single_model_monthly=sme,
        multi_model_groups=mme_groups, multi_model_instances=mme_groups * r, multi_model_monthly=mme,
        saving_monthly=round(sme - mme, 2), saving_fraction=(sme - mme) / sme, notes=notes,
    )


def _is_positive_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def _check_inputs(groups: list[ModelGroup], instances_per_endpoint: int, hours_per_month: float,
                  headroom: float) -> None:
    if not groups:
        raise CostError("no models to plan for")
    for g in groups:
        if not _is_positive_int(g.count):
            raise CostError(f"model '{g.name}' count must be a positive integer, got {g.count!r}")
    if not _is_positive_int(instances_per_endpoint):
        raise CostError(f"instances per endpoint must be a positive integer, got {instances_per_endpoint!r}")
    if not isinstance(hours_per_month, (int, float)) or not (0 < hours_per_month <= 744):
        raise CostError(f"hours per month must be in (0, 744], got {hours_per_month!r}")
    check_headroom(headroom)


def _multi_model_groups(groups: list[ModelGroup], instance_type: str | GpuInstanceType, headroom: float,
                        override: int | None, notes: list[str]) -> tuple[int | None, int]:
    """(models per instance or ``None`` when packed, instance groups of the multi-model endpoint);
    adds a note to ``notes`` where the count needs one."""
    total = sum(g.count for g in groups)
    if override is not None:
        if not _is_positive_int(override):
            raise CostError(f"models per instance must be a positive integer, got {override!r}")
        sized = [g for g in groups if g.footprint_mib is not None]
        if sized:
            # Say so when the stated count does not fit the measured memory.
            need = max(g.footprint_mib for g in sized)
            fit = models_per_instance(need, instance_type, headroom, "largest model")
            if override > fit:
                notes.append(f"{override} models per instance exceed what fits in GPU memory ({fit} of "
                             f"{need:,.0f} MiB with {headroom:.0%} headroom)")
        return override, math.ceil(total / override)
    if len(groups) == 1:
        g = groups[0]
        mpi = models_per_instance(check_footprint(g.name, g.footprint_mib), instance_type, headroom, g.name)
        return mpi, math.ceil(g.count / mpi)
    footprints = []
    for g in groups:
        footprints += [check_footprint(g.name, g.footprint_mib)] * g.count
    notes.append("mixed footprints: instances counted by first-fit-decreasing packing onto GPUs")
    return None, pack_instances(footprints, instance_type, headroom)


def post_example() -> CostPlan:
    """The post's example, exactly: 100 SD models, ml.g5.2xlarge at $1.52/h, 2 instances per
    endpoint, 4 models per instance, 720 h -> $218,880 (single-model) vs $54,720 (MME)."""
    return plan_costs(
        [ModelGroup("sd", 100, ORIGINAL_SAMPLE_FOOTPRINTS_MIB["sd"])],
        POST_INSTANCE_TYPE,
        price_table=PriceTable("the AWS post", {POST_INSTANCE_TYPE: POST_PRICE}),
        instances_per_endpoint=2,
        hours_per_month=HOURS_PER_MONTH_POST,
        models_per_instance_override=4,
    )

