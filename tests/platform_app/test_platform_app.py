"""A platform team's app (tests/platform_app/platform_app.py) synthesized by the real CDK CLI, with the
AwsSolutions checks and cfn-lint: the constructs work in an app that is not this project's stack."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
STACK = "PlatformInference"
ON_CALL = "arn:aws:sns:eu-west-1:111122223333:platform-on-call"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
pytestmark = pytest.mark.synth


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_DEFAULT_"))}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    return env


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory) -> tuple[Path, dict]:
    outdir = tmp_path_factory.mktemp("platform-cdk.out")
    proc = subprocess.run([str(CDK), "synth", "--no-notices", "--no-version-reporting", "--quiet", "--output", str(outdir)],
                          cwd=HERE, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((outdir / "validation-report.json").read_text())
    assert all(r["conclusion"] == "success" for r in report["pluginReports"]), report
    # the undocumented instance type is a warning in the CLI's output, not a failure
    assert "ml.g6.xlarge is not in AWS's list of GPU instance types for multi-model endpoints" in proc.stdout + proc.stderr
    return outdir, json.loads((outdir / f"{STACK}.template.json").read_text())


sys.path.insert(0, str(REPO_ROOT / "tests" / "stack"))
from stack_helpers import dashboard_widgets, widget_metrics  # noqa: E402


def resources(template: dict, type_: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def only(template: dict, type_: str, prefix: str = "") -> tuple[str, dict]:
    """The one resource of ``type_`` whose logical id starts with ``prefix``."""
    (found,) = [(k, v) for k, v in resources(template, type_).items() if k.startswith(prefix)]
    return found


def cfn_lint(template: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "--format", "json", str(template)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cfn_lint_is_clean_and_the_constructs_add_no_finding(synthesized, tmp_path):
    outdir, template = synthesized
    path = outdir / f"{STACK}.template.json"
    clean = cfn_lint(path, HERE)  # with the app's .cfnlintrc
    assert clean.returncode == 0 and json.loads(clean.stdout or "[]") == [], clean.stdout + clean.stderr
    raw = json.loads(cfn_lint(path, tmp_path).stdout)  # no configuration at all
    client_id, _ = next((k, v) for k, v in resources(template, "AWS::Lambda::Function").items() if k.startswith("Client"))
    assert [(f["Rule"]["Id"], f["Location"]["Path"][1]) for f in raw] == [("W3005", client_id)]


def test_endpoint_uses_the_parameter_the_imports_and_the_ecr_image(synthesized):
    _, template = synthesized
    _, endpoint = only(template, "AWS::SageMaker::Endpoint", "ImageEditing")
    assert endpoint["Properties"]["EndpointName"] == {"Ref": "EndpointName"}
    _, model = only(template, "AWS::SageMaker::Model", "ImageEditing")
    container = model["Properties"]["PrimaryContainer"]
    assert container["ModelDataUrl"] == "s3://platform-shared-models/image-editing/"
    assert json.dumps(container["Image"]).endswith('/platform/torchserve-mme:1.4.0"]]}')
    group_id, _ = only(template, "AWS::EC2::SecurityGroup", "ImageEditing")
    assert model["Properties"]["VpcConfig"] == {"SecurityGroupIds": [{"Fn::GetAtt": [group_id, "GroupId"]}],
                                                "Subnets": ["subnet-0a1b2c3d4e5f60718", "subnet-0a1b2c3d4e5f60719"]}
    _, config = only(template, "AWS::SageMaker::EndpointConfig", "ImageEditing")
    assert "KmsKeyId" not in config["Properties"]  # ml.g6.xlarge was described with NVMe instance storage
    policies = json.dumps(resources(template, "AWS::IAM::ManagedPolicy"))
    assert "arn:aws:kms:eu-west-1:111122223333:key/" in policies and "kms:Decrypt" in policies


def test_client_lambda_may_invoke_only_this_endpoint(synthesized):
    _, template = synthesized
    endpoint_id, _ = only(template, "AWS::SageMaker::Endpoint", "ImageEditing")
    client_role = next(k for k in resources(template, "AWS::IAM::Role") if k.startswith("ClientRole"))
    (policy,) = [p for p in resources(template, "AWS::IAM::Policy").values()
                 if p["Properties"]["Roles"] == [{"Ref": client_role}]]
    invoke = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "sagemaker:InvokeEndpoint" in s["Action"]]
    assert invoke == [{"Action": "sagemaker:InvokeEndpoint", "Effect": "Allow", "Resource": {"Ref": endpoint_id}}]


def test_alarms_watch_the_parameter_named_endpoint_and_page_the_teams_topic(synthesized):
    _, template = synthesized
    alarms = {a["Properties"]["AlarmName"]["Fn::Join"][1][1]: a["Properties"]
              for a in resources(template, "AWS::CloudWatch::Alarm").values()}
    assert set(alarms) == {"-5xx-error-rate", "-model-latency-p90", "-model-loading-wait-p90", "-cache-hit-ratio-low",
                           "-gpu-memory-high", "-disk-high", "-instances-at-max"}
    cache = alarms["-cache-hit-ratio-low"]
    assert (cache["Namespace"], cache["MetricName"], cache["Statistic"], cache["Unit"], cache["Threshold"]) == (
        "AWS/SageMaker", "ModelCacheHit", "Average", "None", 0.9)
    assert cache["Dimensions"] == [{"Name": "EndpointName", "Value": {"Ref": "EndpointName"}},
                                   {"Name": "VariantName", "Value": "AllTraffic"}]
    assert alarms["-gpu-memory-high"]["Threshold"] == 85  # ml.g6.xlarge: one GPU
    assert alarms["-instances-at-max"]["Threshold"] == 4  # the autoscaling maximum
    for props in alarms.values():
        assert props["AlarmActions"] == [ON_CALL] and props["OKActions"] == [ON_CALL]
        assert props["AlarmName"]["Fn::Join"][1][0] == {"Ref": "EndpointName"}


def test_dashboard_plots_the_parameter_named_endpoint(synthesized):
    _, template = synthesized
    _, dashboard = only(template, "AWS::CloudWatch::Dashboard")
    widgets = dashboard_widgets(dashboard)
    lines = [m for w in widgets if w["type"] == "metric" for m in widget_metrics(w) if "name" in m]
    assert len(lines) == 25  # every metric line of the ten graphs
    assert all(m["dimensions"] == {"EndpointName": "<Ref:EndpointName>", "VariantName": "AllTraffic"} for m in lines)
    (status,) = [w for w in widgets if w["type"] == "alarm"]
    assert len(status["properties"]["alarms"]) == 7
    instances = next(w for w in widgets if w["properties"].get("title") == "Instances in service")
    assert [a["value"] for a in instances["properties"]["annotations"]["horizontal"]] == [4, 2]


def test_log_groups_use_the_teams_key_and_the_parameter_name(synthesized):
    """The production endpoint's and its packager's groups use the team's key; the preview endpoint's
    and its packager's the preview bucket's own key."""
    _, template = synthesized
    groups = {k: g["Properties"] for k, g in resources(template, "AWS::Logs::LogGroup").items()
              if not k.startswith(("ClientLogs", "ApiAccessLogs"))}
    teams = {json.dumps(g["LogGroupName"]): g for g in groups.values() if g["KmsKeyId"] == KEY_ARN}
    assert json.dumps({"Fn::Join": ["", ["/aws/sagemaker/Endpoints/", {"Ref": "EndpointName"}]]}) in teams
    assert len(teams) == 3 and all(g["RetentionInDays"] == 90 for g in teams.values())
    preview_key, _ = only(template, "AWS::KMS::Key", "PreviewModels")
    previews = [g for g in groups.values() if g["KmsKeyId"] == {"Fn::GetAtt": [preview_key, "Arn"]}]
    assert len(previews) == 3 and len(groups) == 6
    _, endpoint = only(template, "AWS::SageMaker::Endpoint", "ImageEditing")
    endpoint_group = next(k for k, g in groups.items() if g.get("KmsKeyId") == KEY_ARN
                          and "Endpoints" in json.dumps(g["LogGroupName"]))
    assert endpoint_group in endpoint["DependsOn"]


def test_both_scaling_policies(synthesized):
    _, template = synthesized
    endpoint_id, _ = only(template, "AWS::SageMaker::Endpoint", "ImageEditing")
    target_id, target = only(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["DependsOn"] == [endpoint_id]
    assert target["Properties"]["ResourceId"] == {"Fn::Join": ["", ["endpoint/", {"Ref": "EndpointName"},
                                                                     "/variant/AllTraffic"]]}
    policies = [p["Properties"] for p in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()]
    assert all(p["ScalingTargetId"] == {"Ref": target_id} for p in policies)
    by_metric = {json.dumps(c.get("PredefinedMetricSpecification") or c["CustomizedMetricSpecification"]["MetricName"]):
                 c["TargetValue"] for c in (p["TargetTrackingScalingPolicyConfiguration"] for p in policies)}
    # invocations per instance per minute; % of the instance's one GPU
    assert by_metric == {json.dumps({"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}): 40,
                         json.dumps("GPUUtilization"): 65}


def test_the_storage_team_gets_the_archive_write_statements(synthesized):
    """The imported bucket's policy is not this app's: its statements are an output naming the packager."""
    _, template = synthesized
    output = template["Outputs"]["ArchiveWritePolicyStatements"]["Value"]["Fn::Join"]
    text = json.dumps(output)
    packager_role, _ = only(template, "AWS::IAM::Role", "PackagerPackagerRole")
    assert json.dumps({"Fn::GetAtt": [packager_role, "Arn"]}) in text
    for sid in ("OnlyArchiveWritersChangeModelArchives", "DenyModelArchivesNotSseKms", "DenyModelArchivesWithAnotherKey"):
        assert sid in text
    assert "arn:aws:s3:::platform-shared-models/image-editing/*" in text.replace('", {"Ref": "AWS::Partition"}, "', "aws")
    rule = json.loads(template["Outputs"]["RetiredArchiveRule"]["Value"])
    assert rule["Filter"]["And"] == {"Prefix": "image-editing/", "Tags": [{"Key": "archive-state", "Value": "retired"}]}
    assert rule["Expiration"] == {"Days": 14}
    # nothing written to a bucket the app does not own (its own preview bucket has its policies)
    assert "platform-shared-models" not in json.dumps(resources(template, "AWS::S3::BucketPolicy"))


def test_the_rest_api_invokes_the_endpoint_with_the_callers_target_model(synthesized):
    _, template = synthesized
    endpoint_id, _ = only(template, "AWS::SageMaker::Endpoint", "ImageEditing")
    _, method = only(template, "AWS::ApiGateway::Method")
    props = method["Properties"]
    assert (props["HttpMethod"], props["AuthorizationType"]) == ("POST", "AWS_IAM")
    assert props["RequestParameters"] == {"method.request.header.X-Target-Model": True}
    integration = props["Integration"]
    assert integration["RequestParameters"] == {
        "integration.request.header.X-Amzn-SageMaker-Target-Model": "method.request.header.X-Target-Model"}
    uri = json.dumps(integration["Uri"])
    assert "runtime.sagemaker:path/endpoints/" in uri and '{"Ref": "EndpointName"}' in uri
    role_id = integration["Credentials"]["Fn::GetAtt"][0]
    (policy,) = [p["Properties"] for p in resources(template, "AWS::IAM::Policy").values()
                 if p["Properties"]["Roles"] == [{"Ref": role_id}]]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Action": "sagemaker:InvokeEndpoint", "Effect": "Allow", "Resource": {"Ref": endpoint_id}}]


def test_the_partner_account_assumes_a_role_that_invokes_only_this_endpoint(synthesized):
    _, template = synthesized
    endpoint_id, _ = only(template, "AWS::SageMaker::Endpoint", "ImageEditing")
    role_id, role = only(template, "AWS::IAM::Role", "ImageEditingPartnerInvoker")
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert "444455556666" in json.dumps(trust["Principal"])
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": "partner-image-editing"}}
    _, policy = only(template, "AWS::IAM::ManagedPolicy", "ImageEditingPartnerInvokerPolicy")
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": "sagemaker:InvokeEndpoint", "Effect": "Allow", "Resource": {"Ref": endpoint_id},
         "Sid": "InvokeThisEndpoint"}]
    output = template["Outputs"]["PartnerInvokerArn"]
    assert output["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert output["Description"] == "Role account 444455556666 assumes to invoke the endpoint"


def test_updates_roll_out_as_a_canary_that_the_endpoint_alarms_roll_back(synthesized):
    _, template = synthesized
    _, endpoint = only(template, "AWS::SageMaker::Endpoint", "ImageEditing")
    config = endpoint["Properties"]["DeploymentConfig"]
    assert config["BlueGreenUpdatePolicy"] == {"TrafficRoutingConfiguration": {
        "Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}, "WaitIntervalInSeconds": 600},
        "TerminationWaitInSeconds": 1200}
    names = [a["AlarmName"]["Ref"] for a in config["AutoRollbackConfiguration"]["Alarms"]]
    assert [n.startswith(p) for n, p in zip(names, ("AlarmsServerErrorRate", "AlarmsModelLatencyP90"))] == [True] * 2
    _, preview = only(template, "AWS::SageMaker::Endpoint", "Preview")
    assert "DeploymentConfig" not in preview["Properties"]


def test_target_models_are_parameters_the_client_may_read(synthesized):
    _, template = synthesized
    parameters = {p["Properties"]["Name"]: p["Properties"]["Value"]["Fn::GetAtt"][0]
                  for p in resources(template, "AWS::SSM::Parameter").values()}
    assert sorted(parameters) == ["/platform/image-editing/target-model/preview/lama",
                                  "/platform/image-editing/target-model/sam"]
    sam_parameter, _ = next((k, v) for k, v in resources(template, "AWS::SSM::Parameter").items()
                            if v["Properties"]["Name"].endswith("/sam"))
    client_role, _ = only(template, "AWS::IAM::Role", "ClientRole")
    (policy,) = [p for p in resources(template, "AWS::IAM::Policy").values()
                 if p["Properties"]["Roles"] == [{"Ref": client_role}]]
    reads = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if "ssm:GetParameter" in s["Action"]]
    assert len(reads) == 1 and {"Ref": sam_parameter} in reads[0]["Resource"]["Fn::Join"][1]


def test_each_store_has_its_own_packager(synthesized):
    _, template = synthesized
    functions = {k: v["Properties"] for k, v in resources(template, "AWS::Lambda::Function").items()
                 if v["Properties"].get("Handler") == "packager.lambda_handler.handler"}
    by_id = {k.split("Packager")[0] or "Packager": v for k, v in functions.items()}
    assert (by_id["Packager"]["MemorySize"], by_id["Packager"]["Timeout"]) == (4096, 720)
    assert by_id["Preview"]["Architectures"] == ["x86_64"] and by_id["Preview"]["MemorySize"] == 3008
    artifacts = {a["Properties"]["ModelName"]: a["Properties"] for a in resources(template, "Custom::ModelArtifact").values()}
    assert (artifacts["sam"]["Prefix"], artifacts["sam"]["OnDelete"]) == ("image-editing/", "retire")
    assert (artifacts["lama"]["Prefix"], artifacts["lama"]["OnDelete"]) == ("preview/", "delete")
    assert artifacts["sam"]["ServiceToken"] != artifacts["lama"]["ServiceToken"]


def test_the_endpoint_reaches_only_s3_and_the_vpc_endpoints(synthesized):
    _, template = synthesized
    group_id, group = only(template, "AWS::EC2::SecurityGroup", "ImageEditing")
    assert group["Properties"]["SecurityGroupEgress"] == [
        {"CidrIp": "10.20.0.0/16", "Description": "VPC interface endpoints", "FromPort": 443, "IpProtocol": "tcp",
         "ToPort": 443}]
    (prefix_rule,) = [e["Properties"] for e in resources(template, "AWS::EC2::SecurityGroupEgress").values()
                      if e["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}]
    assert (prefix_rule["DestinationPrefixListId"], prefix_rule["FromPort"]) == ("pl-6da54004", 443)


def _load_platform_app():
    spec = importlib.util.spec_from_file_location("platform_app", HERE / "platform_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The team's own resources (a client Lambda, its role, its log group): findings of the packs there
#: are the team's to fix or acknowledge; nothing the constructs create is left unreviewed.
TEAM_RESOURCES = ("Client/", "ClientRole/", "ClientLogs/", "Api/", "ApiAccessLogs/")


def test_every_acknowledgement_fires_and_only_the_teams_resources_are_left_under_all_five_packs(tmp_path, monkeypatch):
    """What a team gets from the NIST 800-53 R5, HIPAA, PCI DSS and Serverless packs on top of the app's
    AwsSolutions checks: every finding of the constructs is acknowledged with its reason."""
    import aws_cdk as cdk

    from mme_constructs import nag_packs
    from stack_helpers import (
        acknowledged,
        assert_every_acknowledgement_fires,
        findings_without_acknowledgements,
        synth_report,
    )

    module = _load_platform_app()

    def with_five_packs(app):
        module.build(app)  # the app's own AwsSolutions checks
        cdk.Validations.of(app).add_plugins(*nag_packs(app)[1:])

    app, left = synth_report(with_five_packs, tmp_path / "acked", add_checks=False)
    assert left and all(path.split("/", 1)[1].startswith(TEAM_RESOURCES) for _, path in left), sorted(left)
    assert not [rule for rule, _ in left if rule.startswith("AwsSolutions")]
    findings = findings_without_acknowledgements(with_five_packs, tmp_path / "raw", monkeypatch, add_checks=False)
    assert_every_acknowledgement_fires(acknowledged(app), findings)
