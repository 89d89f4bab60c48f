"""The ``mme`` console script: argparse subcommands from the modules listed in :data:`COMMANDS`.

To add a subcommand, write a module with ``register(subparsers)`` that adds its parser(s) and sets
``func`` (a function ``(args) -> int``) with ``set_defaults``, then add the module to
:data:`COMMANDS`. Keep module imports light: import heavy dependencies inside ``func``.
User mistakes exit non-zero with one ``mme <command>: error: ...`` line, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

COMMANDS: tuple[str, ...] = (
    "mme.package_cmd",  # mme package: build a model archive (issue 3)
    "mme.commands",  # mme select / erase / replace / local up|down|status (issue 5)
    "mme.cost",  # mme cost: single-model vs multi-model endpoint monthly cost (issue 6)
    "mme.ui.command",  # mme ui: the click-to-edit web page
)
"""Modules that each register their subcommand(s) (in this order in ``mme --help``)."""


class CommandError(Exception):
    """A user-facing failure of a subcommand: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose usage errors are one line (``mme <command>: error: ... (see ...
    --help)``, exit 2) instead of the usage block; subparsers inherit it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = Parser(prog="mme", description="Image-editing multi-model endpoint tools.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mme`` console script (``[project.scripts] mme = "mme.cli:main"``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as err:
        print(f"mme {args.command}: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print(f"mme {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # python -m mme.cli: run the importable module (one CommandError class)
    from mme.cli import main as _main

    sys.exit(_main())
