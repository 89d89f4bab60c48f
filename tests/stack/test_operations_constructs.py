"""EndpointDashboard, EndpointAlarms, AlarmTopic and the owned log groups, synthesized on their own:
every widget's metrics, every alarm's metric/threshold/comparison/missing data/actions, the log
groups and the key policy statements, with owned and imported endpoints and token names."""

from __future__ import annotations

import json
import re

import aws_cdk as cdk
import pytest
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from mme_constructs import (
    DOCUMENTED_METRICS,
    ENDPOINT_METRICS,
    AlarmTopic,
    EndpointAlarms,
    EndpointDashboard,
    ModelArtifactProvider,
    ModelBucket,
    MultiModelEndpoint,
)

from mme_constructs import ServingImage

from stack_helpers import REPO_ROOT, alarm_metrics, dashboard_widgets, widget_metrics
from stack_helpers import make_endpoint as endpoint

SM, EP = "AWS/SageMaker", "/aws/sagemaker/Endpoints"
DIMENSIONS = {"EndpointName": "e", "VariantName": "AllTraffic"}
TOPIC_ARN = "arn:aws:sns:eu-west-1:111122223333:on-call"


def new_stack():
    return cdk.Stack(cdk.App(), "T")


def template(stack) -> dict:
    return Template.from_stack(stack).to_json()


def of_type(t: dict, type_: str) -> dict:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == type_}


def only(t: dict, type_: str) -> tuple[str, dict]:
    (found,) = of_type(t, type_).items()
    return found


def image(stack):
    return ServingImage.from_asset(stack, "I", directory=REPO_ROOT / "container")


def scaled_endpoint(stack, instance_type="ml.g5.4xlarge", max_capacity=3):
    mme = endpoint(stack, instance_type=instance_type)
    mme.auto_scale_instance_count(min_capacity=1, max_capacity=max_capacity)
    return mme


# --- EndpointDashboard ------------------------------------------------------------------------

#: widget title -> the metrics it plots: (namespace, metric, statistic, visible)
WIDGETS = {
    "Requests and errors (per period)": {
        (SM, "Invocations", "Sum", True), (SM, "Invocation4XXErrors", "Sum", True),
        (SM, "Invocation5XXErrors", "Sum", True)},
    "Instances in service": {(EP, "CPUUtilization", "SampleCount", False)},
    "Model latency: time in the container (ms)": {(SM, "ModelLatency", s, False) for s in ("p50", "p90", "p99")},
    "Overhead latency: SageMaker's own time (ms)": {(SM, "OverheadLatency", s, False) for s in ("p50", "p90", "p99")},
    "Model cache hit ratio (1 = model already loaded)": {(SM, "ModelCacheHit", "Average", True)},
    "Waiting for a model to load (ms)": {(SM, "ModelLoadingWaitTime", s, False) for s in ("p50", "p90", "p99")},
    "Model download, load and unload time (ms, average)": {
        (SM, "ModelDownloadingTime", "Average", False), (SM, "ModelLoadingTime", "Average", False),
        (SM, "ModelUnloadingTime", "Average", False)},
    "Models loaded per instance": {(EP, "LoadedModelCount", "Average", True), (EP, "LoadedModelCount", "Maximum", True)},
    "GPU utilization and GPU memory (% of the instance's one GPU)": {
        (EP, "GPUUtilization", "Average", True), (EP, "GPUMemoryUtilization", "Average", True),
        (EP, "GPUMemoryUtilization", "Maximum", True)},
    "CPU, memory and disk (%)": {
        (EP, "MemoryUtilization", "Maximum", True), (EP, "DiskUtilization", "Maximum", True),
        (EP, "CPUUtilization", "Average", True)},
}


def metric_widgets(t: dict) -> dict[str, dict]:
    _, dashboard = only(t, "AWS::CloudWatch::Dashboard")
    return {w["properties"]["title"]: w for w in dashboard_widgets(dashboard) if w["type"] == "metric"}


def test_every_widget_plots_its_documented_metrics_for_this_variant():
    stack = new_stack()
    EndpointDashboard(stack, "Dash", endpoint=scaled_endpoint(stack), dashboard_name="ops-e")
    t = template(stack)
    widgets = metric_widgets(t)
    assert set(widgets) == set(WIDGETS)
    for title, expected in WIDGETS.items():
        lines = [m for m in widget_metrics(widgets[title]) if "name" in m]
        assert {(m["namespace"], m["name"], m["stat"], m["visible"]) for m in lines} == expected, title
        assert all(m["dimensions"] == DIMENSIONS and m["period"] == 60 for m in lines), title
    assert only(t, "AWS::CloudWatch::Dashboard")[1]["Properties"]["DashboardName"] == "ops-e"


