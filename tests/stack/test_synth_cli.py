"""The real CDK CLI: `cdk synth` succeeds with cdk-nag on, cfn-lint is clean, acknowledgements are specific."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mme_constructs import NAG_PACKS
from mme_constructs.instance_types import SUPPORTED_INSTANCE_TYPES
from stack_helpers import AWS_BOGUS, AWS_UNSET, REPO_ROOT, report_findings, run_cdk_synth, templates

pytestmark = pytest.mark.synth


def test_cdk_synth_without_credentials_writes_the_stack(cli_synth):
    outdir, proc = cli_synth
    assert [p.name for p in templates(outdir)] == ["ImageEditingMme.template.json"]
    report = json.loads((outdir / "validation-report.json").read_text())
    assert report["pluginReports"] == [] or all(r["conclusion"] == "success" for r in report["pluginReports"])
    assert "end-of-life" not in proc.stderr  # jsii ran on the venv's supported Node


def test_cdk_synth_with_bogus_credentials(tmp_path):
    proc = run_cdk_synth(tmp_path, AWS_BOGUS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "ImageEditingMme.template.json").is_file()


def test_cdk_synth_reports_bad_context_in_one_line(tmp_path):
    proc = run_cdk_synth(tmp_path, AWS_UNSET, "instanceType=ml.t3.medium")
    assert proc.returncode != 0
    assert "error: context instanceType: 'ml.t3.medium' is not a GPU instance type" in proc.stderr
    assert "Traceback" not in proc.stderr and "jsii" not in proc.stderr


def test_cdk_synth_refuses_a_multi_gpu_type_in_one_line_naming_the_supported_list(tmp_path):
    proc = run_cdk_synth(tmp_path, AWS_UNSET, "instanceType=ml.g5.12xlarge")
    assert proc.returncode != 0
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: context instanceType: ml.g5.12xlarge has 4 GPUs; GPU multi-model endpoints run "
                           "on single-GPU instance types only; supported: ")
    assert line.endswith(", ".join(SUPPORTED_INSTANCE_TYPES))
    assert not list(tmp_path.glob("*.template.json"))


def test_cdk_synth_of_an_undocumented_type_warns_and_succeeds(tmp_path):
    proc = run_cdk_synth(tmp_path, AWS_UNSET, "instanceType=ml.g6.2xlarge", "allowUndocumentedInstanceType=true",
                         'instanceTypeFacts={"gpuModel": "NVIDIA L4", "gpuMemoryGiB": 24, "instanceStorage": true}')
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert ("ml.g6.2xlarge is not in AWS's list of GPU instance types for multi-model endpoints; using the facts "
            "given for it (NVIDIA L4, 24 GiB, NVMe instance storage)") in output
    assert "ImageEditingMme/Endpoint" in output
    template = json.loads((tmp_path / "ImageEditingMme.template.json").read_text())
    (config,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::EndpointConfig"]
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.g6.2xlarge"
    assert "KmsKeyId" not in config  # NVMe instance storage, as given
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert all(r["conclusion"] == "success" for r in report["pluginReports"])


def test_cfn_lint_is_clean_on_every_template(cli_synth):
    outdir, _ = cli_synth
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), *map(str, templates(outdir))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr  # no errors and no warnings
    assert proc.stdout.strip() == ""


# A finding id of one of the five packs: AwsSolutions-<RULE><n> (with [<finding>] for rules with several
# findings per resource; IAM4/IAM5 must always name the exact finding), or <pack>-<RuleName>.
PACK = "|".join(re.escape(p) for p in NAG_PACKS if p != "AwsSolutions")
ACK_ID = re.compile(rf"^(AwsSolutions-[A-Z]+[0-9]+(\[(Resource|Action|Policy)::.+\])?|({PACK})-[A-Z][A-Za-z0-9]+)$")


def acknowledgements(outdir: Path) -> list[tuple[str, str, str]]:
    acks = []
    for path in templates(outdir):
        for logical_id, res in json.loads(path.read_text())["Resources"].items():
            for rule in res.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                acks.append((logical_id, rule.get("id", ""), rule.get("reason", "")))
    return acks


def test_every_acknowledgement_names_a_finding_and_a_reason(cli_synth):
    outdir, _ = cli_synth
    acks = acknowledgements(outdir)
    assert acks, "the stack is expected to carry reviewed acknowledgements"
    assert {rule_id.split("-")[0] for _, rule_id, _ in acks} == set(NAG_PACKS)  # reviewed findings of each pack
    for logical_id, rule_id, reason in acks:
        assert ACK_ID.match(rule_id), f"{logical_id}: {rule_id!r} is not a specific finding id"
        if rule_id.startswith(("AwsSolutions-IAM4", "AwsSolutions-IAM5")):
            assert "[" in rule_id, f"{logical_id}: {rule_id} must name the exact resource or action"
        assert len(reason.split()) >= 8, f"{logical_id}: reason {reason!r} is too thin to review"
        assert not re.search(r"\b(todo|tbd|fixme|n/a)\b", reason, re.I), f"{logical_id}: placeholder reason"
    # Print the list: it is the reviewable record of what was accepted and why.
    for logical_id, rule_id, reason in sorted(set(acks), key=lambda a: a[1]):
        print(f"{rule_id:60s} {logical_id}: {reason}")


def test_nag_fails_synth_on_an_unacknowledged_finding(cdk_context, tmp_path):
    """The checks are live: an unreviewed bucket added to the stack stops synthesis with findings of the
    AwsSolutions, NIST 800-53 R5, HIPAA and PCI DSS packs; the Serverless pack has no S3 rule, so an
    unreviewed function is added too. Nothing else of the stack is reported."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_s3 as s3

    import app as app_module

    app = cdk.App(outdir=str(tmp_path), context=cdk_context)
    app_module.build_app(app)
    stack = app.node.find_child("ImageEditingMme")
    s3.Bucket(stack, "Unreviewed")
    lambda_.Function(stack, "UnreviewedFunction", runtime=lambda_.Runtime.PYTHON_3_14, handler="index.handler",
                     code=lambda_.Code.from_inline("def handler(event, context):\n    return event\n"))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    findings = report_findings(tmp_path)
    assert {path.split("/")[1] for _, path in findings} == {"Unreviewed", "UnreviewedFunction"}
    on_bucket = {rule for rule, path in findings if path.startswith("ImageEditingMme/Unreviewed/")}
    assert {rule.split("-")[0] for rule in on_bucket} == set(NAG_PACKS) - {"Serverless"}
    assert {"AwsSolutions-S1", "AwsSolutions-S10", "NIST.800.53.R5-S3BucketLoggingEnabled",
            "HIPAA.Security-S3BucketSSLRequestsOnly", "PCI.DSS.321-S3BucketVersioningEnabled"} <= on_bucket
    on_function = {rule for rule, path in findings if path.startswith("ImageEditingMme/UnreviewedFunction/")}
    assert {"Serverless-LambdaDLQ", "Serverless-LambdaTracing", "NIST.800.53.R5-LambdaInsideVPC"} <= on_function


def test_import_constructs_is_the_pypi_library():
    proc = subprocess.run(
        [sys.executable, "-c", "import constructs, mme_constructs; print(constructs.__file__); "
         "print(constructs.Construct.__module__); print(mme_constructs.__file__)"],
        cwd=REPO_ROOT,  # the repo root has a constructs/ folder: it must not shadow the library
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lib, module, ours = proc.stdout.split()
    assert "site-packages" in lib and not lib.startswith(str(REPO_ROOT / "constructs"))
    assert module.startswith("constructs")
    assert ours.startswith(str(REPO_ROOT / "constructs" / "mme_constructs"))
    assert not (REPO_ROOT / "constructs" / "__init__.py").exists()
