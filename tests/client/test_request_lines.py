"""The handlers' request lines on a real TorchServe started as the serving image starts it (the
toolkit's properties, container/log4j2.xml): one JSON line per request in the console output, also
for refused and hostile requests; the endpoint's metric filters count them (evaluated by
aws-json-term-matcher, see request_line_cases.py), and ``mme local status`` shows the same figures.
"""

from __future__ import annotations

import pytest
from request_line_cases import check_lines, exercise, filtered

from mme.local.request_stats import per_model, request_lines
from mme_constructs.request_lines import STAGES

pytestmark = pytest.mark.torchserve
MODELS = ("sam", "lama", "sd")


@pytest.fixture(scope="module")
def captured(sagemaker_container, tiny_archives, tmp_path_factory) -> dict:
    """``{model: (lines, cases, raw console lines)}`` from one run of the cases per model."""
    root = tmp_path_factory.mktemp("line-models")
    return {model: exercise(sagemaker_container, model, tiny_archives[model], root) for model in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_one_line_per_request_refused_and_hostile_ones_included(captured, model):
    check_lines(model, *captured[model])


def test_the_metric_filters_count_the_lines_real_handlers_write(captured):
    lines = [line for model in MODELS for line in captured[model][0]]
    loads = [line for model in MODELS for line in captured[model][3]]
    data = filtered(lines + loads)
    assert {m: len(v) for m, v in data["loads"].items()} == {m: 1 for m in MODELS}
    assert all(v[0] > 0 for v in data["load_time"].values())
    cases = {model: captured[model][1] for model in MODELS}
    served = {m: sum(1 for c in cases[m] if c[2] == 2) for m in MODELS}
    refused = {m: sum(1 for c in cases[m] if c[2] == 4) for m in MODELS}
    assert {m: len(v) for m, v in data["requests"].items()} == {m: len(cases[m]) for m in MODELS}
    assert {m: len(v) for m, v in data["client_errors"].items()} == refused
    assert "server_errors" not in data  # no 5xx in these runs (the handler tests make some)
    assert {m: len(v) for m, v in data["latency"].items()} == served
    for model in MODELS:
        ok = [line for line in captured[model][0] if line["outcome"] == "ok"]
        assert data["latency"][model] == [line["ms"]["total"] for line in ok]
        for stage in STAGES:
            assert data[f"{stage}_time"][model] == [line["ms"][stage] for line in ok]
        # every request with an input image counts its size (the refused ones before decoding do not)
        assert data["input_megapixels"][model] and set(data["input_megapixels"][model]) == {0.12}
    assert set(data["cache_hit"]) == {"sam"} and data["cache_hit"]["sam"] == [0.0]


def test_local_status_figures_are_the_filters_figures(captured, sagemaker_container):
    from mme.local.request_stats import _nearest_rank

    lines = [line for model in MODELS for line in captured[model][0]]
    loads = [line for model in MODELS for line in captured[model][3]]
    figures = per_model(lines, loads)
    data = filtered(lines + loads)
    for model in MODELS:
        f = figures[model]
        assert f["requests"] == len(data["requests"][model])
        assert f["4xx"] == len(data["client_errors"][model]) and f["5xx"] == 0
        assert f["loads"] == len(data["loads"][model]) and f["load_seconds"] == round(data["load_time"][model][0], 3)
        latencies = sorted(data["latency"][model])
        assert f["latency_ms"] == {f"p{p}": _nearest_rank(latencies, p) for p in (50, 90, 99)}
        for stage in STAGES:
            values = data[f"{stage}_time"][model]
            assert f["stages_ms"][stage] == round(sum(values) / len(values), 3)
    assert figures["sam"]["cache_hit_ratio"] == 0.0 and figures["lama"]["cache_hit_ratio"] is None
    # and the console output holds exactly these lines (the server's whole output since its start)
    assert len(request_lines(sagemaker_container.container_logs())) >= len(lines)


def test_the_saved_queries_regexes_find_torchservers_loads_and_unloads(captured, sagemaker_container):
    """The loads-and-unloads query's filter and parse expressions, run (as Python regexes) over the
    console lines TorchServe wrote for the loads and unloads above."""
    import re

    from mme_constructs.request_lines import INSIGHTS_QUERIES

    query = INSIGHTS_QUERIES["loads-and-unloads"]
    where = re.search(r"filter @message like /(.+)/", query)[1]
    parse = re.search(r"parse @message /(.+)/", query)[1].replace("(?<", "(?P<")
    console = sagemaker_container.container_logs().splitlines()
    actions = [re.search(parse, line)["action"] for line in console if re.search(where, line)]
    assert actions.count("loaded") >= len(MODELS) and actions.count("unregistered") >= len(MODELS)
    assert set(actions) == {"loaded", "unregistered"}
