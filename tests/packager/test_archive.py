"""Archive layout and bytes: same as torch-model-archiver's no-archive dir, deterministic, one code path."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from packager_helpers import FakeContext, cfn_event

from mme_constructs.packager.archive import FIXED_MTIME, GzipWriter, TarWriter
from mme_constructs.packager.core import LocalDestination, S3Destination, package, plan
from mme_constructs.packager.lambda_handler import handler
from mme_constructs.packager.sources import SourceTree
from mme_constructs.packager.specs import parse_spec

MiB = 1 << 20


def make_weights(root: Path) -> Path:
    """A weights folder with nested files (the diffusers-like layout)."""
    (root / "unet").mkdir(parents=True)
    (root / "model_index.json").write_text('{"_class_name": "Tiny"}\n')
    (root / "unet" / "config.json").write_text('{"in_channels": 9}\n')
    (root / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(os.urandom(2 * MiB + 7))
    return root


def tree_of(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def unpack(archive: Path, into: Path) -> Path:
    into.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tf:
        tf.extractall(into, filter="data")
    return into


def test_layout_matches_torch_model_archiver(tmp_path, model_src):
    model, common = model_src
    weights = make_weights(tmp_path / "wparent" / "weights")
    spec = parse_spec({"kind": "local", "path": str(weights)})
    result = package("tiny", SourceTree.from_dirs([model, common]), spec, LocalDestination(tmp_path / "out"))
    ours = tree_of(unpack(tmp_path / "out" / result.target_model, tmp_path / "ours"))

    # The reference: torch-model-archiver 0.12 --archive-format no-archive with the same inputs.
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # it stages in $TMPDIR/<model name>
    archiver = Path(sys.executable).parent / "torch-model-archiver"
    (tmp_path / "ref").mkdir()
    subprocess.run([str(archiver), "--model-name", "tiny", "--version", result.input_digest[:16],
                    "--handler", str(model / "handler.py"), "--config-file", str(model / "model-config.yaml"),
                    "--extra-files", f"{model / 'helper.py'},{common},{weights.parent}",
                    "--archive-format", "no-archive", "--export-path", str(tmp_path / "ref")],
                   check=True, env=env, capture_output=True, timeout=120)
    ref = tree_of(tmp_path / "ref" / "tiny")

    assert sorted(ours) == sorted(ref)
    for path in ours:
        if path != "MAR-INF/MANIFEST.json":
            assert ours[path] == ref[path], path
    ours_manifest = json.loads(ours["MAR-INF/MANIFEST.json"])
    ref_manifest = json.loads(ref["MAR-INF/MANIFEST.json"])
    assert list(ours_manifest) == list(ref_manifest)  # createdOn, runtime, model, archiverVersion
    assert list(ours_manifest["model"]) == list(ref_manifest["model"])
    ours_manifest.pop("createdOn"), ref_manifest.pop("createdOn")
    assert ours_manifest == ref_manifest


def test_deterministic_bytes_and_metadata(tmp_path, model_src):
    model, common = model_src
    weights = make_weights(tmp_path / "weights")
    spec = parse_spec({"kind": "local", "path": str(weights)})
    a = package("tiny", SourceTree.from_dirs([model, common]), spec, LocalDestination(tmp_path / "a"))
    os.utime(model / "handler.py", (1, 1))  # other mtimes and a copy of the weights: same archive
    copy = tmp_path / "copy"
    for rel, data in tree_of(weights).items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(data)
    b = package("tiny", SourceTree.from_dirs([model, common]), parse_spec({"kind": "local", "path": str(copy)}),
                LocalDestination(tmp_path / "b"))
    assert a.target_model == b.target_model and a.sha256 == b.sha256
    raw_a = (tmp_path / "a" / a.target_model).read_bytes()
    assert raw_a == (tmp_path / "b" / b.target_model).read_bytes()
    assert hashlib.sha256(raw_a).hexdigest() == a.sha256 and len(raw_a) == a.size_bytes

    assert raw_a[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown
    with tarfile.open(fileobj=io.BytesIO(raw_a), mode="r:gz") as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (FIXED_MTIME, 0, 0, "", "")
        assert m.mode == (0o755 if m.isdir() else 0o644)
    assert "weights.yaml" not in names and not [n for n in names if "__pycache__" in n]

    # A changed source file gives another key.
    (model / "helper.py").write_text("VALUE = 43\n")
    c = plan("tiny", SourceTree.from_dirs([model, common]), spec)
    assert c.target_model != a.target_model


def test_lambda_and_cli_paths_build_the_same_archive(tmp_path, s3, bucket, source_assets, model_src, hub):
    """Zip assets through the handler and folders through `mme package` give one key and one sha256."""
    data = os.urandom(6 * MiB)
    hub.state.files["w.bin"] = data
    spec = {"kind": "url", "files": [{"url": f"{hub.url}/files/w.bin", "sha256": hashlib.sha256(data).hexdigest()}]}
    event = cfn_event("Create", {"ModelName": "tiny", "Bucket": bucket, "Prefix": "models/", "Sources": source_assets,
                                 "WeightsSpec": json.dumps(spec)})
    from_lambda = handler(event, FakeContext())["Data"]

    model, common = model_src
    sources_root = model.parent
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    out = subprocess.run([sys.executable, "-m", "mme.cli", "package", "tiny", "--model-sources", str(sources_root),
                          "--weights", str(spec_file), "--out", str(tmp_path / "local"), "--json"],
                         capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    from_cli = json.loads(out.stdout)
    assert from_cli["TargetModel"] == from_lambda["TargetModel"]
    assert from_cli["Sha256"] == from_lambda["Sha256"]
    assert (tmp_path / "local" / from_cli["TargetModel"]).read_bytes() == \
        s3.get_object(Bucket=bucket, Key=from_lambda["Key"])["Body"].read()


def test_gzip_and_tar_writers_are_standard(tmp_path):
    """Big members (pax size record) and every level round-trip through the stdlib readers."""
    for level in (0, 1, 9):
        buf = io.BytesIO()
        gz = GzipWriter(buf, level)
        tar = TarWriter(gz)
        tar.add_dir("weights")
        tar.add_bytes("weights/a.json", b"{}" * 1000)
        tar.close()
        gz.close()
        with tarfile.open(fileobj=io.BytesIO(buf.getvalue()), mode="r:gz") as tf:
            assert tf.extractfile("weights/a.json").read() == b"{}" * 1000
        assert gzip.decompress(buf.getvalue())[:7] == b"weights"


def test_s3_destination_skip_requires_the_recorded_digest(s3, bucket, model_src):
    """An object at the key without our metadata/tag is rebuilt, not trusted."""
    model, common = model_src
    sources = SourceTree.from_dirs([model, common])
    none = parse_spec({"kind": "none"})
    key = "models/" + plan("tiny", sources, none).target_model
    s3.put_object(Bucket=bucket, Key=key, Body=b"not an archive")
    result = package("tiny", sources, none, S3Destination(s3, bucket, "models/"))
    assert not result.skipped
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read()[:2] == b"\x1f\x8b"
    assert package("tiny", sources, none, S3Destination(s3, bucket, "models/")).skipped


def _interpreters() -> list[str]:
    """Other CPython versions on this machine that the Lambda runtimes use (3.12+): PATH or pyenv."""
    import shutil

    candidates = [shutil.which(f"python3.{minor}") for minor in (12, 13, 14)]
    pyenv = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser()
    candidates += sorted(str(p) for p in pyenv.glob("versions/3.1[2-9]*/bin/python3"))
    found, versions = [], set()
    for exe in filter(None, candidates):
        out = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True,
                             timeout=30)
        if out.returncode == 0 and out.stdout not in versions:
            versions.add(out.stdout)
            found.append(exe)
    return found


def test_same_bytes_on_other_pythons_with_the_lambda_layout(tmp_path, model_src):
    """`packager` imported as a top-level package (as in the Lambda asset) on 3.12+ gives the same archive."""
    import pytest

    interpreters = _interpreters()
    if not interpreters:
        pytest.skip("no python3.12+ on this machine")
    from packager_helpers import REPO_ROOT

    model, common = model_src
    weights = make_weights(tmp_path / "weights")
    spec = parse_spec({"kind": "local", "path": str(weights)})
    here = package("tiny", SourceTree.from_dirs([model, common]), spec, LocalDestination(tmp_path / "here"))
    script = (
        "import sys\n"
        "from packager.core import LocalDestination, package\n"
        "from packager.sources import SourceTree\n"
        "from packager.specs import parse_spec\n"
        "r = package('tiny', SourceTree.from_dirs(sys.argv[1:3]), parse_spec({'kind': 'local', 'path': sys.argv[3]}),"
        " LocalDestination(sys.argv[4]))\n"
        "print(r.target_model, r.sha256)\n"
    )
    for i, exe in enumerate(interpreters):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = str(REPO_ROOT / "constructs" / "mme_constructs")
        out = subprocess.run([exe, "-c", script, str(model), str(common), str(weights), str(tmp_path / f"o{i}")],
                             capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [here.target_model, here.sha256], exe
