"""``EndpointAlarms``: the alarms an operator of a GPU multi-model endpoint needs, with defaults.

Every alarm watches a metric of :mod:`mme_constructs.endpoint_metrics` (through the endpoint's
``metric_*`` helpers) and decides deliberately what missing data means: an idle endpoint sends
no request metrics at all, and must not page anyone.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from mme_constructs.endpoint_base import MultiModelEndpointBase
from mme_constructs.number_props import number_error, range_rule, shown, validate_when_resolved

_GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
_GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
_LT = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
_NOT_BREACHING = cloudwatch.TreatMissingData.NOT_BREACHING
_IGNORE = cloudwatch.TreatMissingData.IGNORE
_MAX_EVALUATION_RANGE = Duration.days(1)  # CloudWatch: evaluation periods x period <= one day


@dataclass(frozen=True)
class _Alarm:
    """One alarm as the construct builds it (the values the props turned into)."""

    construct_id: str
    name_suffix: str
    metric: cloudwatch.IMetric
    threshold: float
    comparison: cloudwatch.ComparisonOperator
    missing_data: cloudwatch.TreatMissingData
    evaluation_periods: int
    datapoints_to_alarm: int
    description: str


class EndpointAlarms(Construct):
    """CloudWatch alarms for one multi-model endpoint (owned or imported), each one optional.

    | alarm (construct id) | metric | fires when | missing data |
    | --- | --- | --- | --- |
    | ``ServerErrorRate`` | ``Invocation5XXErrors`` Average (the 5xx ratio) | above ``server_error_rate_percent`` in 2 of ``evaluation_periods`` | not breaching: no requests, no errors |
    | ``ModelLatencyP90`` | ``ModelLatency`` p90 | above ``model_latency_p90`` in every evaluated period | not breaching: no requests |
    | ``ModelLoadingWaitP90`` | ``ModelLoadingWaitTime`` p90 | above ``model_loading_wait_p90`` in every evaluated period (cold starts keep hurting users) | not breaching: nobody waited |
    | ``CacheHitRatioLow`` | ``ModelCacheHit`` Average (hit ratio) | below ``cache_hit_ratio_min`` in every evaluated period (thrashing) | not breaching: no requests |
    | ``GpuMemoryHigh`` | ``GPUMemoryUtilization`` Maximum | above ``gpu_memory_utilization_percent`` | ignore: instances report every minute, idle or busy; a gap says nothing about memory |
    | ``DiskHigh`` | ``DiskUtilization`` Maximum | above ``disk_utilization_percent`` | ignore: as GPU memory |
    | ``InstancesAtMax`` | instances in service (``metric_instance_count``) | at ``max_instance_count`` for ``instances_at_max_for`` | not breaching: no instance reporting is not "at max" |

    Props (keyword; a threshold of ``None`` leaves that alarm out):

    * ``endpoint``: a :class:`MultiModelEndpoint` or an import (``from_endpoint_name``).
    * ``topic``: ``sns.ITopic`` notified on ALARM and on OK; default none (add actions with
      :meth:`add_alarm_action` / :meth:`add_ok_action`).
    * ``server_error_rate_percent``: default 5.
    * ``model_latency_p90``: default 10 seconds (the container's time per request; SD
      inpainting at 25 steps is the slowest request).
    * ``model_loading_wait_p90``: default 20 seconds (time a request waited for its model to be
      downloaded and loaded).
    * ``cache_hit_ratio_min``: default 0.8 (ratio of requests whose model was already loaded).
    * ``gpu_memory_utilization_percent``: default 90 (GPU multi-model endpoints run on
      single-GPU instance types, so the metric is the percentage of the one GPU's memory).
    * ``disk_utilization_percent``: default 80 (archives are cached on the instance's disk).
    * ``max_instance_count``: default the endpoint's auto-scaling ``max_capacity``, also when
      ``auto_scale_instance_count`` is called after the alarms are made (the alarm is added
      then); without either, no ``InstancesAtMax`` alarm. ``instances_at_max_for``: default 30
      minutes (1-minute periods).
    * ``period``: default 5 minutes; ``evaluation_periods``: default 3 (every alarm but
      ``InstancesAtMax`` looks at the last ``evaluation_periods`` periods).
    * ``alarm_name_prefix``: default the endpoint name; alarm names are ``<prefix>-<what>``.
    * ``use_for_rollback``: default ``True``: the 5xx rate and latency alarms become the owned
      endpoint's rollback alarms (``MultiModelEndpoint.add_rollback_alarms``), which a
      ``deployment`` watches while it bakes.

    The percentages, the ratio and ``max_instance_count`` may be tokens (a ``CfnParameter``'s
    ``value_as_number``): checked when they resolve to a number at synth, else by CloudWatch at
    deploy. Times are ``Duration`` literals.

    Attributes: ``alarms`` (construct id -> ``cloudwatch.Alarm``), ``endpoint``, ``topic``,
    ``rollback_alarms`` (the 5xx rate and latency alarms that are made: what an endpoint's
    deployment rolls back on, see ``EndpointDeployment``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint: MultiModelEndpointBase,
        topic: sns.ITopic | None = None,
        server_error_rate_percent: float | None = 5,
        model_latency_p90: Duration | None = Duration.seconds(10),
        model_loading_wait_p90: Duration | None = Duration.seconds(20),
        cache_hit_ratio_min: float | None = 0.8,
        gpu_memory_utilization_percent: float | None = 90,
        disk_utilization_percent: float | None = 80,
        max_instance_count: int | None = None,
        instances_at_max_for: Duration | None = Duration.minutes(30),
        period: Duration = Duration.minutes(5),
        evaluation_periods: int = 3,
        alarm_name_prefix: str | None = None,
        use_for_rollback: bool = True,
    ) -> None:
        props = dict(server_error_rate_percent=server_error_rate_percent, model_latency_p90=model_latency_p90,
                     model_loading_wait_p90=model_loading_wait_p90, cache_hit_ratio_min=cache_hit_ratio_min,
                     gpu_memory_utilization_percent=gpu_memory_utilization_percent,
                     disk_utilization_percent=disk_utilization_percent, max_instance_count=max_instance_count,
                     instances_at_max_for=instances_at_max_for, period=period, evaluation_periods=evaluation_periods)
        _check_props(construct_id, endpoint, props)
        super().__init__(scope, construct_id)
        for key, _low, _high, rule, requirement in _NUMBER_PROPS:
            if props[key] is not None:
                validate_when_resolved(self, key, props[key], rule, requirement)
        if max_instance_count is not None:
            validate_when_resolved(self, "max_instance_count", max_instance_count, lambda x: x >= 1, ">= 1")
        self.endpoint = endpoint
        self.topic = topic
        self._prefix = alarm_name_prefix or endpoint.endpoint_name
        self._actions: tuple[list, list] = ([], [])
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for spec in _specs(endpoint, props):
            self._add(spec)
        if max_instance_count is None and props["instances_at_max_for"] is not None:
            minutes = int(props["instances_at_max_for"].to_minutes())
            endpoint.on_auto_scaling(lambda scaling: self._add(_at_max(endpoint, scaling.max_capacity, minutes)))
        if topic is not None:
            self.add_alarm_action(cw_actions.SnsAction(topic))
            self.add_ok_action(cw_actions.SnsAction(topic))
        if use_for_rollback and hasattr(endpoint, "add_rollback_alarms"):
            endpoint.add_rollback_alarms(*self.rollback_alarms)

    def _add(self, spec: _Alarm | None) -> None:
        if spec is None or spec.construct_id in self.alarms:
            return
        alarm = cloudwatch.Alarm(
            self, spec.construct_id, metric=spec.metric, threshold=spec.threshold,
            comparison_operator=spec.comparison, treat_missing_data=spec.missing_data,
            evaluation_periods=spec.evaluation_periods, datapoints_to_alarm=spec.datapoints_to_alarm,
            alarm_name=f"{self._prefix}-{spec.name_suffix}", alarm_description=spec.description)
        alarm.add_alarm_action(*self._actions[0])
        alarm.add_ok_action(*self._actions[1])
        self.alarms[spec.construct_id] = alarm
        for listener in getattr(self, "_listeners", []):
            listener(alarm)

    def on_alarm_added(self, listener) -> None:
        """Call ``listener(alarm)`` for every alarm, made now or later (an ``InstancesAtMax`` alarm
        that waits for the endpoint's auto scaling)."""
        self._listeners = [*getattr(self, "_listeners", []), listener]
        for alarm in self.alarms.values():
            listener(alarm)

    def add_alarm_action(self, *actions: cloudwatch.IAlarmAction) -> None:
        """Run ``actions`` when any of the alarms (also one added later) goes to ALARM."""
        self._actions[0].extend(actions)
        for alarm in self.alarms.values():
            alarm.add_alarm_action(*actions)

    def add_ok_action(self, *actions: cloudwatch.IAlarmAction) -> None:
        """Run ``actions`` when any of the alarms (also one added later) returns to OK."""
        self._actions[1].extend(actions)
        for alarm in self.alarms.values():
            alarm.add_ok_action(*actions)

    @property
    def rollback_alarms(self) -> list[cloudwatch.Alarm]:
        """The alarms a deployment rolls back on: the 5xx error rate and the latency p90 (those made)."""
        return [self.alarms[k] for k in ("ServerErrorRate", "ModelLatencyP90") if k in self.alarms]

    @property
    def alarm_list(self) -> list[cloudwatch.Alarm]:
        """The alarms in the order of the table above (for an ``AlarmStatusWidget``)."""
        return list(self.alarms.values())


def _specs(endpoint: MultiModelEndpointBase, props: dict) -> list[_Alarm]:
    """The alarms the props ask for, in the order of the class table."""
    period, periods = props["period"], props["evaluation_periods"]
    at_max_for = props["instances_at_max_for"]
    minutes = int(at_max_for.to_minutes()) if at_max_for is not None else None
    max_count = props["max_instance_count"]
    if max_count is None and endpoint.scalable_instance_count is not None:
        max_count = endpoint.scalable_instance_count.max_capacity
    specs = [
        _server_errors(endpoint, props["server_error_rate_percent"], period, periods),
        _latency(endpoint, props["model_latency_p90"], period, periods),
        _loading_wait(endpoint, props["model_loading_wait_p90"], period, periods),
        _cache_hits(endpoint, props["cache_hit_ratio_min"], period, periods),
        _gpu_memory(endpoint, props["gpu_memory_utilization_percent"], period, periods),
        _disk(endpoint, props["disk_utilization_percent"], period, periods),
        _at_max(endpoint, max_count, minutes),
    ]
    return [s for s in specs if s is not None]


def _server_errors(endpoint, percent, period, periods) -> _Alarm | None:
    if percent is None:
        return None
    ratio = endpoint.metric_invocation_5xx_errors(statistic="Average", period=period)
    if Token.is_unresolved(percent):  # a parameter cannot be divided in the template: compare percentages
        metric, threshold = cloudwatch.MathExpression(expression="100 * ratio", using_metrics={"ratio": ratio},
                                                      label="5xx % of requests", period=period), percent
    else:
        metric, threshold = ratio, percent / 100
    return _Alarm(
        "ServerErrorRate", "5xx-error-rate", metric, threshold, _GT, _NOT_BREACHING, periods, min(2, periods),
        f"More than {shown(percent)} % of requests end in a 5xx (the container failed: a model failed to load, "
        "ran out of GPU memory or raised). Check the endpoint's log group for the failing model first.")


def _latency(endpoint, limit: Duration | None, period, periods) -> _Alarm | None:
    return _p90_over(
        "ModelLatencyP90", "model-latency-p90", endpoint.metric_model_latency, limit, period, periods,
        f"90 % of requests should take the container under {{limit}}; they have not for {periods} periods in a "
        "row. Look at GPU utilization and instance count (saturated?) and at which model is slow.")


def _loading_wait(endpoint, limit: Duration | None, period, periods) -> _Alarm | None:
    return _p90_over(
        "ModelLoadingWaitP90", "model-loading-wait-p90", endpoint.metric_model_loading_wait_time, limit, period,
        periods,
        f"Requests waited more than {{limit}} for their model to be downloaded and loaded, in each of {periods} "
        "periods: cold starts keep hurting users. Check the cache hit ratio, loaded models per instance and "
        "GPU memory (models evicted and reloaded?).")


def _p90_over(construct_id: str, suffix: str, metric, limit: Duration | None, period, periods,
              description: str) -> _Alarm | None:
    """p90 of a microseconds metric above ``limit`` in every evaluated period."""
    if limit is None:
        return None
    return _Alarm(construct_id, suffix, metric(statistic="p90", period=period), _microseconds(limit), _GT,
                  _NOT_BREACHING, periods, periods, description.format(limit=limit.to_human_string()))


def _cache_hits(endpoint, ratio: float | None, period, periods) -> _Alarm | None:
    if ratio is None:
        return None
    return _Alarm(
        "CacheHitRatioLow", "cache-hit-ratio-low",
        endpoint.metric_model_cache_hit(statistic="Average", period=period), ratio, _LT,
        _NOT_BREACHING, periods, periods,
        f"Fewer than {shown(ratio, '{:.0%}', 'the configured share')} of requests found their model loaded, in "
        f"each of {periods} periods: the "
        "instances are thrashing (more hot models than fit in memory). Add instances or a larger instance type.")


def _gpu_memory(endpoint, percent: float | None, period, periods) -> _Alarm | None:
    if percent is None:
        return None
    return _Alarm(
        "GpuMemoryHigh", "gpu-memory-high",
        endpoint.metric_gpu_memory_utilization(statistic="Maximum", period=period), percent, _GT,
        _IGNORE, periods, periods,
        f"An instance uses more than {shown(percent)} % of its GPU's memory: the next model load will evict a "
        "loaded model.")


def _disk(endpoint, percent: float | None, period, periods) -> _Alarm | None:
    if percent is None:
        return None
    return _Alarm(
        "DiskHigh", "disk-high",
        endpoint.metric_disk_utilization(statistic="Maximum", period=period), percent, _GT,
        _IGNORE, periods, periods,
        f"An instance's disk is more than {shown(percent)} % full: SageMaker keeps the downloaded archives there; "
        "new downloads may fail or evict.")


def _at_max(endpoint, max_count: int | None, minutes: int | None) -> _Alarm | None:
    if max_count is None or minutes is None:
        return None
    maximum = "its maximum number of instances" if Token.is_unresolved(max_count) else \
        f"its maximum of {max_count} instance(s)"
    return _Alarm(
        "InstancesAtMax", "instances-at-max",
        endpoint.metric_instance_count(period=Duration.minutes(1)), max_count, _GTE,
        _NOT_BREACHING, minutes, minutes,
        f"The endpoint has run at {maximum} for {minutes} minutes: "
        "autoscaling cannot add capacity. Raise the maximum or look for a load spike.")


def _microseconds(duration: Duration) -> float:
    return duration.to_milliseconds() * 1000


#: The number props: (name, low, high, rule, requirement), each in (low, high].
_NUMBER_PROPS = [(key, low, high, range_rule(low, high), f"in ({low:g}, {high:g}]") for key, low, high in (
    ("server_error_rate_percent", 0, 100), ("cache_hit_ratio_min", 0, 1),
    ("gpu_memory_utilization_percent", 0, 100), ("disk_utilization_percent", 0, 100))]


def _check_props(construct_id: str, endpoint: MultiModelEndpointBase, props: dict) -> None:
    """Every invalid prop of an EndpointAlarms, named, in one ``ValueError`` (tokens: when resolved)."""
    errors = []
    for key, _low, _high, rule, requirement in _NUMBER_PROPS:
        if props[key] is not None:
            error = number_error(key, props[key], rule, requirement)
            if error:
                errors.append(error)
    for key in ("model_latency_p90", "model_loading_wait_p90"):
        if props[key] is not None and props[key].to_milliseconds() <= 0:
            errors.append(f"{key} must be longer than 0 ms")
    errors += _window_errors(props)
    count = props["max_instance_count"]
    if count is not None and not Token.is_unresolved(count) and count < 1:
        errors.append(f"max_instance_count must be >= 1, got {count}")
    if errors:
        raise ValueError(f"EndpointAlarms {construct_id}: " + "; ".join(errors))


def _window_errors(props: dict) -> list[str]:
    errors = []
    period, periods, at_max = props["period"], props["evaluation_periods"], props["instances_at_max_for"]
    if period.to_seconds() < 60 or period.to_seconds() % 60:
        errors.append(f"period must be a whole number of minutes, got {period.to_human_string()}")
    if periods < 1:
        errors.append(f"evaluation_periods must be >= 1, got {periods}")
    elif period.to_seconds() * periods > _MAX_EVALUATION_RANGE.to_seconds():
        errors.append("period x evaluation_periods must not exceed one day")
    if at_max is not None and (not 60 <= at_max.to_seconds() <= _MAX_EVALUATION_RANGE.to_seconds()
                               or at_max.to_seconds() % 60):
        errors.append(f"instances_at_max_for must be whole minutes between 1 minute and 1 day, "
                      f"got {at_max.to_human_string()}")
    return errors
