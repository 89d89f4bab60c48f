"""``python -m mme.cost``: the same as ``mme cost`` (same options, errors and exit status)."""

import sys

from mme.cli import main

sys.exit(main(["cost", *sys.argv[1:]]))
