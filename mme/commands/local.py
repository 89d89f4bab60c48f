"""``mme local up|down|status``: serve the models on this machine the way the multi-model
endpoint serves them (the work is :mod:`mme.local.mode`; this module is its command line)."""

from __future__ import annotations

import json
from pathlib import Path

from mme.serving_image.layout import DEV_IMAGE

from .arg_types import positive_int
from .errors import EXIT_OK, EXIT_RUNTIME, UsageError
from .targets import add_state_dir, add_verbose
from .terminal import StepSpinner


def register(subparsers) -> None:
    """Add ``local`` (``up``, ``down``, ``status``) to the ``mme`` command's subparsers."""
    local = subparsers.add_parser(
        "local", help="serve the models on this machine as the multi-model endpoint does (up, down, status)",
        description="Serve the models on this machine the way the multi-model endpoint serves them: "
                    "TorchServe with the serving container's settings on 127.0.0.1 (token authorization on) "
                    "behind a local endpoint that loads a model on its first request and unloads the least "
                    "recently used ones when the memory budget runs short. Same archives and TargetModel "
                    "names as the stack. `mme local up --weights tiny` needs no downloads: tiny "
                    "random-weight models (the flow works, the pictures are noise).")
    actions = local.add_subparsers(dest="local_command", metavar="{up,down,status}", required=True)
    _add_up(actions)
    _add_down(actions)
    _add_status(actions)


def _add_up(actions) -> None:
    p = actions.add_parser("up", help="package the models, start TorchServe and the local endpoint in the background",
                           description="Package the enabled models (cdk.json enabledModels, or --models), then start "
                                       "TorchServe and the local endpoint in the background. Models load on their "
                                       "first request. Running it again while they run is harmless.")
    p.add_argument("--weights", default="tiny", metavar="tiny|DIR",
                   help="'tiny' (random-weight tiny models built here, default) or a folder with one subfolder "
                        "per model (sam/, lama/, sd/) holding its weight files")
    p.add_argument("--models", metavar="LIST", help="comma-separated models to serve (default: the enabled ones)")
    p.add_argument("--image", metavar="IMAGE", nargs="?", const=DEV_IMAGE,
                   help="serve with the serving image run by podman or docker, as SageMaker runs it, instead of "
                        f"this virtual environment's TorchServe (default image {DEV_IMAGE}: `make image` "
                        "builds it); GPUs are passed through where nvidia-smi lists one")
    p.add_argument("--memory-budget-mib", metavar="MIB", type=positive_int,
                   help="memory the loaded models may hold together (their workers' resident memory plus "
                        "GPU memory); when the next model does not fit, the least recently used ones are "
                        "unloaded (default: 90%% of the memory available at start)")
    add_state_dir(p)
    add_verbose(p)
    p.set_defaults(func=cmd_local_up, mme_prog=p.prog)


def _add_down(actions) -> None:
    p = actions.add_parser("down", help="stop the local endpoint and TorchServe (no process is left behind)",
                           description="Stop the local endpoint, TorchServe and every process they started.")
    add_state_dir(p)
    p.set_defaults(func=cmd_local_down, mme_prog=p.prog)


def _add_status(actions) -> None:
    p = actions.add_parser("status", help="is the local endpoint running, where, what is loaded (size, hits)",
                           description="Show the local endpoint's state: where it listens, the memory budget, and "
                                       "each model's TargetModel, whether it is loaded, its size and its hits, "
                                       "and per model the requests, errors and latency percentiles counted from "
                                       "the handlers' request lines (as the endpoint's dashboard counts them). "
                                       "Exit status 0 when it runs, 1 otherwise.")
    add_state_dir(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=cmd_local_status, mme_prog=p.prog)


def cmd_local_up(args) -> int:
    """``mme local up``."""
    from mme.local import mode as local_mode
    from mme.local import packaging

    spinner = StepSpinner(verbose=args.verbose)
    try:
        models = packaging.parse_models(args.models)
    except local_mode.LocalModeError as exc:
        raise UsageError(f"--models: {exc}") from None
    if args.weights != "tiny" and not Path(args.weights).expanduser().is_dir():
        raise UsageError(f"--weights {args.weights}: give 'tiny' or a folder with one subfolder per model "
                         f"({', '.join(m + '/' for m in models)})")
    with spinner.step("mme local up"):
        state, already = local_mode.up(args.weights, models, memory_budget_mib=args.memory_budget_mib,
                                       image=args.image, state_override=args.state_dir, report=spinner.note)
    if already:
        print("the local endpoint is already running")
    _print_status(local_mode.status(state_override=args.state_dir))
    return EXIT_OK


def cmd_local_down(args) -> int:
    """``mme local down``."""
    from mme.local import mode as local_mode

    was_running = local_mode.down(state_override=args.state_dir)
    print("stopped the local endpoint" if was_running else "the local endpoint is not running")
    return EXIT_OK


def cmd_local_status(args) -> int:
    """``mme local status``."""
    from mme.local import mode as local_mode

    info = local_mode.status(state_override=args.state_dir)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_status(info)
    return EXIT_OK if info["running"] else EXIT_RUNTIME


def _mib(value) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MiB"


def _print_status(info: dict) -> None:
    if not info["running"]:
        print(f"not running (state dir {info['state_dir']})"
              + ("; a previous server is gone, `mme local up` cleans up" if info.get("stale") else ""))
        return
    container = info.get("container") or {}
    serving = f"image {container['image']}" if container.get("kind") == "image" else "TorchServe"
    print(f"running: local endpoint at {info['endpoint_url']} ({serving} {info['inference_url']}, "
          f"management {info['management_url']}, process group {info['process_group']})")
    print(f"memory: {_mib(info.get('used_bytes'))} of {_mib(info['memory_budget_bytes'])} in use; "
          f"weights: {info['weights']}; state dir {info['state_dir']}; logs {info['log_dir']}")
    for name, model in info.get("models", {}).items():
        if model["state"] == "unloaded":
            where = "not loaded (loads on first use)"
        else:
            where = f"{model['state']}, {_mib(model.get('size_bytes'))}"
        counts = (f"hits {model.get('hits', 0)}, misses {model.get('misses', 0)}, loads {model.get('loads', 0)}, "
                  f"unloads {model.get('unloads', 0)}")
        print(f"  {name:5s} {model['target_model']}  {where}; {counts}")
    if info.get("requests"):
        from mme.local.request_stats import summary_line

        print("requests, from the handlers' request lines (as the endpoint's per-model metrics count them):")
        for name, figures in info["requests"].items():
            print(summary_line(name, figures))
    if info.get("error"):
        print(f"warning: {info['error']}")
