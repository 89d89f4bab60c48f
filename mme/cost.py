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
:func:`models_per_instance`, and the ``mme cost`` subcommand (:func:`register`,
:func:`add_cost_arguments`, :func:`run_cost`; also ``python -m mme.cost``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    from mme_constructs.instance_types import GpuInstanceType

#: Hours in a month as the AWS post counts them (30 days x 24 h).
HOURS_PER_MONTH_POST = 720
#: Hours in a month as the AWS Pricing Calculator counts them (8,760 h / 12).
HOURS_PER_MONTH_CALCULATOR = 730

DEFAULT_INSTANCE_TYPE = "ml.g5.2xlarge"
DEFAULT_INSTANCES_PER_ENDPOINT = 2
DEFAULT_HEADROOM = 0.10

#: The original sample's GPU memory per model on an A10G (ml.g5.2xlarge), from the post's table.
ORIGINAL_SAMPLE_FOOTPRINTS_MIB = {"sam": 3362.0, "sd": 3910.0, "lama": 852.0}

POST_URL = ("https://aws.amazon.com/blogs/machine-learning/run-multiple-generative-ai-models-on-gpu-using-"
            "amazon-sagemaker-multi-model-endpoints-with-torchserve-and-save-up-to-75-in-inference-costs/")


class CostError(ValueError):
    """A planning input that cannot work (model larger than a GPU, unknown price...); one line."""


@dataclass(frozen=True)
class Price:
    """On-demand price of one instance type for SageMaker real-time inference (USD per hour)."""

    usd_per_hour: float
    source: str
    as_of: str
    region: str = "us-east-1"


@dataclass(frozen=True)
class PriceTable:
    """Dated prices per instance type; every entry names where and when it was read."""

    name: str
    prices: Mapping[str, Price]
    note: str = ""

    def price(self, instance_type: str) -> Price:
        """The entry for ``instance_type`` or a :class:`CostError` saying how to supply one."""
        try:
            return self.prices[instance_type]
        except KeyError:
            known = ", ".join(sorted(self.prices)) or "none"
            raise CostError(
                f"no price for {instance_type} in the price table '{self.name}' (has: {known}); "
                "pass --price-per-hour or --prices FILE"
            ) from None


#: The price the AWS post used (ml.g5.2xlarge, US East (N. Virginia), on-demand).
POST_PRICE = Price(
    1.52,
    "AWS Machine Learning Blog / PyTorch blog, 'Run multiple generative AI models on GPU using Amazon SageMaker "
    "multi-model endpoints with TorchServe' ($1.52 per instance hour, US East (N. Virginia))",
    "2023-09-06",
)

#: Built-in prices. Only entries with a stated public source; check them against
#: https://aws.amazon.com/sagemaker/pricing/ (Real-Time Inference, your region) before deciding.
DEFAULT_PRICE_TABLE = PriceTable(
    name="built-in (us-east-1, on-demand real-time inference)",
    prices={
        "ml.g5.2xlarge": POST_PRICE,
        "ml.g5.xlarge": Price(
            1.41,
            "zircon.tech, 'The real cost of running AI models on AWS SageMaker' (about $1.41/h, "
            "us-east-1 as of October 2025; third-party, verify)",
            "2025-10",
        ),
    },
    note="Prices change and differ by region: verify on the SageMaker pricing page or override.",
)


@dataclass(frozen=True)
class ModelGroup:
    """``count`` models of one kind, each needing ``footprint_mib`` of GPU memory when loaded."""

    name: str
    count: int
    footprint_mib: float | None = None


@dataclass
class CostPlan:
    """The result of :func:`plan_costs` (all money in USD per month)."""

    instance_type: str
    gpu: str
    gpu_memory_mib: int
    usable_gpu_memory_mib: float
    headroom: float
    price_per_hour: float
    price_source: str
    price_as_of: str
    price_region: str
    hours_per_month: float
    instances_per_endpoint: int
    models: list[dict]
    total_models: int
    models_per_instance: int | None
    single_model_endpoints: int
    single_model_instances: int
    single_model_monthly: float
    multi_model_groups: int
    multi_model_instances: int
    multi_model_monthly: float
    saving_monthly: float
    saving_fraction: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-able dict."""
        return asdict(self)

    # ------------------------------------------------------------------ rendering
    def format_text(self) -> str:
        """Human-readable summary (what ``mme cost`` prints)."""
        lines = [
            f"instance type        {self.instance_type} (1 x {self.gpu}, {self.gpu_memory_mib:,} MiB; "
            f"{self.usable_gpu_memory_mib:,.0f} MiB usable with {self.headroom:.0%} headroom)",
            f"price                ${self.price_per_hour:,.4g}/h ({self.price_region}, {self.price_as_of}; "
            f"{self.price_source})",
            f"month                {self.hours_per_month:g} h",
            "models               " + ", ".join(
                f"{m['count']} x {m['name']}" + (f" ({m['footprint_mib']:,.0f} MiB)" if m.get("footprint_mib") else "")
                for m in self.models),
            "models per instance  " + (str(self.models_per_instance) if self.models_per_instance is not None
                                       else "packed (mixed footprints)"),
            f"single-model         {self.single_model_endpoints} endpoints x {self.instances_per_endpoint} instances "
            f"= {self.single_model_instances} instances: {_usd(self.single_model_monthly)}/month",
            f"multi-model          {self.multi_model_groups} instance groups x {self.instances_per_endpoint} instances "
            f"= {self.multi_model_instances} instances: {_usd(self.multi_model_monthly)}/month",
            f"saving               {_usd(self.saving_monthly)}/month ({self.saving_fraction:.1%})",
        ]
        lines += [f"note                 {n}" for n in self.notes]
        return "\n".join(lines)

    def markdown_row(self, label: str) -> str:
        """One row for :data:`MARKDOWN_HEADER`."""
        mpi = self.models_per_instance if self.models_per_instance is not None else "packed"
        return (f"| {label} | {self.instance_type} | {_usd(self.price_per_hour, cents=True)} | "
                f"{self.total_models} | {mpi} | {self.single_model_instances} | {_usd(self.single_model_monthly)} | "
                f"{self.multi_model_instances} | {_usd(self.multi_model_monthly)} | {self.saving_fraction:.0%} |")


MARKDOWN_HEADER = (
    "| scenario | instance | $/h | models | models/instance | single-model instances | single-model $/month "
    "| MME instances | MME $/month | saving |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def _usd(value: float, cents: bool = False) -> str:
    if cents or value != int(value):
        return f"${value:,.2f}"
    return f"${value:,.0f}"


def _money(price: float, *factors: float) -> float:
    """Exact decimal product rounded to cents (no binary floating-point drift: $218,880 exactly)."""
    total = Decimal(str(price))
    for f in factors:
        total *= Decimal(str(f))
    return float(total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# ---------------------------------------------------------------------- capacity
_CATALOG = None


def _catalog():
    """``mme_constructs.instance_types`` (the one GPU catalog of the project; stdlib only).

    Where ``mme_constructs`` is not installed (a bare benchmark machine), the repository's copy
    of the file is loaded.
    """
    global _CATALOG
    if _CATALOG is None:
        try:
            from mme_constructs import instance_types as module
        except ImportError:  # pragma: no cover - setup installs it
            import importlib.util

            path = Path(__file__).resolve().parents[1] / "constructs" / "mme_constructs" / "instance_types.py"
            if not path.is_file():
                raise CostError("cannot read the GPU instance catalog: mme_constructs is not installed") from None
            file_spec = importlib.util.spec_from_file_location("_mme_cost_instance_types", path)
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[file_spec.name] = module  # dataclasses resolve their module by name
            file_spec.loader.exec_module(module)
        _CATALOG = module
    return _CATALOG


def _instance(instance_type: str | GpuInstanceType) -> GpuInstanceType:
    """The catalog entry of a supported name, or a caller's ``GpuInstanceType`` (checked)."""
    try:
        return _catalog().resolve_instance_type(instance_type)
    except ValueError as exc:
        raise CostError(str(exc)) from None


def _types_that_fit(footprint_mib: float, headroom: float) -> str:
    """Advice (one clause): the supported types whose GPU holds ``footprint_mib``, if any."""
    catalog = _catalog()
    fits = [n for n in catalog.SUPPORTED_INSTANCE_TYPES
            if catalog.GPU_INSTANCE_TYPES[n].gpu_memory_mib * (1.0 - headroom) >= footprint_mib]
    if fits:
        return f"choose a type with a larger GPU ({', '.join(fits)})"
    return ("no supported instance type's GPU holds it: make the model smaller (fp16, a smaller variant) "
            "or lower the headroom")


def _check_headroom(headroom: float) -> None:
    if not (0.0 <= headroom < 1.0) or math.isnan(headroom):
        raise CostError(f"headroom must be a fraction in [0, 1), got {headroom}")


def _check_footprint(name: str, footprint_mib: float | None) -> float:
    if footprint_mib is None:
        raise CostError(f"model '{name}' has no footprint: give its GPU memory in MiB or models per instance")
    if isinstance(footprint_mib, bool) or not isinstance(footprint_mib, (int, float)) \
            or not math.isfinite(footprint_mib) or footprint_mib <= 0:
        raise CostError(f"model '{name}' footprint must be a positive number of MiB, got {footprint_mib!r}")
    return float(footprint_mib)


def usable_gpu_mib(instance_type: str | GpuInstanceType, headroom: float = DEFAULT_HEADROOM) -> float:
    """GPU memory of ``instance_type``'s one GPU that models may use (MiB, after headroom)."""
    _check_headroom(headroom)
    return _instance(instance_type).gpu_memory_mib * (1.0 - headroom)


def models_per_instance(footprint_mib: float, instance_type: str | GpuInstanceType = DEFAULT_INSTANCE_TYPE,
                        headroom: float = DEFAULT_HEADROOM, name: str = "model") -> int:
    """How many models of ``footprint_mib`` fit on one instance (its one GPU).

    Raises :class:`CostError` when not even one fits.
    """
    footprint = _check_footprint(name, footprint_mib)
    inst = _instance(instance_type)
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


# ---------------------------------------------------------------------- planning
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
    """Monthly cost of one endpoint per model vs a multi-model endpoint (see the module docstring).

    ``instance_type``: a supported name (``mme_constructs.instance_types.SUPPORTED_INSTANCE_TYPES``)
    or a ``GpuInstanceType`` of an undocumented single-GPU type (noted in the plan).
    ``models_per_instance_override`` replaces the memory-based count (the post states 4); without
    it every model needs a footprint. A price comes from ``price_per_hour`` or ``price_table``.
    """
    groups = [g for g in models]
    if not groups:
        raise CostError("no models to plan for")
    for g in groups:
        if isinstance(g.count, bool) or not isinstance(g.count, int) or g.count < 1:
            raise CostError(f"model '{g.name}' count must be a positive integer, got {g.count!r}")
    if isinstance(instances_per_endpoint, bool) or not isinstance(instances_per_endpoint, int) \
            or instances_per_endpoint < 1:
        raise CostError(f"instances per endpoint must be a positive integer, got {instances_per_endpoint!r}")
    if not isinstance(hours_per_month, (int, float)) or not (0 < hours_per_month <= 744):
        raise CostError(f"hours per month must be in (0, 744], got {hours_per_month!r}")
    _check_headroom(headroom)
    inst = _instance(instance_type)
    if price_per_hour is not None:
        if isinstance(price_per_hour, bool) or not isinstance(price_per_hour, (int, float)) \
                or not math.isfinite(price_per_hour) or price_per_hour <= 0:
            raise CostError(f"price per hour must be a positive number, got {price_per_hour!r}")
        price = Price(float(price_per_hour), "given by the user", "n/a", "n/a")
    else:
        price = price_table.price(inst.name)

    notes: list[str] = [] if inst.documented else [
        f"{inst.name} is not documented by AWS for GPU multi-model endpoints; its GPU memory is as given"]
    total = sum(g.count for g in groups)
    # Every model must fit one GPU for its own single-model endpoint too.
    for g in groups:
        if g.footprint_mib is not None:
            models_per_instance(g.footprint_mib, instance_type, headroom, g.name)

    if models_per_instance_override is not None:
        k = models_per_instance_override
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise CostError(f"models per instance must be a positive integer, got {k!r}")
        sized = [g for g in groups if g.footprint_mib is not None]
        if sized:
            # Say so when the stated count does not fit the measured memory.
            need = max(g.footprint_mib for g in sized)
            fit = models_per_instance(need, instance_type, headroom, "largest model")
            if k > fit:
                notes.append(f"{k} models per instance exceed what fits in GPU memory ({fit} of "
                             f"{need:,.0f} MiB with {headroom:.0%} headroom)")
        mpi: int | None = k
        mme_groups = math.ceil(total / k)
    elif len(groups) == 1:
        g = groups[0]
        mpi = models_per_instance(_check_footprint(g.name, g.footprint_mib), instance_type, headroom, g.name)
        mme_groups = math.ceil(g.count / mpi)
    else:
        footprints = []
        for g in groups:
            footprints += [_check_footprint(g.name, g.footprint_mib)] * g.count
        mpi = None
        mme_groups = pack_instances(footprints, instance_type, headroom)
        notes.append("mixed footprints: instances counted by first-fit-decreasing packing onto GPUs")

    r = instances_per_endpoint
    sme_instances = total * r
    mme_instances = mme_groups * r
    sme = _money(price.usd_per_hour, sme_instances, hours_per_month)
    mme = _money(price.usd_per_hour, mme_instances, hours_per_month)
    return CostPlan(
        instance_type=inst.name,
        gpu=inst.gpu_model,
        gpu_memory_mib=inst.gpu_memory_mib,
        usable_gpu_memory_mib=usable_gpu_mib(instance_type, headroom),
        headroom=headroom,
        price_per_hour=price.usd_per_hour,
        price_source=price.source,
        price_as_of=price.as_of,
        price_region=price.region,
        hours_per_month=hours_per_month,
        instances_per_endpoint=r,
        models=[{"name": g.name, "count": g.count, "footprint_mib": g.footprint_mib} for g in groups],
        total_models=total,
        models_per_instance=mpi,
        single_model_endpoints=total,
        single_model_instances=sme_instances,
        single_model_monthly=sme,
        multi_model_groups=mme_groups,
        multi_model_instances=mme_instances,
        multi_model_monthly=mme,
        saving_monthly=round(sme - mme, 2),
        saving_fraction=(sme - mme) / sme,
        notes=notes,
    )


def post_example() -> CostPlan:
    """The post's example, exactly: 100 SD models, ml.g5.2xlarge at $1.52/h, 2 instances per
    endpoint, 4 models per instance, 720 h -> $218,880 (single-model) vs $54,720 (MME)."""
    return plan_costs(
        [ModelGroup("sd", 100, ORIGINAL_SAMPLE_FOOTPRINTS_MIB["sd"])],
        "ml.g5.2xlarge",
        price_table=PriceTable("the AWS post", {"ml.g5.2xlarge": POST_PRICE}),
        instances_per_endpoint=2,
        hours_per_month=HOURS_PER_MONTH_POST,
        models_per_instance_override=4,
    )


# ---------------------------------------------------------------------- inputs
def load_price_table(path: str | Path) -> PriceTable:
    """Read a price table from JSON or YAML::

        {"name": "...", "region": "us-east-1", "as_of": "2026-11-24", "source": "...",
         "prices": {"ml.g5.2xlarge": 1.515, "ml.g4dn.2xlarge": {"usd_per_hour": 0.94, "source": "..."}}}

    Top-level ``region``/``as_of``/``source`` apply to entries that do not carry their own.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CostError(f"cannot read price file {p}: {exc.strerror or exc}") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - JSON/YAML syntax errors, reported on one line
        raise CostError(f"price file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: "
                        f"{str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prices"), dict) or not data["prices"]:
        raise CostError(f"price file {p} must hold an object with a non-empty 'prices' mapping")
    region = str(data.get("region", "unspecified region"))
    as_of = str(data.get("as_of", "undated"))
    source = str(data.get("source", str(p)))
    prices: dict[str, Price] = {}
    for name, entry in data["prices"].items():
        if isinstance(entry, dict):
            value = entry.get("usd_per_hour")
            e_source, e_as_of, e_region = (str(entry.get("source", source)), str(entry.get("as_of", as_of)),
                                           str(entry.get("region", region)))
        else:
            value, e_source, e_as_of, e_region = entry, source, as_of, region
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise CostError(f"price file {p}: price of {name} must be a positive number, got {value!r}")
        prices[str(name)] = Price(float(value), e_source, e_as_of, e_region)
    return PriceTable(name=str(data.get("name", p.name)), prices=prices)


def footprints_from_results(results: str | Path | Mapping[str, Any], allow_cpu: bool = False) -> dict[str, float]:
    """Per-model footprint (MiB) from a benchmark JSON of ``python -m bench.run``.

    Uses each model's ``handler`` run ``memory.footprint_mib``. A CPU run measures peak RSS, not
    GPU memory: refused unless ``allow_cpu`` (then the RSS stands in, labelled by the caller).
    """
    if isinstance(results, Mapping):
        data = results
        where = "results"
    else:
        where = str(results)
        try:
            data = json.loads(Path(results).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CostError(f"cannot read benchmark results {where}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise CostError(f"benchmark results {where} are not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), Mapping):
        raise CostError(f"{where} is not a benchmark result (no 'models' object)")
    kind = (data.get("device") or {}).get("kind")
    if kind != "cuda" and not allow_cpu:
        raise CostError(f"{where} was measured on {kind or 'an unknown device'} (peak RSS, not GPU memory); "
                        "use a GPU run, or --allow-cpu-results to use the RSS as a stand-in")
    out: dict[str, float] = {}
    for name, model in data["models"].items():
        run = ((model or {}).get("runs") or {}).get("handler") or {}
        fp = (run.get("memory") or {}).get("footprint_mib")
        if isinstance(fp, (int, float)) and fp > 0:
            out[name] = float(fp)
    if not out:
        raise CostError(f"{where} holds no model with a measured footprint")
    return out


# ---------------------------------------------------------------------- CLI
def _footprint_arg(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        name, value = "model", text
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"footprint must be MiB or NAME=MiB, got {text!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise argparse.ArgumentTypeError(f"footprint must be a positive number of MiB, got {text!r}")
    return name.strip() or "model", number


def add_cost_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare the ``mme cost`` options on ``parser``."""
    parser.description = (
        "Monthly cost of one endpoint per model vs a multi-model endpoint. Examples: "
        "'mme cost --example post' (the AWS post: $218,880 vs $54,720); "
        "'mme cost --footprint sd=3910 --count 100'; 'mme cost --results bench/results/gpu.json'."
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--example", choices=["post"], help="reproduce the AWS post's example exactly")
    src.add_argument("--results", metavar="JSON", help="benchmark JSON from 'python -m bench.run' (footprints)")
    src.add_argument("--footprint", metavar="[NAME=]MiB", type=_footprint_arg, action="append",
                     help="GPU memory of one loaded model in MiB (repeatable, e.g. sd=3910 sam=3362)")
    parser.add_argument("--allow-cpu-results", action="store_true",
                        help="accept a CPU benchmark (peak RSS stands in for GPU memory)")
    parser.add_argument("--count", type=int, default=100, help="models of each kind (default 100)")
    parser.add_argument("--instance-type", default=DEFAULT_INSTANCE_TYPE,
                        help="a single-GPU type AWS documents for GPU multi-model endpoints "
                             "(ml.g4dn/ml.g5 xlarge-16xlarge, ml.p3.2xlarge); default ml.g5.2xlarge")
    parser.add_argument("--instances-per-endpoint", type=int, default=DEFAULT_INSTANCES_PER_ENDPOINT,
                        help="instances behind each endpoint / model group (default 2, as the post)")
    parser.add_argument("--models-per-instance", type=int, default=None,
                        help="override the memory-based count (the post states 4)")
    parser.add_argument("--headroom", type=float, default=DEFAULT_HEADROOM,
                        help="fraction of GPU memory kept free (default 0.10)")
    parser.add_argument("--hours-per-month", type=float, default=HOURS_PER_MONTH_POST,
                        help="720 = 30 days (the post's convention, default); 730 = AWS Pricing Calculator")
    prices = parser.add_mutually_exclusive_group()
    prices.add_argument("--price-per-hour", type=float, default=None, help="USD per instance hour")
    prices.add_argument("--prices", metavar="FILE", help="price table (JSON/YAML; see mme.cost.load_price_table)")
    parser.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    return parser


def plans_from_args(args: argparse.Namespace) -> list[tuple[str, CostPlan]]:
    """Build the plans an ``mme cost`` invocation asks for (label, plan)."""
    if args.example == "post":
        return [("AWS post example (100 SD models)", post_example())]
    table = load_price_table(args.prices) if args.prices else DEFAULT_PRICE_TABLE
    common = dict(price_per_hour=args.price_per_hour, price_table=table,
                  instances_per_endpoint=args.instances_per_endpoint, hours_per_month=args.hours_per_month,
                  headroom=args.headroom, models_per_instance_override=args.models_per_instance)
    if args.results:
        footprints = footprints_from_results(args.results, allow_cpu=args.allow_cpu_results)
    elif args.footprint:
        footprints = dict(args.footprint)
    elif args.models_per_instance is not None:
        footprints = {"model": None}
    else:
        raise CostError("give --example post, --results JSON, --footprint [NAME=]MiB or --models-per-instance")
    plans = []
    for name, fp in footprints.items():
        label = f"{args.count} x {name}" + (f" ({fp:,.0f} MiB)" if fp else "")
        plans.append((label, plan_costs([ModelGroup(name, args.count, fp)], args.instance_type, **common)))
    if len(footprints) > 1:
        mixed = [ModelGroup(n, args.count, fp) for n, fp in footprints.items()]
        plans.append((f"{args.count} of each together", plan_costs(mixed, args.instance_type, **{
            **common, "models_per_instance_override": None})))
    return plans


def run_cost(args: argparse.Namespace) -> int:
    """``mme cost``: print the plans; bad input raises ``CommandError`` (one line, exit status 2)."""
    from mme.cli import CommandError

    try:
        plans = plans_from_args(args)
    except CostError as exc:
        raise CommandError(str(exc), 2) from None
    if args.format == "json":
        print(json.dumps([{"scenario": label, **plan.to_dict()} for label, plan in plans], indent=2))
    elif args.format == "markdown":
        print(MARKDOWN_HEADER)
        for label, plan in plans:
            print(plan.markdown_row(label))
    else:
        print("\n\n".join(f"== {label}\n{plan.format_text()}" for label, plan in plans))
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``cost`` subcommand to the ``mme`` console script (see ``mme/cli.py``)."""
    parser = subparsers.add_parser("cost", help="monthly cost: single-model endpoints vs one multi-model endpoint")
    add_cost_arguments(parser)
    parser.set_defaults(func=run_cost)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mme.cost``: the same as ``mme cost`` (same options, errors and exit status)."""
    from mme.cli import main as cli_main

    return cli_main(["cost", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
