"""What the planner takes and gives: :class:`ModelGroup` (models of one kind) and
:class:`CostPlan` (the monthly costs, with how they read as text and as a Markdown row)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class ModelGroup:
    """``count`` models of one kind, each needing ``footprint_mib`` of GPU memory when loaded."""

    name: str
    count: int
    footprint_mib: float | None = None


@dataclass
class CostPlan:
    """The result of :func:`mme.cost.plan_costs` (all money in USD per month)."""

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


def money(price: float, *factors: float) -> float:
    """Exact decimal product rounded to cents (no binary floating-point drift: $218,880 exactly)."""
    total = Decimal(str(price))
    for f in factors:
        total *= Decimal(str(f))
    return float(total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
