"""``ModelMetrics``: per-model metrics of a multi-model endpoint, from its containers' request lines.

SageMaker's own metrics of a multi-model endpoint are per endpoint and variant: they mix every
model's requests. The serving container writes one JSON line per request to the endpoint's log
group (the format: :mod:`mme_constructs.request_lines`); metric filters on that log group turn the
lines into CloudWatch metrics with a ``Model`` dimension, and saved Logs Insights queries answer
"which model is slow, which one fails, what is loaded and unloaded".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import Duration, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

from mme_constructs.endpoint_base import MultiModelEndpointBase
from mme_constructs.request_lines import INSIGHTS_QUERIES, LINE_METRICS, MODEL_DIMENSION, MODEL_FIELD, STAGES

_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_NAMESPACE = re.compile(r"^[^:$]{1,255}$")
_QUERY_NAME = re.compile(r"^[^*?\\]{1,255}$")


class ModelMetrics(Construct):
    """Metric filters, per-model ``metric_*`` helpers and saved Logs Insights queries for the models of
    one multi-model endpoint.

    Props (keyword):

    * ``endpoint``: a :class:`MultiModelEndpoint` (its ``log_group`` is used) or an import, then
      with ``log_group``.
    * ``models``: the model names the dashboard rows and alarms are for (the ``model`` field of the
      lines: the archives' model names, ``sam``); the metric filters count every model's lines.
    * ``log_group``: default the endpoint's own log group (``MultiModelEndpoint.log_group``);
      required for an imported endpoint.
    * ``namespace``: the CloudWatch namespace of the metrics, default ``MME/<endpoint name>``
      (a metric filter's dimensions come from the line only, so the endpoint is told apart by the
      namespace).
    * ``saved_queries``: default ``True``: Logs Insights queries saved with the stack, named
      ``<query_prefix>/<query>``; ``query_prefix`` default ``<endpoint name>``.

    One ``AWS::Logs::MetricFilter`` per metric of ``mme_constructs.request_lines.LINE_METRICS``
    (13), each with the dimension ``Model``. Attributes: ``endpoint``, ``log_group``, ``models``,
    ``namespace``, ``metric_filters`` (key -> ``logs.MetricFilter``), ``queries`` (name ->
    ``logs.CfnQueryDefinition``).
    """

    def __init__(self, scope: Construct, construct_id: str, *, endpoint: MultiModelEndpointBase,
                 models: Sequence[str], log_group: logs.ILogGroup | None = None, namespace: str | None = None,
                 saved_queries: bool = True, query_prefix: str | None = None) -> None:
        group = log_group or getattr(endpoint, "log_group", None)
        _check_props(construct_id, models, group, namespace, query_prefix)
        super().__init__(scope, construct_id)
        self.endpoint = endpoint
        self.log_group = group
        self.models = tuple(models)
        self.namespace = namespace or f"MME/{endpoint.endpoint_name}"
        self.metric_filters = {key: logs.MetricFilter(
            self, f"{metric.metric_name}Filter", log_group=group, metric_namespace=self.namespace,
            metric_name=metric.metric_name, filter_pattern=logs.FilterPattern.literal(metric.filter_pattern),
            metric_value=metric.value, unit=getattr(cloudwatch.Unit, metric.unit),
            dimensions={MODEL_DIMENSION: MODEL_FIELD})
            for key, metric in LINE_METRICS.items()}
        prefix = query_prefix or endpoint.endpoint_name
        # CfnQueryDefinition: the queries are whole texts (logs.QueryDefinition builds one from parts)
        self.queries: dict[str, logs.CfnQueryDefinition] = {}
        if saved_queries:
            for name, query in INSIGHTS_QUERIES.items():
                self.queries[name] = logs.CfnQueryDefinition(
                    self, f"Query-{name}", name=f"{prefix}/{name}", query_string=query,
                    log_group_names=[group.log_group_name])

    # --- metrics ---------------------------------------------------------------------------

    def metric(self, key: str, model: str, **props) -> cloudwatch.Metric:
        """The metric ``key`` of ``LINE_METRICS`` for ``model``; ``props`` are
        ``cloudwatch.MetricOptions`` keywords (``statistic``, ``period``, ``label``, ...)."""
        line = LINE_METRICS[key]
        options = {"statistic": line.statistic, "period": Duration.minutes(5), "unit": getattr(cloudwatch.Unit, line.unit),
                   **props}
        return cloudwatch.Metric(namespace=self.namespace, metric_name=line.metric_name,
                                 dimensions_map={MODEL_DIMENSION: model, **options.pop("dimensions_map", {})},
                                 **options)

    def metric_requests(self, model: str, **props) -> cloudwatch.Metric:
        """Requests the model's handler answered (served, refused or failed), Sum."""
        return self.metric("requests", model, **props)

    def metric_client_errors(self, model: str, **props) -> cloudwatch.Metric:
        """Requests refused with a 4xx, Sum."""
        return self.metric("client_errors", model, **props)

    def metric_server_errors(self, model: str, **props) -> cloudwatch.Metric:
        """Requests that failed with a 5xx, Sum."""
        return self.metric("server_errors", model, **props)

    def metric_latency(self, model: str, **props) -> cloudwatch.Metric:
        """Handler time of served requests (ms), p90 unless ``statistic`` says otherwise."""
        return self.metric("latency", model, **props)

    def metric_stage_time(self, model: str, stage: str, **props) -> cloudwatch.Metric:
        """Time of one stage (``decode``, ``preprocess``, ``inference``, ``postprocess``, ``encode``) of
        served requests (ms), Average."""
        if stage not in STAGES:
            raise ValueError(f"{self.node.path}: metric_stage_time: stage {stage!r} is not one of {', '.join(STAGES)}")
        return self.metric(f"{stage}_time", model, **props)

    def metric_input_megapixels(self, model: str, **props) -> cloudwatch.Metric:
        """Megapixels of the input images, Average."""
        return self.metric("input_megapixels", model, **props)

    def metric_cache_hit(self, model: str, **props) -> cloudwatch.Metric:
        """Share of the requests that reached the model which its own cache answered (SAM's image
        embeddings), Average."""
        return self.metric("cache_hit", model, **props)

    def metric_loads(self, model: str, **props) -> cloudwatch.Metric:
        """Times the model was loaded into a worker, Sum: a model loaded again and again is being
        unloaded for others (thrashing)."""
        return self.metric("loads", model, **props)

    def metric_load_time(self, model: str, **props) -> cloudwatch.Metric:
        """Seconds the handler took to load the model, Average."""
        return self.metric("load_time", model, **props)

    def metric_server_error_rate(self, model: str, *, period: Duration = Duration.minutes(5),
                                 min_requests: int = 1) -> cloudwatch.MathExpression:
        """5xx as % of the model's requests in each period; 0 in periods with fewer than
        ``min_requests`` requests (a single failure of three requests is not a 33% error rate)."""
        return cloudwatch.MathExpression(
            expression=f"IF(requests >= {min_requests}, 100 * FILL(errors, 0) / requests, 0)",
            using_metrics={"requests": self.metric_requests(model, period=period),
                           "errors": self.metric_server_errors(model, period=period)},
            label=f"{model}: 5xx % of requests", period=period)

    # --- dashboard ----------------------------------------------------------------------------

    def dashboard_rows(self, period: Duration = Duration.minutes(1)) -> list[list[cloudwatch.IWidget]]:
        """A header and one row per model: requests and errors, latency p50/p90/p99, the stages, and
        the cache hit ratio (a model with a cache) or the input size."""
        header = cloudwatch.TextWidget(markdown=(
            "## Per model\nFrom the containers' request lines (one per request, in the endpoint's log group; "
            f"namespace `{self.namespace}`, dimension `Model`). Handler times in ms; saved Logs Insights "
            "queries list the slowest requests and the errors with their messages."), width=24, height=2)
        return [[header], *([self._requests(m, period), self._latency(m, period), self._stages(m, period),
                             self._fourth(m, period)] for m in self.models)]

    def _requests(self, model: str, period: Duration) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=f"{model}: requests, errors and loads", width=6,
            left=[self.metric_requests(model, period=period, label="requests")],
            right=[self.metric_client_errors(model, period=period, label="4xx"),
                   self.metric_server_errors(model, period=period, label="5xx"),
                   self.metric_loads(model, period=period, label="loads")],
            left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
            right_y_axis=cloudwatch.YAxisProps(min=0, show_units=False))

    def _latency(self, model: str, period: Duration) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=f"{model}: latency (ms)", width=6,
            left=[self.metric_latency(model, statistic=s, period=period, label=s) for s in ("p50", "p90", "p99")],
            left_y_axis=cloudwatch.YAxisProps(label="ms", min=0, show_units=False))

    def _stages(self, model: str, period: Duration) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=f"{model}: where the time goes (ms, average)", width=6, stacked=True,
            left=[self.metric_stage_time(model, s, period=period, label=s) for s in STAGES],
            left_y_axis=cloudwatch.YAxisProps(label="ms", min=0, show_units=False))

    def _fourth(self, model: str, period: Duration) -> cloudwatch.GraphWidget:
        return cloudwatch.GraphWidget(
            title=f"{model}: cache hit ratio and input size", width=6,
            left=[self.metric_cache_hit(model, period=period, label="cache hit ratio (models with a cache)")],
            right=[self.metric_input_megapixels(model, period=period, label="input megapixels")],
            left_y_axis=cloudwatch.YAxisProps(min=0, max=1, show_units=False),
            right_y_axis=cloudwatch.YAxisProps(label="MP", min=0, show_units=False))


def _check_props(construct_id: str, models: Sequence[str], group, namespace: str | None,
                 query_prefix: str | None) -> None:
    errors = []
    if not models:
        errors.append("models: name at least one model")
    errors += [f"models: {m!r} is not a model name (letters, digits, '_' and '-')" for m in models
               if not isinstance(m, str) or not _MODEL.match(m)]
    if len(set(models)) != len(models):
        errors.append(f"models: a model is named twice in {list(models)}")
    if group is None:
        errors.append("log_group: required for an endpoint without its own log group (an import)")
    if namespace is not None and not Token.is_unresolved(namespace) and (
            not _NAMESPACE.match(namespace) or namespace.startswith("AWS/")):
        errors.append(f"namespace {namespace!r}: 1-255 characters, no ':' or '$', not under AWS/")
    if query_prefix is not None and not Token.is_unresolved(query_prefix) and not _QUERY_NAME.match(query_prefix):
        errors.append(f"query_prefix {query_prefix!r}: 1-255 characters without '*', '?' or '\\'")
    if errors:
        raise ValueError(f"ModelMetrics {construct_id}: " + "; ".join(errors))
