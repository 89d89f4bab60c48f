"""Instance prices: the dated built-in table (every entry names its source) and reading a table
from a JSON/YAML file."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import CostError

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


#: The instance type of the AWS post's example.
POST_INSTANCE_TYPE = "ml.g5.2xlarge"

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
        POST_INSTANCE_TYPE: POST_PRICE,
        "ml.g5.xlarge": Price(
            1.41,
            "zircon.tech, 'The real cost of running AI models on AWS SageMaker' (about $1.41/h, "
            "us-east-1 as of October 2025; third-party, verify)",
            "2025-10",
        ),
    },
    note="Prices change and differ by region: verify on the SageMaker pricing page or override.",
)


def check_positive(value, what: str) -> float:
    """``value`` as a float when it is a finite number > 0, else a :class:`CostError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise CostError(f"{what} must be a positive number, got {value!r}")
    return float(value)


def user_price(price_per_hour: float) -> Price:
    """The price a user gave (``--price-per-hour``), checked."""
    return Price(check_positive(price_per_hour, "price per hour"), "given by the user", "n/a", "n/a")


def load_price_table(path: str | Path) -> PriceTable:
    """Read a price table from JSON or YAML::

        {"name": "...", "region": "us-east-1", "as_of": "2026-11-24", "source": "...",
         "prices": {"ml.g5.2xlarge": 1.515, "ml.g4dn.2xlarge": {"usd_per_hour": 0.94, "source": "..."}}}

    Top-level ``region``/``as_of``/``source`` apply to entries that do not carry their own.
    """
    p = Path(path)
    data = _read_table_file(p)
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
        usd = check_positive(value, f"price file {p}: price of {name}")
        prices[str(name)] = Price(usd, e_source, e_as_of, e_region)
    return PriceTable(name=str(data.get("name", p.name)), prices=prices)


def _read_table_file(p: Path) -> dict:
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
    return data
