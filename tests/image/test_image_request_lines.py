"""The handlers' request lines in the built serving image: TorchServe's logging is the image's
(container/log4j2.xml in place of the toolkit's), so each request is one JSON line on the
container's console, which SageMaker sends to the endpoint's log group unchanged; refused and
hostile requests included (request_line_cases.py, shared with the virtual environment's test)."""

from __future__ import annotations

import pytest
from request_line_cases import check_lines, exercise, filtered

pytestmark = pytest.mark.image
MODELS = ("sam", "lama", "sd")


def test_one_json_line_per_request_on_the_containers_console(image_container, tiny_archives):
    captured = {model: exercise(image_container, model, tiny_archives[model], image_container.models_dir)
                for model in MODELS}
    for model in MODELS:
        check_lines(model, *captured[model])
    data = filtered([line for model in MODELS for line in captured[model][0] + captured[model][3]])
    assert {m: len(v) for m, v in data["requests"].items()} == {m: len(captured[m][1]) for m in MODELS}
    assert {m: len(v) for m, v in data["loads"].items()} == {m: 1 for m in MODELS}
    # everything else TorchServe says is still there, with time, level and logger
    console = image_container.container_logs()
    assert "org.pytorch.serve.wlm.ModelManager - Model " in console and " [INFO ] " in console
