"""The stack's operations wiring, synthesized by the app with cdk-nag on: log groups, alarm topic,
alarms, dashboard and outputs from cdk.json, and each context key that changes them."""

from __future__ import annotations

import json
import re

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Template

from mme.models import MODELS
from mme_constructs import DOCUMENTED_METRICS, LINE_METRICS
from stacks.image_editing_stack import RETENTION
from stacks.settings import LOG_RETENTION_DAYS

from stack_helpers import alarm_metrics, dashboard_widgets, widget_metrics

ENDPOINT = "image-editing-mme"
TOPIC_ARN = "arn:aws:sns:eu-west-1:111122223333:platform-on-call"


def of_type(template: Template, type_: str) -> dict:
    return template.find_resources(type_)


def bucket_key_id(template: Template) -> str:
    (key_id,) = of_type(template, "AWS::KMS::Key")
    return key_id


def alarm_by_suffix(template: Template) -> dict[str, dict]:
    """The endpoint's alarms (the per-model ones, ``<endpoint>-<model>-...``, are left out)."""
    return {name: a["Properties"] for a in of_type(template, "AWS::CloudWatch::Alarm").values()
            if not (name := a["Properties"]["AlarmName"].removeprefix(f"{ENDPOINT}-")).startswith(
                tuple(f"{m}-" for m in MODELS))}


def test_every_log_group_is_owned_encrypted_kept_a_year_and_removed_on_destroy(default_stack):
    _, _, t = default_stack
    key = {"Fn::GetAtt": [bucket_key_id(t), "Arn"]}
    groups = {g["Properties"]["LogGroupName"]: g for g in of_type(t, "AWS::Logs::LogGroup").values()}
    assert len(groups) == 3 and f"/aws/sagemaker/Endpoints/{ENDPOINT}" in groups
    assert sorted(n.rsplit("/", 1)[1] for n in groups if n.startswith("/mme/ImageEditingMme-")) == ["framework", "packager"]
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == 365 and group["Properties"]["KmsKeyId"] == key
        assert group["DeletionPolicy"] == "Delete" and group["UpdateReplacePolicy"] == "Delete"
    endpoint_group_id = next(k for k, g in of_type(t, "AWS::Logs::LogGroup").items()
                             if g["Properties"]["LogGroupName"] == f"/aws/sagemaker/Endpoints/{ENDPOINT}")
    (endpoint,) = of_type(t, "AWS::SageMaker::Endpoint").values()
    assert endpoint_group_id in endpoint["DependsOn"]
    key_policy = of_type(t, "AWS::KMS::Key")[bucket_key_id(t)]["Properties"]["KeyPolicy"]["Statement"]
    logs_contexts = [s["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"] for s in key_policy
                     if "ArnEquals" in s.get("Condition", {})]
    assert sorted(c["Fn::Join"][1][-1] for c in logs_contexts) == sorted(f":log-group:{n}" for n in groups)


