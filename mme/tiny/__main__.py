"""``python -m mme.tiny NAME OUT_DIR``: write a tiny random-weight model's weights folder."""

import argparse

from . import MODELS, build


def main(argv=None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m mme.tiny", description=__doc__)
    parser.add_argument("name", choices=MODELS)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in build(args.name, args.out_dir, seed=args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
