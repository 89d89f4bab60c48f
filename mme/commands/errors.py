"""Exit statuses of the ``mme`` commands and the one place where a failure becomes them.

Every subcommand runs through :func:`run_command` (called by :func:`mme.cli.main`):

- ``0`` success;
- ``2`` the command line or the input is wrong (:class:`UsageError`, the client's ``InputError``
  and ``ModelInputError``: a bad option, an unreadable file, not an image, a point outside the
  image, an empty prompt, the model answered 4xx);
- ``1`` anything else (endpoint or stack missing, server or network failure, local endpoint not
  running, a bug);
- ``130`` interrupted (Ctrl+C).

Errors are one line on stderr (``mme <command>: error: ...``), never a traceback unless
``MME_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """A user-facing failure of a subcommand: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CommandError):
    """A command-line mistake found after parsing (exit status 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


def exit_status(exc: BaseException) -> int | None:
    """The documented exit status of an expected failure, ``None`` for an unexpected one (a bug)."""
    from mme.client.errors import InputError, MmeError, ModelInputError
    from mme.local.state import LocalModeError

    if isinstance(exc, CommandError):
        return exc.code
    if isinstance(exc, (InputError, ModelInputError)):
        return EXIT_USAGE
    if isinstance(exc, (MmeError, LocalModeError)):
        return EXIT_RUNTIME
    return None


def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace, prog: str) -> int:
    """Run ``func(args)``; return its exit status, or print why it failed and return the status."""
    try:
        return int(func(args) or EXIT_OK)
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{prog}: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every failure ends as one line and a status
        code = exit_status(exc)
        if code is None:
            if os.environ.get("MME_DEBUG"):
                raise
            return fail(prog, f"internal error: {type(exc).__name__}: {exc} (MME_DEBUG=1 shows the traceback)",
                        EXIT_RUNTIME)
        return fail(prog, exc, code)


def fail(prog: str, error: BaseException | str, code: int) -> int:
    """Print ``<prog>: error: <one line>`` on stderr (the traceback too under ``MME_DEBUG``)."""
    if os.environ.get("MME_DEBUG") and isinstance(error, BaseException):
        import traceback

        traceback.print_exception(error)
    message = " ".join(str(error).split()) or type(error).__name__
    sys.stderr.write(f"{prog}: error: {message}\n")
    return code
