#!/usr/bin/env python3
"""CDK entry point: reads and validates context, builds the image-editing stack, runs cdk-nag.

Invalid context stops synth with one line naming the key (exit code 2).
"""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.image_editing_stack import ImageEditingStack
from stacks.settings import SettingsError, settings_from_context


def build_app(app: cdk.App | None = None) -> cdk.App:
    """Create the app with the stack and the AwsSolutions checks (synth fails on findings)."""
    app = app or cdk.App()
    settings = settings_from_context(app.node.try_get_context)
    stack_name = app.node.try_get_context("stackName") or "ImageEditingMme"
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
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
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
