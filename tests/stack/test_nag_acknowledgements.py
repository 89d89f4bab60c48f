"""Every cdk-nag acknowledgement the constructs make matches a finding that really fires, in each of
the five packs app.py runs (AwsSolutions, NIST 800-53 R5, HIPAA Security, PCI DSS 3.2.1, Serverless).

Each app is synthesized twice: as it is (all five packs pass), and with acknowledgements switched
off, which yields every finding that fires. Each acknowledgement must name one of those findings on
a resource at or under the construct that carries it, and every finding must be acknowledged.
"""

from __future__ import annotations

import pytest

import app as app_module
from mme_constructs import NAG_PACKS

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
    "emails and operators": {"alarmEmail": ["oncall@example.com"], "enabledModels": ["lama"],
                             "archiveWriterArns": ["arn:aws:iam::111122223333:role/release-engineers"]},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_acknowledgement_of_the_stack_fires(variant, cdk_context, tmp_path, monkeypatch):
    context = {**cdk_context, **VARIANTS[variant]}
    app = synth_with_nag(app_module.build_app, tmp_path / "acked", context=context, add_checks=False)
    acks = acknowledged(app)
    findings = findings_without_acknowledgements(app_module.build_app, tmp_path / "raw", monkeypatch,
                                                 context=context, add_checks=False)
    assert {rule.split("-")[0] for rule, _ in findings} == {p.split("-")[0] for p in NAG_PACKS}  # all five ran
    assert_every_acknowledgement_fires(acks, findings)
    # and the other way round: nothing fires that was not reviewed (the acknowledged synth passed)
    assert {rule for rule, _ in findings} == {rule for _, rule in acks}


def test_an_acknowledgement_of_a_finding_that_does_not_fire_is_caught(cdk_context, tmp_path, monkeypatch):
    """The check above can fail: a stale acknowledgement (a rule that never fires there) is reported."""
    from aws_cdk import Acknowledgment, Validations

    def build(app):
        app_module.build_app(app)
        bucket = app.node.find_child("ImageEditingMme").node.find_child("ModelBucket").node.find_child("Bucket")
        Validations.of(bucket).acknowledge(Acknowledgment(
            id="AwsSolutions-SM2", reason="A notebook-instance rule that never fires on an S3 bucket."))

    app = synth_with_nag(build, tmp_path / "acked", context=cdk_context, add_checks=False)
    findings = findings_without_acknowledgements(build, tmp_path / "raw", monkeypatch, context=cdk_context,
                                                 add_checks=False)
    with pytest.raises(AssertionError, match=r"AwsSolutions-SM2"):
        assert_every_acknowledgement_fires(acknowledged(app), findings)
