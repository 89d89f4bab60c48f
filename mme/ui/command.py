"""``mme ui``: serve the click-to-edit page for the local models or a deployed endpoint.

Why a small page on the standard library (``http.server``) and not Gradio or an ASGI framework
(all three were checked for this page):

- The interaction is the product: click = include, shift/right click = exclude, drag = box, an
  overlay redrawn after each click, undo/redo, a before/after slider, keyboard shortcuts. Gradio
  (6.x) has no component for points plus a box with a live overlay; it takes custom JavaScript
  either way, inside a framework whose layout and events are not ours.
- Offline and nothing external: Gradio's default theme loads Google Fonts and its launcher sends
  analytics unless told not to; here the page is four files of this package, and a
  Content-Security-Policy of ``'self'`` makes any outside request fail loudly in the tests.
- No new hole: Gradio serves files by path (``/file=...``, the subject of several path-traversal
  advisories) and pulls in FastAPI, uvicorn, pydantic, httpx, huggingface-hub, pandas... (about
  100 MB) into a client that otherwise needs boto3, Pillow and numpy. Starlette + uvicorn would be
  two pinned packages for six routes and has no request-size limit either. The standard library
  server, with fixed routes, header checks and Content-Length limits written out in
  :mod:`mme.ui.server`, is enough for a single-user tool on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import signal
import sys

from mme.commands.arg_types import port_arg, positive_number
from mme.commands.errors import EXIT_OK, UsageError
from mme.commands.targets import add_target_options, backend_from_args
from mme.stack_outputs import DEFAULT_STACK_NAME

DEFAULT_PORT = 8765
DEFAULT_SESSION_MB = 1024


def register(subparsers) -> None:
    """Add ``mme ui`` to the ``mme`` command's subparsers."""
    p = subparsers.add_parser(
        "ui", help="click-to-edit web page: select, erase and replace in a browser",
        description="Serve the editing page (select with clicks and boxes, erase with LaMa, replace from a "
                    "prompt with SD) on HOST:PORT, for the local endpoint (--local) or a deployed endpoint. "
                    "Open the printed address in a browser; nothing is opened for you. Ctrl+C stops it.",
        epilog="examples:\n  mme local up --weights tiny && mme ui --local\n"
               f"  mme ui --stack-name {DEFAULT_STACK_NAME} --port 8080",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; the page has no login)")
    p.add_argument("--port", type=port_arg, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--max-upload-mb", type=positive_number, metavar="MB",
                   help="largest image file accepted (default: what still fits InvokeEndpoint's request limit "
                        "once base64-encoded, next to a mask; the page states it)")
    p.add_argument("--max-pixels", type=positive_number, metavar="N",
                   help="largest image accepted, in pixels (default: the models' own default limit, 4096 x 4096)")
    p.add_argument("--session-mb", type=positive_number, default=DEFAULT_SESSION_MB, metavar="MB",
                   help=f"memory for the session's images and masks; the oldest go first (default {DEFAULT_SESSION_MB})")
    add_target_options(p)
    p.set_defaults(func=cmd_ui, mme_prog=p.prog)


def _stop(signum, frame):
    raise KeyboardInterrupt


def cmd_ui(args) -> int:
    """``mme ui``: build the client, serve the page until Ctrl+C / SIGTERM."""
    from mme.models import MODELS

    from .editor import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, Editor, Limits
    from .jobs import JobRunner
    from .server import UiServer, is_loopback
    from .store import Session

    jobs = JobRunner(exclusive=("erase", "replace"))
    backend = backend_from_args(args, MODELS, on_event=jobs.on_event, on_retry=jobs.on_retry)
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 1e6) if args.max_upload_mb else DEFAULT_MAX_UPLOAD_BYTES,
                    max_pixels=int(args.max_pixels or DEFAULT_MAX_PIXELS))
    editor = Editor(backend, Session(max_bytes=int(args.session_mb * 1e6)), limits)
    config = {"backend": backend.describe(), "limits": limits.as_dict()}
    try:
        server = UiServer((args.host, args.port), editor, jobs, config)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
                         + ("; choose another --port" if args.port else "")) from None
    if not is_loopback(args.host):
        sys.stderr.write(f"{args.mme_prog}: warning: listening on {args.host}: other machines can reach the page, "
                         "which has no login and uses this machine's credentials for the models\n")
    print(f"mme ui: open {server.url} in a browser (models: {backend.describe()}); Ctrl+C stops it", flush=True)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("mme ui: stopped", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
    return EXIT_OK
