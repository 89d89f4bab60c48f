"""The request lines a serving container writes, checked on a real TorchServe: the virtual
environment's, started the SageMaker way (tests/client/test_request_lines.py), and the built serving
image (tests/image). Each case loads one tiny model the way SageMaker does, sends a served request,
refused ones and hostile ones, and reads back what the container wrote to its console; and the
metric filters of ``mme_constructs.request_lines`` are run over those lines by an evaluator of
CloudWatch's JSON filter syntax that was written apart from this project (``aws-json-term-matcher``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from aws_json_term_matcher.exceptions import MatchingError
from aws_json_term_matcher.matcher import FilterEvaluator, match, parse_filter
from container_cases import BAD_REQUESTS, jpeg_b64, mask, photo, sample_payload

from mme.local.emulator import opaque_model_name, unpack
from mme.local.request_stats import request_lines
from mme_constructs.request_lines import LINE_METRICS, LOAD_EVENT, REQUEST_EVENT

#: what a hostile client puts into a prompt, an image field or a header: a line break followed by a
#: forged request line, quotes, backslashes, a Unicode line separator and control characters
FORGED = '{"event":"mme.request","v":1,"model":"sam","outcome":"5xx","status":500}'
HOSTILE = f'a cat\n{FORGED}\r\n\u2028"quoted" \\ back\x00\x1b[31m'
#: a prompt the tiny text encoder takes (at most 75 tokens) with a forged line of its own
HOSTILE_PROMPT = 'a cat\n{"event":"mme.request","outcome":"5xx"}\u2028\\'


def requests_for(model: str) -> list[tuple[bytes, str, int, str | None]]:
    """``(body, content type, expected status class (2, 4), expected error code)`` per request."""
    good = json.dumps(sample_payload(model)).encode()
    bad, code = BAD_REQUESTS[model]
    hostile_image = {"image": HOSTILE, "mask_image": jpeg_b64(mask()), "prompt": "x"}
    cases = [
        (good, "application/json", 2, None),
        (json.dumps(bad).encode(), "application/json", 4, code),
        (b"\x89PNG not json" + HOSTILE.encode(), "application/json", 4, "invalid_json"),
        (json.dumps(hostile_image).encode(), f'application/json; note="{FORGED}"', 4, "invalid_base64"),
    ]
    if model == "sd":  # a served request whose prompt holds the forged line
        hostile_prompt = {"image": jpeg_b64(photo()), "mask_image": jpeg_b64(mask()), "prompt": HOSTILE_PROMPT,
                          "gen_args": json.dumps({"num_inference_steps": 2, "seed": 3})}
        cases.append((json.dumps(hostile_prompt).encode(), "application/json", 2, None))
    return cases


def exercise(container, model: str, archive: dict, models_root: Path) -> tuple[list[dict], list, list[str], list]:
    """Load ``model`` the SageMaker way, send :func:`requests_for`, unload it. Returns the request lines
    written meanwhile, the cases, the raw console lines that look like request lines, and the load
    lines written meanwhile."""
    target = archive["target_model"]
    name = "lines-" + opaque_model_name(target)[:12]
    url = models_root / name / "model"
    unpack(archive["artifact"], url)
    before = _settled_count(container)  # lines of earlier requests may still be on their way
    loads_before = len(request_lines(container.container_logs(), LOAD_EVENT))
    cases = requests_for(model)
    status, body = container.load_model(name, url)
    assert status == 200, body
    try:
        for body, content_type, expected, code in cases:
            status, _, data = container.invoke(name, body, target, content_type=content_type)
            assert status // 100 == expected, (status, data[:300])
            if code is not None:
                assert json.loads(data)["error"]["code"] == code
    finally:
        container.unload_model(name)
    lines = _wait_for_lines(container, before + len(cases))[before:]
    console = container.container_logs()
    raw = [line for line in console.splitlines() if line.lstrip().startswith('{"event"')]
    return lines, cases, raw, request_lines(console, LOAD_EVENT)[loads_before:]


def _settled_count(container, quiet: float = 1.0, timeout: float = 15.0) -> int:
    """The number of request lines once no new one has come for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    count = len(request_lines(container.container_logs()))
    while time.monotonic() < deadline:
        time.sleep(quiet)
        again = len(request_lines(container.container_logs()))
        if again == count:
            return count
        count = again
    return count


