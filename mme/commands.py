"""The editing commands of the ``mme`` CLI: ``select``, ``erase``, ``replace`` and ``local up|down|status``.

``register(subparsers)`` adds them to the ``mme`` parser (``mme.cli``). Every command has
``--help``. Where requests go: ``--endpoint NAME`` and/or ``--stack-name NAME`` (a deployed
stack: the ``TargetModel`` of each model comes from the stack outputs, ``--target-model
NAME=KEY`` overrides one), or ``--local`` (the local endpoint that ``mme local up`` started).

Exit status: 0 success; 2 the command line or the input is wrong (bad option, missing or
unreadable file, not an image, point outside the image, empty prompt, mask of another size, or
the model answered 4xx); 1 anything else (endpoint/stack missing, server or network failure,
local endpoint not running). Errors are one line on stderr, without a traceback (``MME_DEBUG=1``
shows it). On a terminal, slow steps show progress and elapsed time on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
MASK_FORMATS = {".png"}


# ---------------------------------------------------------------------------------------------
# terminal progress
# ---------------------------------------------------------------------------------------------
class Progress:
    """Elapsed-time line on stderr while a slow step runs (only on a terminal); ``note`` prints a
    message above it (always on a terminal; otherwise only when ``verbose``)."""

    FRAMES = "|/-\\"

    def __init__(self, stream=None, enabled: bool | None = None, verbose: bool = False):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.verbose = verbose
        self._label = ""
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def note(self, message: str) -> None:
        """Print one line of information (above the running step on a terminal)."""
        if not (self.enabled or self.verbose):
            return
        with self._lock:
            self._clear()
            self.stream.write(message + "\n")
            self.stream.flush()

    def _clear(self) -> None:
        if self.enabled and self._thread is not None:
            self.stream.write("\r\x1b[K")

    def _spin(self) -> None:
        frame = 0
        while not self._stop.wait(0.1):
            with self._lock:
                elapsed = time.monotonic() - self._started
                self.stream.write(f"\r\x1b[K{self.FRAMES[frame % 4]} {self._label} {elapsed:5.1f}s")
                self.stream.flush()
            frame += 1

    @contextlib.contextmanager
    def step(self, label: str):
        """Context manager around one slow step: spinner + elapsed time, then ``label: done in Ns``."""
        self._label, self._started = label, time.monotonic()
        if self.enabled:
            self._stop.clear()
            self._thread = threading.Thread(target=self._spin, daemon=True)
            self._thread.start()
        try:
            yield self
        finally:
            elapsed = time.monotonic() - self._started
            if self._thread is not None:
                self._stop.set()
                self._thread.join()
                with self._lock:
                    self._clear()
                self._thread = None
        self.note(f"{label}: done in {elapsed:.1f}s")


# ---------------------------------------------------------------------------------------------
# argument types
# ---------------------------------------------------------------------------------------------
def _numbers(text: str, count: int, what: str) -> list[float]:
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(v == v and abs(v) != float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"{what} must be {count} numbers separated by commas, got {text!r}")
    return values


def point_arg(text: str) -> tuple[float, float]:
    """``X,Y`` in image pixels (0,0 = top-left)."""
    x, y = _numbers(text, 2, "a point")
    return x, y


def box_arg(text: str) -> list[float]:
    """``X0,Y0,X1,Y1`` in image pixels."""
    return _numbers(text, 4, "a box")


def target_arg(text: str) -> tuple[str, str]:
    """``NAME=TARGETMODEL`` (e.g. ``sam=sam-1a2b3c4d5e6f7a8b.tar.gz``)."""
    name, sep, target = text.partition("=")
    if not sep or not name.strip() or not target.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=TARGETMODEL (e.g. sam=sam-<digest>.tar.gz), got {text!r}")
    return name.strip(), target.strip()


def parse_number(text: str, kind: type, what: str):
    """``kind(text)``, or the one-line argparse error ``<what>, got '<text>'``."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None


def seed_arg(text: str) -> int:
    value = parse_number(text, int, "a seed is an integer")
    if not 0 <= value <= 2**32 - 1:
        raise argparse.ArgumentTypeError(f"a seed is in 0..{2**32 - 1}, got {value}")
    return value


