"""What a platform team's app wires together: a bucket imported with its key, keys whose policy the
app cannot change (one warning, the same everywhere), numbers from ``CfnParameter``s (checked when
they resolve), security groups without outbound rules, and alarms and dashboards made in any order
relative to autoscaling. Real synth."""

from __future__ import annotations

import json

import aws_cdk as cdk
import jsii
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match

from mme_constructs import AlarmTopic, EndpointAlarms, EndpointDashboard, ModelStore
from mme_constructs.key_policies import KEY_POLICY_WARNING

from stack_helpers import dashboard_widgets, isolated_vpc, make_endpoint, resources, template_of

KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
OTHER_KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"


def _stack(tmp_path) -> tuple[cdk.App, cdk.Stack]:
    app = cdk.App(outdir=str(tmp_path))
    return app, cdk.Stack(app, "S", env=cdk.Environment(account="111122223333", region="eu-west-1"))


def _imported_bucket(stack, key):
    return s3.Bucket.from_bucket_attributes(stack, "Shared", bucket_name="platform-shared-models", encryption_key=key)


# --- keys ---------------------------------------------------------------------------------


def test_a_bucket_imported_with_its_key_gives_the_store_that_key(tmp_path):
    app, stack = _stack(tmp_path)
    key = kms.Key.from_key_arn(stack, "Key", KEY_ARN)
    store = ModelStore(_imported_bucket(stack, key), model_prefix="image-editing/")
    assert store.encryption_key.key_arn == KEY_ARN
    make_endpoint(stack, model_store=store, log_encryption_key=None)
    app.synth()
    statements = [s for p in resources(template_of(app, "S"), "AWS::IAM::ManagedPolicy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    decrypt = [s for s in statements if s["Action"] == "kms:Decrypt"]
    assert decrypt and decrypt[0]["Resource"] == KEY_ARN
    assert decrypt[0]["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Join": ["", ["s3.eu-west-1.", {"Ref": "AWS::URLSuffix"}]]}


def test_the_same_key_twice_is_accepted_and_another_key_refused(tmp_path):
    _, stack = _stack(tmp_path)
    key = kms.Key.from_key_arn(stack, "Key", KEY_ARN)
    bucket = _imported_bucket(stack, key)
    assert ModelStore(bucket, encryption_key=kms.Key.from_key_arn(stack, "Again", KEY_ARN)).encryption_key.key_arn \
        == KEY_ARN
    with pytest.raises(ValueError, match=r"ModelStore: encryption_key S/Other is not the key of bucket S/Shared "
                                         r"\(S/Key\): give the bucket's key, or leave encryption_key out"):
        ModelStore(bucket, encryption_key=kms.Key.from_key_arn(stack, "Other", OTHER_KEY_ARN))
    owned = kms.Key(stack, "Owned")
    own_bucket = s3.Bucket(stack, "OwnBucket", encryption_key=owned)
    assert ModelStore(own_bucket).encryption_key is owned
    with pytest.raises(ValueError, match="is not the key of bucket S/OwnBucket"):
        ModelStore(own_bucket, encryption_key=kms.Key(stack, "Second"))


def test_every_key_policy_the_app_cannot_change_gets_the_same_warning_with_the_statement(tmp_path):
    app, stack = _stack(tmp_path)
    key = kms.Key.from_key_arn(stack, "Key", KEY_ARN)
    topic = AlarmTopic(stack, "Topic", encryption_key=key, topic_name="on-call")
    make_endpoint(stack, log_encryption_key=key)
    app.synth()
    warnings = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp(KEY_POLICY_WARNING))
    by_path = {w.id: w.entry.data for w in warnings}
    topic_warning = by_path["/S/Topic"]
    assert "CloudWatch alarms publishing to the encrypted topic on-call: the policy of KMS key S/Key cannot be " \
           "changed from this app" in topic_warning
    assert '"kms:EncryptionContext:aws:sns:topicArn"' in topic_warning and "cloudwatch.amazonaws.com" in topic_warning
    (log_warning,) = [text for path, text in by_path.items() if path.startswith("/S/E")]
    assert '"kms:EncryptionContext:aws:logs:arn"' in log_warning and "logs.eu-west-1.amazonaws.com" in log_warning
    assert topic.topic is not None  # the topic is made; its owner adds the statement


def test_an_owned_key_gets_the_statement_and_no_warning(tmp_path):
    app, stack = _stack(tmp_path)
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    AlarmTopic(stack, "Topic", encryption_key=key, topic_name="on-call")
    app.synth()
    assert not Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp(KEY_POLICY_WARNING))
    (key_resource,) = resources(template_of(app, "S"), "AWS::KMS::Key").values()
    assert "kms:EncryptionContext:aws:sns:topicArn" in json.dumps(key_resource["Properties"]["KeyPolicy"])


# --- tokens -------------------------------------------------------------------------------


