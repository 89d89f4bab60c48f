"""``mme replace --strength`` and the warning for ``ignored_args``: through the real TorchServe
with the tiny models, and against the loopback SageMaker stand-in playing an endpoint that serves
an older model version (one that does not know ``strength`` and says so in ``ignored_args``)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from client_support import sample_photo
from PIL import Image
from sagemaker_fakes import FakeSageMakerRuntime


def rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def photo_and_mask(tmp_path_factory):
    folder = tmp_path_factory.mktemp("strength")
    photo = folder / "chelsea.png"
    photo.write_bytes(sample_photo("chelsea.png").read_bytes())
    mask = np.zeros((300, 451), np.uint8)
    mask[90:200, 120:330] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    return photo, folder / "mask.png", mask == 255


@pytest.mark.torchserve
def test_strength_reaches_the_model(local_server, photo_and_mask, run_mme, tmp_path):
    photo, mask_path, selected = photo_and_mask
    local = ["--local", "--state-dir", str(local_server["state_dir"])]
    outputs = {}
    for strength in ("1", "0.5", "0.5"):
        out = tmp_path / f"out-{len(outputs)}.png"
        rep = run_mme("replace", photo, "--mask", mask_path, "--prompt", "a tabby cat", "--seed", "3", "--steps", "2",
                      "--strength", strength, "-o", out, *local)
        assert rep.returncode == 0 and rep.stderr == "", rep.stderr  # no warning: the model knows strength
        outputs[out] = rgb(out)
    full, half, half_again = outputs.values()
    original = rgb(photo)
    assert np.array_equal(half[~selected], original[~selected])
    assert not np.array_equal(full, half), "the strength changes the picture"
    assert np.array_equal(half, half_again), "seeded runs with a strength are reproducible"


@pytest.mark.parametrize("value", ["0", "-0.5", "1.5", "nan", "high"])
def test_strength_out_of_range_is_a_usage_error(value, photo_and_mask, run_mme, tmp_path):
    photo, mask_path, _ = photo_and_mask
    rep = run_mme("replace", photo, "--mask", mask_path, "--prompt", "x", "--strength", value, "--local",
                  "-o", tmp_path / "o.png")
    assert rep.returncode == 2
    assert rep.stderr.count("\n") == 1 and "a strength is a number in (0, 1]" in rep.stderr


def test_ignored_args_are_a_warning(mme_env, photo_and_mask, run_mme, tmp_path):
    photo, mask_path, _ = photo_and_mask
    buf = io.BytesIO()
    Image.open(photo).convert("RGB").save(buf, format="PNG")
    old_model_answer = {"generated_image": base64.b64encode(buf.getvalue()).decode(), "seed": 11,
                        "ignored_args": ["strength"]}
    with FakeSageMakerRuntime() as runtime:
        env = {**mme_env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime.url}
        runtime.script((200, old_model_answer, None))
        rep = run_mme("replace", photo, "--mask", mask_path, "--prompt", "a hat", "--strength", "0.4",
                      "--endpoint", "image-editing-mme", "--target-model", "sd=sd-old.tar.gz",
                      "-o", tmp_path / "r.png", env=env)
    assert rep.returncode == 0, rep.stderr
    assert rep.stderr == "mme replace: warning: the model ignored gen_args it does not know: strength\n"
    assert rep.stdout.strip() == f"{tmp_path / 'r.png'}: 451x300, seed 11"
    assert runtime.calls[0].body["gen_args"] == {"strength": 0.4}
