"""The endpoint as other aws-cdk-lib constructs see it (``aws_sagemaker.IEndpoint``: a REST API's
SageMaker integration), imports by attributes, and invocation from another account: refused by
``grant_invoke``, offered by ``add_invoker_role``. Real synth; the REST API app also runs cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sagemaker as sagemaker

from mme_constructs import MultiModelEndpoint

from stack_helpers import make_endpoint, resources, template_of

ENV = cdk.Environment(account="111122223333", region="eu-west-1")
PARTNER = "444455556666"


def _stack(tmp_path: Path, env: cdk.Environment | None = ENV) -> tuple[cdk.App, cdk.Stack]:
    app = cdk.App(outdir=str(tmp_path))
    return app, cdk.Stack(app, "S", env=env)


def test_an_owned_endpoint_is_an_aws_cdk_sagemaker_endpoint_behind_a_rest_api(tmp_path):
    app, stack = _stack(tmp_path)
    mme = make_endpoint(stack)
    api = apigateway.RestApi(stack, "Api", cloud_watch_role=False)
    integration = apigateway.SagemakerIntegration(mme, request_parameters={
        "integration.request.header.X-Amzn-SageMaker-Target-Model": "method.request.header.X-Target-Model"})
    api.root.add_resource("invoke").add_method("POST", integration, authorization_type=apigateway.AuthorizationType.IAM,
                                               request_parameters={"method.request.header.X-Target-Model": True})
    app.synth()
    template = template_of(app, "S")
    (method,) = resources(template, "AWS::ApiGateway::Method").values()
    uri = json.dumps(method["Properties"]["Integration"]["Uri"])
    assert "runtime.sagemaker" in uri and "path/endpoints/e/invocations" in uri
    # the integration's role may invoke this endpoint and nothing else
    statements = [s for p in resources(template, "AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    (endpoint_id,) = resources(template, "AWS::SageMaker::Endpoint")
    assert {"Action": "sagemaker:InvokeEndpoint", "Effect": "Allow", "Resource": {"Ref": endpoint_id}} in statements
    lint = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "--format", "json",
                           str(tmp_path / "S.template.json")], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    findings = json.loads(lint.stdout or "[]")
    assert not [f for f in findings if f["Level"] == "Error"], lint.stdout


def test_imports_by_attributes_name_the_endpoint_in_grants_and_metrics(tmp_path):
    _, stack = _stack(tmp_path)
    arn = "arn:aws:sagemaker:eu-west-1:111122223333:endpoint/team-mme"
    both = MultiModelEndpoint.from_endpoint_attributes(stack, "Both", endpoint_name="Team-MME", endpoint_arn=arn)
    assert (both.endpoint_name, both.endpoint_arn) == ("Team-MME", arn)
    by_arn = MultiModelEndpoint.from_endpoint_attributes(stack, "ByArn", endpoint_arn=arn)
    assert stack.resolve(by_arn.endpoint_name) == "team-mme"
    by_name = MultiModelEndpoint.from_endpoint_attributes(stack, "ByName", endpoint_name="Team-MME",
                                                          variant_name="Blue", instance_type="ml.g5.xlarge")
    assert stack.resolve(by_name.endpoint_arn) == {"Fn::Join": ["", [
        "arn:", {"Ref": "AWS::Partition"}, ":sagemaker:eu-west-1:111122223333:endpoint/team-mme"]]}
    assert by_name.metric_model_latency().dimensions == {"EndpointName": "Team-MME", "VariantName": "Blue"}
    assert by_name.gpu_instance_type.name == "ml.g5.xlarge"
    assert stack.resolve(by_name.endpoint_ref.endpoint_arn) == stack.resolve(by_name.endpoint_arn)
    with pytest.raises(ValueError, match="Nothing: give endpoint_name or endpoint_arn"):
        MultiModelEndpoint.from_endpoint_attributes(stack, "Nothing")


def test_grant_invoke_refuses_a_principal_of_another_account_instead_of_writing_nothing(tmp_path):
    _, stack = _stack(tmp_path)
    mme = make_endpoint(stack)
    foreign = iam.Role.from_role_arn(stack, "Foreign", f"arn:aws:iam::{PARTNER}:role/caller")
    with pytest.raises(ValueError, match=rf"grant_invoke: arn:aws:iam::{PARTNER}:role/caller is in account {PARTNER}, "
                                         r"not the endpoint's: .*add_invoker_role\(construct_id, trusted_account="):
        mme.grant_invoke(foreign)
    with pytest.raises(ValueError, match=f"is in account {PARTNER}"):
        mme.grant_invoke(iam.AccountPrincipal(PARTNER))
    # a principal without an identity policy cannot take a statement either: refused, not silently skipped
    with pytest.raises(ValueError, match="nothing could be added to the policy of ServicePrincipal"):
        mme.grant_invoke(iam.ServicePrincipal("lambda.amazonaws.com"))
    # a role of this account gets the statement
    local = iam.Role(stack, "Local", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    assert mme.grant_invoke(local).success


def test_grant_invoke_works_in_an_environment_agnostic_stack(tmp_path):
    """Without an account the construct cannot tell: a role of the stack is granted as before."""
    app, stack = _stack(tmp_path, env=None)
    mme = make_endpoint(stack)
    fn = lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_14, handler="index.handler",
                          code=lambda_.Code.from_inline("def handler(e, c): pass"))
    assert mme.grant_invoke(fn).success


def test_an_invoker_role_lets_another_account_invoke_this_endpoint_only(tmp_path):
    app, stack = _stack(tmp_path)
    mme = make_endpoint(stack)
    role = mme.add_invoker_role("PartnerInvoker", trusted_account=PARTNER, external_id="partner-image-editing",
                                max_session_duration=cdk.Duration.hours(2))
    assert mme.invoker_roles == {"PartnerInvoker": role}
    app.synth()
    template = template_of(app, "S")
    (endpoint_id,) = resources(template, "AWS::SageMaker::Endpoint")
    role_id, props = next((k, r["Properties"]) for k, r in resources(template, "AWS::IAM::Role").items()
                          if k.startswith("EPartnerInvoker"))
    (trust,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": "partner-image-editing"}}
    assert json.dumps(trust["Principal"]).count(PARTNER) == 1 and props["MaxSessionDuration"] == 7200
    (policy,) = [p["Properties"] for p in resources(template, "AWS::IAM::ManagedPolicy").values()
                 if p["Properties"].get("Roles") == [{"Ref": role_id}]]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Action": "sagemaker:InvokeEndpoint", "Effect": "Allow", "Resource": {"Ref": endpoint_id},
         "Sid": "InvokeThisEndpoint"}]
    assert template["Outputs"]["PartnerInvokerArn"]["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"trusted_account": "12345"}, "trusted_account '12345': a 12-digit AWS account id"),
    ({"trusted_account": "111122223333"}, "trusted_account 111122223333 is the endpoint's own account: use grant_invoke"),
    ({"trusted_account": PARTNER, "external_id": "x"}, "external_id: 2-1224 letters"),
])
def test_invoker_role_props_are_checked(tmp_path, kwargs, message):
    _, stack = _stack(tmp_path)
    mme = make_endpoint(stack)
    with pytest.raises(ValueError, match=rf"S/E: add_invoker_role: {message}"):
        mme.add_invoker_role("Invoker", **kwargs)


def test_a_second_invoker_role_of_the_same_id_is_refused(tmp_path):
    _, stack = _stack(tmp_path)
    mme = make_endpoint(stack)
    mme.add_invoker_role("Partner", trusted_account=PARTNER, output=False)
    with pytest.raises(ValueError, match="an invoker role 'Partner' exists already"):
        mme.add_invoker_role("Partner", trusted_account="777788889999")