def strength_arg(text: str) -> float:
    """A number in (0, 1]."""
    value = parse_number(text, float, "a strength is a number in (0, 1]")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a strength is a number in (0, 1], got {text}")
    return value


def positive_int(text: str) -> int:
    value = parse_number(text, int, "expected a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------
STATE_DIR_HELP = "state directory of the local endpoint (default: $MME_STATE_DIR, $XDG_STATE_HOME/mme or ~/.local/state/mme)"


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="print progress messages even when not on a terminal")


def add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where to send the request (one of --endpoint/--stack-name or --local)")
    group.add_argument("--endpoint", metavar="NAME",
                       help="SageMaker endpoint name (default: the stack's EndpointName output)")
    group.add_argument("--stack-name", metavar="NAME", default=None,
                       help="CloudFormation stack whose outputs name the endpoint and each model's TargetModel "
                            "(default: $MME_STACK_NAME or ImageEditingMme)")
    group.add_argument("--target-model", metavar="NAME=KEY", type=target_arg, action="append", default=[],
                       help="TargetModel of one model, instead of the stack output (repeatable)")
    group.add_argument("--region", help="AWS region (default: the profile's / AWS_REGION)")
    group.add_argument("--profile", help="AWS profile (default: AWS_PROFILE / default)")
    group.add_argument("--local", action="store_true",
                       help="use the local endpoint started by `mme local up`")
    group.add_argument("--state-dir", metavar="DIR", help=STATE_DIR_HELP)
    _add_verbose(parser)


