"""Every cdk-nag acknowledgement the constructs make matches a finding that really fires.

Each app is synthesized twice: as it is (the AwsSolutions checks pass), and with acknowledgements
switched off, which yields every finding that fires. Each acknowledgement must name one of those
findings on a resource at or under the construct that carries it.
"""

from __future__ import annotations

import pytest

import app as app_module

from stack_helpers import (
    acknowledged,
    assert_every_acknowledgement_fires,
    findings_without_acknowledgements,
    synth_with_nag,
)

VARIANTS = {
    "defaults": {},
    "p3 with a volume key": {"instanceType": "ml.p3.2xlarge"},
    "vpc without isolation": {"vpcSubnetIds": ["subnet-0123456789abcdef0"], "vpcSecurityGroupIds": ["sg-0123456789abcdef0"],
                              "networkIsolation": False, "enabledModels": ["sam"]},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_acknowledgement_of_the_stack_fires(variant, cdk_context, tmp_path, monkeypatch):
    context = {**cdk_context, **VARIANTS[variant]}
    app = synth_with_nag(app_module.build_app, tmp_path / "acked", context=context, add_checks=False)
    acks = acknowledged(app)
    assert any("IAM5" in rule for _, rule in acks)
    findings = findings_without_acknowledgements(app_module.build_app, tmp_path / "raw", monkeypatch,
                                                 context=context, add_checks=False)
    assert_every_acknowledgement_fires(acks, findings)
    # and the other way round: nothing fires that was not reviewed (the acked synth passed)
    assert {rule for rule, _ in findings} == {rule for _, rule in acks if rule.startswith("AwsSolutions-")}
