"""Model stores and their packagers in one app: several stores with their own ``ModelPackager``
(memory, timeout, architecture, outbound rules as props), the checks of a model folder at synth
(one error naming the folder and the rule), retired archives kept by a lifecycle rule, and each
model's TargetModel published as an SSM parameter. Real synth."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from mme_constructs import ModelArtifact, ModelBucket, ModelPackager

from stack_helpers import REPO_ROOT, isolated_vpc, resources, template_of

SOURCES = REPO_ROOT / "model_sources"


def _functions(template: dict) -> dict[str, dict]:
    return {k: v["Properties"] for k, v in resources(template, "AWS::Lambda::Function").items()
            if v["Properties"].get("Handler") == "packager.lambda_handler.handler"}


def test_two_stores_each_with_its_own_packager_and_props(tmp_path):
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S")
    prod, preview = ModelBucket(stack, "Prod"), ModelBucket(stack, "Preview", model_prefix="preview/")
    big = ModelPackager(stack, "BigPackager", model_store=prod.model_store, memory_size=6144,
                        timeout=cdk.Duration.minutes(10), architecture=lambda_.Architecture.X86_64)
    sam = ModelArtifact.from_model_sources(stack, "Sam", model_sources_dir=SOURCES, model_name="sam",
                                           model_store=prod.model_store, packager=big)
    # an artifact given no packager gets the stack's packager of its own store
    lama = ModelArtifact.from_model_sources(stack, "Lama", model_sources_dir=SOURCES, model_name="lama",
                                            model_store=preview.model_store)
    assert sam.provider is big and lama.provider is ModelPackager.of(stack, model_store=preview.model_store)
    assert ModelPackager.of(stack, model_store=prod.model_store) is big
    app.synth()
    template = template_of(app, "S")
    functions = _functions(template)
    assert len(functions) == 2
    by_memory = {f["MemorySize"]: f for f in functions.values()}
    assert by_memory[6144]["Timeout"] == 600 and by_memory[6144]["Architectures"] == ["x86_64"]
    assert by_memory[3008]["Timeout"] == 840 and by_memory[3008]["Architectures"] == ["arm64"]
    # each packager writes only its own store
    artifacts = resources(template, "Custom::ModelArtifact")
    prefixes = sorted((a["Properties"]["ModelName"], a["Properties"]["Prefix"]) for a in artifacts.values())
    assert prefixes == [("lama", "preview/"), ("sam", "models/")]
    roles = {k: json.dumps(v) for k, v in resources(template, "AWS::IAM::ManagedPolicy").items()
             if k.startswith(("BigPackagerPackagerPolicy", "ModelArtifactProviderPackagerPolicy"))}
    assert len(roles) == 2
    assert sum("/preview/*" in text for text in roles.values()) == 1


def test_each_store_gets_its_own_default_packager(tmp_path):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "S")
    first, second = ModelBucket(stack, "First").model_store, ModelBucket(stack, "Second").model_store
    one, two = ModelPackager.of(stack, model_store=first), ModelPackager.of(stack, model_store=second)
    assert one.node.id == "ModelArtifactProvider" and re.fullmatch(r"ModelArtifactProvider[0-9a-f]{8}", two.node.id)
    assert ModelPackager.of(stack, model_store=second) is two


def test_a_packager_of_another_store_is_refused_and_of_names_the_way_out(tmp_path):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "S")
    prod, preview = ModelBucket(stack, "Prod"), ModelBucket(stack, "Preview")
    packager = ModelPackager(stack, "P", model_store=prod.model_store)
    with pytest.raises(ValueError, match=r"ModelArtifact sam: packager: S/P writes to another model store"):
        ModelArtifact.from_model_sources(stack, "Sam", model_sources_dir=SOURCES, model_name="sam",
                                         model_store=preview.model_store, packager=packager)
    ModelPackager.of(stack, model_store=preview.model_store)
    with pytest.raises(ValueError, match=r"S/ModelArtifactProvider exists already: give memory_size on its first use, "
                                         r"or make a ModelPackager yourself"):
        ModelPackager.of(stack, model_store=preview.model_store, memory_size=4096)


@pytest.mark.parametrize(("props", "message"), [
    ({"memory_size": 128}, "memory_size must be a whole number of MB between 256 and 10240, got 128"),
    ({"memory_size": 3008.5}, "got 3008.5"),
    ({"timeout": cdk.Duration.minutes(15)}, r"timeout must be between 1 minute and 14 minutes .*got 15 minutes"),
    ({"timeout": cdk.Duration.seconds(30)}, r"got 30 seconds"),
])
def test_packager_props_are_checked(tmp_path, props, message):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "S")
    with pytest.raises(ValueError, match=rf"ModelPackager P: .*{message}"):
        ModelPackager(stack, "P", model_store=ModelBucket(stack, "B").model_store, **props)


def test_a_packager_without_outbound_rules(tmp_path):
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S")
    vpc = isolated_vpc(stack)
    packager = ModelPackager(stack, "P", model_store=ModelBucket(stack, "B").model_store, vpc=vpc,
                             allow_all_outbound=False)
    (group,) = packager.security_groups
    app.synth()
    (props,) = [v["Properties"] for v in resources(template_of(app, "S"), "AWS::EC2::SecurityGroup").values()]
    # CDK's rule that matches no traffic: a group with no outbound rule at all
    assert props["SecurityGroupEgress"] == [{"CidrIp": "255.255.255.255/32", "Description": "Disallow all traffic",
                                             "FromPort": 252, "IpProtocol": "icmp", "ToPort": 86}]


def test_outbound_rules_a_team_adds_to_a_packager_without_them(tmp_path):
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S")
    vpc = isolated_vpc(stack)
    packager = ModelPackager(stack, "P", model_store=ModelBucket(stack, "B").model_store, vpc=vpc,
                             allow_all_outbound=False)
    packager.security_groups[0].add_egress_rule(ec2.Peer.prefix_list("pl-6ea54007"), ec2.Port.tcp(443), "S3")
    app.synth()
    template = template_of(app, "S")
    (group,) = resources(template, "AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupEgress" not in group["Properties"]
    (egress,) = resources(template, "AWS::EC2::SecurityGroupEgress").values()
    assert (egress["Properties"]["DestinationPrefixListId"], egress["Properties"]["FromPort"]) == ("pl-6ea54007", 443)


# --- the model folder, checked at synth ------------------------------------------------------


@pytest.fixture
def sources(tmp_path) -> Path:
    """A copy of model_sources to break."""
    root = tmp_path / "model_sources"
    shutil.copytree(SOURCES, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _artifact(tmp_path, sources: Path, **props):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path / "out")), "S")
    return ModelArtifact.from_model_sources(stack, "Sam", model_sources_dir=sources, model_name="sam",
                                            model_store=ModelBucket(stack, "B").model_store, **props)


def test_a_model_folder_without_a_handler_stops_synth_naming_the_folders(tmp_path, sources):
    (sources / "sam" / "handler.py").unlink()
    with pytest.raises(ValueError, match=rf"ModelArtifact sam: source_dirs \({sources / 'sam'}, {sources / 'common'}\): "
                                         r"the model sources have no handler.py at their root"):
        _artifact(tmp_path, sources)


@pytest.mark.parametrize("reserved", ["weights/extra.bin", "MAR-INF/MANIFEST.json"])
def test_a_file_where_the_packager_writes_stops_synth(tmp_path, sources, reserved):
    path = sources / "common" / reserved
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    folder = reserved.split("/")[0]
    with pytest.raises(ValueError, match=rf"source file '{reserved}' \(in {sources / 'common'}\) would clash with the "
                                         rf"archive's {folder}/ folder"):
        _artifact(tmp_path, sources)


def test_the_same_path_in_two_folders_stops_synth(tmp_path, sources):
    shutil.copy(sources / "sam" / "handler.py", sources / "common" / "handler.py")
    with pytest.raises(ValueError, match=r"source_dirs .*handler.py"):
        _artifact(tmp_path, sources)


def test_a_bad_weights_spec_names_its_file(tmp_path, sources):
    (sources / "sam" / "weights.yaml").write_text("kind: huggingface\nrepo_id: a/b\nrevision: main\n")
    with pytest.raises(ValueError, match=rf"ModelArtifact sam: {sources / 'sam' / 'weights.yaml'}: "):
        _artifact(tmp_path, sources)


def test_the_shared_code_folder_is_a_prop(tmp_path, sources):
    (sources / "common").rename(sources / "shared")
    with pytest.raises(ValueError, match=r"shared_code_dir: .*/common is not a folder \(give shared_code_dir=None"):
        _artifact(tmp_path, sources)
    artifact = _artifact(tmp_path, sources, shared_code_dir="shared")
    assert [Path(a.asset_path).name for a in artifact.sources] and len(artifact.sources) == 2


def test_a_model_without_shared_code(tmp_path, sources):
    """A self-contained model folder: no shared code, no weights spec (``kind: none``)."""
    alone = sources / "alone"
    alone.mkdir()
    (alone / "handler.py").write_text("def handle(data, context):\n    return data\n")
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path / "out")), "S")
    artifact = ModelArtifact.from_model_sources(stack, "Alone", model_sources_dir=sources, model_name="alone",
                                                model_store=ModelBucket(stack, "B").model_store, shared_code_dir=None)
    assert len(artifact.sources) == 1 and artifact.spec.kind == "none"


# --- retired archives and the TargetModel parameter ---------------------------------------


def test_replaced_archives_are_retired_and_expired_by_the_bucket(tmp_path):
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S")
    bucket = ModelBucket(stack, "B", model_prefix="mme/", retired_archive_expiration=cdk.Duration.days(30))
    ModelArtifact.from_model_sources(stack, "Sam", model_sources_dir=SOURCES, model_name="sam",
                                     model_store=bucket.model_store)
    ModelArtifact.from_model_sources(stack, "Lama", model_sources_dir=SOURCES, model_name="lama",
                                     model_store=bucket.model_store, on_delete="delete")
    app.synth()
    template = template_of(app, "S")
    on_delete = {a["Properties"]["ModelName"]: a["Properties"]["OnDelete"]
                 for a in resources(template, "Custom::ModelArtifact").values()}
    assert on_delete == {"sam": "retire", "lama": "delete"}
    rules = next(b["Properties"]["LifecycleConfiguration"]["Rules"] for b in resources(template, "AWS::S3::Bucket").values()
                 if any(r["Id"] == "expire-retired-archives" for r in b["Properties"]["LifecycleConfiguration"]["Rules"]))
    (rule,) = [r for r in rules if r["Id"] == "expire-retired-archives"]
    assert rule == {"Id": "expire-retired-archives", "Status": "Enabled", "Prefix": "mme/", "ExpirationInDays": 30,
                    "TagFilters": [{"Key": "archive-state", "Value": "retired"}]}


@pytest.mark.parametrize(("props", "message"), [
    ({"on_delete": "keep"}, "on_delete must be one of retire, delete, got 'keep'"),
    ({"target_model_parameter_name": "/a b/sam"}, "target_model_parameter_name '/a b/sam': an SSM parameter name"),
])
def test_artifact_props_are_checked(tmp_path, props, message):
    with pytest.raises(ValueError, match=message):
        _artifact(tmp_path, SOURCES, **props)


@pytest.mark.parametrize("expiration", [cdk.Duration.hours(12), cdk.Duration.hours(36)])
def test_retired_archive_expiration_is_whole_days(tmp_path, expiration):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "S")
    with pytest.raises(ValueError, match="ModelBucket B: retired_archive_expiration must be whole days, at least 1"):
        ModelBucket(stack, "B", retired_archive_expiration=expiration)


def test_the_target_model_parameter_and_its_read_grant(tmp_path):
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S", env=cdk.Environment(account="111122223333", region="eu-west-1"))
    store = ModelBucket(stack, "B").model_store
    sam = ModelArtifact.from_model_sources(stack, "Sam", model_sources_dir=SOURCES, model_name="sam", model_store=store,
                                           target_model_parameter_name="/team/image-editing/target-model/sam")
    lama = ModelArtifact.from_model_sources(stack, "Lama", model_sources_dir=SOURCES, model_name="lama",
                                            model_store=store)
    reader = iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    sam.grant_read_target_model(reader)
    with pytest.raises(ValueError, match="S/Lama: grant_read_target_model: the artifact has no target_model_parameter_name"):
        lama.grant_read_target_model(reader)
    app.synth()
    template = template_of(app, "S")
    (parameter_id, parameter), = resources(template, "AWS::SSM::Parameter").items()
    artifact_id = next(k for k in resources(template, "Custom::ModelArtifact") if k.startswith("Sam"))
    assert parameter["Properties"] == {
        "Name": "/team/image-editing/target-model/sam", "Type": "String",
        "Value": {"Fn::GetAtt": [artifact_id, "TargetModel"]},
        "Description": "TargetModel of sam: the archive a multi-model endpoint loads for it"}
    (policy,) = [p["Properties"] for p in resources(template, "AWS::IAM::Policy").values()
                 if p["Properties"]["Roles"] == [{"Ref": next(k for k in resources(template, "AWS::IAM::Role")
                                                              if k.startswith("Reader"))}]]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert "ssm:GetParameter" in statement["Action"]
    assert {"Ref": parameter_id} in statement["Resource"]["Fn::Join"][1]


def test_an_owned_bucket_gets_the_expiry_rule_and_an_imported_one_a_warning_with_the_rule(tmp_path):
    from aws_cdk import aws_s3 as s3
    from aws_cdk.assertions import Annotations, Match

    from mme_constructs import ModelStore

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "S")
    owned = ModelStore(s3.Bucket(stack, "Owned", enforce_ssl=True), model_prefix="own/")
    assert owned.expire_retired_archives(cdk.Duration.days(3)) and owned.retired_archive_expiration.to_days() == 3
    shared = ModelStore(s3.Bucket.from_bucket_name(stack, "Shared", "shared-models"), model_prefix="mme/")
    assert not shared.expire_retired_archives()
    with pytest.raises(ValueError, match="whole days, at least 1, got 12 hours"):
        shared.expire_retired_archives(cdk.Duration.hours(12))
    ModelArtifact.from_model_sources(stack, "Mine", model_sources_dir=SOURCES, model_name="sam", model_store=owned)
    ModelArtifact.from_model_sources(stack, "Theirs", model_sources_dir=SOURCES, model_name="sam", model_store=shared)
    ModelArtifact.from_model_sources(stack, "Deleted", model_sources_dir=SOURCES, model_name="lama",
                                     model_store=shared, on_delete="delete")
    app.synth()
    warnings = Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp("mme-constructs:retiredArchivesNotExpired"))
    assert [w.id for w in warnings] == ["/S/Theirs"]
    assert '"Prefix": "mme/"' in warnings[0].entry.data and '"Days": 14' in warnings[0].entry.data
    rules = resources(template_of(app, "S"), "AWS::S3::Bucket")
    (own_bucket,) = rules.values()
    assert own_bucket["Properties"]["LifecycleConfiguration"]["Rules"] == [
        {"ExpirationInDays": 3, "Id": "expire-retired-archives", "Prefix": "own/", "Status": "Enabled",
         "TagFilters": [{"Key": "archive-state", "Value": "retired"}]}]


def test_of_finds_a_packager_made_anywhere_in_the_stack(tmp_path):
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "S")
    store = ModelBucket(stack, "B").model_store
    nested = ModelPackager(cdk_construct(stack, "Team"), "Packager", model_store=store)
    assert ModelPackager.of(stack, model_store=store) is nested


def cdk_construct(scope, construct_id):
    from constructs import Construct

    return Construct(scope, construct_id)
