"""Statements the constructs add to KMS key policies, and one warning where a key's policy cannot be
changed from the app (an imported key): every construct that needs a service to use a key goes
through :func:`add_to_key_policy`."""

from __future__ import annotations

import json

from aws_cdk import Annotations, Resource, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

#: The synth warning's id: a statement a key's policy needs was not added (acknowledge it once the
#: key's owner has added the statement the message shows).
KEY_POLICY_WARNING = "mme-constructs:keyPolicyNotChanged"


def add_to_key_policy(scope: Construct, key: kms.IKey, statement: iam.PolicyStatement, *, purpose: str) -> bool:
    """Add ``statement`` to ``key``'s policy; for a key whose policy this app cannot change, warn on
    ``scope`` with the statement the key's owner must add (what it is for: ``purpose``). Returns
    whether the statement was added."""
    if key.add_to_resource_policy(statement).statement_added:
        return True
    shown = json.dumps(Stack.of(scope).resolve(statement.to_statement_json()), sort_keys=True)
    Annotations.of(scope).add_warning_v2(KEY_POLICY_WARNING, (
        f"{purpose}: the policy of KMS key {key.node.path} cannot be changed from this app (an imported key), so "
        f"its owner must add this statement, else the service cannot use the key: {shown}"))
    return False


def keys_differ(a: kms.IKey, b: kms.IKey) -> bool:
    """True when ``a`` and ``b`` are known to be different keys: not the same construct, and ARNs that
    differ once resolved (two literal ARNs, or two deploy-time expressions that are not the same one)."""
    if a is b or a.node.path == b.node.path:
        return False
    resolved = [json.dumps(Stack.of(k).resolve(k.key_arn), sort_keys=True) for k in (a, b)]
    return resolved[0] != resolved[1]


def owned_by(scope: Construct, key: kms.IKey) -> bool:
    """True for a key created in ``scope``'s stack (its policy can be changed from here)."""
    return Resource.is_owned_resource(key) and Stack.of(key) is Stack.of(scope)
