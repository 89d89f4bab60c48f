"""The SageMaker backend against loopback servers: a fake SageMaker runtime that speaks the
InvokeEndpoint wire protocol to the real boto3 client, and moto's CloudFormation for the stack
outputs. Real HTTP on 127.0.0.1 with fake credentials; nothing is mocked in-process."""

from __future__ import annotations

import io

import boto3
import numpy as np
import pytest
from botocore.config import Config
from PIL import Image
from sagemaker_fakes import (
    FakeSageMakerRuntime,
    model_error,
    model_not_ready,
    moto_server,
    service_unavailable,
    stack_template,
    throttling,
    validation_error,
)

from mme.client import (
    ConfigurationError,
    EditingClient,
    EndpointError,
    InputError,
    ModelInputError,
    RetryPolicy,
    SageMakerBackend,
)

TARGETS = {"sam": "sam-0123456789ab.tar.gz", "lama": "lama-0123456789ab.tar.gz", "sd": "sd-0123456789ab.tar.gz"}
CREDS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret", "region_name": "us-east-1"}
FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, model_loading_timeout=2.0)


@pytest.fixture()
def runtime():
    with FakeSageMakerRuntime() as fake:
        yield fake


def runtime_client(url: str):
    return boto3.client("sagemaker-runtime", endpoint_url=url, config=Config(retries={"total_max_attempts": 1}),
                        **CREDS)


def make_client(runtime, retry=FAST, **kwargs) -> tuple[EditingClient, list]:
    retries = []
    backend = SageMakerBackend("image-editing-mme", TARGETS, client=runtime_client(runtime.url), retry=retry,
                               on_retry=lambda *args: retries.append(args), **kwargs)
    return EditingClient(backend), retries


@pytest.fixture()
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_target_model_is_sent_and_image_id_reused(runtime, photo):
    client, retries = make_client(runtime)
    first = client.select(photo, [(10, 20)])
    assert first.mask.size == (64, 48) and first.score == pytest.approx(0.9)
    assert set(np.unique(np.asarray(first.mask))) == {0, 255}
    second = client.select(photo, [(30, 5)], labels=[1])
    assert second.image_id == first.image_id and second.embedding_cached
    assert [c.target_model for c in runtime.calls] == [TARGETS["sam"]] * 2
    assert all(c.endpoint == "image-editing-mme" and c.content_type == "application/json" for c in runtime.calls)
    assert "image" in runtime.calls[0].body and "image_id" not in runtime.calls[0].body
    # the second click sends only the id of the image, not the image again
    assert runtime.calls[1].body == {"image_id": first.image_id,
                                     "gen_args": {"point_coords": [[30.0, 5.0]], "point_labels": [1]}}
    erased = client.erase(photo, first.mask)
    replaced = client.replace(photo, first.mask, "a red vase", seed=7, steps=5)
    assert [c.target_model for c in runtime.calls[2:]] == [TARGETS["lama"], TARGETS["sd"]]
    assert runtime.calls[3].body["gen_args"] == {"seed": 7, "num_inference_steps": 5}
    assert erased.size == replaced.size == (64, 48) and replaced.info["seed"] == 7
    assert retries == []


def test_unknown_image_id_resends_the_image(runtime, photo):
    client, _ = make_client(runtime)
    first = client.select(photo, [(10, 20)])
    runtime.known_ids.clear()  # another instance / evicted embedding
    again = client.select(photo, [(11, 21)])
    assert again.image_id == first.image_id
    bodies = [c.body for c in runtime.calls]
    assert "image_id" in bodies[1] and "image" not in bodies[1]
    assert "image" in bodies[2]
    assert len(runtime.calls) == 3


def test_throttling_and_model_loading_are_retried(runtime, photo):
    client, retries = make_client(runtime)
    runtime.script(throttling(), throttling(), model_not_ready(), model_not_ready(), service_unavailable())
    result = client.select(photo, [(10, 20)])
    assert result.mask.size == (64, 48)
    assert len(runtime.calls) == 6
    assert [kind for kind, *_ in retries] == ["throttled", "throttled", "model_loading", "model_loading", "unavailable"]
    assert all(c.target_model == TARGETS["sam"] for c in runtime.calls)
    # backoff delays stay within the policy's cap
    assert all(0 <= delay <= FAST.max_delay for _, _, delay, _ in retries)


