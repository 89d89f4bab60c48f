"""CloudWatch metrics of a SageMaker endpoint variant, as AWS documents them.

Sources (``DOCUMENTED_METRICS`` lists every name they give, per namespace): "Amazon SageMaker AI
metrics in Amazon CloudWatch" (endpoint invocation metrics, multi-model endpoint model loading and
instance metrics, endpoint instance metrics) and "CloudWatch Metrics for Multi-Model Endpoint
Deployments" (CPU and GPU backed multi-model endpoints). Every metric has the dimensions
``EndpointName`` and ``VariantName``. Invocation and model-loading metrics are in
``AWS/SageMaker``; per-instance metrics (utilization, ``LoadedModelCount``) in
``/aws/sagemaker/Endpoints``. Utilization is summed over an instance's CPUs/GPUs (a 4-GPU
instance reports ``GPUUtilization`` up to 400 %); GPU multi-model endpoints run on single-GPU
types, so theirs stays within 0-100 %.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

INVOCATION_NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"


@dataclass(frozen=True)
class EndpointMetric:
    """One documented metric: name, namespace, unit and the statistic the helper uses by default."""

    metric_name: str
    namespace: str
    unit: cloudwatch.Unit
    statistic: str


def _invocation(name: str, unit: cloudwatch.Unit, statistic: str) -> EndpointMetric:
    return EndpointMetric(name, INVOCATION_NAMESPACE, unit, statistic)


def _instance(name: str, unit: cloudwatch.Unit = cloudwatch.Unit.PERCENT) -> EndpointMetric:
    return EndpointMetric(name, INSTANCE_NAMESPACE, unit, "Average")


#: Every endpoint metric name AWS documents, per namespace: what dashboards and alarms may use.
#: https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html (sections "SageMaker AI
#: endpoint invocation metrics", "SageMaker AI multi-model endpoint metrics", "SageMaker AI endpoint
#: metrics") and https://docs.aws.amazon.com/sagemaker/latest/dg/multi-model-endpoint-cloudwatch-metrics.html
#: ("CloudWatch metrics for GPU backed multi-model endpoints"). ``ModelSetupTime`` is documented for
#: serverless endpoints only and is listed so the list is complete, not because an MME emits it.
DOCUMENTED_METRICS: dict[str, frozenset[str]] = {
    INVOCATION_NAMESPACE: frozenset({
        "Invocations", "InvocationsPerInstance", "Invocation4XXErrors", "Invocation5XXErrors",
        "ModelLatency", "OverheadLatency", "ModelSetupTime",
        "ModelLoadingWaitTime", "ModelDownloadingTime", "ModelLoadingTime", "ModelUnloadingTime", "ModelCacheHit",
    }),
    INSTANCE_NAMESPACE: frozenset({
        "LoadedModelCount", "CPUUtilization", "MemoryUtilization", "DiskUtilization",
        "GPUUtilization", "GPUMemoryUtilization",
    }),
}

_NONE, _US = cloudwatch.Unit.NONE, cloudwatch.Unit.MICROSECONDS

#: helper name (``metric_<key>``) -> metric
ENDPOINT_METRICS: dict[str, EndpointMetric] = {
    # endpoint invocation metrics
    "invocations": _invocation("Invocations", _NONE, "Sum"),
    "invocations_per_instance": _invocation("InvocationsPerInstance", _NONE, "Sum"),
    "invocation_4xx_errors": _invocation("Invocation4XXErrors", _NONE, "Sum"),
    "invocation_5xx_errors": _invocation("Invocation5XXErrors", _NONE, "Sum"),
    "model_latency": _invocation("ModelLatency", _US, "Average"),
    "overhead_latency": _invocation("OverheadLatency", _US, "Average"),
    # multi-model endpoint model loading metrics
    "model_loading_wait_time": _invocation("ModelLoadingWaitTime", _US, "Average"),
    "model_downloading_time": _invocation("ModelDownloadingTime", _US, "Average"),
    "model_loading_time": _invocation("ModelLoadingTime", _US, "Average"),
    "model_unloading_time": _invocation("ModelUnloadingTime", _US, "Average"),
    "model_cache_hit": _invocation("ModelCacheHit", _NONE, "Average"),  # Average: the hit ratio
    # instance metrics
    "loaded_model_count": _instance("LoadedModelCount", _NONE),
    "cpu_utilization": _instance("CPUUtilization"),
    "memory_utilization": _instance("MemoryUtilization"),
    "disk_utilization": _instance("DiskUtilization"),
    "gpu_utilization": _instance("GPUUtilization"),
    "gpu_memory_utilization": _instance("GPUMemoryUtilization"),
}


def endpoint_metric(endpoint_name: str, variant_name: str, metric_name: str, *,
                    namespace: str = INVOCATION_NAMESPACE, **props) -> cloudwatch.Metric:
    """A ``cloudwatch.Metric`` of one endpoint variant. ``props`` are ``cloudwatch.MetricOptions``
    (``statistic``, ``period``, ``unit``, ``label``, ...); ``dimensions_map`` adds dimensions."""
    dimensions = {"EndpointName": endpoint_name, "VariantName": variant_name, **(props.pop("dimensions_map", None) or {})}
    props.setdefault("statistic", "Sum")
    return cloudwatch.Metric(namespace=namespace, metric_name=metric_name, dimensions_map=dimensions, **props)


def documented_metric(endpoint_name: str, variant_name: str, key: str, **props) -> cloudwatch.Metric:
    """The documented metric ``ENDPOINT_METRICS[key]`` with its unit and default statistic."""
    spec = ENDPOINT_METRICS[key]
    props.setdefault("statistic", spec.statistic)
    props.setdefault("unit", spec.unit)
    return endpoint_metric(endpoint_name, variant_name, spec.metric_name, namespace=spec.namespace, **props)


def instance_count(endpoint_name: str, variant_name: str, *, period: Duration = Duration.minutes(1),
                   label: str = "instances in service") -> cloudwatch.MathExpression:
    """Instances of the variant that report metrics: the sample count of ``CPUUtilization``
    divided by the minutes in the period.

    SageMaker publishes no instance-count metric for real-time endpoints. At the default
    publishing frequency every instance reports its ``/aws/sagemaker/Endpoints`` metrics once a
    minute (AWS documents the per-instance,
    per-minute datapoints for ``LoadedModelCount``: its Average over one minute is the count per
    instance, its Sum the count over all instances), whether or not requests arrive, so the
    samples per minute count the instances, idle or busy. ``PERIOD()`` keeps the figure right
    when a dashboard widens the period for a long time range.
    """
    samples = documented_metric(endpoint_name, variant_name, "cpu_utilization", statistic="SampleCount",
                                period=period)
    return cloudwatch.MathExpression(expression="samples / (PERIOD(samples) / 60)",
                                     using_metrics={"samples": samples}, label=label, period=period)
