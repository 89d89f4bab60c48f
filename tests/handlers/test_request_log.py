"""The request line of each request, from the handlers themselves (a real TorchServe Context, tiny
models): failures (5xx), batches, the prompt setting, stage accounting, and that writing the line
never fails a request. The lines on a real TorchServe: tests/client/test_request_lines.py."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from handler_testlib import b64_png, run_batch, sample_image, start_handler

import mme_serving.request_log as request_log

W, H = 40, 30


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"event":"mme.request"')]


def _lama_body(**extra) -> dict:
    mask = np.zeros((H, W), np.uint8)
    mask[5:15, 10:20] = 255
    return {"image": b64_png(sample_image(W, H)), "mask_image": b64_png(mask), **extra}


@pytest.fixture
def lama(tiny_weights, tmp_path):
    return start_handler("lama", tmp_path, tiny_weights("lama"))


def test_a_batch_writes_one_line_per_request_in_order(lama, capsys):
    handler, ctx = lama
    capsys.readouterr()
    results = run_batch(handler, ctx, [_lama_body(), b"not json", {"image": "x"}, _lama_body()])
    assert [status for status, _ in results] == [200, 400, 400, 200]
    lines = _lines(capsys.readouterr().out)
    assert [(l["outcome"], l["error"], l["batch"], l["model"], l["operation"]) for l in lines] == [
        ("ok", None, 4, "test", "erase"), ("4xx", "invalid_json", 4, "test", "erase"),
        ("4xx", "invalid_base64", 4, "test", "erase"), ("ok", None, 4, "test", "erase")]
    assert lines[0]["input_mpx"] == lines[0]["output_mpx"] == round(W * H / 1e6, 4)
    assert lines[1]["input_mpx"] is None


def test_a_failure_inside_the_model_is_a_5xx_line_with_its_message(lama, capsys, monkeypatch):
    handler, ctx = lama

    def broken(*args, **kwargs):
        raise RuntimeError('boom\n{"event":"mme.request","outcome":"ok"}')

    monkeypatch.setattr(handler, "inpaint", broken)
    capsys.readouterr()
    [(status, body)] = run_batch(handler, ctx, [_lama_body()])
    assert status == 500 and body["error"]["code"] == "internal_error"
    out = capsys.readouterr()
    (line,) = _lines(out.out)
    assert (line["outcome"], line["status"], line["error"], line["message"]) == (
        "5xx", 500, "internal_error", "internal error (RuntimeError)")
    # the traceback is logged, each of its lines indented: none passes for a request line
    logged = out.out + out.err
    assert all(not l.startswith('{"event"') or json.loads(l)["outcome"] == "5xx" for l in logged.splitlines())


def test_out_of_memory_is_a_507_line(lama, capsys, monkeypatch):
    handler, ctx = lama
    monkeypatch.setattr(handler, "inpaint", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("CUDA out of memory")))
    capsys.readouterr()
    [(status, _)] = run_batch(handler, ctx, [_lama_body()])
    (line,) = _lines(capsys.readouterr().out)
    assert status == 507 and (line["outcome"], line["error"]) == ("5xx", "out_of_resources")


def test_prompts_are_written_only_when_the_setting_says_so(tiny_weights, tmp_path, capsys, monkeypatch):
    mask = np.zeros((H, W), np.uint8)
    mask[5:15, 10:20] = 255
    body = {"image": b64_png(sample_image(W, H)), "mask_image": b64_png(mask), "prompt": 'a "red"\nkite',
            "negative_prompt": "blur", "gen_args": {"num_inference_steps": 2, "seed": 1}}
    handler, ctx = start_handler("sd", tmp_path / "off", tiny_weights("sd"))
    capsys.readouterr()
    assert run_batch(handler, ctx, [body])[0][0] == 200
    (line,) = _lines(capsys.readouterr().out)
    assert "prompt" not in line and line["steps"] == 2 and line["operation"] == "replace"
    handler, ctx = start_handler("sd", tmp_path / "on", tiny_weights("sd"), log_prompts=True)
    capsys.readouterr()
    run_batch(handler, ctx, [body])
    out = capsys.readouterr().out
    (line,) = _lines(out)
    assert (line["prompt"], line["negative_prompt"]) == ('a "red"\nkite', "blur")
    assert len([l for l in out.splitlines() if l.startswith('{"event"')]) == 1  # escaped: still one line
    monkeypatch.setenv("MME_LOG_PROMPTS", "true")  # the container's environment turns it on too
    handler, ctx = start_handler("sd", tmp_path / "env", tiny_weights("sd"))
    assert handler.log_prompts


def test_sam_notes_its_embedding_cache(tiny_weights, tmp_path, capsys):
    handler, ctx = start_handler("sam", tmp_path, tiny_weights("sam"))
    body = {"image": b64_png(sample_image(W, H)), "gen_args": {"point_coords": [5, 5], "point_labels": 1}}
    capsys.readouterr()
    run_batch(handler, ctx, [body])
    run_batch(handler, ctx, [body])
    lines = _lines(capsys.readouterr().out)
    assert [l["cache_hit"] for l in lines] == [0, 1] and [l["operation"] for l in lines] == ["select"] * 2
    assert lines[1]["ms"]["inference"] < lines[0]["ms"]["inference"] * 2 + 5  # no encoder run the second time


def test_stages_are_exclusive_and_charged_to_the_current_requests():
    a = request_log.RequestRecord("m", "op", 0.0)
    b = request_log.RequestRecord("m", "op", 0.0)
    with request_log.serving([a, b]):
        with request_log.stage("inference"):
            with request_log.stage("encode"):
                pass
            request_log.note(steps=3)
    with request_log.serving([a]), request_log.stage("decode"):
        pass
    assert a.extra["steps"] == b.extra["steps"] == 3
    assert a.stages["decode"] > 0 and b.stages["decode"] == 0
    assert a.stages["inference"] == b.stages["inference"] and a.stages["encode"] == b.stages["encode"]
    with request_log.stage("inference"):  # outside serving(): nothing to charge, nothing fails
        pass


def test_writing_the_line_never_fails_a_request():
    class Broken(io.StringIO):
        def write(self, text):
            raise OSError("stdout is gone")

    record = request_log.RequestRecord("m", "op", 0.0)
    record.extra["steps"] = float("nan")  # not JSON: this line cannot be written
    request_log.emit([record], Broken())
    out = io.StringIO()
    request_log.emit([record, request_log.RequestRecord("m", "op", 0.0)], out)
    assert len(out.getvalue().splitlines()) == 1  # the good one is written, the bad one skipped


def test_a_line_is_ascii_and_one_line_whatever_a_message_holds():
    record = request_log.RequestRecord("m", "op", 0.0)
    record.fail(400, "invalid_field", 'bad "x"\n\u2028\x00{"event":"mme.request"}')
    text = request_log.line_text(record, now=0.001)
    assert text.isascii() and "\n" not in text and "\u2028" not in text
    assert json.loads(text)["message"] == 'bad "x"\n\u2028\x00{"event":"mme.request"}'
    assert json.loads(text)["ms"]["total"] == 1.0


def test_a_load_writes_one_load_line(tiny_weights, tmp_path, capsys):
    capsys.readouterr()
    start_handler("lama", tmp_path, tiny_weights("lama"))
    loads = [json.loads(l) for l in capsys.readouterr().out.splitlines() if l.startswith('{"event":"mme.load"')]
    assert len(loads) == 1 and (loads[0]["model"], loads[0]["device"], loads[0]["v"]) == ("test", "cpu", 1)
    assert loads[0]["seconds"] > 0
