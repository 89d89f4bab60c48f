"""Fixtures for the handler tests (helpers are in handler_testlib.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from handler_testlib import package_model  # noqa: F401  (re-exported: handlers_conftest(...).package_model)

from mme.tiny import build as build_tiny


def pytest_configure(config):
    config.addinivalue_line("markers", "torchserve: end-to-end tests on a real TorchServe (Java 17); run by default")


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """Build tiny random-weight models once per session: ``tiny_weights(name, **options) -> dir``."""
    cache: dict = {}

    def get(name: str, **options) -> Path:
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"tiny-{name}")
            build_tiny(name, out, **options)
            cache[key] = out
        return cache[key]

    return get


