"""Weights specs: the production YAML files validate; bad specs fail with the field named."""

from __future__ import annotations

import pytest
from packager_helpers import REPO_ROOT

from mme_constructs.packager.errors import SpecError
from mme_constructs.packager.hub import select_hf_files
from mme_constructs.packager.specs import load_spec_file, parse_spec

REV = "81a84f49b15956b60b4272a405ad3daef3da4590"


def test_production_specs_validate():
    sam = load_spec_file(REPO_ROOT / "model_sources/sam/weights.yaml")
    assert sam.kind == "url" and sam.files[0].path.startswith("sam_vit_h")
    assert sam.files[0].sha256 == "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"
    lama = load_spec_file(REPO_ROOT / "model_sources/lama/weights.yaml")
    assert lama.files[0].path == "big-lama.pt" and lama.files[0].md5 and lama.files[0].sha256
    sd = load_spec_file(REPO_ROOT / "model_sources/sd/weights.yaml")
    assert sd.kind == "huggingface" and sd.revision == REV
    assert sd.repo_id == "stabilityai/stable-diffusion-2-inpainting"


def test_sd_patterns_take_only_the_fp16_safetensors_variant():
    """Against the file list of the pinned SD2-inpainting commit's layout (names as the Hub lists them)."""
    sd = load_spec_file(REPO_ROOT / "model_sources/sd/weights.yaml")
    repo_files = [
        "512-inpainting-ema.ckpt", "512-inpainting-ema.safetensors", "README.md", "model_index.json",
        "feature_extractor/preprocessor_config.json", "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model.fp16.safetensors", "text_encoder/model.safetensors",
        "text_encoder/pytorch_model.bin", "text_encoder/pytorch_model.fp16.bin",
        "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.bin",
        "unet/diffusion_pytorch_model.fp16.bin", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.bin",
        "vae/diffusion_pytorch_model.fp16.bin", "vae/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ]
    chosen = [s["rfilename"] for s in select_hf_files(sd, [{"rfilename": f} for f in repo_files])]
    weights = [f for f in chosen if f.endswith((".safetensors", ".bin", ".ckpt"))]
    assert weights == ["text_encoder/model.fp16.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
                       "vae/diffusion_pytorch_model.fp16.safetensors"]
    assert "model_index.json" in chosen and "tokenizer/vocab.json" in chosen
    assert "README.md" not in chosen


def test_a_pattern_matching_nothing_is_an_error():
    spec = parse_spec({"kind": "huggingface", "repo_id": "a/b", "revision": REV, "allow_patterns": ["*.json", "x/*"]})
    with pytest.raises(SpecError, match=r"allow pattern 'x/\*' matches no file"):
        select_hf_files(spec, [{"rfilename": "config.json"}])


@pytest.mark.parametrize("data, message", [
    ({"kind": "huggingface", "repo_id": "a/b", "revision": "main", "allow_patterns": ["*"]}, r"revision: must be a pinned"),
    ({"kind": "huggingface", "repo_id": "nope", "revision": REV, "allow_patterns": ["*"]}, r"repo_id"),
    ({"kind": "huggingface", "repo_id": "a/b", "revision": REV}, r"allow_patterns: required"),
    ({"kind": "huggingface", "repo_id": "a/b", "revision": REV, "allow_patterns": ["*"],
      "token_secret_arn": "my-secret"}, r"token_secret_arn"),
    ({"kind": "huggingface", "repo_id": "a/b", "revision": REV, "allow_patterns": ["*"],
      "base_url": "http://mirror.example", "token_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-AbCdEf"},
     r"base_url: a Hub token \(token_secret_arn\) is only sent over https"),
    ({"kind": "url", "files": [{"url": "ftp://x/y.bin"}]}, r"files\[0\]\.url"),
    ({"kind": "url", "files": [{"url": "https://x/y.bin", "sha256": "abc"}]}, r"files\[0\]\.sha256: must be 64 hex"),
    ({"kind": "url", "files": [{"url": "https://x/a.bin", "path": "../a.bin"}]}, r"'\.\.'"),
    ({"kind": "url", "files": [{"url": "https://x/a.bin"}, {"url": "https://y/a.bin"}]}, r"appears twice"),
    ({"kind": "url", "files": [{"url": "https://x/a.bin", "colour": "red"}]}, r"unknown field\(s\) colour"),
    ({"kind": "s3", "uri": "https://bucket/key"}, r"uri: must be s3://"),
    ({"kind": "s3", "uri": "s3://bucket/prefix/", "sha256": "a" * 64}, r"apply to one object"),
    ({"kind": "gcs"}, r"kind: must be one of"),
])
def test_invalid_specs_name_the_field(data, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(data)


def test_identity_leaves_out_transport_details():
    base = {"kind": "huggingface", "repo_id": "a/b", "revision": REV, "allow_patterns": ["*.json"]}
    mirrored = {**base, "base_url": "https://mirror.example", "token_secret_arn":
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-token-AbCdEf"}
    assert parse_spec(base).identity() == parse_spec(mirrored).identity()
    assert parse_spec(mirrored).to_json_dict()["base_url"] == "https://mirror.example"
    other = {**base, "allow_patterns": ["*.json", "*.txt"]}
    assert parse_spec(base).identity() != parse_spec(other).identity()


def test_yaml_errors_are_one_line(tmp_path):
    bad = tmp_path / "weights.yaml"
    bad.write_text("kind: url\nfiles: [\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(bad)
    assert "invalid YAML" in str(info.value) and "\n" not in str(info.value)