def test_container_503_and_507_are_retried(runtime, photo):
    client, retries = make_client(runtime)
    runtime.script(model_error(507, {"error": {"code": "out_of_resources", "message": "out of GPU memory"}}),
                   model_error(503, {"code": 503, "type": "ServiceUnavailableException",
                                     "message": "Model \"lama\" has no worker to serve inference request."}))
    mask = np.zeros((48, 64), bool)
    mask[5:10, 5:10] = True
    assert client.erase(photo, mask).size == (64, 48)
    assert len(runtime.calls) == 3 and len(retries) == 2


def test_model_400_surfaces_the_models_message(runtime, photo):
    client, retries = make_client(runtime)
    runtime.script(model_error(400, {"error": {"code": "point_outside_image",
                                               "message": "point (70, 20) is outside the 64x48 image"}}))
    with pytest.raises(ModelInputError) as info:
        client.select(photo, [(10, 20)])
    err = info.value
    assert (err.model, err.status, err.code) == ("sam", 400, "point_outside_image")
    assert err.message == "point (70, 20) is outside the 64x48 image"
    assert str(err) == "sam: point (70, 20) is outside the 64x48 image (point_outside_image, HTTP 400)"
    assert err.log_stream.startswith("arn:aws:logs:")
    assert len(runtime.calls) == 1 and retries == []  # a bad request is not retried


def test_fake_model_rejection_without_script(runtime, photo):
    """The fake model's own 400 (empty prompt; the client's check bypassed) comes back the same way."""
    backend = SageMakerBackend("image-editing-mme", TARGETS, client=runtime_client(runtime.url), retry=FAST)
    raw = photo.read_bytes()
    import base64
    mask = io.BytesIO()
    Image.fromarray(np.full((48, 64), 255, np.uint8)).save(mask, format="PNG")
    with pytest.raises(ModelInputError, match="'prompt' must not be empty") as info:
        backend.invoke("sd", {"image": base64.b64encode(raw).decode(), "prompt": " ",
                              "mask_image": base64.b64encode(mask.getvalue()).decode()})
    assert info.value.code == "empty_prompt"


def test_retries_are_bounded(runtime, photo):
    client, retries = make_client(runtime)
    runtime.script(*[throttling()] * 10)
    with pytest.raises(EndpointError, match="throttled after 4 attempts"):
        client.select(photo, [(10, 20)])
    assert len(runtime.calls) == FAST.max_attempts == 4 and len(retries) == 3


def test_model_loading_gives_up_after_its_timeout(runtime, photo):
    policy = RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.1, model_loading_timeout=0.5)
    client, retries = make_client(runtime, retry=policy)
    runtime.script(*[model_not_ready()] * 200)
    with pytest.raises(EndpointError, match="sam was still loading on image-editing-mme"):
        client.select(photo, [(10, 20)])
    # more attempts than max_attempts: model loading is bounded by time, not by count
    assert len(runtime.calls) > 2


def test_sagemaker_validation_error_is_not_retried(runtime, photo):
    client, _ = make_client(runtime)
    runtime.script(validation_error("Endpoint image-editing-mme of account 123456789012 not found."))
    with pytest.raises(EndpointError, match="endpoint image-editing-mme not found"):
        client.select(photo, [(10, 20)])
    assert len(runtime.calls) == 1


def test_oversized_payload_is_refused_before_sending(runtime, photo):
    client, _ = make_client(runtime, max_payload_bytes=1000)
    with pytest.raises(ModelInputError, match="InvokeEndpoint accepts at most"):
        client.select(photo, [(10, 20)])
    assert runtime.calls == []


def test_inputs_checked_before_any_call(runtime, photo, tmp_path):
    client, _ = make_client(runtime)
    with pytest.raises(InputError, match="outside the 64x48 image"):
        client.select(photo, [(64, 10)])
    with pytest.raises(InputError, match="no such file"):
        client.select(tmp_path / "missing.png", [(1, 1)])
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        client.erase(tmp_path / "notes.txt", np.ones((48, 64), bool))
    with pytest.raises(InputError, match="prompt is empty"):
        client.replace(photo, np.ones((48, 64), bool), "   ")
    with pytest.raises(InputError, match="mask is 10x10 but the image is 64x48"):
        client.erase(photo, np.ones((10, 10), bool))
    with pytest.raises(InputError, match="mask is empty"):
        client.erase(photo, np.zeros((48, 64), bool))
    assert runtime.calls == []


