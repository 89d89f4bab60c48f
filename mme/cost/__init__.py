"""Cost planner: monthly cost of single-model endpoints vs one multi-model endpoint (MME).

What it answers: "N models of footprint F MiB on instance type T: how many fit on one instance,
and what does a month cost with one endpoint per model vs a multi-model endpoint?"

The arithmetic is the one of the AWS post that introduced TorchServe on GPU MMEs ("Run multiple
generative AI models on GPU using Amazon SageMaker multi-model endpoints with TorchServe and save
up to 75% in inference costs", AWS Machine Learning Blog and PyTorch blog, 2023-09-06):

* single-model endpoints: every model gets its own endpoint of ``instances_per_endpoint``
  instances: ``models x instances_per_endpoint x price x hours``;
* multi-model: every instance holds ``models_per_instance`` models and every group of models is
  served by ``instances_per_endpoint`` instances (replicas, as the post's "2 instances per
  endpoint"): ``ceil(models / models_per_instance) x instances_per_endpoint x price x hours``.
  Whether the groups are separate endpoints (the post: "25 endpoints") or one endpoint with all
  the instances, the instance-hours and therefore the cost are the same;
* a month is **720 hours** (30 days x 24 h), the post's convention:
  100 x 2 x $1.52 x 720 = $218,880 and 25 x 2 x $1.52 x 720 = $54,720. (The AWS Pricing
  Calculator uses 730 h; pass ``hours_per_month=730`` for that convention.)

Instance types: those a GPU multi-model endpoint supports (``mme_constructs.instance_types``, the
project's one catalog: the single-GPU types AWS documents for GPU multi-model endpoints), by name;
:func:`plan_costs` also takes a ``GpuInstanceType`` for a newer single-GPU type AWS has not listed.
Models per instance come from the memory of the instance's one GPU:
``floor(gpu_mib x (1 - headroom) / footprint)``.
The footprint should be what one loaded model's worker holds at its peak while serving: the
benchmark runner (``bench/``) measures it (``footprint_mib`` of its JSON: CUDA context + the
caching allocator's reserved peak). Models of different footprints are packed first-fit
decreasing onto instances. The post's own example states "four models per instance" explicitly
(``models_per_instance=4``): 24 GiB / 3,910 MiB would fit six, so the post kept a margin.

Prices: a small dated table (:data:`DEFAULT_PRICE_TABLE`, each entry with its source and date);
override with ``price_per_hour`` or a JSON/YAML file (:func:`load_price_table`).

Entry points: :func:`plan_costs`, :func:`post_example`, :func:`footprints_from_results`,
:func:`models_per_instance`, and the ``mme cost`` subcommand (:mod:`mme.commands.cost`; also
``python -m mme.cost``).

Modules: :mod:`.planner` (the arithmetic), :mod:`.capacity` (models per GPU), :mod:`.prices`
(the price table and price files), :mod:`.footprints` (model footprints), :mod:`.plan` (the
input and result types, and how a result reads), :mod:`.errors`.
"""

from __future__ import annotations

from .capacity import (
    DEFAULT_HEADROOM,
    DEFAULT_INSTANCE_TYPE,
    models_per_instance,
    pack_instances,
    usable_gpu_mib,
)
from .errors import CostError
from .footprints import ORIGINAL_SAMPLE_FOOTPRINTS_MIB, footprints_from_results
from .plan import MARKDOWN_HEADER, CostPlan, ModelGroup
from .planner import (
    DEFAULT_INSTANCES_PER_ENDPOINT,
    HOURS_PER_MONTH_CALCULATOR,
    HOURS_PER_MONTH_POST,
    plan_costs,
    post_example,
)
from .prices import DEFAULT_PRICE_TABLE, POST_PRICE, Price, PriceTable, load_price_table

__all__ = [
    "CostError", "CostPlan", "ModelGroup", "Price", "PriceTable", "plan_costs", "post_example",
    "models_per_instance", "pack_instances", "usable_gpu_mib", "footprints_from_results", "load_price_table",
    "DEFAULT_HEADROOM", "DEFAULT_INSTANCE_TYPE", "DEFAULT_INSTANCES_PER_ENDPOINT", "DEFAULT_PRICE_TABLE",
    "HOURS_PER_MONTH_CALCULATOR", "HOURS_PER_MONTH_POST", "MARKDOWN_HEADER", "ORIGINAL_SAMPLE_FOOTPRINTS_MIB",
    "POST_PRICE",
]
