"""``mme select``, ``mme erase`` and ``mme replace``: one editing step each, against a deployed
stack/endpoint or the local endpoint (:mod:`.targets`); the result is written atomically."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mme.models import ERASE_MODEL, REPLACE_MODEL, SEGMENT_MODEL
from mme.stack_outputs import DEFAULT_STACK_NAME

from .arg_types import box_arg, point_arg, positive_int, seed_arg, strength_arg
from .errors import EXIT_OK, UsageError
from .targets import add_target_options, backend_from_args
from .terminal import StepSpinner

MASK_FORMATS = {".png"}
_RAW = argparse.RawDescriptionHelpFormatter


def register(subparsers) -> None:
    """Add ``select``, ``erase`` and ``replace`` to the ``mme`` command's subparsers."""
    _add_select(subparsers)
    _add_erase(subparsers)
    _add_replace(subparsers)


def _add_select(subparsers) -> None:
    p = subparsers.add_parser(
        "select", help="click -> mask: segment the object under one or more points (SAM)",
        description="Segment the object under the given point(s) with SAM and write its mask "
                    "(PNG, white = selected, the image's size).",
        epilog="example:\n  mme select photo.jpg --point 120,80 -o mask.png --local\n"
               "  mme select photo.jpg --point 120,80 --point 30,40 --label 1 --label 0 -o mask.png "
               f"--stack-name {DEFAULT_STACK_NAME}", formatter_class=_RAW)
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
    p.set_defaults(func=cmd_select, mme_prog=p.prog, mme_models=(SEGMENT_MODEL,))


def _add_erase(subparsers) -> None:
    p = subparsers.add_parser(
        "erase", help="remove the masked object and fill the hole from its surroundings (LaMa)",
        description="Erase the masked object with LaMa. The result has the image's size; pixels outside "
                    "the mask are unchanged.",
        epilog="example:\n  mme erase photo.jpg --mask mask.png -o erased.png --local", formatter_class=_RAW)
    p.add_argument("image", metavar="IMAGE", help="the photo")
    p.add_argument("--mask", metavar="MASK", required=True, help="mask image (white = erase), the photo's size")
    _add_output(p)
    add_target_options(p)
    p.set_defaults(func=cmd_erase, mme_prog=p.prog, mme_models=(ERASE_MODEL,))


def _add_replace(subparsers) -> None:
    p = subparsers.add_parser(
        "replace", help="repaint the masked area from a text prompt (Stable Diffusion 2 inpainting)",
        description="Replace the masked object with what the prompt describes (SD2 inpainting). The result "
                    "has the image's size; pixels outside the mask are unchanged. The seed used is printed: "
                    "pass it with --seed to get the same result again.",
        epilog="example:\n  mme replace photo.jpg --mask mask.png --prompt 'a red vase' --seed 7 -o vase.png --local",
        formatter_class=_RAW)
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
    _add_output(p)
    add_target_options(p)
    p.set_defaults(func=cmd_replace, mme_prog=p.prog, mme_models=(REPLACE_MODEL,))


def _add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="OUT", required=True,
                        help="where to write the result (.png, .jpg, .webp)")


def _client(args, spinner: StepSpinner):
    from mme.client import EditingClient

    def on_retry(kind, attempt, delay, message):
        what = {"model_loading": "the model is loading on the endpoint", "throttled": "throttled",
                "unavailable": "the endpoint is unavailable"}.get(kind, kind)
        spinner.note(f"{what} (attempt {attempt}); retrying in {delay:.1f}s")

    return EditingClient(backend_from_args(args, args.mme_models, on_event=spinner.note, on_retry=on_retry))


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


def _warn_ignored(prog: str, answer_fields: dict) -> None:
    """Warn on stderr when the model ignored some of the arguments it was sent (``ignored_args``:
    e.g. an endpoint serving an older model version that does not know ``--strength``)."""
    from mme.client.editing import IGNORED_ARGS

    ignored = answer_fields.get(IGNORED_ARGS)
    if ignored:
        names = ", ".join(str(name) for name in ignored)
        sys.stderr.write(f"{prog}: warning: the model ignored gen_args it does not know: {names}\n")


def _image_and_mask(args):
    """The photo and its mask, read and checked before connecting anywhere."""
    from mme.client.images import encode_image, load_mask

    image = encode_image(args.image)
    return image, load_mask(args.mask, image.size)


def cmd_select(args) -> int:
    """``mme select``: write the mask of the object under the point(s)."""
    from mme.client.images import encode_image

    if not args.point and args.box is None:
        raise UsageError("give at least one --point X,Y (or a --box)")
    if args.label is not None and len(args.label) != len(args.point):
        raise UsageError(f"{len(args.label)} --label for {len(args.point)} --point: give one label per point")
    out = _check_output(args.output, MASK_FORMATS)
    image = encode_image(args.image)  # file problems first, before connecting anywhere
    spinner = StepSpinner(verbose=args.verbose)
    client = _client(args, spinner)
    with spinner.step(f"select ({client.backend.describe()})"):
        result = client.select(image, args.point or None, labels=args.label, box=args.box,
                               dilate=args.dilate, multimask=not args.single_mask)
    _warn_ignored(args.mme_prog, result.extras)
    _save(result.mask, out)
    selected = int(result.array.sum())
    print(f"{out}: mask {result.mask.size[0]}x{result.mask.size[1]}, {selected} pixels selected, "
          f"score {result.score:.3f}")
    return EXIT_OK


def cmd_erase(args) -> int:
    """``mme erase``: remove the masked object."""
    out = _check_output(args.output)
    image, mask = _image_and_mask(args)
    spinner = StepSpinner(verbose=args.verbose)
    client = _client(args, spinner)
    with spinner.step(f"erase ({client.backend.describe()})"):
        image = client.erase(image, mask)
    _warn_ignored(args.mme_prog, image.info)
    _save(image, out)
    print(f"{out}: {image.size[0]}x{image.size[1]}")
    return EXIT_OK


def cmd_replace(args) -> int:
    """``mme replace``: repaint the masked area from the prompt."""
    if not args.prompt.strip():
        raise UsageError("--prompt is empty: say what to paint into the mask")
    out = _check_output(args.output)
    image, mask = _image_and_mask(args)
    spinner = StepSpinner(verbose=args.verbose)
    client = _client(args, spinner)
    with spinner.step(f"replace ({client.backend.describe()})"):
        image = client.replace(image, mask, args.prompt, negative_prompt=args.negative_prompt,
                               seed=args.seed, steps=args.steps, guidance=args.guidance,
                               strength=args.strength)
    _warn_ignored(args.mme_prog, image.info)
    _save(image, out)
    seed = image.info.get("seed")
    print(f"{out}: {image.size[0]}x{image.size[1]}" + (f", seed {seed}" if seed is not None else ""))
    return EXIT_OK