# ---------------------------------------------------------------------- stack outputs (moto)
@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


def cfn_client(url):
    return boto3.client("cloudformation", endpoint_url=url, **CREDS)


def test_target_models_come_from_the_stack_outputs(moto_url, runtime, photo):
    cfn = cfn_client(moto_url)
    outputs = {"EndpointName": "image-editing-mme", "VariantName": "AllTraffic", "ModelBucketName": "bucket",
               "ModelPrefix": "models/", **{f"TargetModel{k.capitalize()}": v for k, v in TARGETS.items()}}
    cfn.create_stack(StackName="EditingOutputs", TemplateBody=stack_template(outputs))
    backend = SageMakerBackend.from_stack("EditingOutputs", cloudformation=cfn, client=runtime_client(runtime.url),
                                          retry=FAST, models=("sam", "lama", "sd"))
    assert backend.endpoint_name == "image-editing-mme"
    assert backend.target_models == TARGETS
    client = EditingClient(backend)
    sel = client.select(photo, [(3, 3)])
    client.erase(photo, sel.mask)
    assert [c.target_model for c in runtime.calls] == [TARGETS["sam"], TARGETS["lama"]]
    # an explicit override wins over the output
    backend = SageMakerBackend.from_stack("EditingOutputs", cloudformation=cfn, client=runtime_client(runtime.url),
                                          target_models={"sd": "sd-override.tar.gz"})
    assert backend.target_models["sd"] == "sd-override.tar.gz" and backend.target_models["sam"] == TARGETS["sam"]


def test_missing_stack_or_output_is_a_clear_error(moto_url, runtime):
    cfn = cfn_client(moto_url)
    with pytest.raises(ConfigurationError, match="stack NoSuchStack not found in region us-east-1"):
        SageMakerBackend.from_stack("NoSuchStack", cloudformation=cfn, client=runtime_client(runtime.url))
    cfn.create_stack(StackName="OnlySam", TemplateBody=stack_template(
        {"EndpointName": "image-editing-mme", "TargetModelSam": TARGETS["sam"]}))
    with pytest.raises(ConfigurationError, match="no TargetModel output for sd"):
        SageMakerBackend.from_stack("OnlySam", cloudformation=cfn, client=runtime_client(runtime.url), models=("sd",))
    backend = SageMakerBackend.from_stack("OnlySam", cloudformation=cfn, client=runtime_client(runtime.url))
    with pytest.raises(ConfigurationError, match="no TargetModel known for model 'lama'"):
        backend.invoke("lama", {})
    assert runtime.calls == []


def test_explicit_endpoint_and_targets_skip_the_stack(runtime):
    backend = SageMakerBackend.from_stack("DoesNotMatter", endpoint_name="other-endpoint",
                                          target_models={"sam": "sam-x.tar.gz"}, models=("sam",),
                                          client=runtime_client(runtime.url), region="us-east-1")
    assert backend.endpoint_name == "other-endpoint" and backend.target_models == {"sam": "sam-x.tar.gz"}


# ---------------------------------------------------------------------- the CLI, same fakes
@pytest.fixture()
def aws_env(mme_env, moto_url, runtime):
    """Environment pointing boto3 (standard AWS settings only) at the loopback fakes."""
    return {**mme_env, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime.url,
            "AWS_ENDPOINT_URL_CLOUDFORMATION": moto_url}


