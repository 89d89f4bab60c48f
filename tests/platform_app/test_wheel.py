"""``constructs/`` as a platform team gets it: the wheel is built from the source tree, installed with
its dependencies (the pinned versions of constraints.txt) into a fresh virtual environment that has
nothing of this repository, and the platform app is synthesized by the CDK CLI with that
environment's Python: the library works outside the repository."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
UV = Path(sys.executable).parent / "uv"
pytestmark = pytest.mark.synth


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # an isolated build: setuptools from the build requirements' range, not from this environment
    _run([UV, "build", "--wheel", "--out-dir", out, REPO_ROOT / "constructs"], cwd=tmp_path_factory.mktemp("cwd"))
    (found,) = out.glob("mme_constructs-*.whl")
    return found


def test_the_wheel_carries_types_version_license_and_readme_and_no_tools(wheel):
    from mme_constructs import __version__

    assert wheel.name == f"mme_constructs-{__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "mme_constructs/py.typed" in names
    assert "mme_constructs/packager/lambda_handler.py" in names  # the packager Lambda's code is in the package
    assert not [n for n in names if "dlc_sync" in n or n.startswith("tools/") or "/tests/" in n]
    meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    meta = email.message_from_string(zipfile.ZipFile(wheel).read(meta_name).decode())
    assert meta["License-Expression"] == "Apache-2.0" and meta["Version"] == __version__
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert meta["Description-Content-Type"] == "text/markdown" and "# mme-constructs" in meta.get_payload()
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert "this project" not in meta["Summary"].lower()
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("aws-cdk-lib") for r in requires) and any(r.startswith("cdk-nag") for r in requires)


def test_the_platform_app_synthesizes_from_the_installed_wheel(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([UV, "venv", "--python", sys.executable, venv])
    python = venv / "bin" / "python"
    _run([UV, "pip", "install", "--python", python, "-c", REPO_ROOT / "constraints.txt", wheel])
    # the environment has the library and its dependencies, and nothing of the repository
    probe = _run([python, "-c", "import mme_constructs, aws_cdk, cdk_nag; print(mme_constructs.__file__, "
                  "mme_constructs.__version__)"], cwd=tmp_path)
    where, version = probe.stdout.split()
    assert Path(where).is_relative_to(venv) and version
    assert _run([python, "-c", "import importlib.util as u; print(u.find_spec('mme') is None, "
                 "u.find_spec('stacks') is None)"], cwd=tmp_path).stdout.split() == ["True", "True"]

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_DEFAULT_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    outdir = tmp_path / "cdk.out"
    proc = subprocess.run([str(CDK), "synth", "--no-notices", "--no-version-reporting", "--quiet", "--output",
                           str(outdir)], cwd=HERE, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((outdir / "validation-report.json").read_text())
    assert all(r["conclusion"] == "success" for r in report["pluginReports"]), report
    template = json.loads((outdir / "PlatformInference.template.json").read_text())
    packager_code = [r["Properties"]["Code"] for r in template["Resources"].values()
                     if r["Type"] == "AWS::Lambda::Function"
                     and r["Properties"].get("Handler") == "packager.lambda_handler.handler"]
    assert len(packager_code) == 2
    # the packager's asset was staged from the installed package
    installed = Path(where).parent / "packager" / "lambda_handler.py"
    for code in packager_code:
        staged = outdir / f"asset.{code['S3Key'].removesuffix('.zip')}" / "packager" / "lambda_handler.py"
        assert staged.read_bytes() == installed.read_bytes()
