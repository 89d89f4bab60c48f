"""Per-model observability as synthesized: metric filters on the endpoint's log group (dimension
``Model``), the saved Logs Insights queries, the per-model alarms and the dashboard's rows per
model; in a stack of its own with the five cdk-nag packs, and in the project's stack from context.
That the filters count the lines real handlers write: tests/client/test_request_lines.py."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns

from mme_constructs import EndpointDashboard, ModelAlarms, ModelMetrics, MultiModelEndpoint
from mme_constructs.request_lines import INSIGHTS_QUERIES, LINE_METRICS, STAGES

from stack_helpers import dashboard_widgets, make_endpoint, resources, synth_with_nag, template_of, widget_metrics

MODELS = ("sam", "lama", "sd")
TOPIC = "arn:aws:sns:eu-west-1:111122223333:on-call"


def _build(app, **alarm_props):
    stack = cdk.Stack(app, "S")
    mme = make_endpoint(stack)
    metrics = ModelMetrics(stack, "ModelMetrics", endpoint=mme, models=MODELS)
    topic = sns.Topic.from_topic_arn(stack, "OnCall", TOPIC)
    alarms = ModelAlarms(stack, "ModelAlarms", model_metrics=metrics, topic=topic,
                         latency_p90={"sam": cdk.Duration.seconds(2), "sd": cdk.Duration.seconds(20)}, **alarm_props)
    EndpointDashboard(stack, "Dashboard", endpoint=mme, model_metrics=metrics, model_alarms=alarms)
    return stack


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> dict:
    app = synth_with_nag(_build, tmp_path_factory.mktemp("model-metrics"))
    return template_of(app, "S")


def test_one_metric_filter_per_metric_on_the_endpoints_log_group(template):
    (group_id,) = resources(template, "AWS::Logs::LogGroup")
    filters = {f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"]
               for f in resources(template, "AWS::Logs::MetricFilter").values()}
    assert set(filters) == {m.metric_name for m in LINE_METRICS.values()}
    for metric in LINE_METRICS.values():
        props = filters[metric.metric_name]
        (transformation,) = props["MetricTransformations"]
        assert props["LogGroupName"] == {"Ref": group_id} and props["FilterPattern"] == metric.filter_pattern
        assert transformation["Dimensions"] == [{"Key": "Model", "Value": "$.model"}]
        assert transformation["MetricNamespace"] == "MME/e" and transformation["MetricValue"] == metric.value
        assert "DefaultValue" not in transformation  # CloudWatch takes none with dimensions
    assert filters["Latency"]["MetricTransformations"][0]["Unit"] == "Milliseconds"


def test_the_saved_queries(template):
    (group_id,) = resources(template, "AWS::Logs::LogGroup")
    queries = {q["Properties"]["Name"]: q["Properties"] for q in resources(template, "AWS::Logs::QueryDefinition").values()}
    assert set(queries) == {f"e/{name}" for name in INSIGHTS_QUERIES}
    for name, query in INSIGHTS_QUERIES.items():
        assert queries[f"e/{name}"]["QueryString"] == query
        assert queries[f"e/{name}"]["LogGroupNames"] == [{"Ref": group_id}]


def test_two_alarms_per_model_where_a_latency_is_given(template):
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert set(alarms) == {"e-sam-5xx-error-rate", "e-lama-5xx-error-rate", "e-sd-5xx-error-rate",
                           "e-sam-latency-p90", "e-sd-latency-p90"}
    sam = alarms["e-sam-latency-p90"]
    assert (sam["Namespace"], sam["MetricName"], sam["ExtendedStatistic"], sam["Threshold"]) == (
        "MME/e", "Latency", "p90", 2000)
    assert sam["Dimensions"] == [{"Name": "Model", "Value": "sam"}] and sam["TreatMissingData"] == "notBreaching"
    rate = alarms["e-lama-5xx-error-rate"]
    (expression,) = [m for m in rate["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "IF(requests >= 10, 100 * FILL(errors, 0) / requests, 0)"
    assert rate["Threshold"] == 5 and rate["DatapointsToAlarm"] == 2
    assert rate["AlarmActions"] == [TOPIC] and rate["OKActions"] == [TOPIC]
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in rate["Metrics"] if "MetricStat" in m} == {
        "Requests", "ServerErrors"}


def test_the_dashboard_has_a_row_per_model(template):
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    widgets = dashboard_widgets(dashboard)
    titles = [w["properties"].get("title") for w in widgets]
    for model in MODELS:
        assert [t for t in titles if t and t.startswith(f"{model}:")] == [
            f"{model}: requests, errors and loads", f"{model}: latency (ms)", f"{model}: where the time goes (ms, average)",
            f"{model}: cache hit ratio and input size"]
    stages = next(w for w in widgets if w["properties"].get("title") == "sd: where the time goes (ms, average)")
    lines = widget_metrics(stages)
    assert [line["label"] for line in lines] == list(STAGES) and stages["properties"]["stacked"] is True
    assert all(line["dimensions"] == {"Model": "sd"} and line["namespace"] == "MME/e" for line in lines)
    (status,) = [w for w in widgets if w["type"] == "alarm"]
    assert len(status["properties"]["alarms"]) == 5  # the per-model alarms (no endpoint alarms here)
    header = widgets[0]["properties"]["markdown"]
    assert "the rows per model at the bottom tell them apart" in header


@pytest.mark.parametrize(("props", "message"), [
    ({"models": ()}, "models: name at least one model"),
    ({"models": ("sam", "sam")}, "a model is named twice"),
    ({"models": ("a b",)}, "'a b' is not a model name"),
    ({"models": ("sam",), "namespace": "AWS/Mine"}, "namespace 'AWS/Mine'"),
])
def test_model_metrics_props_are_checked(tmp_path, props, message):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "S")
    with pytest.raises(ValueError, match=f"ModelMetrics M: .*{message}"):
        ModelMetrics(stack, "M", endpoint=make_endpoint(stack), **props)


def test_an_imported_endpoint_needs_its_log_group(tmp_path):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "S")
    imported = MultiModelEndpoint.from_endpoint_name(stack, "Imported", "team-mme")
    with pytest.raises(ValueError, match="log_group: required for an endpoint without its own log group"):
        ModelMetrics(stack, "M", endpoint=imported, models=("sam",))
    group = logs.LogGroup.from_log_group_name(stack, "Group", "/aws/sagemaker/Endpoints/team-mme")
    metrics = ModelMetrics(stack, "M", endpoint=imported, models=("sam",), log_group=group, saved_queries=False)
    assert metrics.queries == {} and stack.resolve(metrics.namespace) == "MME/team-mme"
    assert metrics.metric_latency("sam").metric_name == "Latency"
    with pytest.raises(ValueError, match="stage 'gpu' is not one of decode, preprocess"):
        metrics.metric_stage_time("sam", "gpu")


@pytest.mark.parametrize(("props", "message"), [
    ({"latency_p90": {"flux": cdk.Duration.seconds(1)}}, "latency_p90: flux not among the models"),
    ({"server_error_rate_percent": 0}, r"server_error_rate_percent must be in \(0, 100\], got 0"),
    ({"min_requests": 0}, "min_requests must be a whole number >= 1, got 0"),
    ({"period": cdk.Duration.seconds(30)}, "period must be a whole number of minutes"),
])
def test_model_alarm_props_are_checked(tmp_path, props, message):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "S")
    metrics = ModelMetrics(stack, "M", endpoint=make_endpoint(stack), models=("sam",))
    with pytest.raises(ValueError, match=f"ModelAlarms A: .*{message}"):
        ModelAlarms(stack, "A", model_metrics=metrics, **props)


# --- the project's stack ---------------------------------------------------------------------


def test_the_stack_has_per_model_alarms_with_the_models_latencies_and_off_switches(synth_stack):
    _, _, default = synth_stack()
    alarms = {a["Properties"]["AlarmName"]: a["Properties"]
              for a in resources(default.to_json(), "AWS::CloudWatch::Alarm").values()}
    assert {n: alarms[n]["Threshold"] for n in alarms if n.endswith("-latency-p90") and "model-latency" not in n} == {
        "image-editing-mme-sam-latency-p90": 2000, "image-editing-mme-lama-latency-p90": 5000,
        "image-editing-mme-sd-latency-p90": 20000}
    _, _, tuned = synth_stack(modelAlarmLatencyP90Ms='{"sd": "off", "lama": 9000}', modelAlarm5xxErrorRatePercent="off",
                              enabledModels="sam,lama,sd", logPrompts="true")
    template = tuned.to_json()
    names = {a["Properties"]["AlarmName"] for a in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert "image-editing-mme-sd-latency-p90" not in names and not [n for n in names if n.endswith("-5xx-error-rate")
                                                                    and n.count("-") > 3 and "sam" in n]
    assert {a["Properties"]["Threshold"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
            if a["Properties"]["AlarmName"] == "image-editing-mme-lama-latency-p90"} == {9000}
    (model,) = resources(template, "AWS::SageMaker::Model").values()
    assert model["Properties"]["PrimaryContainer"]["Environment"] == {"MME_LOG_PROMPTS": "true"}
    assert template["Outputs"]["ModelMetricsNamespace"]["Value"] == "MME/image-editing-mme"


def test_model_alarm_context_errors_name_the_key():
    from stacks.settings import SettingsError, settings_from_context

    with pytest.raises(SettingsError, match=r"context modelAlarmLatencyP90Ms: unknown model 'flux'"):
        settings_from_context({"modelAlarmLatencyP90Ms": '{"flux": 10}'}.get)
    with pytest.raises(SettingsError, match=r"context modelAlarmLatencyP90Ms.sam: must be in \(0, 3.6e\+06\]"):
        settings_from_context({"modelAlarmLatencyP90Ms": {"sam": -1}}.get)
    with pytest.raises(SettingsError, match=r"context modelAlarmLatencyP90Ms: 'off' or a JSON object"):
        settings_from_context({"modelAlarmLatencyP90Ms": "{fast"}.get)
    with pytest.raises(SettingsError, match=r"context logPrompts: expected true or false"):
        settings_from_context({"logPrompts": "maybe"}.get)
    assert dict(settings_from_context({"modelAlarmLatencyP90Ms": "off"}.get).model_alarm_latency_p90_ms) == {
        "sam": None, "lama": None, "sd": None}
    assert json.dumps(settings_from_context({}.get).model_alarm_latency_p90_ms) == json.dumps(
        [["sam", 2000], ["lama", 5000], ["sd", 20000]])
