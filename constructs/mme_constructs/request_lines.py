"""The request (and load) lines a serving container writes, as the per-model metrics read them: the metric filters
(CloudWatch Logs filter syntax), the Logs Insights queries, and the line format they expect.

A container's handlers write one JSON log event per request to the endpoint's log group (this
project's handlers: ``model_sources/common/mme_serving/request_log.py``; any other TorchServe
handler may write the same format). Format version 1, the fields these definitions use:

``event``     ``"mme.request"`` (what every filter matches first)
``model``     the model's name (``sam``): the ``Model`` dimension
``outcome``   ``"ok"``, ``"4xx"`` or ``"5xx"``; ``error`` / ``message``: the error code and text
``ms``        ``total`` and the stages ``decode``, ``preprocess``, ``inference``, ``postprocess``,
              ``encode`` (milliseconds)
``input_mpx`` megapixels of the input image (``null`` when there was none)
``cache_hit`` ``1`` / ``0`` when the model has a cache (SAM's image embeddings), else ``null``

and one load line per model load: ``{"event":"mme.load","v":1,"model":"sam","device":"cuda","seconds":1.8}``.

Filter patterns use only the JSON syntax's comparisons of quoted strings and numbers, at most two
joined by ``&&`` (what the evaluator the tests run them through supports); a comparison with a
missing or ``null`` field does not match, so a line without a value adds no datapoint to that
metric. A served line always has ``ms.total`` and every stage (0 for a stage the model does not
have), so the latency and stage metrics need no test of their value. Metric filters with dimensions take no default value: a period with no
matching line has no datapoint, which the alarms treat as not breaching.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ``event`` of a request line, and the format version the definitions below read.
REQUEST_EVENT = "mme.request"
#: ``event`` of the line a handler writes when its model is loaded: ``model``, ``device``, ``seconds``.
LOAD_EVENT = "mme.load"
FORMAT_VERSION = 1
#: The stages of ``ms``, in the order a request goes through them.
STAGES = ("decode", "preprocess", "inference", "postprocess", "encode")
#: The dimension every per-model metric has, and the field it is read from.
MODEL_DIMENSION = "Model"
MODEL_FIELD = "$.model"

_IS_REQUEST = f'$.event = "{REQUEST_EVENT}"'
_OK = f'{_IS_REQUEST} && $.outcome = "ok"'


@dataclass(frozen=True)
class LineMetric:
    """One metric a metric filter makes from request lines: its name, the lines it counts or reads
    (``filter_pattern``), the value (``"1"`` counts lines, ``$.field`` reads a number), the unit
    (the name of a ``cloudwatch.Unit`` member: this module does not start aws-cdk-lib, so the
    ``mme`` CLI reads it without Node) and the statistic its helper uses by default."""

    metric_name: str
    filter_pattern: str
    value: str
    unit: str
    statistic: str
    description: str


def _pattern(condition: str) -> str:
    return "{ " + condition + " }"


def _stage(stage: str) -> LineMetric:
    return LineMetric(f"{stage.capitalize()}Time", _pattern(_OK), f"$.ms.{stage}", "MILLISECONDS",
                      "Average", f"Time in the {stage} stage of served requests (0 when the model has none)")


#: key -> metric; the keys name the ``metric_*`` helpers of ``ModelMetrics``.
LINE_METRICS: dict[str, LineMetric] = {
    "requests": LineMetric("Requests", _pattern(_IS_REQUEST), "1", "COUNT", "Sum",
                           "Requests the model's handler answered (served, refused or failed)"),
    "client_errors": LineMetric("ClientErrors", _pattern(f'{_IS_REQUEST} && $.outcome = "4xx"'), "1",
                                "COUNT", "Sum", "Requests refused with a 4xx (bad input)"),
    "server_errors": LineMetric("ServerErrors", _pattern(f'{_IS_REQUEST} && $.outcome = "5xx"'), "1",
                                "COUNT", "Sum", "Requests that failed with a 5xx"),
    "latency": LineMetric("Latency", _pattern(_OK), "$.ms.total",
                          "MILLISECONDS", "p90", "Handler time of served requests, batch start to response"),
    **{f"{stage}_time": _stage(stage) for stage in STAGES},
    "input_megapixels": LineMetric("InputMegapixels", _pattern(f"{_IS_REQUEST} && $.input_mpx > 0"), "$.input_mpx",
                                   "NONE", "Average", "Megapixels of the input images"),
    "loads": LineMetric("Loads", _pattern(f'$.event = "{LOAD_EVENT}"'), "1", "COUNT", "Sum",
                        "Times the model was loaded into a worker (after an unload, a new instance, a restart)"),
    "load_time": LineMetric("LoadTime", _pattern(f'$.event = "{LOAD_EVENT}"'), "$.seconds", "SECONDS", "Average",
                            "Seconds the handler took to load the model (after SageMaker's download and unpack)"),
    "cache_hit": LineMetric("CacheHit", _pattern(f"{_IS_REQUEST} && $.cache_hit >= 0"), "$.cache_hit",
                            "NONE", "Average",
                            "1 when the model's cache held the request's entry (SAM: the image embedding); "
                            "requests that reached the model"),
}


# --- CloudWatch Logs Insights -------------------------------------------------------------------

#: Saved queries: name suffix -> query. TorchServe's own lines (loads, unloads) are text events of
#: its ``ModelManager`` and worker threads.
INSIGHTS_QUERIES: dict[str, str] = {
    "slowest-requests": "\n".join([
        "fields @timestamp, model, operation, ms.total, ms.decode, ms.preprocess, ms.inference, ms.postprocess, "
        "ms.encode, input_mpx, output_mpx, cache_hit, steps, batch",
        f'| filter event = "{REQUEST_EVENT}" and outcome = "ok"',
        "| sort ms.total desc",
        "| limit 100",
    ]),
    "latency-by-model": "\n".join([
        f'filter event = "{REQUEST_EVENT}" and outcome = "ok"',
        "| stats count(*) as requests, pct(ms.total, 50) as p50_ms, pct(ms.total, 90) as p90_ms, "
        "pct(ms.total, 99) as p99_ms, max(ms.total) as max_ms, avg(ms.inference) as inference_ms by model",
        "| sort p90_ms desc",
    ]),
    "errors-by-model": "\n".join([
        f'filter event = "{REQUEST_EVENT}" and outcome != "ok"',
        "| stats count(*) as requests, latest(message) as last_message, latest(@timestamp) as last_seen "
        "by model, outcome, error",
        "| sort requests desc",
    ]),
    "model-loads": "\n".join([
        f'filter event = "{LOAD_EVENT}"',
        "| stats count(*) as loads, avg(seconds) as avg_load_s, max(seconds) as max_load_s by bin(15m), model",
    ]),
    "loads-and-unloads": "\n".join([
        "fields @timestamp, @message",
        r"| filter @message like /ModelManager - Model \S+ (loaded|unregistered)\./",
        r"| parse @message /ModelManager - Model (?<archive>\S+) (?<action>loaded|unregistered)\./",
        "| stats count(*) as events by bin(15m), action",
    ]),
}
