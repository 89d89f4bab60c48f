"""Where a construct's compute runs: the ``vpc`` / ``vpc_subnets`` / ``security_groups`` props.

One rule for the endpoint and the packager functions, as the aws-cdk L2 constructs take them:
``vpc`` with an optional subnet selection (default: the VPC's private subnets) and optional
security groups (default: one new group, nothing inbound, all outbound unless
``allow_all_outbound=False``: then no outbound rule, and the caller adds the ones it allows, e.g.
``connections.allow_to(...)`` to S3's prefix list or to VPC endpoints); or, without ``vpc``,
explicit imported subnets (``SubnetSelection(subnets=[...])``) together with security groups.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_ec2 as ec2
from constructs import Construct


def network_errors(vpc: ec2.IVpc | None, vpc_subnets: ec2.SubnetSelection | None,
                   security_groups: Sequence[ec2.ISecurityGroup] | None) -> list[str]:
    """What is wrong with a combination of the three props (empty when nothing is)."""
    if vpc is not None:
        return []
    if vpc_subnets is None and security_groups:
        return ["security_groups: give vpc (or vpc_subnets with explicit subnets) too"]
    if vpc_subnets is not None and not (vpc_subnets.subnets and security_groups):
        return ["vpc_subnets: without vpc, give explicit subnets (SubnetSelection(subnets=[...])) and security_groups"]
    return []


def resolve_network(scope: Construct, *, vpc: ec2.IVpc | None, vpc_subnets: ec2.SubnetSelection | None,
                    security_groups: Sequence[ec2.ISecurityGroup] | None,
                    description: str, allow_all_outbound: bool = True) -> tuple[list[ec2.ISecurityGroup], list[str]]:
    """(security groups, subnet ids); both empty when no network was given. A VPC without security
    groups gets one new group ``SecurityGroup`` under ``scope`` (``description``; all outbound unless
    ``allow_all_outbound`` is false)."""
    if vpc is not None:
        subnet_ids = vpc.select_subnets(**_selection_kwargs(vpc_subnets)).subnet_ids
        groups = list(security_groups or [ec2.SecurityGroup(
            scope, "SecurityGroup", vpc=vpc, allow_all_outbound=allow_all_outbound, description=description)])
        return groups, subnet_ids
    if vpc_subnets is not None:
        return list(security_groups or []), [s.subnet_id for s in vpc_subnets.subnets or []]
    return [], []


def _selection_kwargs(selection: ec2.SubnetSelection | None) -> dict:
    if selection is None:
        return {}
    keys = ("availability_zones", "one_per_az", "subnet_filters", "subnet_group_name", "subnets", "subnet_type")
    return {k: getattr(selection, k) for k in keys if getattr(selection, k) is not None}
