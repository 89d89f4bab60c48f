"""The built serving image started as SageMaker starts it on a multi-model endpoint instance
(``docker run <image> serve`` with the environment of a multi-model container, the archives at
``/opt/ml/models/<model_name>/model``, its port published on 127.0.0.1), answering SageMaker's
container calls with the original sample's payloads, refusing bad input with the same 4xx body as
the virtual environment's TorchServe, and stopping with nothing left behind.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from container_cases import BAD_REQUESTS, load_invoke_unload_reload, sample_payload

from image_support import assert_stopped_cleanly

from mme.local.emulator import opaque_model_name, unpack
from mme.local.image_container import CONTAINER_PORT, SAGEMAKER_ENVIRONMENT, ImageContainer

pytestmark = pytest.mark.image


def test_the_image_says_it_serves_a_multi_model_endpoint(engine, serving_image):
    inspected = json.loads(engine.run("image", "inspect", serving_image).stdout)[0]
    config = inspected.get("Config") or inspected.get("config") or {}
    labels = config.get("Labels") or {}
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"
    assert labels["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    env = dict(item.split("=", 1) for item in config.get("Env", []))
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and "compute" in env["NVIDIA_DRIVER_CAPABILITIES"].split(",")
    assert env["SAGEMAKER_MULTI_MODEL"] == "true"
    # `docker run <image> serve`: tini runs the toolkit's `serve`
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"] and config["Cmd"] == ["serve"]


def test_serve_answers_ping_on_the_port_sagemaker_binds(image_container):
    assert image_container.ports["inference"] == image_container.ports["management"]
    with urllib.request.urlopen(image_container.inference_url + "/ping", timeout=10) as resp:
        assert resp.status == 200 and json.loads(resp.read())["status"] == "Healthy"
    logs = image_container.container_logs()
    # the toolkit wrote the properties and TorchServe bound the port SageMaker gave it
    assert f"Inference API bind to: http://0.0.0.0:{CONTAINER_PORT}" in logs
    assert "Model API enabled: true" in logs and "Model Store: /" in logs
    assert SAGEMAKER_ENVIRONMENT["SAGEMAKER_BIND_TO_PORT"] == str(CONTAINER_PORT)


@pytest.mark.parametrize("model", ["sam", "lama", "sd"])
def test_load_invoke_unload_reload_in_the_image(model, image_container, tiny_archives):
    load_invoke_unload_reload(image_container, model, tiny_archives[model], image_container.models_dir,
                              prefix=f"image-{model}-")


def test_refusals_match_the_virtual_environments_torchserve(image_container, tiny_archives, tmp_path):
    """The same bad request gets the same status and body from the image and from the venv's TorchServe."""
    from mme.local.sagemaker_container import SageMakerContainer

    venv = SageMakerContainer(tmp_path / "venv-server").start()
    try:
        for model in ("sam", "lama", "sd"):
            archive = tiny_archives[model]
            name = "same-" + opaque_model_name(archive["target_model"])[:12]
            answers = []
            for container, root in ((image_container, image_container.models_dir), (venv, tmp_path / "venv-models")):
                url = root / name / "model"
                unpack(archive["artifact"], url)
                assert container.load_model(name, url)[0] == 200
                try:
                    for body in (json.dumps(BAD_REQUESTS[model][0]).encode(), b"{not json"):
                        status, _, data = container.invoke(name, body, archive["target_model"])
                        answers.append((model, status, json.loads(data)))
                finally:
                    assert container.unload_model(name)[0] == 200
            half = len(answers) // 2
            assert answers[:half] == answers[half:]
            assert all(400 <= status < 500 for _, status, _ in answers)
    finally:
        venv.stop()


def test_the_handlers_log_lines_reach_the_console(image_container, tiny_archives):
    """SageMaker sends the container's console to CloudWatch Logs: the model's log lines are there."""
    archive = tiny_archives["lama"]
    name = "console-" + opaque_model_name(archive["target_model"])[:12]
    url = image_container.models_dir / name / "model"
    unpack(archive["artifact"], url)
    assert image_container.load_model(name, url)[0] == 200
    try:
        assert image_container.invoke(name, json.dumps(sample_payload("lama")).encode(), archive["target_model"])[0] == 200
    finally:
        assert image_container.unload_model(name)[0] == 200
    logs = image_container.container_logs()
    assert f"[INFO ] W-9000-{name}" in logs or f"W-{name}" in logs or name in logs
    assert "MODEL_LOG" in logs or "model_log" in logs.lower() or f"{name}_1.0" in logs


def test_a_stopped_container_leaves_nothing(engine, serving_image, tmp_path):
    """SIGTERM (as SageMaker stops an instance's container) ends TorchServe and its workers in seconds."""
    container = ImageContainer(tmp_path / "server", image=serving_image, engine=engine, models_dir=tmp_path / "models",
                               sagemaker_exact=True).start()
    started = time.monotonic()
    assert_stopped_cleanly(container, engine, container.pgid)
    assert time.monotonic() - started < 30