def test_scaling_targets_and_alarm_thresholds_from_parameters(tmp_path):
    app, stack = _stack(tmp_path)
    gpu = cdk.CfnParameter(stack, "GpuTarget", type="Number", default=65)
    rate = cdk.CfnParameter(stack, "ErrorRate", type="Number", default=2)
    mme = make_endpoint(stack)
    scaling = mme.auto_scale_instance_count(min_capacity=1, max_capacity=3)
    scaling.scale_on_gpu_utilization(target_utilization_percent=gpu.value_as_number)
    scaling.scale_on_invocations(invocations_per_instance=cdk.CfnParameter(stack, "Invocations", type="Number")
                                 .value_as_number)
    EndpointAlarms(stack, "Alarms", endpoint=mme, server_error_rate_percent=rate.value_as_number,
                   cache_hit_ratio_min=cdk.CfnParameter(stack, "HitRatio", type="Number").value_as_number)
    app.synth()
    template = template_of(app, "S")
    targets = sorted(json.dumps(p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"])
                     for p in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values())
    assert targets == ['{"Ref": "GpuTarget"}', '{"Ref": "Invocations"}']
    alarms = {k: v["Properties"] for k, v in resources(template, "AWS::CloudWatch::Alarm").items()}
    errors = next(v for k, v in alarms.items() if k.startswith("AlarmsServerErrorRate"))
    assert errors["Threshold"] == {"Ref": "ErrorRate"}
    (expression,) = [m for m in errors["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "100 * ratio"  # percentages compared, the parameter is not divided
    hits = next(v for k, v in alarms.items() if k.startswith("AlarmsCacheHitRatioLow"))
    assert hits["Threshold"] == {"Ref": "HitRatio"} and "configured share" in hits["AlarmDescription"]


def test_a_token_that_resolves_to_a_bad_number_fails_synth_naming_the_prop(tmp_path):
    app, stack = _stack(tmp_path)
    mme = make_endpoint(stack)
    scaling = mme.auto_scale_instance_count(min_capacity=1, max_capacity=3)
    scaling.scale_on_gpu_utilization(target_utilization_percent=cdk.Lazy.number(_Produce(150)))
    with pytest.raises(RuntimeError, match=r"target_utilization_percent must be a percentage in \(0, 100\], got 150"):
        app.synth()


@pytest.mark.parametrize(("props", "message"), [
    ({"server_error_rate_percent": 0}, r"server_error_rate_percent must be in \(0, 100\], got 0"),
    ({"cache_hit_ratio_min": 1.5}, r"cache_hit_ratio_min must be in \(0, 1\], got 1.5"),
])
def test_a_literal_threshold_out_of_range_is_one_error(tmp_path, props, message):
    _, stack = _stack(tmp_path)
    with pytest.raises(ValueError, match=rf"EndpointAlarms Alarms: {message}"):
        EndpointAlarms(stack, "Alarms", endpoint=make_endpoint(stack), **props)


def test_a_literal_scaling_target_out_of_range_is_one_error(tmp_path):
    _, stack = _stack(tmp_path)
    scaling = make_endpoint(stack).auto_scale_instance_count(max_capacity=2)
    with pytest.raises(ValueError, match=r"target_utilization_percent must be a percentage in \(0, 100\], got -3"):
        scaling.scale_on_gpu_utilization(target_utilization_percent=-3)


@jsii.implements(cdk.IStableNumberProducer)
class _Produce:
    def __init__(self, value):
        self.value = value

    def produce(self):
        return self.value


# --- outbound rules -----------------------------------------------------------------------


def test_an_endpoint_security_group_without_outbound_rules(tmp_path):
    app, stack = _stack(tmp_path)
    vpc = isolated_vpc(stack)
    mme = make_endpoint(stack, vpc=vpc, allow_all_outbound=False)
    mme.connections.add_security_group(ec2.SecurityGroup(stack, "Extra", vpc=vpc))
    endpoints = vpc.add_interface_endpoint("Logs", service=ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS)
    mme.connections.allow_to(endpoints, ec2.Port.tcp(443), "container logs")
    app.synth()
    groups = {k: v["Properties"] for k, v in resources(template_of(app, "S"), "AWS::EC2::SecurityGroup").items()}
    own = next(v for k, v in groups.items() if k.startswith("ESecurityGroup"))
    assert "SecurityGroupEgress" not in own or all(r.get("CidrIp") != "0.0.0.0/0" for r in own["SecurityGroupEgress"])
    egress = [v["Properties"] for v in resources(template_of(app, "S"), "AWS::EC2::SecurityGroupEgress").values()]
    assert any(e["FromPort"] == 443 and "DestinationSecurityGroupId" in e for e in egress)


def test_by_default_the_endpoint_group_allows_all_outbound(tmp_path):
    app, stack = _stack(tmp_path)
    vpc = isolated_vpc(stack)
    make_endpoint(stack, vpc=vpc)
    app.synth()
    (group,) = resources(template_of(app, "S"), "AWS::EC2::SecurityGroup").values()
    assert group["Properties"]["SecurityGroupEgress"][0]["CidrIp"] == "0.0.0.0/0"


# --- order ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["scaling-first", "alarms-first"])
def test_alarms_and_dashboard_are_complete_in_either_order(tmp_path, order):
    app, stack = _stack(tmp_path)
    mme = make_endpoint(stack)
    if order == "scaling-first":
        mme.auto_scale_instance_count(min_capacity=1, max_capacity=5)
    alarms = EndpointAlarms(stack, "Alarms", endpoint=mme, topic=None)
    dashboard = EndpointDashboard(stack, "Dashboard", endpoint=mme, alarms=alarms)
    seen = []
    alarms.on_alarm_added(seen.append)
    if order == "alarms-first":
        mme.auto_scale_instance_count(min_capacity=1, max_capacity=5)
    assert "InstancesAtMax" in alarms.alarms and len(seen) == len(alarms.alarms) == 7
    app.synth()
    template = template_of(app, "S")
    at_max = next(v["Properties"] for k, v in resources(template, "AWS::CloudWatch::Alarm").items()
                  if k.startswith("AlarmsInstancesAtMax"))
    assert at_max["Threshold"] == 5
    (body,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    widgets = dashboard_widgets(body)
    (status,) = [w for w in widgets if w["type"] == "alarm"]
    assert len(status["properties"]["alarms"]) == 7
    instances = next(w for w in widgets if w["properties"].get("title") == "Instances in service")
    assert [a["value"] for a in instances["properties"]["annotations"]["horizontal"]] == [5, 1]
    assert dashboard.dashboard is not None
