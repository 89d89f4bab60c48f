"""cdk-nag for the constructs: the five packs a security review runs, and acknowledgements of the
findings the constructs cause, each by its exact rule id on the narrowest construct.

``nag_packs`` are the validation plugins (cdk-nag 3: ``Validations.of(app).add_plugins(...)``).
``acknowledge`` records a reviewed finding by its rule id as cdk-nag 3.0.2 matches it: the bare id
(``NIST.800.53.R5-LambdaDLQ``), not the ``<pack>::<id>`` form CDK's report suggests, which
cdk-nag 3.0.2 does not strip and so never matches.

Wildcard findings (``AwsSolutions-IAM5``) are acknowledged exactly as they fire, whatever the
resources are:

A wildcard finding names the resource as cdk-nag prints it: ``AwsSolutions-IAM5[Resource::<X>]``,
where ``<X>`` depends on where the resource comes from (``<Bucket1234.Arn>/models/*`` for a bucket
of this stack, ``arn:<AWS::Partition>:s3:::shared/models/*`` for an imported one, an
``Fn::ImportValue`` name for a bucket of another stack, ``<ParamName>`` for a ``CfnParameter``).
A construct cannot know that text when it is built: cross-stack references are only resolved in
the prepare phase, and logical ids may still be overridden. So the acknowledgements are made in
the construct's validation step, which CDK runs after prepare and before the validation plugins
(cdk-nag 3) read them, from the policy documents as they will be synthesized. A reviewed resource
whose finding does not fire (no wildcard, or a role whose policies were never attached) is not
acknowledged, so every acknowledgement matches a real finding.

``flatten_reference`` and ``wildcard_findings`` follow cdk-nag 3.0.2's ``flattenCfnReference``
and ``IAMNoWildcardPermissions`` (checked against its source); cdk-nag exports neither.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsii
from aws_cdk import Acknowledgment, Aspects, CfnResource, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct, IValidation

WILDCARD_RULE = "AwsSolutions-IAM5"
#: The rule-id prefix (and validation report plugin name) of each pack ``nag_packs`` returns.
NAG_PACKS = ("AwsSolutions", "NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321", "Serverless")


def nag_packs(scope: IConstruct, *, write_suppressions_to_cloud_formation: bool = True) -> list:
    """The five cdk-nag 3 packs as validation plugins for ``scope`` (an App or Stage):
    ``Validations.of(app).add_plugins(*nag_packs(app))``. Any unacknowledged finding of any of
    them fails synthesis. With ``write_suppressions_to_cloud_formation`` each resource's
    acknowledgements are also written to its template metadata (``cdk_nag.rules_to_suppress``)."""
    from cdk_nag import (  # noqa: PLC0415 - cdk-nag loads its own jsii assembly: only when asked
        AwsSolutionsChecks,
        HIPAASecurityChecks,
        NIST80053R5Checks,
        PCIDSS321Checks,
        ServerlessChecks,
    )

    return [AwsSolutionsChecks(scope, write_suppressions_to_cloud_formation=write_suppressions_to_cloud_formation),
            NIST80053R5Checks(scope), HIPAASecurityChecks(scope), PCIDSS321Checks(scope), ServerlessChecks(scope)]


def acknowledge(scope: IConstruct, reason: str, *rule_ids: str) -> None:
    """Acknowledge each of ``rule_ids`` (exact ids such as ``HIPAA.Security-LambdaDLQ``) on ``scope``,
    the narrowest construct that holds the finding's resource, with the reviewed ``reason``."""
    Validations.of(scope).acknowledge(*[Acknowledgment(id=rule_id, reason=reason) for rule_id in rule_ids])


def flatten_reference(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag prints it in a finding id."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return delimiter.join(flatten_reference(item) for item in items)
        if "Fn::Sub" in value:
            return flatten_reference(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in value:
            return flatten_reference(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{flatten_reference(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def wildcard_findings(document: Mapping[str, Any]) -> set[str]:
    """``Action::...`` / ``Resource::...`` wildcard findings of a resolved policy document."""
    findings: set[str] = set()
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        findings.update(f"Action::{a}" for a in _as_list(statement.get("Action")) if "*" in a)
        for resource in _as_list(statement.get("Resource")):
            flat = flatten_reference(resource)
            if "*" in flat:
                findings.add(f"Resource::{flat}")
    return findings


def acknowledge_wildcards(scope: IConstruct, reviewed: Mapping[str, str]) -> None:
    """Acknowledge on ``scope`` each reviewed resource's wildcard finding, where it fires.

    ``reviewed`` maps a resource (an ARN string, tokens allowed, or ``"*"``) to the reason a
    security reviewer accepts. The findings are looked up in the IAM policies under ``scope``
    at validation time.
    """
    scope.node.add_validation(_ReviewedWildcards(scope, dict(reviewed)))


@jsii.implements(IValidation)
class _ReviewedWildcards:
    def __init__(self, scope: IConstruct, reviewed: dict[str, str]) -> None:
        self._scope = scope
        self._reviewed = reviewed

    def validate(self) -> list[str]:
        stack = Stack.of(self._scope)
        fired = {policy: wildcard_findings(stack.resolve(policy.policy_document)) for policy in _policies(self._scope)}
        record = _writes_nag_metadata(self._scope)
        for resource, reason in self._reviewed.items():
            finding = f"Resource::{flatten_reference(stack.resolve(resource))}"
            where = [policy for policy, findings in fired.items() if finding in findings]
            if not where:
                continue
            rule_id = f"{WILDCARD_RULE}[{finding}]"
            Validations.of(self._scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
            if record:
                for policy in where:
                    _record_in_template(policy, rule_id, reason)
        return []


def _policies(scope: IConstruct) -> list[CfnResource]:
    return [c for c in scope.node.find_all() if isinstance(c, (iam.CfnPolicy, iam.CfnManagedPolicy))]


def _writes_nag_metadata(scope: IConstruct) -> bool:
    """True when cdk-nag was asked to write acknowledgements into the template (its aspect runs
    before validation, so acknowledgements made here are recorded by ``_record_in_template``)."""
    from cdk_nag import WriteNagSuppressionsToCloudFormationAspect

    node: IConstruct | None = scope
    while node is not None:
        if any(isinstance(a, WriteNagSuppressionsToCloudFormationAspect) for a in Aspects.of(node).all):
            return True
        node = node.node.scope
    return False


def _record_in_template(resource: CfnResource, rule_id: str, reason: str) -> None:
    """Add one rule to the resource's ``cdk_nag.rules_to_suppress`` metadata (cdk-nag's format)."""
    metadata = resource.get_metadata("cdk_nag") or {}
    rules = list(metadata.get("rules_to_suppress", []))
    if not any(rule.get("id") == rule_id for rule in rules):
        rules.append({"id": rule_id, "reason": reason})
    resource.add_metadata("cdk_nag", {**metadata, "rules_to_suppress": rules})


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