def _wait_for_lines(container, count: int, timeout: float = 30.0) -> list[dict]:
    """TorchServe logs asynchronously: wait until ``count`` request lines are out (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = request_lines(container.container_logs())
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def check_lines(model: str, lines: list[dict], cases: list, raw: list[str], loads: list[dict]) -> None:
    """One well-formed line per request, in order, with the fields the metrics read; one load line for
    the one load; nothing forged."""
    assert [(line["model"], line["v"]) for line in loads] == [(model, 1)]
    assert loads[0]["seconds"] > 0 and loads[0]["device"] in ("cpu", "cuda", "cuda:0")
    assert len(lines) == len(cases), ([line.get("error") for line in lines], raw[-6:])
    for line, (_, _, expected, code) in zip(lines, cases):
        assert line["event"] == REQUEST_EVENT and line["v"] == 1 and line["model"] == model
        assert line["outcome"] == ("ok" if expected == 2 else "4xx") and line["status"] // 100 == expected
        assert line["batch"] == 1
        if expected == 2:
            assert line["error"] is None
        else:  # the code the response carried (any code where the case names none)
            assert line["error"] == code if code is not None else line["error"], (line, code)
        assert (line["message"] is None) == (expected == 2)
        assert line["ms"]["total"] > 0 and set(line["ms"]) == {"total", "decode", "preprocess", "inference",
                                                               "postprocess", "encode"}
        if expected == 2:
            assert line["ms"]["inference"] > 0 and line["ms"]["encode"] > 0 and line["ms"]["decode"] > 0
            assert (line["input_mpx"], line["output_mpx"]) == (0.12, 0.12), line  # 400 x 300 in, 400 x 300 out
            assert sum(line["ms"][s] for s in ("decode", "preprocess", "inference", "postprocess", "encode")) \
                <= line["ms"]["total"] * 1.01 + 0.1
    served = [line for line in lines if line["outcome"] == "ok"]
    if model == "sam":
        assert [line["cache_hit"] for line in served] == [0]
    if model == "sd":
        assert [line["steps"] for line in served] == [2, 2]
    text = json.dumps(lines)
    assert "teddy" not in text and "a cat" not in text  # no prompt without log_prompts
    # the forged line never stands on its own: every request line on the console is a genuine one
    assert not [r for r in raw if FORGED in r and not r.startswith('{"event":"mme.request","v":1,"model":"' + model)]
    assert {json.loads(r)["event"] for r in raw} <= {REQUEST_EVENT, LOAD_EVENT}


# --- the metric filters, evaluated apart from this project ---------------------------------------


def filter_matches(pattern: str, line: dict) -> bool:
    """CloudWatch's answer for one JSON log event, by aws-json-term-matcher. A comparison with a
    missing or null field does not match in CloudWatch; the matcher raises there instead."""
    try:
        return bool(match(line, pattern))
    except MatchingError:
        return False


def metric_value(selector: str, line: dict):
    """The value a metric filter reads (``$.ms.total``), by the matcher's own path resolution."""
    tree = parse_filter("{ %s = 0 }" % selector)
    entity = next(tree.find_data("entity"))
    return FilterEvaluator(line).resolve_entity(entity)


def filtered(lines: list[dict]) -> dict[str, dict[str, list[float]]]:
    """``{metric key: {model: [values]}}``: the datapoints each metric filter makes from ``lines``."""
    out: dict[str, dict[str, list[float]]] = {}
    for key, metric in LINE_METRICS.items():
        for line in lines:
            if filter_matches(metric.filter_pattern, line):
                value = 1.0 if metric.value == "1" else float(metric_value(metric.value, line))
                out.setdefault(key, {}).setdefault(metric_value("$.model", line), []).append(value)
    return out
