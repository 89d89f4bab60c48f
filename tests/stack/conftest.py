"""Fixtures for the stack tests: the cdk.json context and in-process synthesized stacks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack_helpers import AWS_UNSET, REPO_ROOT, run_cdk_synth  # noqa: E402


@pytest.fixture(scope="session")
def cdk_context() -> dict:
    """The context from cdk.json (settings and feature flags), as `cdk synth` passes it."""
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@pytest.fixture(scope="session")
def synth_stack(cdk_context, tmp_path_factory):
    """Build the app in-process with context overrides; returns (app, stack, template dict)."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    import app as app_module

    def build(**overrides):
        outdir = tmp_path_factory.mktemp("cdkout")
        app = cdk.App(outdir=str(outdir), context={**cdk_context, **overrides})
        app_module.build_app(app)
        stack = app.node.find_child("ImageEditingMme")
        app.synth()  # runs cdk-nag: raises on any unacknowledged finding
        return app, stack, Template.from_stack(stack)

    return build


@pytest.fixture(scope="session")
def default_stack(synth_stack):
    """The stack synthesized with cdk.json's defaults (ml.g5.2xlarge)."""
    return synth_stack()


@pytest.fixture(scope="session")
def cli_synth(tmp_path_factory):
    """``cdk synth`` by the real CDK CLI without credentials (as CI runs it): (cdk.out folder, process)."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    proc = run_cdk_synth(outdir, AWS_UNSET)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return outdir, proc
