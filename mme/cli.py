"""The ``mme`` console script: argparse subcommands from the modules listed in :data:`COMMANDS`.

To add a subcommand, write a module with ``register(subparsers)`` that adds its parser(s) and sets
``func`` (a function ``(args) -> int``) with ``set_defaults``, then add the module to
:data:`COMMANDS`. Keep module imports light: import heavy dependencies inside ``func``.
User mistakes exit non-zero with one ``mme <command>: error: ...`` line, never a traceback
(:mod:`mme.commands.errors` maps failures to exit statuses).
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from mme.commands.errors import run_command

COMMANDS: tuple[str, ...] = (
    "mme.commands.package",  # mme package: build a model archive
    "mme.commands.edit",  # mme select / erase / replace
    "mme.commands.local",  # mme local up|down|status
    "mme.commands.image",  # mme image build|check|lock: the serving image on this machine
    "mme.commands.cost",  # mme cost: single-model vs multi-model endpoint monthly cost
    "mme.ui.command",  # mme ui: the click-to-edit web page
)
"""Modules that each register their subcommand(s) (in this order in ``mme --help``)."""


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
    args = build_parser().parse_args(argv)
    return run_command(args.func, args, getattr(args, "mme_prog", None) or f"mme {args.command}")


if __name__ == "__main__":
    sys.exit(main())
