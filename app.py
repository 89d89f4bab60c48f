#!/usr/bin/env python3
"""CDK entry point: reads and validates context, builds the image-editing stack, runs cdk-nag.

cdk-nag runs five packs on every synth (AwsSolutions, NIST 800-53 R5, HIPAA Security, PCI DSS
3.2.1, Serverless): any finding that is not acknowledged with its reason stops synthesis.
Invalid context stops synth with one line naming the key (exit code 2).
"""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk
from mme.stack_outputs import DEFAULT_STACK_NAME
from mme_constructs import nag_packs
from stacks.image_editing_stack import ImageEditingStack
from stacks.settings import SettingsError, settings_from_context


def build_app(app: cdk.App | None = None) -> cdk.App:
    """Create the app with the stack and the five cdk-nag packs (synth fails on findings)."""
    app = app or cdk.App()
    settings = settings_from_context(app.node.try_get_context)
    stack_name = app.node.try_get_context("stackName") or DEFAULT_STACK_NAME
    env = None
    if os.environ.get("CDK_DEFAULT_ACCOUNT") and os.environ.get("CDK_DEFAULT_REGION"):
        env = cdk.Environment(account=os.environ["CDK_DEFAULT_ACCOUNT"], region=os.environ["CDK_DEFAULT_REGION"])
    ImageEditingStack(
        app,
        stack_name,
        settings=settings,
        env=env,
        description="GPU SageMaker multi-model endpoint (TorchServe) for SAM, LaMa and SD2 inpainting",
    )
    cdk.Validations.of(app).add_plugins(*nag_packs(app))
    return app


def main() -> int:
    try:
        app = build_app()
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
