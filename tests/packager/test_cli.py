"""`mme package`: local and S3 outputs, AWS settings, progress only on a terminal, one-line errors."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

MiB = 1 << 20


def mme(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mme.cli", *args], capture_output=True, text=True, timeout=180,
                          env=env or os.environ.copy(), cwd=cwd)


@pytest.fixture
def sources_root(model_src) -> Path:
    return model_src[0].parent


@pytest.fixture
def weights_dir(tmp_path) -> Path:
    root = tmp_path / "tiny-weights"
    (root / "sub").mkdir(parents=True)
    (root / "w.bin").write_bytes(os.urandom(6 * MiB))
    (root / "sub" / "cfg.json").write_text("{}")
    (root / ".hidden").write_text("never archived")
    return root


def test_local_folder_out_then_skip(tmp_path, sources_root, weights_dir):
    out = mme("package", "tiny", "--model-sources", str(sources_root), "--weights", str(weights_dir),
              "--out", str(tmp_path / "store"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    archive = Path(lines[0])
    assert archive.parent == tmp_path / "store" and archive.name.startswith("tiny-") and archive.is_file()
    assert "MB/s" not in out.stderr  # not a terminal: no progress line
    again = mme("package", "tiny", "--model-sources", str(sources_root), "--weights", str(weights_dir),
                "--out", str(tmp_path / "store"), "--json")
    result = json.loads(again.stdout)
    assert result["Skipped"] is True and result["Location"] == str(archive)
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [archive.name]  # no .partial left


def test_s3_out_honours_the_standard_aws_settings(tmp_path, sources_root, weights_dir, s3, bucket, moto_server):
    out = mme("package", "tiny", "--model-sources", str(sources_root), "--weights", str(weights_dir),
              "--out", f"s3://{bucket}/models/", "--part-size-mib", "5", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["S3Uri"] == f"s3://{bucket}/{result['Key']}" and result["Key"].startswith("models/tiny-")
    assert s3.head_object(Bucket=bucket, Key=result["Key"])["ContentLength"] == int(result["SizeBytes"])
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # The same through a named profile (config file with region + endpoint_url, credentials file).
    config = tmp_path / "aws-config"
    config.write_text(f"[profile moto]\nregion = us-east-1\nendpoint_url = {moto_server}\n")
    creds = tmp_path / "aws-credentials"
    creds.write_text("[moto]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(creds))
    out = mme("package", "tiny", "--model-sources", str(sources_root), "--weights", str(weights_dir),
              "--out", f"s3://{bucket}/models/", "--profile", "moto", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Skipped"] is True


def test_progress_on_a_terminal(tmp_path, sources_root, weights_dir):
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mme.cli", "package", "tiny", "--model-sources", str(sources_root),
                             "--weights", str(weights_dir), "--out", str(tmp_path / "store")],
                            stdout=subprocess.PIPE, stderr=follower, env=os.environ.copy())
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(leader)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "MB/s" in terminal and "\r" in terminal and " MB " in terminal


@pytest.mark.parametrize("args, code, fragment", [
    (["package", "nosuchmodel", "--out", "x"], 2, "nosuchmodel is not a folder"),
    (["package", "tiny", "--weights", "missing.yaml", "--out", "x"], 2, "--weights missing.yaml: no such file"),
    (["package", "tiny", "--weights", "bad.yaml", "--out", "x"], 2, "invalid YAML"),
    (["package", "tiny", "--weights", "revision.yaml", "--out", "x"], 2, "revision: must be a pinned 40-hex commit"),
    (["package", "tiny", "--weights", "404.yaml", "--out", "x"], 1, "HTTP 404 Not Found"),
    (["package", "tiny", "--out", "s3://"], 2, "expected s3://bucket/prefix/"),
    (["package", "tiny", "--out", "s3://no-such-bucket-anywhere/models/"], 1, "NoSuchBucket"),
])
def test_user_mistakes_are_one_line_errors(tmp_path, sources_root, hub, args, code, fragment, monkeypatch, capsys):
    """In process (the same main() the console script runs): exit code and a single stderr line."""
    from mme.cli import main

    (tmp_path / "bad.yaml").write_text("kind: [url\n")
    (tmp_path / "revision.yaml").write_text("kind: huggingface\nrepo_id: a/b\nrevision: main\nallow_patterns: ['*']\n")
    (tmp_path / "404.yaml").write_text(f"kind: url\nfiles:\n  - url: {hub.url}/files/nope.bin\n")
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--model-sources", str(sources_root)]) == code
    err = capsys.readouterr().err
    assert err.startswith("mme package: error: ") and fragment in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