def test_alarms_notify_a_new_encrypted_topic_and_the_dashboard_shows_them(default_stack):
    _, _, t = default_stack
    (topic_id, topic), = of_type(t, "AWS::SNS::Topic").items()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [bucket_key_id(t), "Arn"]}
    assert topic["Properties"]["TopicName"] == f"{ENDPOINT}-alarms"
    assert not of_type(t, "AWS::SNS::Subscription")  # no alarmEmail in cdk.json
    alarms = alarm_by_suffix(t)
    assert set(alarms) == {"5xx-error-rate", "model-latency-p90", "model-loading-wait-p90", "cache-hit-ratio-low",
                           "gpu-memory-high", "disk-high", "instances-at-max"}
    for props in alarms.values():
        assert props["AlarmActions"] == [{"Ref": topic_id}] and props["OKActions"] == [{"Ref": topic_id}]
    assert alarms["instances-at-max"]["Threshold"] == 2  # maxInstanceCount of cdk.json
    assert alarms["gpu-memory-high"]["Threshold"] == 90  # ml.g5.2xlarge: one GPU
    (dashboard,) = of_type(t, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == ENDPOINT
    (status,) = [w for w in dashboard_widgets(dashboard) if w["type"] == "alarm"]
    assert len(status["properties"]["alarms"]) == 7 + 2 * len(MODELS)  # the endpoint's and two per model


def test_operator_outputs(default_stack):
    _, _, t = default_stack
    outputs = t.find_outputs("*")
    (topic_id,) = of_type(t, "AWS::SNS::Topic")
    (dashboard_id,) = of_type(t, "AWS::CloudWatch::Dashboard")
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": topic_id}
    assert outputs["DashboardName"]["Value"] == {"Ref": dashboard_id}
    assert outputs["DashboardUrl"]["Value"]["Fn::Join"][1][-1] == {"Ref": dashboard_id}
    group_id = next(k for k, g in of_type(t, "AWS::Logs::LogGroup").items()
                    if g["Properties"]["LogGroupName"].startswith("/aws/sagemaker/Endpoints/"))
    assert outputs["EndpointLogGroupName"]["Value"] == {"Ref": group_id}


def test_every_metric_the_stack_reads_is_one_aws_documents(default_stack):
    """Dashboard widgets, alarms and the scaling policy's custom metric, against the one documented list."""
    _, _, t = default_stack
    used = {(ns, name) for alarm in of_type(t, "AWS::CloudWatch::Alarm").values() for ns, name, _, _ in alarm_metrics(alarm)}
    (dashboard,) = of_type(t, "AWS::CloudWatch::Dashboard").values()
    used |= {(m["namespace"], m["name"]) for w in dashboard_widgets(dashboard) if w["type"] == "metric"
             for m in widget_metrics(w) if "name" in m}
    for policy in of_type(t, "AWS::ApplicationAutoScaling::ScalingPolicy").values():
        custom = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"].get("CustomizedMetricSpecification")
        if custom:
            used.add((custom["Namespace"], custom["MetricName"]))
    ours = {(ns, name) for ns, name in used if ns == f"MME/{ENDPOINT}"}  # the per-model metrics of the request lines
    # every metric of the lines but LoadTime (the model-loads query shows it) is on the dashboard or an alarm
    assert {name for _, name in ours} == {m.metric_name for m in LINE_METRICS.values()} - {"LoadTime"}
    assert len(used - ours) == 16
    assert {(ns, name) for ns, name in used - ours if name not in DOCUMENTED_METRICS.get(ns, ())} == set()


def test_context_sets_topic_thresholds_retention_and_retain(synth_stack):
    _, _, t = synth_stack(alarmTopicArn=TOPIC_ARN, alarm5xxErrorRatePercent="1", alarmModelLatencyP90Ms=3000,
                          alarmGpuMemoryPercent="off", alarmCacheHitRatioMin=0.9, alarmInstancesAtMaxMinutes="10",
                          alarmDiskPercent=70, logRetentionDays="30", retainLogGroups="true",
                          instanceType="ml.g4dn.xlarge", maxInstanceCount=3, modelCacheEnabled="false")
    assert not of_type(t, "AWS::SNS::Topic")
    (model,) = of_type(t, "AWS::SageMaker::Model").values()
    assert model["Properties"]["PrimaryContainer"]["MultiModelConfig"] == {"ModelCacheSetting": "Disabled"}
    alarms = alarm_by_suffix(t)
    assert "gpu-memory-high" not in alarms
    assert all(a["AlarmActions"] == [TOPIC_ARN] for a in alarms.values())
    assert {k: a["Threshold"] for k, a in alarms.items()} == {
        "5xx-error-rate": 0.01, "model-latency-p90": 3_000_000, "model-loading-wait-p90": 20_000_000,
        "cache-hit-ratio-low": 0.9, "disk-high": 70, "instances-at-max": 3}
    assert alarms["instances-at-max"]["EvaluationPeriods"] == 10
    for group in of_type(t, "AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == 30 and group["DeletionPolicy"] == "Retain"
    (dashboard,) = of_type(t, "AWS::CloudWatch::Dashboard").values()
    gpu = next(w for w in dashboard_widgets(dashboard) if w["properties"].get("title", "").startswith("GPU"))
    assert gpu["properties"]["title"].endswith("(% of the instance's one GPU)")
    assert "on ml.g4dn.xlarge" in dashboard_widgets(dashboard)[0]["properties"]["markdown"]


def test_alarm_emails_subscribe_to_the_new_topic(synth_stack):
    _, _, t = synth_stack(alarmEmail="oncall@example.com, sre@example.com")
    (topic_id,) = of_type(t, "AWS::SNS::Topic")
    subscriptions = of_type(t, "AWS::SNS::Subscription").values()
    assert sorted((s["Properties"]["Endpoint"], s["Properties"]["Protocol"], json.dumps(s["Properties"]["TopicArn"]))
                  for s in subscriptions) == [
        ("oncall@example.com", "email", json.dumps({"Ref": topic_id})),
        ("sre@example.com", "email", json.dumps({"Ref": topic_id}))]


def test_every_retention_the_context_accepts_is_the_one_synthesized():
    stack = cdk.Stack(cdk.App(), "R")
    assert set(RETENTION) == set(LOG_RETENTION_DAYS)
    for days, retention in RETENTION.items():
        logs.LogGroup(stack, f"Retention{days}Days", retention=retention)
    groups = of_type(Template.from_stack(stack), "AWS::Logs::LogGroup")
    synthesized = {int(re.match(r"^Retention(\d+)Days[0-9A-F]{8}$", k).group(1)): g["Properties"]["RetentionInDays"]
                   for k, g in groups.items()}
    assert synthesized == {days: days for days in LOG_RETENTION_DAYS}