def test_latencies_are_shown_in_milliseconds_from_hidden_microsecond_metrics():
    stack = new_stack()
    EndpointDashboard(stack, "Dash", endpoint=endpoint(stack))
    for title in ("Model latency: time in the container (ms)", "Waiting for a model to load (ms)",
                  "Overhead latency: SageMaker's own time (ms)", "Model download, load and unload time (ms, average)"):
        widget = metric_widgets(template(stack))[title]
        lines = widget_metrics(widget)
        hidden = {m["id"] for m in lines if "name" in m}
        expressions = [m["expression"] for m in lines if "expression" in m]
        assert sorted(expressions) == sorted(f"{i} / 1000" for i in hidden), title
        assert widget["properties"]["yAxis"]["left"]["label"] == "ms"


def test_instance_widget_counts_instances_and_draws_the_autoscaling_bounds():
    stack = new_stack()
    EndpointDashboard(stack, "Dash", endpoint=scaled_endpoint(stack, max_capacity=5))
    widget = metric_widgets(template(stack))["Instances in service"]
    (expression,) = [m for m in widget_metrics(widget) if "expression" in m]
    assert expression["expression"] == "samples / (PERIOD(samples) / 60)"
    assert {(a["label"], a["value"]) for a in widget["properties"]["annotations"]["horizontal"]} == {
        ("autoscaling maximum", 5), ("autoscaling minimum", 1)}


def test_gpu_axis_is_a_percentage_of_the_one_gpu():
    stack = new_stack()
    EndpointDashboard(stack, "Dash", endpoint=endpoint(stack, instance_type="ml.g4dn.16xlarge"))
    (widget,) = [w for title, w in metric_widgets(template(stack)).items() if title.startswith("GPU")]
    assert widget["properties"]["title"].endswith("(% of the instance's one GPU)")
    assert widget["properties"]["yAxis"]["left"] == {"label": "% of the GPU", "min": 0, "max": 100,
                                                     "showUnits": False}


def test_dashboard_of_an_imported_endpoint_with_a_token_name_and_its_alarm_states():
    stack = new_stack()
    name = cdk.CfnParameter(stack, "EndpointName", type="String")
    imported = MultiModelEndpoint.from_endpoint_name(stack, "Imp", name.value_as_string)
    alarms = EndpointAlarms(stack, "Alarms", endpoint=imported)
    EndpointDashboard(stack, "Dash", endpoint=imported, alarms=alarms)
    t = template(stack)
    _, dashboard = only(t, "AWS::CloudWatch::Dashboard")
    widgets = dashboard_widgets(dashboard)
    (status,) = [w for w in widgets if w["type"] == "alarm"]
    assert status["properties"]["alarms"] == [f"<{k}.Arn>" for k in of_type(t, "AWS::CloudWatch::Alarm")]
    assert "# Multi-model endpoint <Ref:EndpointName>" in widgets[0]["properties"]["markdown"]
    for widget in metric_widgets(t).values():
        for line in (m for m in widget_metrics(widget) if "name" in m):
            assert line["dimensions"] == {"EndpointName": "<Ref:EndpointName>", "VariantName": "AllTraffic"}
    gpu = next(w for title, w in metric_widgets(t).items() if title.startswith("GPU"))
    assert gpu["properties"]["title"] == "GPU utilization and GPU memory (% of the instance's one GPU)"
    assert gpu["properties"]["yAxis"]["left"]["max"] == 100


def test_dashboard_url_follows_the_partition_and_region():
    stack = new_stack()
    dash = EndpointDashboard(stack, "Dash", endpoint=endpoint(stack))
    cdk.CfnOutput(stack, "Url", value=dash.dashboard_url)
    t = template(stack)
    assert t["Mappings"]["AwsConsoleDomain"] == {"aws": {"Domain": "console.aws.amazon.com"},
                                                 "aws-cn": {"Domain": "console.amazonaws.cn"},
                                                 "aws-us-gov": {"Domain": "console.amazonaws-us-gov.com"}}
    dashboard_id, _ = only(t, "AWS::CloudWatch::Dashboard")
    assert t["Outputs"]["Url"]["Value"] == {"Fn::Join": ["", [
        "https://", {"Fn::FindInMap": ["AwsConsoleDomain", {"Ref": "AWS::Partition"}, "Domain"]},
        "/cloudwatch/home?region=", {"Ref": "AWS::Region"}, "#dashboards/dashboard/", {"Ref": dashboard_id}]]}