def test_cli_reads_the_stack_and_retries(aws_env, moto_url, runtime, run_mme, photo, tmp_path):
    cfn_client(moto_url).create_stack(StackName="CliStack", TemplateBody=stack_template(
        {"EndpointName": "image-editing-mme", **{f"TargetModel{k.capitalize()}": v for k, v in TARGETS.items()}}))
    runtime.script(model_not_ready())
    sel = run_mme("select", photo, "--point", "10,20", "--stack-name", "CliStack", "-v", "-o", tmp_path / "m.png",
                  env=aws_env)
    assert sel.returncode == 0, sel.stderr
    assert "the model is loading on the endpoint (attempt 1)" in sel.stderr
    assert [(c.endpoint, c.target_model) for c in runtime.calls] == [("image-editing-mme", TARGETS["sam"])] * 2
    assert Image.open(tmp_path / "m.png").size == (64, 48)

    # --endpoint + --target-model for the model needed: the stack is not read
    erase = run_mme("erase", photo, "--mask", tmp_path / "m.png", "--endpoint", "other-endpoint",
                    "--target-model", "lama=lama-override.tar.gz", "--stack-name", "NoSuchStack",
                    "-o", tmp_path / "e.png", env=aws_env)
    assert erase.returncode == 0, erase.stderr
    assert (runtime.calls[-1].endpoint, runtime.calls[-1].target_model) == ("other-endpoint", "lama-override.tar.gz")

    runtime.script(model_error(400, {"error": {"code": "prompt_too_long", "message": "the prompt is over 77 tokens"}}))
    rep = run_mme("replace", photo, "--mask", tmp_path / "m.png", "--prompt", "x", "--stack-name", "CliStack",
                  "-o", tmp_path / "r.png", env=aws_env)
    assert rep.returncode == 2
    assert rep.stderr == "mme replace: error: sd: the prompt is over 77 tokens (prompt_too_long, HTTP 400)\n"

    missing = run_mme("select", photo, "--point", "1,1", "--stack-name", "NoSuchStack", "-o", tmp_path / "x.png",
                      env=aws_env)
    assert missing.returncode == 1
    assert missing.stderr.startswith("mme select: error: stack NoSuchStack not found in region us-east-1")
    assert missing.stderr.count("\n") == 1


# ---------------------------------------------------------------------- TargetModel parameters (moto SSM)
PARAMETER_PREFIX = "/image-editing-mme/target-model"


def ssm_client(url):
    return boto3.client("ssm", endpoint_url=url, **CREDS)


def put_target_parameters(url, prefix: str, targets: dict[str, str]) -> None:
    ssm = ssm_client(url)
    for model, target in targets.items():
        ssm.put_parameter(Name=f"{prefix}/{model}", Value=target, Type="String", Overwrite=True)


def test_target_models_come_from_the_ssm_parameters(moto_url, runtime, photo):
    put_target_parameters(moto_url, PARAMETER_PREFIX, TARGETS)
    backend = SageMakerBackend.from_parameters("image-editing-mme", PARAMETER_PREFIX + "/", ("sam", "lama"),
                                               ssm=ssm_client(moto_url), client=runtime_client(runtime.url),
                                               retry=FAST)
    assert backend.target_models == {"sam": TARGETS["sam"], "lama": TARGETS["lama"]}
    EditingClient(backend).select(photo, [(3, 3)])
    assert [c.target_model for c in runtime.calls] == [TARGETS["sam"]]


def test_a_missing_target_parameter_names_it(moto_url, runtime):
    put_target_parameters(moto_url, "/only-sam", {"sam": TARGETS["sam"]})
    with pytest.raises(ConfigurationError, match=r"no TargetModel parameter /only-sam/sd: is the stack deployed with "
                                                 r"targetModelParameterPrefix, and is the model enabled\?"):
        SageMakerBackend.from_parameters("image-editing-mme", "/only-sam", ("sam", "sd"), ssm=ssm_client(moto_url),
                                         client=runtime_client(runtime.url))


def test_cli_reads_the_target_parameters(aws_env, moto_url, runtime, run_mme, photo, tmp_path):
    put_target_parameters(moto_url, "/team/mme", TARGETS)
    env = {**aws_env, "AWS_ENDPOINT_URL_SSM": moto_url}
    sel = run_mme("select", photo, "--point", "10,20", "--endpoint", "image-editing-mme",
                  "--target-model-parameters", "/team/mme", "-o", tmp_path / "m.png", env=env)
    assert sel.returncode == 0, sel.stderr
    assert (runtime.calls[-1].endpoint, runtime.calls[-1].target_model) == ("image-editing-mme", TARGETS["sam"])
    alone = run_mme("select", photo, "--point", "1,1", "--target-model-parameters", "/team/mme",
                    "--stack-name", "CliStack", "-o", tmp_path / "x.png", env=env)
    assert alone.returncode == 2
    assert "--target-model-parameters goes with --endpoint NAME" in alone.stderr and alone.stderr.count("\n") == 1