def register(subparsers) -> None:
    """Add ``select``, ``erase``, ``replace`` and ``local`` to the ``mme`` command's subparsers
    (usage errors are one line through the parser class of ``mme.cli``)."""
    fmt = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "select", help="click -> mask: segment the object under one or more points (SAM)",
        description="Segment the object under the given point(s) with SAM and write its mask "
                    "(PNG, white = selected, the image's size).",
        epilog="example:\n  mme select photo.jpg --point 120,80 -o mask.png --local\n"
               "  mme select photo.jpg --point 120,80 --point 30,40 --label 1 --label 0 -o mask.png "
               "--stack-name ImageEditingMme", formatter_class=fmt)
    p.add_argument("image", metavar="IMAGE", help="the photo (PNG, JPEG, WebP, or any format Pillow reads)")
    p.add_argument("--point", metavar="X,Y", type=point_arg, action="append", default=[],
                   help="a click in image pixels (0,0 = top-left); repeat for several points")
    p.add_argument("--label", type=int, choices=(0, 1), action="append", default=None,
                   help="1 = foreground (default), 0 = background; one per --point, in order")
    p.add_argument("--box", metavar="X0,Y0,X1,Y1", type=box_arg, help="optional box around the object")
    p.add_argument("--dilate", metavar="N", type=int, default=0, help="grow the mask by an N-pixel square kernel")
    p.add_argument("--single-mask", action="store_true",
                   help="ask SAM for one mask instead of the best of three")
    p.add_argument("-o", "--output", metavar="MASK.png", required=True, help="where to write the mask (PNG)")
    add_target_options(p)
    p.set_defaults(func=command(cmd_select), mme_prog=p.prog, mme_models=("sam",))

    p = subparsers.add_parser(
        "erase", help="remove the masked object and fill the hole from its surroundings (LaMa)",
        description="Erase the masked object with LaMa. The result has the image's size; pixels outside "
                    "the mask are unchanged.",
        epilog="example:\n  mme erase photo.jpg --mask mask.png -o erased.png --local", formatter_class=fmt)
    p.add_argument("image", metavar="IMAGE", help="the photo")
    p.add_argument("--mask", metavar="MASK", required=True, help="mask image (white = erase), the photo's size")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="where to write the result (.png, .jpg, .webp)")
    add_target_options(p)
    p.set_defaults(func=command(cmd_erase), mme_prog=p.prog, mme_models=("lama",))

    p = subparsers.add_parser(
        "replace", help="repaint the masked area from a text prompt (Stable Diffusion 2 inpainting)",
        description="Replace the masked object with what the prompt describes (SD2 inpainting). The result "
                    "has the image's size; pixels outside the mask are unchanged. The seed used is printed: "
                    "pass it with --seed to get the same result again.",
        epilog="example:\n  mme replace photo.jpg --mask mask.png --prompt 'a red vase' --seed 7 -o vase.png --local",
        formatter_class=fmt)
    p.add_argument("image", metavar="IMAGE", help="the photo")
    p.add_argument("--mask", metavar="MASK", required=True, help="mask image (white = replace), the photo's size")
    p.add_argument("--prompt", required=True, help="what to paint into the mask")
    p.add_argument("--negative-prompt", help="what to avoid")
    p.add_argument("--seed", type=seed_arg, help="random seed (0..2^32-1) for a reproducible result")
    p.add_argument("--steps", type=positive_int, help="denoising steps (default: the model's, 25)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's, 7.5)")
    p.add_argument("--strength", type=strength_arg, metavar="S",
                   help="how much of the masked area is repainted, 0 < S <= 1 (default: the model's, 1.0 = all; "
                        "lower keeps more of the photo)")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="where to write the result (.png, .jpg, .webp)")
    add_target_options(p)
    p.set_defaults(func=command(cmd_replace), mme_prog=p.prog, mme_models=("sd",))

    local = subparsers.add_parser(
        "local", help="serve the models on this machine as the multi-model endpoint does (up, down, status)",
        description="Serve the models on this machine the way the multi-model endpoint serves them: "
                    "TorchServe with the serving container's settings on 127.0.0.1 (token authorization on) "
                    "behind a local endpoint that loads a model on its first request and unloads the least "
                    "recently used ones when the memory budget runs short. Same archives and TargetModel "
                    "names as the stack. `mme local up --weights tiny` needs no downloads: tiny "
                    "random-weight models (the flow works, the pictures are noise).")
    actions = local.add_subparsers(dest="local_command", metavar="{up,down,status}", required=True)

    p = actions.add_parser("up", help="package the models, start TorchServe and the local endpoint in the background",
                           description="Package the enabled models (cdk.json enabledModels, or --models), then start "
                                       "TorchServe and the local endpoint in the background. Models load on their "
                                       "first request. Running it again while they run is harmless.")
    p.add_argument("--weights", default="tiny", metavar="tiny|DIR",
                   help="'tiny' (random-weight tiny models built here, default) or a folder with one subfolder "
                        "per model (sam/, lama/, sd/) holding its weight files")
    p.add_argument("--models", metavar="LIST", help="comma-separated models to serve (default: the enabled ones)")
    p.add_argument("--memory-budget-mib", metavar="MIB", type=positive_int,
                   help="memory the loaded models may hold together (their workers' resident memory plus "
                        "GPU memory); when the next model does not fit, the least recently used ones are "
                        "unloaded (default: 90%% of the memory available at start)")
    p.add_argument("--state-dir", metavar="DIR", help=STATE_DIR_HELP)
    _add_verbose(p)
    p.set_defaults(func=command(cmd_local_up), mme_prog=p.prog)

    p = actions.add_parser("down", help="stop the local endpoint and TorchServe (no process is left behind)",
                           description="Stop the local endpoint, TorchServe and every process they started.")
    p.add_argument("--state-dir", metavar="DIR", help=STATE_DIR_HELP)
    p.set_defaults(func=command(cmd_local_down), mme_prog=p.prog)

    p = actions.add_parser("status", help="is the local endpoint running, where, what is loaded (size, hits)",
                           description="Show the local endpoint's state: where it listens, the memory budget, and "
                                       "each model's TargetModel, whether it is loaded, its size and its hits. "
                                       "Exit status 0 when it runs, 1 otherwise.")
    p.add_argument("--state-dir", metavar="DIR", help=STATE_DIR_HELP)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=command(cmd_local_status), mme_prog=p.prog)


# ---------------------------------------------------------------------------------------------
# running a command
# ---------------------------------------------------------------------------------------------
class UsageError(Exception):
    """A command-line mistake found after parsing (exit 2)."""


