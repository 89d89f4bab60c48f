"""Safe rollouts: ``MultiModelEndpoint(deployment=...)`` renders SageMaker's DeploymentConfig with the
rollback alarms added in any order, refuses what SageMaker would refuse at synth, and the stack picks
its policy from context. Real synth (the stack cases with the five cdk-nag packs, and cfn-lint on
each policy's template)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudwatch as cloudwatch

from mme_constructs import CapacitySize, EndpointAlarms, EndpointDeployment

from stack_helpers import make_endpoint, resources, template_of

MINUTE = cdk.Duration.minutes


def _config(template: dict) -> dict | None:
    (endpoint,) = resources(template, "AWS::SageMaker::Endpoint").values()
    return endpoint["Properties"].get("DeploymentConfig")


def _synth(tmp_path: Path, build) -> dict:
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S")
    build(stack)
    app.synth()
    return template_of(app, "S")


@pytest.mark.parametrize(("policy", "count", "expected"), [
    (EndpointDeployment.all_at_once(), 1, {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE"}, "TerminationWaitInSeconds": 1200}}),
    (EndpointDeployment.canary(wait=MINUTE(7), bake=MINUTE(3), maximum_execution_timeout=cdk.Duration.hours(2)), 2,
     {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
         "Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}, "WaitIntervalInSeconds": 420},
         "TerminationWaitInSeconds": 180, "MaximumExecutionTimeoutInSeconds": 7200}}),
    (EndpointDeployment.linear(step=CapacitySize(percent=25)), 4, {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                                        "WaitIntervalInSeconds": 300}, "TerminationWaitInSeconds": 1200}}),
    (EndpointDeployment.rolling(batch=CapacitySize(instances=2), rollback_batch=CapacitySize(percent=50)), 4,
     {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 2}, "WaitIntervalInSeconds": 600,
                              "RollbackMaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 50}}}),
], ids=["all-at-once", "canary", "linear", "rolling"])
def test_each_policy_renders_sagemakers_deployment_config_and_passes_cfn_lint(tmp_path, policy, count, expected):
    template = _synth(tmp_path, lambda s: make_endpoint(s, deployment=policy, initial_instance_count=count))
    assert _config(template) == expected
    lint = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "--format", "json",
                           str(tmp_path / "S.template.json")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert not [f for f in json.loads(lint.stdout or "[]") if f["Level"] == "Error"], lint.stdout


def test_without_a_deployment_the_endpoint_has_no_deployment_config(tmp_path):
    assert _config(_synth(tmp_path, make_endpoint)) is None


def test_rollback_alarms_are_the_endpoint_alarms_whenever_they_are_made(tmp_path):
    """Alarms made after the endpoint, plus one of the team's own: all in AutoRollbackConfiguration."""
    def build(stack):
        mme = make_endpoint(stack, deployment=EndpointDeployment.all_at_once(bake=MINUTE(30)))
        EndpointAlarms(stack, "Alarms", endpoint=mme, cache_hit_ratio_min=None)
        own = cloudwatch.Alarm(stack, "Own", metric=mme.metric_invocation_4xx_errors(), threshold=100,
                               evaluation_periods=1)
        mme.add_rollback_alarms(own, own)  # the same alarm once
        assert len(mme.rollback_alarms) == 3

    template = _synth(tmp_path, build)
    config = _config(template)
    names = [a["AlarmName"]["Ref"] for a in config["AutoRollbackConfiguration"]["Alarms"]]
    assert len(names) == 3
    for name, prefix in zip(names, ("AlarmsServerErrorRate", "AlarmsModelLatencyP90", "Own")):
        assert name.startswith(prefix) and name in resources(template, "AWS::CloudWatch::Alarm")
    assert config["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 1800


def test_alarms_can_stay_out_of_the_rollback(tmp_path):
    def build(stack):
        mme = make_endpoint(stack, deployment=EndpointDeployment.all_at_once())
        EndpointAlarms(stack, "Alarms", endpoint=mme, use_for_rollback=False)

    assert "AutoRollbackConfiguration" not in _config(_synth(tmp_path, build))


def test_more_than_ten_rollback_alarms_are_refused(tmp_path):
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S")
    mme = make_endpoint(stack, deployment=EndpointDeployment.all_at_once())
    alarms = [cloudwatch.Alarm(stack, f"A{i}", metric=mme.metric_invocations(), threshold=i, evaluation_periods=1)
              for i in range(11)]
    with pytest.raises(ValueError, match="rollback_alarms: SageMaker watches at most 10 alarms, got 11"):
        mme.add_rollback_alarms(*alarms)


@pytest.mark.parametrize(("policy", "count", "message"), [
    (EndpointDeployment.canary(), 1, r"deployment: a canary step must be at most 50% of the variant's instances; "
                                     r"1 instance\(s\) of 1 is 100%: use EndpointDeployment.all_at_once\(\)"),
    (EndpointDeployment.rolling(), 1, r"a rolling step must be 5% to 50%"),
    (EndpointDeployment.rolling(batch=CapacitySize(percent=3)), 4, r"3 % of 4 is 3%"),
    (EndpointDeployment.linear(step=CapacitySize(instances=3)), 4, r"3 instance\(s\) of 4 is 75%"),
    (EndpointDeployment.all_at_once(bake=MINUTE(61)), 1, r"deployment: bake must be between 0 and 1 hour, got 1 hour 1 minute"),
    (EndpointDeployment.canary(wait=cdk.Duration.hours(2)), 2, r"deployment: wait must be between 0 and 1 hour"),
    (EndpointDeployment.all_at_once(maximum_execution_timeout=MINUTE(5)), 1,
     r"maximum_execution_timeout must be between 10 minutes and 8 hours, got 5 minutes"),
])
def test_what_sagemaker_would_refuse_stops_synth_naming_the_prop(tmp_path, policy, count, message):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "S")
    with pytest.raises(ValueError, match=rf"MultiModelEndpoint S/E: .*{message}"):
        make_endpoint(stack, deployment=policy, initial_instance_count=count)