def test_dashboard_props_are_validated_together():
    stack = new_stack()
    mme = endpoint(stack)
    with pytest.raises(ValueError) as info:
        EndpointDashboard(stack, "Dash", endpoint=mme, dashboard_name="has spaces", period=Duration.seconds(90))
    assert str(info.value).startswith("EndpointDashboard Dash: dashboard_name 'has spaces'")
    assert "period must be a whole number of minutes" in str(info.value)


# --- EndpointAlarms ---------------------------------------------------------------------------

#: construct id -> (namespace, metric, statistic, period, threshold, comparison, missing data,
#: evaluation periods, datapoints to alarm), with the defaults on a 4-GPU instance scaling to 3
ALARMS = {
    "ServerErrorRate": (SM, "Invocation5XXErrors", "Average", 300, 0.05, "GreaterThanThreshold", "notBreaching", 3, 2),
    "ModelLatencyP90": (SM, "ModelLatency", "p90", 300, 10_000_000, "GreaterThanThreshold", "notBreaching", 3, 3),
    "ModelLoadingWaitP90": (SM, "ModelLoadingWaitTime", "p90", 300, 20_000_000, "GreaterThanThreshold",
                            "notBreaching", 3, 3),
    "CacheHitRatioLow": (SM, "ModelCacheHit", "Average", 300, 0.8, "LessThanThreshold", "notBreaching", 3, 3),
    "GpuMemoryHigh": (EP, "GPUMemoryUtilization", "Maximum", 300, 90, "GreaterThanThreshold", "ignore", 3, 3),
    "DiskHigh": (EP, "DiskUtilization", "Maximum", 300, 80, "GreaterThanThreshold", "ignore", 3, 3),
    "InstancesAtMax": (EP, "CPUUtilization", "SampleCount", 60, 3, "GreaterThanOrEqualToThreshold", "notBreaching",
                       30, 30),
}


def alarms_by_id(t: dict) -> dict[str, dict]:
    found = {}
    for logical_id, alarm in of_type(t, "AWS::CloudWatch::Alarm").items():
        (key,) = [k for k in ALARMS if re.match(rf"^Alarms\d*{k}[0-9A-F]{{8}}$", logical_id)]
        found[key] = alarm
    return found


def period_of(alarm: dict) -> int:
    props = alarm["Properties"]
    return props.get("Period") or next(m["MetricStat"]["Period"] for m in props["Metrics"] if "MetricStat" in m)


