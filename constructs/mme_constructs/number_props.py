"""Number props that may be tokens (a ``CfnParameter``'s ``value_as_number``, a ``Lazy`` number):
checked at once when literal, and when the token resolves to a number at synth; a token that
stays a CloudFormation expression (a parameter's ``Ref``) is left to CloudFormation and the
service, which check it at deploy."""

from __future__ import annotations

import math
from collections.abc import Callable

import jsii
from aws_cdk import Stack, Token
from constructs import Construct, IValidation

Rule = Callable[[float], bool]


def range_rule(low: float, high: float, *, low_inclusive: bool = False, high_inclusive: bool = True) -> Rule:
    """``low < x <= high`` (by default), as a rule."""
    def rule(x: float) -> bool:
        above = x >= low if low_inclusive else x > low
        below = x <= high if high_inclusive else x < high
        return above and below
    return rule


def number_error(name: str, value: float, rule: Rule, requirement: str) -> str | None:
    """``"<name> must be <requirement>, got <value>"`` for a literal that breaks ``rule``; ``None`` for a
    good literal and for a token (see :func:`validate_when_resolved`)."""
    if Token.is_unresolved(value):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not rule(value):
        return f"{name} must be {requirement}, got {value!r}"
    return None


def validate_when_resolved(scope: Construct, name: str, value: float, rule: Rule, requirement: str) -> None:
    """For a token ``value``: a validation on ``scope`` that checks it once synth resolves it."""
    if Token.is_unresolved(value):
        scope.node.add_validation(_ResolvedNumber(scope, name, value, rule, requirement))


def check_number(scope: Construct, name: str, value: float, rule: Rule, requirement: str) -> list[str]:
    """:func:`number_error` now (as a list) and :func:`validate_when_resolved` for a token."""
    validate_when_resolved(scope, name, value, rule, requirement)
    error = number_error(name, value, rule, requirement)
    return [error] if error else []


def shown(value: float, fmt: str = "{:g}", token_text: str = "the configured") -> str:
    """``value`` for a message or a description: formatted when literal, ``token_text`` for a token."""
    return token_text if Token.is_unresolved(value) else fmt.format(value)


@jsii.implements(IValidation)
class _ResolvedNumber:
    def __init__(self, scope: Construct, name: str, value: float, rule: Rule, requirement: str) -> None:
        self._scope, self._name, self._value, self._rule, self._requirement = scope, name, value, rule, requirement

    def validate(self) -> list[str]:
        resolved = Stack.of(self._scope).resolve(self._value)
        if isinstance(resolved, (int, float)) and not isinstance(resolved, bool) and not self._rule(resolved):
            return [f"{self._name} must be {self._requirement}, got {resolved!r}"]
        return []  # still a CloudFormation expression: checked at deploy