def command(fn):
    """Wrap a command function: errors become one stderr line and the documented exit status, so
    any dispatcher that calls ``args.func(args)`` and exits with its result behaves the same."""
    def wrapped(args: argparse.Namespace) -> int:
        return _run(fn, args)

    wrapped.__name__ = wrapped.__qualname__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _run(fn, args: argparse.Namespace) -> int:
    from mme.client.errors import InputError, MmeError, ModelInputError
    from mme.local_mode import LocalModeError

    prog = getattr(args, "mme_prog", "mme")
    try:
        return fn(args) or EXIT_OK
    except (UsageError, InputError, ModelInputError) as exc:
        return _fail(prog, exc, EXIT_USAGE)
    except (MmeError, LocalModeError) as exc:
        return _fail(prog, exc, EXIT_RUNTIME)
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{prog}: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: still one line unless MME_DEBUG
        if os.environ.get("MME_DEBUG"):
            raise
        return _fail(prog, f"internal error: {type(exc).__name__}: {exc} (MME_DEBUG=1 shows the traceback)", EXIT_RUNTIME)


def _fail(prog: str, exc, code: int) -> int:
    if os.environ.get("MME_DEBUG") and isinstance(exc, BaseException):
        import traceback

        traceback.print_exception(exc)
    message = " ".join(str(exc).split()) or type(exc).__name__
    sys.stderr.write(f"{prog}: error: {message}\n")
    return code


def backend_from_args(args, models: tuple[str, ...], *, on_event=None, on_retry=None):
    """The backend that the target options of ``args`` name (``--local`` or a deployed stack /
    endpoint), for ``models``; ``on_event``/``on_retry`` are the backends' progress callbacks."""
    from mme.client import DEFAULT_STACK_NAME, MODELS

    remote = args.endpoint or args.stack_name or args.target_model
    if args.local and remote:
        raise UsageError("--local cannot be combined with --endpoint/--stack-name/--target-model")
    if args.local:
        from mme.client.local import LocalBackend

        return LocalBackend.from_state(args.state_dir, on_event=on_event)
    if not (args.endpoint or args.stack_name):
        raise UsageError("say where to send the request: --endpoint NAME, --stack-name NAME or --local")
    from mme.client import SageMakerBackend

    overrides = {}
    for name, target in args.target_model:
        if name not in MODELS:
            raise UsageError(f"--target-model {name}=...: unknown model {name!r} ({', '.join(MODELS)})")
        overrides[name] = target
    stack = args.stack_name or os.environ.get("MME_STACK_NAME") or DEFAULT_STACK_NAME
    return SageMakerBackend.from_stack(stack, endpoint_name=args.endpoint, target_models=overrides,
                                       models=models, region=args.region, profile=args.profile,
                                       on_retry=on_retry)


def _client(args, progress: Progress):
    from mme.client import EditingClient

    def on_retry(kind, attempt, delay, message):
        what = {"model_loading": "the model is loading on the endpoint", "throttled": "throttled",
                "unavailable": "the endpoint is unavailable"}.get(kind, kind)
        progress.note(f"{what} (attempt {attempt}); retrying in {delay:.1f}s")

    return EditingClient(backend_from_args(args, args.mme_models, on_event=progress.note, on_retry=on_retry))


def _check_output(path: str, formats: set[str] | None = None) -> Path:
    """Fail before any request when the output cannot be written."""
    from PIL import Image

    out = Path(path)
    suffix = out.suffix.lower()
    if formats is not None and suffix not in formats:
        raise UsageError(f"{path}: masks are written as PNG (lossless, so they stay binary); use a .png name")
    Image.init()
    if suffix not in Image.EXTENSION:
        raise UsageError(f"{path}: unknown image extension {suffix or '(none)'}; use .png, .jpg or .webp")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{path}: folder {parent} does not exist")
    if out.is_dir():
        raise UsageError(f"{path}: is a directory")
    return out


def _save(image, out: Path) -> None:
    """Write atomically (temp file + rename), JPEG at quality 95 (transparency shown over white:
    JPEG has no alpha)."""
    from PIL import Image

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    fmt = Image.EXTENSION[out.suffix.lower()]
    if fmt == "JPEG" and image.mode == "RGBA":
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("RGB")
    try:
        options = {"quality": 95} if fmt == "JPEG" else {}
        image.save(tmp, format=fmt, **options)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None


def encode_image(path):
    from mme.client.images import encode_image as encode

    return encode(path)


def load_mask(path, size):
    from mme.client.images import load_mask as load

    return load(path, size)


