"""``mme image build|check|lock|podman-conf``: the serving image on this machine (the work is
:mod:`mme.serving_image`; ``make image`` and ``make lock`` call these)."""

from __future__ import annotations

import json

from .errors import EXIT_OK, EXIT_RUNTIME, CommandError


def register(subparsers) -> None:
    """Add ``image`` (``build``, ``check``, ``lock``, ``podman-conf``) to the ``mme`` command's subparsers."""
    image = subparsers.add_parser(
        "image", help="build the serving image here, check or regenerate its locks",
        description="The serving image (container/) on this machine: build it with podman or docker, check its "
                    "hashed locks against its requirement files and the test environment's pins, or resolve the "
                    "locks again.")
    actions = image.add_subparsers(dest="image_command", metavar="{build,check,lock,engine,podman-conf}",
                                   required=True)
    from mme.serving_image.layout import DEV_IMAGE

    p = actions.add_parser("build", help=f"build container/ into {DEV_IMAGE} (make image)",
                           description="Check the locks, make sure of the base image (pulled, or made from Debian's "
                                       "packages with mmdebstrap where its registry cannot be reached), build.")
    p.add_argument("--tag", default=DEV_IMAGE, help=f"image name (default {DEV_IMAGE})")
    p.add_argument("--base-image", metavar="REF", help="BASE_IMAGE build argument (default: the Dockerfile's)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_build, mme_prog=p.prog)
    p = actions.add_parser("check", help="the locks agree with the requirement files and constraints.txt",
                           description="Print every drift between container/requirements*.txt, the two locks and "
                                       "constraints.txt, one line each; exit status 1 when there is any.")
    p.set_defaults(func=cmd_check, mme_prog=p.prog)
    p = actions.add_parser("lock", help="resolve the locks again with uv (make lock)",
                           description="Write container/requirements-torch.lock and container/requirements.lock "
                                       "from the requirement files, for the image's Python and platform, with every "
                                       "file's sha256 (needs PyPI).")
    p.set_defaults(func=cmd_lock, mme_prog=p.prog)
    p = actions.add_parser("engine", help="which container engine builds and runs the image here",
                           description="Print the container engine mme uses here (docker where its engine answers, "
                                       "else podman; MME_CONTAINER_ENGINE picks one); exit status 1 when there is none.")
    p.set_defaults(func=cmd_engine, mme_prog=p.prog)
    p = actions.add_parser("podman-conf", help="print the containers.conf podman needs here (for CONTAINERS_CONF)",
                           description="Write the containers.conf settings podman needs on this machine and print "
                                       "its path (nothing when it needs none): "
                                       "export CONTAINERS_CONF=$(mme image podman-conf) before `cdk deploy`.")
    p.set_defaults(func=cmd_podman_conf, mme_prog=p.prog)


def cmd_build(args) -> int:
    """``mme image build``."""
    from mme.serving_image.build import BuildError, build_image
    from mme.serving_image.engine import EngineError

    try:
        result = build_image(args.tag, base_image=args.base_image)
    except (BuildError, EngineError) as exc:
        raise CommandError(str(exc)) from None
    print(json.dumps(result) if args.json else
          f"built {result['tag']} ({result['image_id'][:12]}) with {result['engine']} in {result['seconds']:.0f}s")
    return EXIT_OK


def cmd_check(args) -> int:
    """``mme image check``."""
    from mme.serving_image import lockfile

    try:
        problems = lockfile.check()
    except lockfile.LockError as exc:
        raise CommandError(str(exc)) from None
    for problem in problems:
        print(problem)
    if not problems:
        print("the locks agree with container/requirements*.txt and constraints.txt")
    return EXIT_RUNTIME if problems else EXIT_OK


def cmd_lock(args) -> int:
    """``mme image lock``."""
    from mme.serving_image import lockfile

    try:
        lockfile.regenerate()
    except lockfile.LockError as exc:
        raise CommandError(str(exc)) from None
    return EXIT_OK


def cmd_engine(args) -> int:
    """``mme image engine``."""
    from mme.serving_image.engine import EngineError, require_engine

    try:
        engine = require_engine()
    except EngineError as exc:
        raise CommandError(str(exc)) from None
    print(f"{engine.name} ({engine.executable})")
    return EXIT_OK


def cmd_podman_conf(args) -> int:
    """``mme image podman-conf``."""
    from mme.serving_image.engine import podman_conf

    path = podman_conf()
    if path is not None:
        print(path)
    return EXIT_OK
