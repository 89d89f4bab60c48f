"""Where an editing command sends its requests: the ``--endpoint``/``--stack-name``/
``--target-model`` options of a deployed stack, or ``--local`` (the endpoint ``mme local up``
started), and the client backend they name."""

from __future__ import annotations

import argparse
import os

from mme.stack_outputs import DEFAULT_STACK_NAME

from .arg_types import target_arg
from .errors import UsageError

STATE_DIR_HELP = "state directory of the local endpoint (default: $MME_STATE_DIR, $XDG_STATE_HOME/mme or ~/.local/state/mme)"


def add_verbose(parser: argparse.ArgumentParser) -> None:
    """``-v/--verbose``: progress messages even when stderr is not a terminal."""
    parser.add_argument("-v", "--verbose", action="store_true", help="print progress messages even when not on a terminal")


def add_state_dir(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--state-dir DIR``: the local endpoint's state directory."""
    parser.add_argument("--state-dir", metavar="DIR", help=STATE_DIR_HELP)


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """The options that say where requests go (read by :func:`backend_from_args`), and ``--verbose``."""
    group = parser.add_argument_group("where to send the request (one of --endpoint/--stack-name or --local)")
    group.add_argument("--endpoint", metavar="NAME",
                       help="SageMaker endpoint name (default: the stack's EndpointName output)")
    group.add_argument("--stack-name", metavar="NAME", default=None,
                       help="CloudFormation stack whose outputs name the endpoint and each model's TargetModel "
                            f"(default: $MME_STACK_NAME or {DEFAULT_STACK_NAME})")
    group.add_argument("--target-model", metavar="NAME=KEY", type=target_arg, action="append", default=[],
                       help="TargetModel of one model, instead of the stack output (repeatable)")
    group.add_argument("--target-model-parameters", metavar="PREFIX",
                       help="read each model's TargetModel from the SSM parameters PREFIX/<model> (with --endpoint; "
                            "the stack publishes them under /<endpoint name>/target-model)")
    group.add_argument("--region", help="AWS region (default: the profile's / AWS_REGION)")
    group.add_argument("--profile", help="AWS profile (default: AWS_PROFILE / default)")
    group.add_argument("--local", action="store_true",
                       help="use the local endpoint started by `mme local up`")
    add_state_dir(group)
    add_verbose(parser)


def backend_from_args(args, models: tuple[str, ...], *, on_event=None, on_retry=None):
    """The backend that the target options of ``args`` name (``--local`` or a deployed stack /
    endpoint), for ``models``; ``on_event``/``on_retry`` are the backends' progress callbacks."""
    from mme.models import MODELS

    remote = args.endpoint or args.stack_name or args.target_model or args.target_model_parameters
    if args.local and remote:
        raise UsageError("--local cannot be combined with --endpoint/--stack-name/--target-model/"
                         "--target-model-parameters")
    if args.local:
        from mme.client.local import LocalBackend

        return LocalBackend.from_state(args.state_dir, on_event=on_event)
    if not (args.endpoint or args.stack_name):
        raise UsageError("say where to send the request: --endpoint NAME, --stack-name NAME or --local")
    from mme.client import SageMakerBackend

    if args.target_model_parameters:
        if not args.endpoint or args.stack_name or args.target_model:
            raise UsageError("--target-model-parameters goes with --endpoint NAME (not --stack-name/--target-model)")
        return SageMakerBackend.from_parameters(args.endpoint, args.target_model_parameters, models,
                                                region=args.region, profile=args.profile, on_retry=on_retry)

    overrides = {}
    for name, target in args.target_model:
        if name not in MODELS:
            raise UsageError(f"--target-model {name}=...: unknown model {name!r} ({', '.join(MODELS)})")
        overrides[name] = target
    stack = args.stack_name or os.environ.get("MME_STACK_NAME") or DEFAULT_STACK_NAME
    return SageMakerBackend.from_stack(stack, endpoint_name=args.endpoint, target_models=overrides,
                                       models=models, region=args.region, profile=args.profile,
                                       on_retry=on_retry)