def test_every_alarm_metric_threshold_comparison_missing_data_and_action():
    stack = new_stack()
    mme = scaled_endpoint(stack)
    topic = sns.Topic.from_topic_arn(stack, "OnCall", TOPIC_ARN)
    EndpointAlarms(stack, "Alarms", endpoint=mme, topic=topic)
    found = alarms_by_id(template(stack))
    assert set(found) == set(ALARMS)
    for key, (namespace, name, stat, period, threshold, comparison, missing, periods, points) in ALARMS.items():
        props = found[key]["Properties"]
        assert alarm_metrics(found[key]) == [(namespace, name, DIMENSIONS, stat)], key
        assert (period_of(found[key]), props["Threshold"], props["ComparisonOperator"], props["TreatMissingData"],
                props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (
            period, threshold, comparison, missing, periods, points), key
        assert props["AlarmActions"] == [TOPIC_ARN] and props["OKActions"] == [TOPIC_ARN], key
        assert "InsufficientDataActions" not in props, key
        assert props["AlarmName"].startswith("e-") and len(props["AlarmDescription"].split()) >= 12, key


def test_an_idle_endpoint_pages_nobody():
    """No request metrics at all: every request alarm treats the silence as healthy, and the
    instance alarms keep their state through gaps; no alarm acts on INSUFFICIENT_DATA."""
    stack = new_stack()
    EndpointAlarms(stack, "Alarms", endpoint=scaled_endpoint(stack))
    for key, alarm in alarms_by_id(template(stack)).items():
        namespace = alarm_metrics(alarm)[0][0]
        expected = "notBreaching" if namespace == SM or key == "InstancesAtMax" else "ignore"
        assert alarm["Properties"]["TreatMissingData"] == expected, key


def test_thresholds_override_and_none_leaves_an_alarm_out():
    stack = new_stack()
    mme = endpoint(stack, instance_type="ml.g5.2xlarge")
    alarms = EndpointAlarms(stack, "Alarms", endpoint=mme, server_error_rate_percent=1,
                            model_latency_p90=Duration.seconds(3), model_loading_wait_p90=None,
                            cache_hit_ratio_min=0.95, gpu_memory_utilization_percent=75, disk_utilization_percent=None,
                            max_instance_count=4, instances_at_max_for=Duration.minutes(10),
                            period=Duration.minutes(1), evaluation_periods=5, alarm_name_prefix="team")
    found = alarms_by_id(template(stack))
    assert set(found) == set(alarms.alarms) == {"ServerErrorRate", "ModelLatencyP90", "CacheHitRatioLow",
                                                "GpuMemoryHigh", "InstancesAtMax"}
    thresholds = {k: (a["Properties"]["Threshold"], a["Properties"]["EvaluationPeriods"], period_of(a))
                  for k, a in found.items()}
    assert thresholds == {"ServerErrorRate": (0.01, 5, 60), "ModelLatencyP90": (3_000_000, 5, 60),
                          "CacheHitRatioLow": (0.95, 5, 60), "GpuMemoryHigh": (75, 5, 60), "InstancesAtMax": (4, 10, 60)}
    assert found["ServerErrorRate"]["Properties"]["DatapointsToAlarm"] == 2
    assert found["ServerErrorRate"]["Properties"]["AlarmName"] == "team-5xx-error-rate"
    assert all("AlarmActions" not in a["Properties"] for a in found.values())  # no topic given


def test_actions_can_be_added_to_every_alarm():
    stack = new_stack()
    alarms = EndpointAlarms(stack, "Alarms", endpoint=endpoint(stack))
    alarms.add_alarm_action(cw_actions.SnsAction(sns.Topic.from_topic_arn(stack, "Pager", TOPIC_ARN)))
    found = alarms_by_id(template(stack))
    assert "InstancesAtMax" not in found  # no autoscaling, no max_instance_count: nothing to be "at"
    assert all(a["Properties"]["AlarmActions"] == [TOPIC_ARN] and "OKActions" not in a["Properties"]
               for a in found.values())


def test_imported_endpoint_of_unknown_instance_type_gets_every_alarm():
    stack = new_stack()
    unknown = MultiModelEndpoint.from_endpoint_name(stack, "Unknown", "shared-mme")
    EndpointAlarms(stack, "Alarms", endpoint=unknown, max_instance_count=6)
    found = alarms_by_id(template(stack))
    assert found["GpuMemoryHigh"]["Properties"]["Threshold"] == 90  # % of the one GPU, whatever the type
    assert alarm_metrics(found["InstancesAtMax"])[0][2] == {"EndpointName": "shared-mme", "VariantName": "AllTraffic"}


def test_alarm_props_are_validated_together_and_named():
    stack = new_stack()
    with pytest.raises(ValueError) as info:
        EndpointAlarms(stack, "Alarms", endpoint=endpoint(stack), server_error_rate_percent=0, cache_hit_ratio_min=1.5,
                       model_latency_p90=Duration.millis(0), disk_utilization_percent=120, max_instance_count=0,
                       period=Duration.seconds(30), evaluation_periods=0, instances_at_max_for=Duration.days(2))
    message = str(info.value)
    assert message.startswith("EndpointAlarms Alarms: ")
    for fragment in ("server_error_rate_percent must be in (0, 100], got 0", "cache_hit_ratio_min must be in (0, 1]",
                     "model_latency_p90 must be longer than 0 ms", "disk_utilization_percent must be in (0, 100]",
                     "max_instance_count must be >= 1", "period must be a whole number of minutes",
                     "evaluation_periods must be >= 1", "instances_at_max_for must be whole minutes"):
        assert fragment in message


def test_alarms_and_dashboard_use_only_metrics_aws_documents():
    """The one list of documented names (mme_constructs.endpoint_metrics.DOCUMENTED_METRICS) covers
    every metric helper and every metric the dashboard and the alarms read."""
    assert {(m.namespace, m.metric_name) for m in ENDPOINT_METRICS.values()} <= {
        (ns, name) for ns, names in DOCUMENTED_METRICS.items() for name in names}
    stack = new_stack()
    mme = scaled_endpoint(stack)
    alarms = EndpointAlarms(stack, "Alarms", endpoint=mme)
    EndpointDashboard(stack, "Dash", endpoint=mme, alarms=alarms)
    t = template(stack)
    used = {(ns, name) for alarm in of_type(t, "AWS::CloudWatch::Alarm").values() for ns, name, _, _ in alarm_metrics(alarm)}
    used |= {(m["namespace"], m["name"]) for w in metric_widgets(t).values() for m in widget_metrics(w) if "name" in m}
    assert len(used) == 16
    undocumented = {(ns, name) for ns, name in used if name not in DOCUMENTED_METRICS.get(ns, ())}
    assert not undocumented


# --- Owned log groups -------------------------------------------------------------------------


def logs_statements(t: dict, key_id: str) -> list[dict]:
    policy = of_type(t, "AWS::KMS::Key")[key_id]["Properties"]["KeyPolicy"]["Statement"]
    return [s for s in policy if "kms:EncryptionContext:aws:logs:arn" in json.dumps(s)]


def log_group_arn(name: str) -> dict:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":logs:", {"Ref": "AWS::Region"}, ":",
                              {"Ref": "AWS::AccountId"}, f":log-group:{name}"]]}


