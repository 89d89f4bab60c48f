"""``mme cost``: monthly cost of single-model endpoints vs one multi-model endpoint (the planner
is :mod:`mme.cost`; this module is its command line)."""

from __future__ import annotations

import argparse
import json

from .arg_types import footprint_arg
from .errors import EXIT_OK, UsageError


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``cost`` subcommand to the ``mme`` console script."""
    parser = subparsers.add_parser("cost", help="monthly cost: single-model endpoints vs one multi-model endpoint")
    add_cost_arguments(parser)
    parser.set_defaults(func=run_cost)
    return parser


def add_cost_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare the ``mme cost`` options on ``parser``."""
    from mme import cost

    parser.description = (
        "Monthly cost of one endpoint per model vs a multi-model endpoint. Examples: "
        "'mme cost --example post' (the AWS post: $218,880 vs $54,720); "
        "'mme cost --footprint sd=3910 --count 100'; 'mme cost --results bench/results/gpu.json'."
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--example", choices=["post"], help="reproduce the AWS post's example exactly")
    src.add_argument("--results", metavar="JSON", help="benchmark JSON from 'python -m bench.run' (footprints)")
    src.add_argument("--footprint", metavar="[NAME=]MiB", type=footprint_arg, action="append",
                     help="GPU memory of one loaded model in MiB (repeatable, e.g. sd=3910 sam=3362)")
    parser.add_argument("--allow-cpu-results", action="store_true",
                        help="accept a CPU benchmark (peak RSS stands in for GPU memory)")
    parser.add_argument("--count", type=int, default=100, help="models of each kind (default 100)")
    parser.add_argument("--instance-type", default=cost.DEFAULT_INSTANCE_TYPE,
                        help="a single-GPU type AWS documents for GPU multi-model endpoints "
                             f"(ml.g4dn/ml.g5 xlarge-16xlarge, ml.p3.2xlarge); default {cost.DEFAULT_INSTANCE_TYPE}")
    parser.add_argument("--instances-per-endpoint", type=int, default=cost.DEFAULT_INSTANCES_PER_ENDPOINT,
                        help=f"instances behind each endpoint / model group (default "
                             f"{cost.DEFAULT_INSTANCES_PER_ENDPOINT}, as the post)")
    parser.add_argument("--models-per-instance", type=int, default=None,
                        help="override the memory-based count (the post states 4)")
    parser.add_argument("--headroom", type=float, default=cost.DEFAULT_HEADROOM,
                        help=f"fraction of GPU memory kept free (default {cost.DEFAULT_HEADROOM:.2f})")
    parser.add_argument("--hours-per-month", type=float, default=cost.HOURS_PER_MONTH_POST,
                        help=f"{cost.HOURS_PER_MONTH_POST} = 30 days (the post's convention, default); "
                             f"{cost.HOURS_PER_MONTH_CALCULATOR} = AWS Pricing Calculator")
    prices = parser.add_mutually_exclusive_group()
    prices.add_argument("--price-per-hour", type=float, default=None, help="USD per instance hour")
    prices.add_argument("--prices", metavar="FILE", help="price table (JSON/YAML; see mme.cost.load_price_table)")
    parser.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    return parser


def plans_from_args(args: argparse.Namespace) -> list:
    """Build the plans an ``mme cost`` invocation asks for: ``[(label, CostPlan), ...]``."""
    from mme import cost

    if args.example == "post":
        return [("AWS post example (100 SD models)", cost.post_example())]
    table = cost.load_price_table(args.prices) if args.prices else cost.DEFAULT_PRICE_TABLE
    common = dict(price_per_hour=args.price_per_hour, price_table=table,
                  instances_per_endpoint=args.instances_per_endpoint, hours_per_month=args.hours_per_month,
                  headroom=args.headroom, models_per_instance_override=args.models_per_instance)
    if args.results:
        footprints = cost.footprints_from_results(args.results, allow_cpu=args.allow_cpu_results)
    elif args.footprint:
        footprints = dict(args.footprint)
    elif args.models_per_instance is not None:
        footprints = {"model": None}
    else:
        raise cost.CostError("give --example post, --results JSON, --footprint [NAME=]MiB or --models-per-instance")
    plans = []
    for name, fp in footprints.items():
        label = f"{args.count} x {name}" + (f" ({fp:,.0f} MiB)" if fp else "")
        plans.append((label, cost.plan_costs([cost.ModelGroup(name, args.count, fp)], args.instance_type, **common)))
    if len(footprints) > 1:
        mixed = [cost.ModelGroup(n, args.count, fp) for n, fp in footprints.items()]
        plans.append((f"{args.count} of each together", cost.plan_costs(mixed, args.instance_type, **{
            **common, "models_per_instance_override": None})))
    return plans


def run_cost(args: argparse.Namespace) -> int:
    """``mme cost``: print the plans; a planning input that cannot work is a usage error (exit 2)."""
    from mme import cost

    try:
        plans = plans_from_args(args)
    except cost.CostError as exc:
        raise UsageError(str(exc)) from None
    if args.format == "json":
        print(json.dumps([{"scenario": label, **plan.to_dict()} for label, plan in plans], indent=2))
    elif args.format == "markdown":
        print(cost.MARKDOWN_HEADER)
        for label, plan in plans:
            print(plan.markdown_row(label))
    else:
        print("\n\n".join(f"== {label}\n{plan.format_text()}" for label, plan in plans))
    return EXIT_OK
