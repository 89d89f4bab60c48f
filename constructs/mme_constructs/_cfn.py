"""Small helpers shared by the constructs: S3 prefixes and logical ids as cdk-nag prints them."""

from __future__ import annotations

from aws_cdk import CfnResource, Stack
from constructs import Construct


def normalize_prefix(prefix: str) -> str:
    """``'/models'`` -> ``'models/'``; rejects empty prefixes and wildcard/space characters."""
    stripped = prefix.strip("/")
    if not stripped or any(c in stripped for c in "*?\\ "):
        raise ValueError(f"model_prefix must be a plain S3 key prefix like 'models/', got {prefix!r}")
    return stripped + "/"


def logical_id(construct: Construct) -> str:
    """Logical id of an L2's CloudFormation resource, as cdk-nag prints it in ``<LogicalId.Arn>``."""
    cfn = construct.node.default_child
    if isinstance(cfn, CfnResource):
        return Stack.of(construct).resolve(cfn.logical_id)
    raise ValueError(f"{construct.node.path} has no CloudFormation resource in this app (imported?)")