def test_endpoint_owns_its_encrypted_log_group_before_sagemaker_starts():
    stack = new_stack()
    mme = endpoint(stack, log_retention=logs.RetentionDays.ONE_MONTH)
    t = template(stack)
    group_id, group = only(t, "AWS::Logs::LogGroup")
    (key_id,) = of_type(t, "AWS::KMS::Key")
    assert group["Properties"] == {"LogGroupName": "/aws/sagemaker/Endpoints/e", "RetentionInDays": 30,
                                   "KmsKeyId": {"Fn::GetAtt": [key_id, "Arn"]}}
    assert group["DeletionPolicy"] == "Delete"
    _, cfn_endpoint = only(t, "AWS::SageMaker::Endpoint")
    assert group_id in cfn_endpoint["DependsOn"]
    (statement,) = logs_statements(t, key_id)
    assert statement["Principal"] == {"Service": {"Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}
    assert statement["Condition"] == {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arn("/aws/sagemaker/Endpoints/e")}}
    assert statement["Action"] == ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo",
                                   "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
    assert stack.get_logical_id(mme.log_group.node.default_child) == group_id


def test_role_writes_streams_but_never_creates_log_groups():
    stack = new_stack()
    endpoint(stack)
    t = template(stack)
    policies = [*of_type(t, "AWS::IAM::Policy").values(), *of_type(t, "AWS::IAM::ManagedPolicy").values()]
    actions = {a for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]
               for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"} <= actions
    assert "logs:CreateLogGroup" not in actions


def test_imported_key_leaves_logs_unencrypted_unless_given_and_retain_is_a_choice():
    stack = new_stack()
    key = kms.Key.from_key_arn(stack, "K", "arn:aws:kms:eu-west-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    bucket = ModelBucket(stack, "B", encryption_key=key)
    mme = MultiModelEndpoint(stack, "E", image=image(stack), model_store=bucket.model_store, endpoint_name="e",
                             log_removal_policy=RemovalPolicy.RETAIN)
    own = kms.Key(stack, "LogKey", enable_key_rotation=True)
    MultiModelEndpoint(stack, "F", image=mme.image, model_store=bucket.model_store, endpoint_name="f",
                       log_encryption_key=own)
    t = template(stack)
    groups = {g["Properties"]["LogGroupName"]: g for g in of_type(t, "AWS::Logs::LogGroup").values()}
    assert "KmsKeyId" not in groups["/aws/sagemaker/Endpoints/e"]["Properties"]
    assert groups["/aws/sagemaker/Endpoints/e"]["DeletionPolicy"] == "Retain"
    assert groups["/aws/sagemaker/Endpoints/f"]["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["LogKeyE83D0C1B", "Arn"]}
    assert len(logs_statements(t, "LogKeyE83D0C1B")) == 1


def test_token_endpoint_name_names_the_log_group_and_the_key_condition():
    stack = new_stack()
    name = cdk.CfnParameter(stack, "EndpointName", type="String")
    endpoint(stack, endpoint_name=name.value_as_string)
    t = template(stack)
    _, group = only(t, "AWS::Logs::LogGroup")
    assert group["Properties"]["LogGroupName"] == {"Fn::Join": ["", ["/aws/sagemaker/Endpoints/", {"Ref": "EndpointName"}]]}
    (key_id,) = of_type(t, "AWS::KMS::Key")
    (statement,) = logs_statements(t, key_id)
    assert {"Ref": "EndpointName"} in statement["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Join"][1]


def test_packager_and_framework_log_groups_are_named_encrypted_and_kept_for_the_retention():
    stack = new_stack()
    bucket = ModelBucket(stack, "B")
    provider = ModelArtifactProvider.of(stack, model_store=bucket.model_store,
                                        log_retention=logs.RetentionDays.THREE_MONTHS)
    t = template(stack)
    (key_id,) = of_type(t, "AWS::KMS::Key")
    groups = {g["Properties"]["LogGroupName"]: g["Properties"] for g in of_type(t, "AWS::Logs::LogGroup").values()}
    prefix = "/mme/T-ModelArtifactProvider-"
    assert sorted(n.rsplit("/", 1)[1] for n in groups) == ["framework", "packager"]
    for name, props in groups.items():
        assert name.startswith(prefix)
        assert props["RetentionInDays"] == 90 and props["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    conditions = [s["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"] for s in logs_statements(t, key_id)]
    assert sorted(json.dumps(c) for c in conditions) == sorted(json.dumps(log_group_arn(n)) for n in groups)
    functions = of_type(t, "AWS::Lambda::Function").values()
    assert {f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in functions} == {
        stack.get_logical_id(g.node.default_child) for g in (provider.log_group, provider.framework_log_group)}


def test_provider_props_apply_on_first_use_only():
    stack = new_stack()
    bucket = ModelBucket(stack, "B")
    ModelArtifactProvider.of(stack, model_store=bucket.model_store)
    assert ModelArtifactProvider.of(stack, model_store=bucket.model_store) is not None
    with pytest.raises(ValueError, match="exists already: give log_retention on its first use"):
        ModelArtifactProvider.of(stack, model_store=bucket.model_store, log_retention=logs.RetentionDays.ONE_WEEK)


# --- AlarmTopic -------------------------------------------------------------------------------


def test_alarm_topic_is_encrypted_tls_only_and_lets_only_this_accounts_alarms_publish():
    stack = new_stack()
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    AlarmTopic(stack, "Topic", encryption_key=key, topic_name="ops-alarms", emails=["oncall@example.com", "sre@example.com"])
    t = template(stack)
    topic_id, topic = only(t, "AWS::SNS::Topic")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["Key961B73FD", "Arn"]}
    assert topic["Properties"]["TopicName"] == "ops-alarms"
    _, policy = only(t, "AWS::SNS::TopicPolicy")
    allow, deny = sorted(policy["Properties"]["PolicyDocument"]["Statement"], key=lambda s: s["Effect"])
    assert (deny["Effect"], deny["Principal"], deny["Condition"]) == ("Deny", "*", {"Bool": {"aws:SecureTransport": "false"}})
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and allow["Action"] == "sns:Publish"
    assert allow["Resource"] == {"Ref": topic_id}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert allow["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1][-1] == ":alarm:*"
    key_statement = of_type(t, "AWS::KMS::Key")["Key961B73FD"]["Properties"]["KeyPolicy"]["Statement"][-1]
    assert key_statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert key_statement["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert key_statement["Condition"]["StringEquals"]["kms:EncryptionContext:aws:sns:topicArn"]["Fn::Join"][1][-1] == \
        ":ops-alarms"
    subscriptions = of_type(t, "AWS::SNS::Subscription").values()
    assert sorted(s["Properties"]["Endpoint"] for s in subscriptions) == ["oncall@example.com", "sre@example.com"]
    assert {s["Properties"]["Protocol"] for s in subscriptions} == {"email"}


def test_alarm_topic_rejects_bad_names_and_addresses():
    stack = new_stack()
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    with pytest.raises(ValueError) as info:
        AlarmTopic(stack, "Topic", encryption_key=key, topic_name="bad name", emails=["not-an-address"])
    assert "topic_name 'bad name'" in str(info.value) and "emails: 'not-an-address'" in str(info.value)
