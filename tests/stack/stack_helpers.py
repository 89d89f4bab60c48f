"""Helpers of the stack tests, imported by name (``from conftest import ...`` would pick whichever
folder's conftest pytest loaded last when several test folders run together)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ACKNOWLEDGED_RULES = "aws:cdk:acknowledged-rules"
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
AWS_UNSET = {k: None for k in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                               "AWS_REGION", "AWS_DEFAULT_REGION", "CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")}
AWS_BOGUS = {
    **AWS_UNSET,
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_REGION": "eu-west-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def run_cdk_synth(outdir: Path, env_overrides: dict[str, str | None], *context: str) -> subprocess.CompletedProcess:
    """The real CDK CLI's ``cdk synth`` of this app into ``outdir`` (``-c`` for each of ``context``)."""
    env = {**os.environ}
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    args = [str(CDK), "synth", "--no-notices", "--no-version-reporting", "--quiet", "--output", str(outdir)]
    for c in context:
        args += ["-c", c]
    return subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def templates(outdir: Path) -> list[Path]:
    found = sorted(outdir.glob("*.template.json"))
    assert found, f"no templates in {outdir}"
    return found


def synth_with_nag(build: Callable, outdir: Path, *, context: dict | None = None, add_checks: bool = True):
    """``build(app)`` fills a fresh app; synthesize it with the five cdk-nag packs (raises on findings).

    ``add_checks=False`` for a ``build`` that registers the checks itself (``app.build_app``).
    """
    import aws_cdk as cdk

    from mme_constructs import nag_packs

    app = cdk.App(outdir=str(outdir), context=context)
    build(app)
    if add_checks:
        cdk.Validations.of(app).add_plugins(*nag_packs(app))
    app.synth()
    return app


def synth_report(build: Callable, outdir: Path, *, context: dict | None = None,
                 add_checks: bool = True) -> tuple[object, set[tuple[str, str]]]:
    """Synthesize ``build`` with the five packs; ``(app, unacknowledged findings)`` instead of raising.
    The app keeps every acknowledgement made, including those of the validation step.
    ``add_checks=False`` for a ``build`` that registers the checks itself."""
    import aws_cdk as cdk

    from mme_constructs import nag_packs

    app = cdk.App(outdir=str(outdir), context=context)
    build(app)
    if add_checks:
        cdk.Validations.of(app).add_plugins(*nag_packs(app))
    try:
        app.synth()
    except RuntimeError as err:
        if "ValidationFailed" not in str(err):
            raise
        return app, report_findings(outdir)
    return app, set()


def acknowledged(app) -> set[tuple[str, str]]:
    """(construct path, rule id) of every acknowledgement in the construct tree."""
    found = set()
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == ACKNOWLEDGED_RULES:
                found |= {(construct.node.path, key.split("::", 1)[-1]) for key in entry.data}
    return found


def findings_without_acknowledgements(build: Callable, outdir: Path, monkeypatch, **synth_kwargs) -> set[tuple[str, str]]:
    """(rule id, CloudFormation resource path) of every finding of the five packs when no
    acknowledgement is made at all: what really fires."""
    import aws_cdk as cdk
    import pytest

    monkeypatch.setattr(cdk.Validations, "acknowledge", lambda self, *rules: None)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synth_with_nag(build, outdir, **synth_kwargs)
    monkeypatch.undo()
    return report_findings(outdir)


def report_findings(outdir: Path) -> set[tuple[str, str]]:
    """(rule id, construct path) of every violation in ``outdir``'s validation report."""
    report = json.loads((outdir / "validation-report.json").read_text())
    return {(v["ruleName"], r["constructPath"]) for p in report["pluginReports"] for v in p["violations"]
            for r in v["violatingConstructs"]}


def assert_every_acknowledgement_fires(acks: set[tuple[str, str]], findings: set[tuple[str, str]]) -> None:
    """Each acknowledgement matches a finding that fires on a resource at or under its construct."""
    unmatched = sorted((path, rule) for path, rule in acks
                       if not any(rule == f and (where == path or where.startswith(path + "/")) for f, where in findings))
    assert not unmatched, f"acknowledgements without a finding: {unmatched}"


def make_endpoint(stack, **kwargs):
    """A MultiModelEndpoint ``E`` named ``e`` on a new ModelBucket and this repository's container."""
    from mme_constructs import ModelBucket, MultiModelEndpoint, ServingImage

    bucket = ModelBucket(stack, "B")
    image = ServingImage.from_asset(stack, "I", directory=REPO_ROOT / "container")
    props = dict(image=image, model_store=bucket.model_store, endpoint_name="e")
    props.update(kwargs)
    return MultiModelEndpoint(stack, "E", **props)


def isolated_vpc(stack, construct_id: str = "Vpc"):
    """A VPC of two private isolated subnets (no NAT): where a team puts an endpoint or a packager."""
    from aws_cdk import aws_ec2 as ec2

    return ec2.Vpc(stack, construct_id, max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)])


def resources(template: dict, type_: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def template_of(app, stack_name: str) -> dict:
    return json.loads((Path(app.outdir) / f"{stack_name}.template.json").read_text())


# --- CloudWatch: dashboards and alarms as the template holds them ---------------------------


def resolve_for_test(value) -> str:
    """A ``Fn::Join`` / ``Ref`` / ``Fn::GetAtt`` value as text, references written ``<Ref:X>`` / ``<X.Attr>``."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(resolve_for_test(p) for p in parts)
    if "Ref" in value:
        return f"<Ref:{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    raise AssertionError(f"unexpected intrinsic {value}")


def dashboard_widgets(dashboard: dict) -> list[dict]:
    """The widgets of an ``AWS::CloudWatch::Dashboard`` resource, its body parsed."""
    return json.loads(resolve_for_test(dashboard["Properties"]["DashboardBody"]))["widgets"]


def widget_metrics(widget: dict) -> list[dict]:
    """Each metric line of a metric widget: ``namespace``, ``name``, ``dimensions``, ``stat``, ``period``,
    ``id``, ``visible``, ``label``, ``y_axis``; expression lines have ``expression`` instead. CDK leaves
    out ``stat`` when it is Average, the dashboards' default."""
    lines = []
    for entry in widget["properties"]["metrics"]:
        options = entry[-1] if isinstance(entry[-1], dict) else {}
        if "expression" in options:
            lines.append({"expression": options["expression"], "label": options.get("label")})
            continue
        namespace, name, *dims = entry[:-1] if options else entry
        lines.append({"namespace": namespace, "name": name, "dimensions": dict(zip(dims[::2], dims[1::2])),
                      "stat": options.get("stat", "Average"), "period": options.get("period"), "id": options.get("id"),
                      "visible": options.get("visible", True), "label": options.get("label"),
                      "y_axis": options.get("yAxis", "left")})
    return lines


def alarm_metrics(alarm: dict) -> list[tuple[str, str, dict, str]]:
    """(namespace, metric name, dimensions, statistic) of every metric an alarm reads."""
    props = alarm["Properties"]
    if "MetricName" in props:
        stat = props.get("Statistic") or props.get("ExtendedStatistic")
        return [(props["Namespace"], props["MetricName"], {d["Name"]: d["Value"] for d in props["Dimensions"]}, stat)]
    return [(m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"],
             {d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]}, m["MetricStat"]["Stat"])
            for m in props["Metrics"] if "MetricStat" in m]