def warn_ignored(prog: str, answer_fields: dict) -> None:
    """Warn on stderr when the model ignored some of the arguments it was sent (``ignored_args``:
    e.g. an endpoint serving an older model version that does not know ``--strength``)."""
    from mme.client.editing import IGNORED_ARGS

    ignored = answer_fields.get(IGNORED_ARGS)
    if ignored:
        names = ", ".join(str(name) for name in ignored)
        sys.stderr.write(f"{prog}: warning: the model ignored gen_args it does not know: {names}\n")


def cmd_select(args) -> int:
    """``mme select``: write the mask of the object under the point(s)."""
    if not args.point and args.box is None:
        raise UsageError("give at least one --point X,Y (or a --box)")
    if args.label is not None and len(args.label) != len(args.point):
        raise UsageError(f"{len(args.label)} --label for {len(args.point)} --point: give one label per point")
    out = _check_output(args.output, MASK_FORMATS)
    image = encode_image(args.image)  # file problems first, before connecting anywhere
    progress = Progress(verbose=args.verbose)
    client = _client(args, progress)
    with progress.step(f"select ({client.backend.describe()})"):
        result = client.select(image, args.point or None, labels=args.label, box=args.box,
                               dilate=args.dilate, multimask=not args.single_mask)
    warn_ignored(args.mme_prog, result.extras)
    _save(result.mask, out)
    selected = int(result.array.sum())
    print(f"{out}: mask {result.mask.size[0]}x{result.mask.size[1]}, {selected} pixels selected, "
          f"score {result.score:.3f}")
    return EXIT_OK


def cmd_erase(args) -> int:
    """``mme erase``: remove the masked object."""
    out = _check_output(args.output)
    image = encode_image(args.image)
    mask = load_mask(args.mask, image.size)
    progress = Progress(verbose=args.verbose)
    client = _client(args, progress)
    with progress.step(f"erase ({client.backend.describe()})"):
        image = client.erase(image, mask)
    warn_ignored(args.mme_prog, image.info)
    _save(image, out)
    print(f"{out}: {image.size[0]}x{image.size[1]}")
    return EXIT_OK


def cmd_replace(args) -> int:
    """``mme replace``: repaint the masked area from the prompt."""
    if not args.prompt.strip():
        raise UsageError("--prompt is empty: say what to paint into the mask")
    out = _check_output(args.output)
    image = encode_image(args.image)
    mask = load_mask(args.mask, image.size)
    progress = Progress(verbose=args.verbose)
    client = _client(args, progress)
    with progress.step(f"replace ({client.backend.describe()})"):
        image = client.replace(image, mask, args.prompt, negative_prompt=args.negative_prompt,
                               seed=args.seed, steps=args.steps, guidance=args.guidance,
                               strength=args.strength)
    warn_ignored(args.mme_prog, image.info)
    _save(image, out)
    seed = image.info.get("seed")
    print(f"{out}: {image.size[0]}x{image.size[1]}" + (f", seed {seed}" if seed is not None else ""))
    return EXIT_OK


def cmd_local_up(args) -> int:
    """``mme local up``."""
    from mme import local_mode

    progress = Progress(verbose=args.verbose)
    try:
        models = local_mode.parse_models(args.models)
    except local_mode.LocalModeError as exc:
        raise UsageError(f"--models: {exc}") from None
    if args.weights != "tiny" and not Path(args.weights).expanduser().is_dir():
        raise UsageError(f"--weights {args.weights}: give 'tiny' or a folder with one subfolder per model "
                         f"({', '.join(m + '/' for m in models)})")
    with progress.step("mme local up"):
        state, already = local_mode.up(args.weights, models, memory_budget_mib=args.memory_budget_mib,
                                       state_override=args.state_dir, report=progress.note)
    if already:
        print("the local endpoint is already running")
    _print_status(local_mode.status(state_override=args.state_dir))
    return EXIT_OK


def cmd_local_down(args) -> int:
    """``mme local down``."""
    from mme import local_mode

    was_running = local_mode.down(state_override=args.state_dir)
    print("stopped the local endpoint" if was_running else "the local endpoint is not running")
    return EXIT_OK


def cmd_local_status(args) -> int:
    """``mme local status``."""
    from mme import local_mode

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
    print(f"running: local endpoint at {info['endpoint_url']} (TorchServe {info['inference_url']}, "
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
    if info.get("error"):
        print(f"warning: {info['error']}")