def test_a_rolling_step_must_fit_every_count_autoscaling_allows(tmp_path):
    """Two instances at deploy time, but autoscaling may go down to one or up to forty: the batch of one
    instance is 100% of one and 2.5% of forty."""
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S")
    mme = make_endpoint(stack, deployment=EndpointDeployment.rolling(), initial_instance_count=2)
    mme.auto_scale_instance_count(min_capacity=1, max_capacity=40)
    with pytest.raises(RuntimeError) as err:
        app.synth()
    text = str(err.value)
    assert "is 100%" in text and "(autoscaling min_capacity 1)" in text
    assert "is 2%" in text and "(autoscaling max_capacity 40)" in text


@pytest.mark.parametrize("bad", [
    lambda: CapacitySize(), lambda: CapacitySize(instances=1, percent=5), lambda: CapacitySize(percent=101),
    lambda: CapacitySize(instances=0), lambda: CapacitySize(instances=True)])
def test_a_capacity_size_is_one_whole_number(bad):
    with pytest.raises(ValueError, match="CapacitySize: "):
        bad()


# --- the stack's choice ---------------------------------------------------------------------


@pytest.mark.parametrize(("context", "expected"), [
    ({}, {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE"},
                                    "TerminationWaitInSeconds": 1200}}),
    ({"minInstanceCount": 4, "initialInstanceCount": 4, "maxInstanceCount": 40},
     {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 2}, "WaitIntervalInSeconds": 600}}),
    ({"minInstanceCount": 2, "initialInstanceCount": 2, "maxInstanceCount": 3, "deployment": "canary",
      "deploymentWaitMinutes": 5, "deploymentBakeMinutes": 30},
     {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
         "Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}, "WaitIntervalInSeconds": 300},
         "TerminationWaitInSeconds": 1800}}),
    ({"minInstanceCount": 2, "initialInstanceCount": 2, "maxInstanceCount": 30},
     {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE"},
                                "TerminationWaitInSeconds": 1200}}),
    ({"deployment": "none"}, None),
], ids=["one-instance", "fleet", "canary", "no-batch-fits", "none"])
def test_the_stack_picks_its_rollout_from_context(synth_stack, context, expected):
    app, stack, template = synth_stack(**context)
    config = json.loads(json.dumps(template.to_json()))
    deployed = _config(config)
    if expected is None:
        assert deployed is None and "DeploymentPolicy" not in config["Outputs"]
        return
    rollback = deployed.pop("AutoRollbackConfiguration")
    assert deployed == expected
    assert [a["AlarmName"]["Ref"][:len("AlarmsServerErrorRate")] for a in rollback["Alarms"]][:1] == [
        "AlarmsServerErrorRate"]
    assert len(rollback["Alarms"]) == 2


def test_a_stepped_rollout_with_one_instance_is_a_context_error():
    from stacks.settings import SettingsError, settings_from_context

    with pytest.raises(SettingsError, match=r"context deployment: rolling .* needs minInstanceCount >= 2 \(got 1\)"):
        settings_from_context({"deployment": "rolling"}.get)
    with pytest.raises(SettingsError, match=r"context maxInstanceCount: a rolling update's batch must be at least 5% "
                                            r"of 30 instances \(2\) and at most half of minInstanceCount 2"):
        settings_from_context({"minInstanceCount": 2, "initialInstanceCount": 2, "maxInstanceCount": 30,
                               "deployment": "rolling"}.get)
    with pytest.raises(SettingsError, match=r"context deployment: 'blue' is not one of auto, all-at-once"):
        settings_from_context({"deployment": "blue"}.get)
    with pytest.raises(SettingsError, match=r"context deploymentBakeMinutes: SageMaker waits at most 60 minutes, got 90"):
        settings_from_context({"deploymentBakeMinutes": "90"}.get)


def test_with_autoscaling_an_update_keeps_the_instance_count_autoscaling_reached(tmp_path):
    def build(stack):
        mme = make_endpoint(stack, deployment=EndpointDeployment.all_at_once())
        mme.auto_scale_instance_count(max_capacity=3)

    (endpoint,) = resources(_synth(tmp_path, build), "AWS::SageMaker::Endpoint").values()
    assert endpoint["Properties"]["RetainAllVariantProperties"] is True
    (plain,) = resources(_synth(tmp_path / "plain", make_endpoint), "AWS::SageMaker::Endpoint").values()
    assert "RetainAllVariantProperties" not in plain["Properties"]


def test_rollback_alarms_without_a_deployment_warn(tmp_path):
    from aws_cdk.assertions import Annotations, Match

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S")
    EndpointAlarms(stack, "Alarms", endpoint=make_endpoint(stack))
    app.synth()
    (warning,) = Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp("mme-constructs:rollbackAlarmsWithoutDeployment"))
    assert warning.id == "/S/E" and "2 rollback alarm(s) but no deployment" in warning.entry.data
