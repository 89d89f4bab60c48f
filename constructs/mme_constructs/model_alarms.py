"""``ModelAlarms``: the per-model alarms an operator can act on, from :class:`ModelMetrics`."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from mme_constructs.model_metrics import ModelMetrics
from mme_constructs.number_props import number_error, range_rule, shown, validate_when_resolved

_GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
_NOT_BREACHING = cloudwatch.TreatMissingData.NOT_BREACHING
_RATE_RULE = range_rule(0, 100)


class ModelAlarms(Construct):
    """Per model, two alarms (each optional):

    | alarm (construct id) | metric | fires when | missing data |
    | --- | --- | --- | --- |
    | ``<Model>ServerErrorRate`` | ``metric_server_error_rate`` (5xx % of the model's requests, 0 below ``min_requests``) | above ``server_error_rate_percent`` in 2 of ``evaluation_periods`` | not breaching: no requests, no errors |
    | ``<Model>LatencyP90`` | ``metric_latency`` p90 (handler time of served requests) | above the model's ``latency_p90`` in every evaluated period | not breaching: no requests |

    Why these two: a model that fails or is slow is what the runbook can act on per model (its
    errors query names the failing requests, its stage breakdown the slow stage). Refused requests
    (4xx) are the callers' to fix and are on the dashboard, not paged. A model's own cache (SAM's
    image embeddings) missing costs one encoder run per new image, which the latency alarm sees when
    it matters; models unloaded and loaded again are the endpoint's ``cache-hit-ratio-low`` and
    ``model-loading-wait-p90`` alarms, and the ``Loads`` metric per model says which one.

    Props (keyword):

    * ``model_metrics``: the :class:`ModelMetrics` of the endpoint; alarms for each of its models.
    * ``topic``: ``sns.ITopic`` notified on ALARM and OK; default none.
    * ``server_error_rate_percent``: default 5 (as the endpoint's alarm); ``None``: no such alarms.
    * ``min_requests``: default 10 per period: below it the rate counts as 0, so one failure
      among a handful of requests does not page.
    * ``latency_p90``: ``{model: Duration or None}``; models not named get ``default_latency_p90``
      (default ``None``: no latency alarm). A library cannot know how fast a model should be: the
      app says (the stack: SAM 2 s, LaMa 5 s, SD 20 s).
    * ``period``: default 5 minutes; ``evaluation_periods``: default 3.
    * ``alarm_name_prefix``: default the endpoint name; names are ``<prefix>-<model>-5xx-error-rate``
      and ``<prefix>-<model>-latency-p90``.

    Attributes: ``alarms`` (construct id -> ``cloudwatch.Alarm``), ``alarm_list``,
    ``model_metrics``. ``add_alarm_action`` / ``add_ok_action`` apply to every alarm.
    """

    def __init__(self, scope: Construct, construct_id: str, *, model_metrics: ModelMetrics,
                 topic: sns.ITopic | None = None, server_error_rate_percent: float | None = 5,
                 min_requests: int = 10, latency_p90: Mapping[str, Duration | None] | None = None,
                 default_latency_p90: Duration | None = None, period: Duration = Duration.minutes(5),
                 evaluation_periods: int = 3, alarm_name_prefix: str | None = None) -> None:
        latency = {m: (latency_p90 or {}).get(m, default_latency_p90) for m in model_metrics.models}
        _check_props(construct_id, model_metrics, server_error_rate_percent, min_requests, latency_p90 or {},
                     latency, period, evaluation_periods)
        super().__init__(scope, construct_id)
        if server_error_rate_percent is not None:
            validate_when_resolved(self, "server_error_rate_percent", server_error_rate_percent, _RATE_RULE,
                                   "in (0, 100]")
        self.model_metrics = model_metrics
        prefix = alarm_name_prefix or model_metrics.endpoint.endpoint_name
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for model in model_metrics.models:
            key = _construct_key(model)
            if server_error_rate_percent is not None:
                self.alarms[f"{key}ServerErrorRate"] = cloudwatch.Alarm(
                    self, f"{key}ServerErrorRate", alarm_name=f"{prefix}-{model}-5xx-error-rate",
                    metric=model_metrics.metric_server_error_rate(model, period=period, min_requests=min_requests),
                    threshold=server_error_rate_percent, comparison_operator=_GT,
                    evaluation_periods=evaluation_periods, datapoints_to_alarm=min(2, evaluation_periods),
                    treat_missing_data=_NOT_BREACHING,
                    alarm_description=(
                        f"More than {shown(server_error_rate_percent)} % of {model}'s requests end in a 5xx (with "
                        f"at least {min_requests} requests per period). Run the saved query errors-by-model for "
                        "the failing requests' messages, then the endpoint's 5xx runbook."))
            if latency[model] is not None:
                self.alarms[f"{key}LatencyP90"] = cloudwatch.Alarm(
                    self, f"{key}LatencyP90", alarm_name=f"{prefix}-{model}-latency-p90",
                    metric=model_metrics.metric_latency(model, statistic="p90", period=period),
                    threshold=latency[model].to_milliseconds(), comparison_operator=_GT,
                    evaluation_periods=evaluation_periods, datapoints_to_alarm=evaluation_periods,
                    treat_missing_data=_NOT_BREACHING,
                    alarm_description=(
                        f"90 % of {model}'s served requests should take the handler under "
                        f"{latency[model].to_human_string()}; they have not for {evaluation_periods} periods. See "
                        f"the {model} row of the dashboard (which stage grew?) and the saved query slowest-requests."))
        if topic is not None:
            self.add_alarm_action(cw_actions.SnsAction(topic))
            self.add_ok_action(cw_actions.SnsAction(topic))

    @property
    def alarm_list(self) -> list[cloudwatch.Alarm]:
        return list(self.alarms.values())

    def add_alarm_action(self, *actions: cloudwatch.IAlarmAction) -> None:
        for alarm in self.alarms.values():
            alarm.add_alarm_action(*actions)

    def add_ok_action(self, *actions: cloudwatch.IAlarmAction) -> None:
        for alarm in self.alarms.values():
            alarm.add_ok_action(*actions)


def _construct_key(model: str) -> str:
    """``sam`` -> ``Sam``, ``my-model_2`` -> ``MyModel2`` (a construct id part)."""
    return "".join(part.capitalize() for part in model.replace("_", "-").split("-"))


def _check_props(construct_id: str, model_metrics: ModelMetrics, rate, min_requests: int, given: Mapping,
                 latency: Mapping, period: Duration, evaluation_periods: int) -> None:
    errors = []
    if rate is not None:
        error = number_error("server_error_rate_percent", rate, _RATE_RULE, "in (0, 100]")
        if error:
            errors.append(error)
    if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 1:
        errors.append(f"min_requests must be a whole number >= 1, got {min_requests!r}")
    unknown = sorted(set(given) - set(model_metrics.models))
    if unknown:
        errors.append(f"latency_p90: {', '.join(unknown)} not among the models ({', '.join(model_metrics.models)})")
    errors += [f"latency_p90 of {m} must be longer than 0 ms" for m, d in latency.items()
               if d is not None and d.to_milliseconds() <= 0]
    if period.to_seconds() < 60 or period.to_seconds() % 60:
        errors.append(f"period must be a whole number of minutes, got {period.to_human_string()}")
    if evaluation_periods < 1 or period.to_seconds() * evaluation_periods > 86400:
        errors.append("evaluation_periods must be >= 1 and period x evaluation_periods at most one day")
    if errors:
        raise ValueError(f"ModelAlarms {construct_id}: " + "; ".join(errors))
