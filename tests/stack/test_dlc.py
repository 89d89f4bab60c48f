"""The per-region SageMaker PyTorch inference DLC (``ServingImage.from_dlc``): regenerated from the
installed SDK, resolved per stack, and flagged past its end of patching; the app's own image builds
on the Dockerfile's Debian base, or on the mirror ``baseImage`` names."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Annotations, Match

from mme_constructs import ServingImage, dlc_image_uri
from mme_constructs import _dlc_registries
from mme_constructs.dlc import DLC_SUPPORT, DLC_TAG, end_of_patch_warning
from mme_constructs.gpu_runtime import DLC_PYTORCH_2_6_CU124
from mme_constructs.serving_image import DEFAULT_BASE_IMAGE

import app as app_module

from stack_helpers import REPO_ROOT, resources, synth_with_nag, template_of

sys.path.insert(0, str(REPO_ROOT / "constructs" / "tools"))
import dlc_sync  # noqa: E402  (a development tool of the repository, not in the wheel)


def test_checked_in_registries_are_what_the_installed_sdk_says():
    """Fails when the SDK pin moves and the registries changed: run python constructs/tools/dlc_sync.py."""
    config = dlc_sync.read_sdk_config()
    assert config["framework_version"] == "2.6.0" and config["repository"] == "pytorch-inference"
    assert len(config["registries"]) >= 30 and config["registries"]["us-east-1"] == "763104351884"
    assert Path(_dlc_registries.__file__).read_text() == dlc_sync.render_module(config)


def test_sync_check_reports_drift(monkeypatch, tmp_path, capsys):
    module = tmp_path / "_dlc_registries.py"
    module.write_text(Path(_dlc_registries.__file__).read_text().replace("763104351884", "111111111111", 1))
    monkeypatch.setattr(dlc_sync, "MODULE", module)
    assert dlc_sync.main(["--check"]) == 1
    assert "differs from the installed SDK" in capsys.readouterr().err
    assert dlc_sync.main([]) == 0 and dlc_sync.main(["--check"]) == 0


def test_concrete_uris_per_partition():
    assert dlc_image_uri("us-east-1") == f"763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:{DLC_TAG}"
    assert dlc_image_uri("eu-central-2").startswith("380420809688.dkr.ecr.eu-central-2.amazonaws.com/")
    assert dlc_image_uri("cn-north-1").startswith("727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/")
    with pytest.raises(ValueError, match="no SageMaker PyTorch 2.6.0 inference DLC registry is known for region 'xx-1'"):
        dlc_image_uri("xx-1")


def test_dlc_cli_prints_the_uri_and_the_login(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "mme_constructs.dlc", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    ok = run("eu-west-1")
    assert ok.returncode == 0
    uri, login = ok.stdout.splitlines()
    assert uri == dlc_image_uri("eu-west-1")
    assert login.endswith("--password-stdin 763104351884.dkr.ecr.eu-west-1.amazonaws.com")
    bad = run("mars-1")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")


def _dlc_stack(app, env=None):
    stack = cdk.Stack(app, "Dlc", env=env)
    image = ServingImage.from_dlc(stack, "Image")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    image.grant_pull(role)
    cdk.Validations.of(role).acknowledge(cdk.Acknowledgment(
        id="AwsSolutions-IAM5[Resource::*]", reason="Test fixture: ecr:GetAuthorizationToken has no resource form."),
        *[cdk.Acknowledgment(id=f"{pack}-IAMNoInlinePolicy", reason="Test fixture: grant_pull to a role of the test "
                             "adds to that role's own policy.") for pack in ("NIST.800.53.R5", "HIPAA.Security",
                                                                            "PCI.DSS.321")])
    cdk.CfnOutput(stack, "ImageUri", value=image.image_uri)


def test_from_dlc_in_an_environment_agnostic_stack_uses_a_mapping(tmp_path):
    app = synth_with_nag(_dlc_stack, tmp_path)
    template = template_of(app, "Dlc")
    mapping = template["Mappings"]["PytorchInferenceDlcRegistry"]
    assert mapping == {region: {"account": account} for region, account in _dlc_registries.REGISTRY_ACCOUNTS.items()}
    uri = template["Outputs"]["ImageUri"]["Value"]["Fn::Join"][1]
    assert uri[0] == {"Fn::FindInMap": ["PytorchInferenceDlcRegistry", {"Ref": "AWS::Region"}, "account"]}
    assert uri[-1] == f"/pytorch-inference:{DLC_TAG}" and {"Ref": "AWS::URLSuffix"} in uri
    (policy,) = resources(template, "AWS::IAM::Policy").values()
    pull = next(s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "ecr:BatchGetImage" in s["Action"])
    assert "repository/pytorch-inference" in json.dumps(pull["Resource"])
    assert "PytorchInferenceDlcRegistry" in json.dumps(pull["Resource"])


def test_from_dlc_in_a_concrete_region_is_a_literal(tmp_path):
    app = synth_with_nag(lambda a: _dlc_stack(a, cdk.Environment(account="123456789012", region="eu-central-2")),
                         tmp_path)
    template = template_of(app, "Dlc")
    assert "Mappings" not in template
    assert template["Outputs"]["ImageUri"]["Value"] == dlc_image_uri("eu-central-2")
    with pytest.raises(ValueError, match="ServingImage.from_dlc: no SageMaker PyTorch"):
        ServingImage.from_dlc(cdk.Stack(cdk.App(), "S", env=cdk.Environment(region="mars-1")), "Image")


def test_from_dlc_warns_past_its_end_of_patching():
    support = DLC_SUPPORT["2.6"]
    assert support.end_of_patch == datetime.date(2026, 6, 30) and support.model_server == "TorchServe 0.12.0"
    assert end_of_patch_warning(DLC_TAG, today=datetime.date(2026, 6, 30)) is None
    late = end_of_patch_warning(DLC_TAG, today=datetime.date(2026, 7, 1))
    assert "has had no patches since 2026-06-30" in late and "TorchServe 0.12.0" in late
    assert "not in mme_constructs.dlc.DLC_SUPPORT" in end_of_patch_warning("2.9.0-gpu-py312-cu126-ubuntu22.04")
    stack = cdk.Stack(cdk.App(), "Dlc")
    image = ServingImage.from_dlc(stack, "Image")
    assert image.cuda_build == DLC_PYTORCH_2_6_CU124
    expected = end_of_patch_warning(DLC_TAG)  # today's date decides (None before the end)
    found = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp("no patches since 2026-06-30"))
    assert bool(found) == (expected is not None)


def _build_args(app) -> dict:
    manifest = json.loads((Path(app.outdir) / "ImageEditingMme.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    return image["source"].get("dockerBuildArgs") or {}


@pytest.mark.parametrize(("region", "override"), [
    (None, None),
    ("ap-southeast-3", None),
    ("ap-southeast-3", "123456789012.dkr.ecr.ap-southeast-3.amazonaws.com/mirror/debian:trixie-slim"),
])
def test_the_app_builds_on_the_debian_base_or_its_mirror(region, override, cdk_context, tmp_path, monkeypatch):
    for var in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    if region:
        monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
        monkeypatch.setenv("CDK_DEFAULT_REGION", region)
    context = {**cdk_context, **({"baseImage": override} if override else {})}
    app = synth_with_nag(app_module.build_app, tmp_path, context=context, add_checks=False)
    # no build argument without an override: the Dockerfile's own ARG BASE_IMAGE default builds
    assert _build_args(app) == ({"BASE_IMAGE": override} if override else {})
    output = template_of(app, "ImageEditingMme")["Outputs"]["ServingBaseImage"]["Value"]
    assert output == (override or DEFAULT_BASE_IMAGE)


def test_synth_never_imports_the_sdk(tmp_path):
    code = ("import sys, aws_cdk as cdk, app\n"
            "app.build_app(cdk.App(outdir=sys.argv[1])).synth()\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'sagemaker'], 'sagemaker imported'\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
