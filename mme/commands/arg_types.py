"""argparse value types of the ``mme`` commands: each turns one option's text into its value or
raises the one-line ``ArgumentTypeError`` that argparse prints (exit status 2)."""

from __future__ import annotations

import argparse
import math


def parse_number(text: str, kind: type, what: str):
    """``kind(text)``, or the one-line argparse error ``<what>, got '<text>'``."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None


def _numbers(text: str, count: int, what: str) -> list[float]:
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
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


def seed_arg(text: str) -> int:
    """A random seed in 0..2^32-1."""
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
    """An integer >= 1."""
    value = parse_number(text, int, "expected a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_number(text: str) -> float:
    """A finite number > 0."""
    value = parse_number(text, float, "expected a positive number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def port_arg(text: str) -> int:
    """A TCP port, 0..65535 (0 = any free port)."""
    value = parse_number(text, int, "a port is a number in 0..65535")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number in 0..65535, got {value}")
    return value


def footprint_arg(text: str) -> tuple[str, float]:
    """``[NAME=]MiB``: the GPU memory one loaded model holds (``NAME`` defaults to ``model``)."""
    name, sep, value = text.partition("=")
    if not sep:
        name, value = "model", text
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"footprint must be MiB or NAME=MiB, got {text!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise argparse.ArgumentTypeError(f"footprint must be a positive number of MiB, got {text!r}")
    return name.strip() or "model", number
