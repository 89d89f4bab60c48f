"""Per-model figures from the handlers' request lines in a local server's output: what
``mme local status`` shows, computed as the endpoint's per-model metrics are.

The lines are the JSON request lines of ``model_sources/common/mme_serving/request_log.py``; the
endpoint turns them into CloudWatch metrics with the metric filters of
:mod:`mme_constructs.request_lines`. Here the same lines give the same figures: requests (every
line of a model), 4xx and 5xx (``outcome``), latency percentiles of the served requests
(``ms.total`` of the ``ok`` lines), the mean time of each stage, the cache hit ratio and the mean
input size (tests/client/test_request_lines.py checks them against the filters' own matches).
Percentiles are nearest-rank; CloudWatch's are estimates from its own sketch, close but not equal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from mme_constructs.request_lines import LOAD_EVENT, REQUEST_EVENT, STAGES

PERCENTILES = (50, 90, 99)


def request_lines(text: str, event: str = REQUEST_EVENT) -> list[dict]:
    """The lines of ``event`` (request lines by default, or ``LOAD_EVENT``) in ``text`` (a server's
    console output), parsed; other lines are skipped."""
    return _events(text, (event,))[event]


def from_output(text: str) -> dict[str, dict]:
    """:func:`per_model` of the request and load lines in a server's console output (read once)."""
    found = _events(text, (REQUEST_EVENT, LOAD_EVENT))
    return per_model(found[REQUEST_EVENT], found[LOAD_EVENT])


def _events(text: str, events: tuple[str, ...]) -> dict[str, list[dict]]:
    """``{event: [parsed lines]}`` for each of ``events``, in the order they stand in ``text``."""
    prefixes = tuple('{"event":"' + event + '"' for event in events)
    found: dict[str, list[dict]] = {event: [] for event in events}
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith(prefixes):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") in found and isinstance(record.get("model"), str):
            found[record["event"]].append(record)
    return found


def per_model(lines: Iterable[dict], loads: Iterable[dict] = ()) -> dict[str, dict]:
    """``{model: figures}``: ``requests``, ``ok``, ``4xx``, ``5xx``, ``latency_ms`` (p50/p90/p99 of served
    requests, ``None`` without any), ``stages_ms`` (mean per stage of served requests),
    ``cache_hit_ratio`` (of the requests that reached the model's cache) and ``input_megapixels``
    (means; ``None`` when no line has the field); from the load lines ``loads`` and
    ``load_seconds`` (mean)."""
    grouped: dict[str, list[dict]] = {}
    for line in lines:
        grouped.setdefault(line["model"], []).append(line)
    loaded: dict[str, list[dict]] = {}
    for line in loads:
        loaded.setdefault(line["model"], []).append(line)
    return {model: {**_figures(grouped.get(model, [])), "loads": len(loaded.get(model, [])),
                    "load_seconds": _mean(line.get("seconds") for line in loaded.get(model, []))}
            for model in sorted({*grouped, *loaded})}


def _figures(group: list[dict]) -> dict:
    served = [line for line in group if line.get("outcome") == "ok"]
    totals = sorted(_number(line.get("ms", {}).get("total")) for line in served)
    totals = [t for t in totals if t is not None]
    return {
        "requests": len(group),
        "ok": len(served),
        "4xx": sum(line.get("outcome") == "4xx" for line in group),
        "5xx": sum(line.get("outcome") == "5xx" for line in group),
        "latency_ms": {f"p{p}": _nearest_rank(totals, p) for p in PERCENTILES} if totals else None,
        "stages_ms": {stage: _mean(line.get("ms", {}).get(stage) for line in served) for stage in STAGES},
        "cache_hit_ratio": _mean(line.get("cache_hit") for line in group),
        "input_megapixels": _mean(line.get("input_mpx") for line in group if (line.get("input_mpx") or 0) > 0),
    }


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _nearest_rank(ordered: list[float], percent: int) -> float:
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def _mean(values: Iterable) -> float | None:
    numbers = [v for v in (_number(x) for x in values) if v is not None]
    return round(sum(numbers) / len(numbers), 3) if numbers else None


def summary_line(model: str, figures: dict) -> str:
    """One line of ``mme local status`` for a model's figures."""
    latency = figures["latency_ms"]
    timing = ("latency p50/p90/p99 " + "/".join(f"{latency[f'p{p}']:.0f}" for p in PERCENTILES) + " ms"
              if latency else "no served request")
    stages = ", ".join(f"{stage} {ms:.0f}" for stage, ms in figures["stages_ms"].items() if ms)
    extra = f"; cache hits {figures['cache_hit_ratio']:.0%}" if figures["cache_hit_ratio"] is not None else ""
    if figures.get("loads"):
        extra += f"; loaded {figures['loads']}x ({figures['load_seconds']:.1f} s on average)"
    return (f"  {model:5s} requests {figures['requests']} (ok {figures['ok']}, 4xx {figures['4xx']}, "
            f"5xx {figures['5xx']}); {timing}" + (f" ({stages} ms)" if stages else "") + extra)
