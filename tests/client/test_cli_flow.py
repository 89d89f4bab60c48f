"""The editing flow through the ``mme`` CLI against the real local endpoint (TorchServe with the
serving container's settings) serving the packaged tiny models (one for the session:
``local_server`` in conftest.py), on photographs that ship with scikit-image (nobody here made
them): select -> erase, select -> replace, loading after an unload, and the one-line errors with
their exit codes."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from client_support import sample_photo
from PIL import Image

pytestmark = pytest.mark.torchserve


def rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def local(state) -> list[str]:
    return ["--local", "--state-dir", str(state["state_dir"])]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """chelsea.png as shipped (451x300 PNG) and coffee.png as a JPEG at 300x200 (what cameras write)."""
    folder = tmp_path_factory.mktemp("photos")
    chelsea = folder / "chelsea.png"
    chelsea.write_bytes(sample_photo("chelsea.png").read_bytes())
    coffee = folder / "coffee.jpg"
    Image.open(sample_photo("coffee.png")).convert("RGB").resize((300, 200), Image.LANCZOS).save(coffee, quality=90)
    return {"chelsea": chelsea, "coffee": coffee}


def assert_one_line_error(result, command: str, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mme {command}: error: "), lines[0]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_local_up_reported_the_models(local_server):
    out = local_server["up"].stdout
    assert "running: local endpoint at http://127.0.0.1:" in out
    for name in ("sam", "lama", "sd"):
        assert re.search(rf"^  {name} +{name}-[0-9a-f]{{16}}\.tar\.gz  not loaded \(loads on first use\)", out, re.M), out


def test_select_then_erase(local_server, photos, run_mme, tmp_path):
    photo = photos["chelsea"]
    mask_path, out_path = tmp_path / "mask.png", tmp_path / "erased.png"
    sel = run_mme("select", photo, "--point", "200,150", "--point", "60,40", "--label", "1", "--label", "0",
                  "-o", mask_path, *local(local_server))
    assert sel.returncode == 0, sel.stderr
    assert sel.stdout.startswith(f"{mask_path}: mask 451x300")
    mask_img = Image.open(mask_path)
    assert mask_img.format == "PNG" and mask_img.mode == "L" and mask_img.size == (451, 300)
    mask = np.asarray(mask_img)
    assert set(np.unique(mask)) <= {0, 255}           # binary
    selected = mask == 255
    assert 0 < selected.sum() < selected.size

    erase = run_mme("erase", photo, "--mask", mask_path, "-o", out_path, *local(local_server))
    assert erase.returncode == 0, erase.stderr
    original, erased = rgb(photo), rgb(out_path)
    assert erased.shape == original.shape
    assert np.array_equal(erased[~selected], original[~selected])   # outside the mask: unchanged
    assert not np.array_equal(erased[selected], original[selected])  # inside: filled


def test_select_then_replace_is_reproducible(local_server, photos, run_mme, tmp_path):
    photo = photos["coffee"]
    mask_path = tmp_path / "mask.png"
    sel = run_mme("select", photo, "--point", "150,100", "--dilate", "5", "-o", mask_path, *local(local_server))
    assert sel.returncode == 0, sel.stderr
    selected = np.asarray(Image.open(mask_path)) == 255
    assert selected.any()
    outputs = []
    for name in ("a.png", "b.png"):
        rep = run_mme("replace", photo, "--mask", mask_path, "--prompt", "a red ceramic cup", "--seed", "42",
                      "--steps", "2", "-o", tmp_path / name, *local(local_server))
        assert rep.returncode == 0, rep.stderr
        assert rep.stdout.strip() == f"{tmp_path / name}: 300x200, seed 42"
        outputs.append(rgb(tmp_path / name))
    original = rgb(photo)   # the JPEG as decoded (the model saw the same bytes)
    assert outputs[0].shape == original.shape
    assert np.array_equal(outputs[0][~selected], original[~selected])
    assert np.array_equal(outputs[0], outputs[1])  # same seed, same picture


def test_model_loads_again_after_an_unload(local_server, photos, run_mme, tmp_path):
    """Like a multi-model endpoint, a model that is not loaded is loaded by its next request; the
    status shows what is loaded, its size and its hits."""
    from mme.client import LocalBackend

    backend = LocalBackend.from_state(local_server["state_dir"])
    mask = np.zeros((300, 451), np.uint8)
    mask[100:140, 180:240] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = ("erase", photos["chelsea"], "--mask", tmp_path / "mask.png", "-o", tmp_path / "out.webp", *local(local_server))
    assert run_mme(*args).returncode == 0
    before = json.loads(run_mme("local", "status", "--json", *local(local_server)[1:]).stdout)["models"]["lama"]
    assert before["state"] == "loaded" and before["size_bytes"] > 0

    assert backend.unload("lama") and not backend.unload("lama")
    assert json.loads(run_mme("local", "status", "--json", *local(local_server)[1:]).stdout)["models"]["lama"][
        "state"] == "unloaded"
    result = run_mme(*args, "-v")
    assert result.returncode == 0, result.stderr
    assert "registering lama (lama-" in result.stderr       # said before the wait for the load
    assert Image.open(tmp_path / "out.webp").size == (451, 300)
    status = run_mme("local", "status", *local(local_server)[1:])
    after = json.loads(run_mme("local", "status", "--json", *local(local_server)[1:]).stdout)["models"]["lama"]
    assert after["state"] == "loaded" and after["loads"] == before["loads"] + 1
    assert after["unloads"] == before["unloads"] + 1 and after["misses"] == before["misses"] + 1
    assert re.search(r"^  lama +lama-[0-9a-f]{16}\.tar\.gz  loaded, [\d,]+ MiB; hits \d+, misses \d+, loads \d+",
                     status.stdout, re.M), status.stdout


def test_library_reuses_image_id_and_renews_the_key(local_server, photos):
    """From Python: the second click on the same image sends only its image_id and hits SAM's
    embedding cache; a TorchServe key that stops working is renewed by the endpoint."""
    from mme.client import EditingClient, LocalBackend

    backend = LocalBackend.from_state(local_server["state_dir"])
    sent = []
    invoke = backend.invoke
    backend.invoke = lambda model, payload: sent.append(sorted(payload)) or invoke(model, payload)
    client = EditingClient(backend)
    first = client.select(photos["chelsea"], [(100, 100)])
    second = client.select(photos["chelsea"], [(300, 120)])
    assert sent == [["gen_args", "image"], ["gen_args", "image_id"]]
    assert second.image_id == first.image_id and second.embedding_cached
    assert first.mask.size == second.mask.size == (451, 300)

    key_file = local_server["state_dir"] / "server" / "key_file.json"
    keys = json.loads(key_file.read_text())
    keys["inference"]["key"] = "not-the-key"
    key_file.write_text(json.dumps(keys))
    third = client.select(None, [(10, 10)], image_id=first.image_id)
    assert third.embedding_cached
    assert json.loads(key_file.read_text())["inference"]["key"] != "not-the-key"


def test_the_endpoint_wants_its_token(local_server):
    from mme.client import EndpointError, LocalBackend

    good = LocalBackend.from_state(local_server["state_dir"])
    wrong = LocalBackend(good.endpoint_url, "not-the-token", good.target_models)
    with pytest.raises(EndpointError, match="Authorization: Bearer"):
        wrong.invoke("sam", {"image_id": "0" * 64, "gen_args": {"point_coords": [[1, 1]], "point_labels": [1]}})
    assert oct((local_server["state_dir"] / "endpoint_token").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("case", ["missing file", "not an image", "point outside", "labels mismatch",
                                  "empty prompt", "mask size", "model rejects steps", "mask not png"])
def test_bad_input_gives_one_line_and_exit_2(case, local_server, photos, run_mme, tmp_path):
    photo = photos["chelsea"]
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((300, 451), 255, np.uint8)).save(mask)
    loc = local(local_server)
    if case == "missing file":
        result = run_mme("select", tmp_path / "nope.jpg", "--point", "1,1", "-o", tmp_path / "m.png", *loc)
        assert_one_line_error(result, "select", 2, "nope.jpg: no such file")
    elif case == "not an image":
        (tmp_path / "notes.png").write_text("these are notes, not pixels")
        result = run_mme("erase", tmp_path / "notes.png", "--mask", mask, "-o", tmp_path / "o.png", *loc)
        assert_one_line_error(result, "erase", 2, "notes.png: not an image")
    elif case == "point outside":
        result = run_mme("select", photo, "--point", "451,10", "-o", tmp_path / "m.png", *loc)
        assert_one_line_error(result, "select", 2, "point (451, 10) is outside the 451x300 image")
    elif case == "labels mismatch":
        result = run_mme("select", photo, "--point", "1,1", "--label", "1", "--label", "0", "-o", tmp_path / "m.png", *loc)
        assert_one_line_error(result, "select", 2, "2 --label for 1 --point")
    elif case == "empty prompt":
        result = run_mme("replace", photo, "--mask", mask, "--prompt", "  ", "-o", tmp_path / "o.png", *loc)
        assert_one_line_error(result, "replace", 2, "--prompt is empty")
    elif case == "mask size":
        Image.fromarray(np.full((10, 10), 255, np.uint8)).save(tmp_path / "small.png")
        result = run_mme("erase", photo, "--mask", tmp_path / "small.png", "-o", tmp_path / "o.png", *loc)
        assert_one_line_error(result, "erase", 2, "mask is 10x10 but the image is 451x300")
    elif case == "model rejects steps":  # not checked locally: the model's own 400 comes back
        result = run_mme("replace", photo, "--mask", mask, "--prompt", "a cat", "--steps", "1000",
                         "-o", tmp_path / "o.png", *loc)
        assert_one_line_error(result, "replace", 2, "sd: ", "(out_of_range, HTTP 400)")
    elif case == "mask not png":
        result = run_mme("select", photo, "--point", "1,1", "-o", tmp_path / "m.jpg", *loc)
        assert_one_line_error(result, "select", 2, "use a .png name")
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob("m.*"))


def test_runtime_errors_exit_1(run_mme, photos, tmp_path):
    result = run_mme("select", photos["chelsea"], "--point", "1,1", "-o", tmp_path / "m.png",
                     "--local", "--state-dir", tmp_path / "nothing-here")
    assert_one_line_error(result, "select", 1, "no local endpoint is running", "mme local up")


def test_usage_errors_exit_2(run_mme, photos, tmp_path):
    result = run_mme("select", photos["chelsea"], "--point", "1,x", "-o", tmp_path / "m.png", "--local")
    assert_one_line_error(result, "select", 2, "a point must be 2 numbers")
    result = run_mme("select", photos["chelsea"], "--point", "1,1", "-o", tmp_path / "m.png")
    assert_one_line_error(result, "select", 2, "--endpoint NAME, --stack-name NAME or --local")
    result = run_mme("erase", photos["chelsea"], "-o", tmp_path / "m.png", "--local")
    assert_one_line_error(result, "erase", 2, "required: --mask")


@pytest.mark.parametrize("command", [[], ["select"], ["erase"], ["replace"], ["local"], ["local", "up"],
                                     ["local", "down"], ["local", "status"]])
def test_help_on_every_command(command, run_mme):
    result = run_mme(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: mme")
