"""The serving container's contract with SageMaker's multi-model agent, on a real TorchServe started
with the endpoint's settings: the SageMaker PyTorch toolkit's own ``mme-ts.properties`` (from the
pinned ``sagemaker-pytorch-inference`` distribution) + ``container/config.properties``.

Each tiny model archive is unpacked the way SageMaker unpacks it (``<root>/<model_name>/model``),
registered with the JSON body ``{"model_name", "url"}``, invoked at ``/models/<name>/invoke`` with
the ``X-Amzn-SageMaker-Target-Model`` header and the original sample's client payloads (JPEG image
and JPEG mask, ``gen_args`` as a JSON string), then unloaded and registered again
(``container_cases.py``; tests/image runs the same cases on the built image). A change to
``container/config.properties``, the handlers or the packager that breaks this path fails here.
"""

from __future__ import annotations

import re

import pytest
from container_cases import load_invoke_unload_reload

from mme.local import container_config

pytestmark = pytest.mark.torchserve


def effective_properties(container) -> dict:
    return container_config.parse_properties((container.workdir / "config.properties").read_text())


def test_torchserve_runs_with_the_toolkits_properties_and_the_images(sagemaker_container):
    toolkit = container_config.parse_properties(container_config.toolkit_file("mme-ts.properties").read_text())
    image = container_config.parse_properties((container_config.CONTAINER_DIR / "config.properties").read_text())
    effective = effective_properties(sagemaker_container)
    # the distribution's file, not a copy: the keys the endpoint depends on are in it
    assert toolkit["model_store"] == "/" and toolkit["decode_input_request"] == "false"
    assert toolkit["enable_envvars_config"] == "true" and toolkit["default_workers_per_model"] == "1"
    local_only = {"disable_token_authorization", "disable_system_metrics"}
    toolkit_set_at_start = {"default_service_handler", "inference_address", "management_address"}
    for key, value in toolkit.items():
        if key in image or key in local_only or key in toolkit_set_at_start:
            continue
        assert effective[key] == value, key
    for key, value in image.items():
        if key not in local_only:
            assert effective[key] == value, key
    # the toolkit's file ends without a newline: its last key must not swallow the next line
    assert effective["enable_model_api"] == "true"
    assert effective["default_response_timeout"] == container_config.dockerfile_env()["SAGEMAKER_MODEL_SERVER_TIMEOUT"]
    assert effective["default_service_handler"] == container_config.TOOLKIT_HANDLER_SERVICE + ":handle"
    # ... and TorchServe really read them (its start-up summary on its console: the image's
    # log4j2.xml writes no log files)
    log = sagemaker_container.container_logs()
    assert not list(sagemaker_container.log_dir.glob("*.log"))
    assert re.search(r"Model Store: /\s*$", log, re.M), log[:2000]
    assert f"Maximum Request Size: {image['max_request_size']}" in log
    assert "Default workers per model: 1" in log


@pytest.mark.parametrize("model", ["sam", "lama", "sd"])
def test_load_invoke_unload_reload_the_sagemaker_way(model, sagemaker_container, tiny_archives, tmp_path):
    load_invoke_unload_reload(sagemaker_container, model, tiny_archives[model], tmp_path)
