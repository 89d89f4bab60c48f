"""``ModelArtifact``: a custom resource that packages one TorchServe model into the model bucket.

Each ``ModelArtifact`` is a ``Custom::ModelArtifact`` resource served by the
:class:`ModelPackager` of its model store (a ``custom_resources.Provider`` whose onEvent Lambda is
the packager in ``mme_constructs/packager``). Inputs are the model source folders (CDK zip
assets of ``model_sources/<name>`` and ``model_sources/common``, merged at the archive root) and
a weights spec; outputs are the archive's ``TargetModel`` name, sha256 and size.

Typical use in a stack::

    artifact = ModelArtifact.from_model_sources(
        self, "SamArtifact", model_sources_dir=REPO_ROOT / "model_sources", model_name="sam",
        model_store=model_bucket.model_store)
    CfnOutput(self, "SamTargetModel", value=artifact.target_model)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import jsii
from aws_cdk import (
    Annotations,
    Aws,
    CfnResource,
    CustomResource,
    Duration,
    IListProducer,
    IResolveContext,
    Lazy,
    Names,
    RemovalPolicy,
    Stack,
    Token,
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_ssm as ssm
from aws_cdk import custom_resources as cr
from constructs import Construct, IValidation

from mme_constructs._nag import acknowledge, acknowledge_wildcards
from mme_constructs._network import network_errors, resolve_network
from mme_constructs.log_groups import default_log_key, owned_log_group
from mme_constructs.model_store import ModelStore
from mme_constructs.packager import PACKAGER_FORMAT
from mme_constructs.packager.core import MODEL_NAME, check_sources
from mme_constructs.packager.errors import PackagingError, SpecError
from mme_constructs.packager.lambda_handler import ON_DELETE
from mme_constructs.packager.sources import SOURCE_EXCLUDE_GLOBS, SourceTree
from mme_constructs.packager.specs import WeightsSpec, load_spec_file, parse_spec
from mme_constructs.packager.upload import DEFAULT_MAX_IN_FLIGHT, DEFAULT_PART_SIZE

PACKAGER_DIR = Path(__file__).resolve().parent / "packager"
_PARAMETER_NAME = re.compile(r"^/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")

PACKAGER_RUNTIME = lambda_.Runtime.PYTHON_3_14
"""The newest Python runtime aws-cdk-lib 2.275 knows; the packager also runs on 3.11-3.13."""
PACKAGER_MEMORY_MB = 3008
"""The default ``memory_size``. Lambda CPU scales with memory (1 vCPU at 1769 MB): ~1.7 vCPU lets the two sha256 passes
(weights check, archive digest), the network reads and 4 concurrent part uploads overlap.
3008 MB is also the largest size every account may use (new accounts' quota). The packager
itself needs ~100 MB plus (4 in flight + 1) x 16 MiB parts (``DEFAULT_MAX_IN_FLIGHT``,
``DEFAULT_PART_SIZE`` of ``packager.upload``). Ephemeral storage stays at the default 512 MB:
the packager streams, /tmp is not used (the source zips are read in memory)."""
PACKAGER_TIMEOUT = Duration.minutes(14)
"""The default and longest ``timeout``: under the Provider framework's own 15-minute function
timeout, so the framework always outlives the packager and reports its result; the packager stops
itself earlier still (remaining time minus a safety margin)."""
PACKAGER_MEMORY_RANGE_MB = (256, 10240)
"""What ``memory_size`` may be: Lambda's maximum, and enough for the packager's 5 x 16 MiB parts."""
FRAMEWORK_MEMORY_MB = 128
"""The Provider framework only relays one event to the packager and its answer to CloudFormation:
the Lambda minimum (and CDK's default) is plenty; set explicitly, as a reviewed choice."""
VPC_ACCESS_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"
"""The AWS managed policy Lambda documents for a function's network interfaces in a VPC."""
SERVICE_TIMEOUT = Duration.minutes(20)
"""CloudFormation's wait for a response (default one hour): a lost response fails the
resource after 20 minutes (framework 15 min + margin) instead of hanging the stack."""


class ModelPackager(Construct):
    """The packager Lambda + the Provider framework, shared by the ``ModelArtifact``s of one store.

    Make one per model store (``ModelPackager(self, "Packager", model_store=store, ...)``) and
    pass it to the artifacts (``packager=``); an artifact given none uses :meth:`of`, the stack's
    packager for its store (found, or created at the stack's root with id
    ``ModelArtifactProvider``).
    IAM is least privilege, one customer-managed policy per role, and grows with each model
    (:meth:`grant_model`):

    * its log group only (``logs:CreateLogStream``, ``logs:PutLogEvents``);
    * ``s3:GetObject`` on each model's source asset objects (exact keys, not the asset bucket);
    * object actions on ``<bucket>/<prefix><name>-*.tar.gz`` for each model name: PutObject
      (incl. multipart upload parts), GetObject (HEAD, and the digest check before a skip),
      DeleteObject, AbortMultipartUpload, ListMultipartUploadParts, Put/GetObjectTagging
      (``ModelStore.write_statements``), and ``s3:ListBucket`` only for those keys
      (``s3:prefix`` condition). Nothing on the whole bucket: uploads a crashed run leaves are
      removed by the bucket's lifecycle rule (``ModelBucket``: after one day);
    * ``kms:GenerateDataKey`` + ``kms:Decrypt`` on the store's key, if it has one, only through
      S3 for that bucket (``kms:ViaService``, ``kms:EncryptionContext:aws:s3:arn``);
    * ``secretsmanager:GetSecretValue`` on a spec's token secret, read access to a spec's staged
      S3 weights (and ``kms:Decrypt`` on their ``kms_key_arn``, through S3), only when a spec names them.

    The packager's role is the store's archive writer (:meth:`ModelStore.add_archive_writer`):
    the bucket policy lets it, and no other principal but the store's ``archive_writers``, change
    archives. When the store's bucket belongs to another stack, the role gets a fixed name
    (``<unique name>-packager-<region>``) so that policy can name it without a reference back.

    The Provider framework's role may invoke the packager (any version) and write its own log
    group; CDK's own statements for it are replaced by that managed policy.

    Props: ``model_store`` (required); ``memory_size`` (MB, default 3008, 256-10240: Lambda's
    CPU share grows with it), ``timeout`` (default and at most 14 minutes, at least 1 minute),
    ``architecture`` (default ``lambda_.Architecture.ARM_64``; ``X86_64`` where an account's
    quota or a weights source needs it); ``vpc`` + ``vpc_subnets`` + ``security_groups`` +
    ``allow_all_outbound`` (as for :class:`MultiModelEndpoint`; default none): both functions run in those subnets, with the
    AWS managed policy ``AWSLambdaVPCAccessExecutionRole`` for their network interfaces. The
    subnets then need a route to S3 (a gateway endpoint: archives, sources and CloudFormation's
    response URL), to the Lambda API (the framework invokes the packager: NAT or an interface
    endpoint), to Secrets Manager for a token secret, and a NAT for Hugging Face or URL weights
    (or stage the weights in S3). For both functions' log groups ``/mme/<unique name>/packager``
    and ``.../framework``: ``log_retention`` (default one year), ``log_encryption_key`` (default the
    store's key when it is a key of this stack, whose policy then lets CloudWatch Logs use it for
    these two log groups only; none for an imported key unless given) and ``log_removal_policy``
    (default ``DESTROY``: a retained group with its fixed name blocks the next deploy of the same
    stack). The functions write only to them (no ``logs:CreateLogGroup``).

    Reviewed cdk-nag findings, acknowledged on each function: no dead-letter queue, no reserved
    concurrency, no X-Ray tracing, and, without a VPC, not in a VPC (see docs/security.md).

    Attributes: ``function`` (the packager), ``role``, ``policy``, ``provider``,
    ``service_token``, ``model_store``, ``model_prefix``, ``log_group``, ``framework_log_group``,
    ``framework_role``, ``framework_policy``, ``framework_function``, ``security_groups``,
    ``connections`` (VPC only).
    """

    CONSTRUCT_ID = "ModelArtifactProvider"

    @classmethod
    def of(cls, scope: Construct, *, model_store: ModelStore, **props) -> "ModelPackager":
        """The packager of ``scope``'s stack for ``model_store``: one made for it already (by this
        method or directly, anywhere in the stack), else a new one at the stack's root with
        ``props`` (giving props for one that exists is an error): id ``ModelArtifactProvider`` for the
        first store, ``ModelArtifactProvider<8 hex of the store>`` for the others."""
        stack = Stack.of(scope)
        found = [c for c in stack.node.find_all()
                 if isinstance(c, ModelPackager) and Stack.of(c) is stack and c.model_store.is_same_as(model_store)]
        if found:
            if props:
                raise ValueError(f"{found[0].node.path} exists already: give {', '.join(sorted(props))} on its first "
                                 "use, or make a ModelPackager yourself and pass it as packager=")
            return found[0]
        construct_id = cls.CONSTRUCT_ID
        if stack.node.try_find_child(construct_id) is not None:  # the stack's first store has the plain id
            construct_id += hashlib.sha256(model_store.identity().encode()).hexdigest()[:8]
        return cls(stack, construct_id, model_store=model_store, **props)

    def __init__(self, scope: Construct, construct_id: str, *, model_store: ModelStore,
                 memory_size: int = PACKAGER_MEMORY_MB, timeout: Duration = PACKAGER_TIMEOUT,
                 architecture: lambda_.Architecture = lambda_.Architecture.ARM_64,
                 vpc: ec2.IVpc | None = None, vpc_subnets: ec2.SubnetSelection | None = None,
                 security_groups: Sequence[ec2.ISecurityGroup] | None = None, allow_all_outbound: bool = True,
                 log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
                 log_encryption_key: kms.IKey | None = None,
                 log_removal_policy: RemovalPolicy = RemovalPolicy.DESTROY) -> None:
        errors = [*network_errors(vpc, vpc_subnets, security_groups), *_function_errors(memory_size, timeout,
                                                                                        architecture)]
        if errors:
            raise ValueError(f"ModelPackager {construct_id}: " + "; ".join(errors))
        super().__init__(scope, construct_id)
        self.model_store = model_store
        self.model_prefix = model_store.model_prefix
        self.memory_size, self.timeout, self.architecture = memory_size, timeout, architecture
        self._models: set[str] = set()
        self.security_groups, subnet_ids = resolve_network(
            self, vpc=vpc, vpc_subnets=vpc_subnets, security_groups=security_groups,
            allow_all_outbound=allow_all_outbound,
            description="Model packager and its Provider framework: reach S3, Lambda and weight sources, accept nothing")

        log_prefix = f"/mme/{Names.unique_resource_name(self, max_length=200, separator='-')}"
        log_props = dict(retention=log_retention, removal_policy=log_removal_policy,
                         encryption_key=log_encryption_key or default_log_key(self, model_store.encryption_key))
        self.log_group = owned_log_group(self, "PackagerLogs", log_group_name=f"{log_prefix}/packager", **log_props)
        self.framework_log_group = owned_log_group(self, "FrameworkLogs", log_group_name=f"{log_prefix}/framework",
                                                   **log_props)
        self._packager()
        self._framework()
        for function, role in ((self.function.node.default_child, self.role),
                               (self.framework_function.node.default_child, self.framework_role)):
            _place_in_network(function, role, self.security_groups, subnet_ids)
            _acknowledge_function_findings(function, in_vpc=bool(subnet_ids))

    def _packager(self) -> None:
        """The packager's role (the store's archive writer), its managed policy and the function."""
        bucket_stack = Stack.of(self.model_store.bucket)
        named = bucket_stack is not Stack.of(self)
        role_name = f"{Names.unique_resource_name(self, max_length=40, separator='-')}-packager-{Aws.REGION}"
        self.role = iam.Role(self, "PackagerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             role_name=role_name if named else None,
                             description="Model packager: builds TorchServe archives under the model prefix")
        self.model_store.add_archive_writer(
            bucket_stack.format_arn(service="iam", region="", resource="role", resource_name=role_name)
            if named else self.role)
        self.policy = iam.ManagedPolicy(self, "PackagerPolicy", roles=[self.role], statements=[
            iam.PolicyStatement(sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                resources=[self.log_group.log_group_arn]),
        ], description="Model packager: its own logs, its models' sources and weights, its models' archives")
        self.function = lambda_.Function(
            self,
            "Packager",
            description=f"Builds TorchServe model archives into s3://<model bucket>/{self.model_prefix} "
                        f"({PACKAGER_FORMAT})",
            runtime=PACKAGER_RUNTIME,
            architecture=self.architecture,
            handler="packager.lambda_handler.handler",
            code=lambda_.Code.from_asset(str(PACKAGER_DIR.parent), exclude=["*", "!packager", "!packager/*.py"]),
            memory_size=self.memory_size,
            timeout=self.timeout,
            role=self.role,
            log_group=self.log_group,
            environment={"MME_PACKAGER_PART_SIZE_MIB": str(DEFAULT_PART_SIZE >> 20),
                         "MME_PACKAGER_MAX_IN_FLIGHT": str(DEFAULT_MAX_IN_FLIGHT)},
        )
        # The function waits for its policy (IAM is eventually consistent and the first invocation
        # follows at once); the role itself is ordered by the function's Role attribute.
        self.function.node.add_dependency(self.policy)
        _omit_role_from_depends_on(self.function, self.role)

    def _framework(self) -> None:
        """The Provider framework with a role whose only policy is ours: CDK's own grants to the
        framework role (invoke and get the packager) go to a view of the role that takes none."""
        self.framework_role = iam.Role(self, "FrameworkRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                                       description="Custom resource provider framework of the model packager")
        packager = self.function.function_arn
        self.framework_policy = iam.ManagedPolicy(self.framework_role, "Policy", roles=[self.framework_role], statements=[
            iam.PolicyStatement(sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                resources=[self.framework_log_group.log_group_arn]),
            iam.PolicyStatement(sid="InvokePackager", actions=["lambda:InvokeFunction"],
                                resources=[packager, f"{packager}:*"]),
            iam.PolicyStatement(sid="GetPackager", actions=["lambda:GetFunction"], resources=[packager]),
        ], description="Provider framework of the model packager: invoke the packager, write its own logs")
        self.provider = cr.Provider(self, "Provider", on_event_handler=self.function,
                                    framework_on_event_role=self.framework_role.without_policy_updates(),
                                    log_group=self.framework_log_group)
        self.framework_function = self.provider.node.find_child("framework-onEvent")
        self.framework_function.node.default_child.memory_size = FRAMEWORK_MEMORY_MB
        self.framework_function.node.add_dependency(self.framework_policy)
        _omit_role_from_depends_on(self.framework_function, self.framework_role)
        acknowledge_wildcards(self.framework_role, {
            f"{packager}:*": "The CDK Provider framework invokes the packager by a qualified ARN: it may invoke any "
            "version or alias of the one packager function it fronts, and nothing else.",
        })

    @property
    def service_token(self) -> str:
        """The Provider framework's function ARN: the ``ServiceToken`` of each ``ModelArtifact``."""
        return self.provider.service_token

    @property
    def connections(self) -> ec2.Connections:
        """The functions' security groups (only for a provider placed in a VPC)."""
        if not self.security_groups:
            raise ValueError(f"{self.node.path}: connections exist only for a provider placed in a VPC")
        return ec2.Connections(security_groups=self.security_groups)

    def grant_model(self, model_name: str, sources: Sequence[s3_assets.Asset], spec: WeightsSpec) -> None:
        """Let the packager read ``sources`` and the spec's inputs, and write ``model_name``'s archives."""
        if model_name in self._models:
            raise ValueError(f"model {model_name!r} already has a ModelArtifact in this stack")
        self._models.add(model_name)
        archives = f"{model_name}-*.tar.gz"
        statements = [
            iam.PolicyStatement(actions=["s3:GetObject"],
                                resources=[a.bucket.arn_for_objects(a.s3_object_key) for a in sources]),
            *self.model_store.write_statements(archives),
            *self._spec_statements(model_name, spec),
        ]
        self.policy.add_statements(*statements)
        self.model_store.acknowledge_write_wildcard(self.policy, archives)

    def _spec_statements(self, model_name: str, spec: WeightsSpec) -> list[iam.PolicyStatement]:
        """Read the spec's token secret and staged S3 weights (and their key), when it names them."""
        statements = []
        if spec.token_secret_arn:
            statements.append(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"],
                                                  resources=[spec.token_secret_arn]))
        if spec.kind != "s3":
            return statements
        staged = s3.Bucket.from_bucket_name(self, f"Staged{model_name}", spec.s3_bucket)
        if spec.s3_is_prefix:
            statements += [
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[staged.arn_for_objects(f"{spec.s3_key}*")]),
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[staged.bucket_arn],
                                    conditions={"StringLike": {"s3:prefix": [f"{spec.s3_key}*"]}}),
            ]
            acknowledge_wildcards(self.policy, {staged.arn_for_objects(f"{spec.s3_key}*"): (
                f"The weights spec of {model_name} stages its files under this prefix; the packager reads every "
                "object under it and nothing else of that bucket.")})
        else:
            statements.append(iam.PolicyStatement(actions=["s3:GetObject"], resources=[staged.arn_for_objects(spec.s3_key)]))
        if spec.kms_key_arn:
            stack = Stack.of(self)
            statements.append(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[spec.kms_key_arn], conditions={
                "StringEquals": {"kms:ViaService": f"s3.{stack.region}.{stack.url_suffix}"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": [staged.bucket_arn,
                                                                     staged.arn_for_objects(f"{spec.s3_key}*")]}}))
        return statements


@jsii.implements(IValidation)
class _RetiredArchivesExpire:
    """Retired archives stay until a lifecycle rule expires them: warn when the store has none."""

    def __init__(self, artifact: "ModelArtifact") -> None:
        self._artifact = artifact

    def validate(self) -> list[str]:
        store = self._artifact.model_store
        if store.retired_archive_expiration is None:
            rule = json.dumps(store.retired_archive_rule(), sort_keys=True)
            Annotations.of(self._artifact).add_warning_v2(
                "mme-constructs:retiredArchivesNotExpired",
                f"archives this artifact replaces are retired (kept, tagged archive-state=retired) but the bucket has "
                f"no rule of this app that expires them: call model_store.expire_retired_archives() for a bucket "
                f"of this app, have the bucket's owner add the lifecycle rule {rule}, or give on_delete='delete'")
        return []


def _function_errors(memory_size: int, timeout: Duration, architecture: lambda_.Architecture) -> list[str]:
    errors = []
    low, high = PACKAGER_MEMORY_RANGE_MB
    if isinstance(memory_size, bool) or not isinstance(memory_size, int) or not low <= memory_size <= high:
        errors.append(f"memory_size must be a whole number of MB between {low} and {high}, got {memory_size!r}")
    seconds = timeout.to_seconds()
    if not 60 <= seconds <= PACKAGER_TIMEOUT.to_seconds():
        errors.append(f"timeout must be between 1 minute and {PACKAGER_TIMEOUT.to_human_string()} (the Provider "
                      f"framework's own function stops at 15 minutes), got {timeout.to_human_string()}")
    if architecture.name not in (lambda_.Architecture.ARM_64.name, lambda_.Architecture.X86_64.name):
        errors.append(f"architecture must be ARM_64 or X86_64, got {architecture.name}")
    return errors


#: The earlier name of :class:`ModelPackager` (one per stack then); kept so existing apps keep working.
ModelArtifactProvider = ModelPackager


def _place_in_network(function: lambda_.CfnFunction, role: iam.Role, security_groups: list[ec2.ISecurityGroup],
                      subnet_ids: list[str]) -> None:
    """Put ``function`` into ``subnet_ids`` (if any) with the AWS managed policy Lambda documents for it."""
    if not subnet_ids:
        return
    function.vpc_config = lambda_.CfnFunction.VpcConfigProperty(
        subnet_ids=subnet_ids, security_group_ids=[g.security_group_id for g in security_groups])
    role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(VPC_ACCESS_POLICY))
    acknowledge(role.node.default_child, (
        "The AWS managed policy Lambda documents for functions in a VPC: create, describe and delete the "
        "function's network interfaces in the deployer's subnets. AWS keeps it in step with what Lambda needs."),
        f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{VPC_ACCESS_POLICY}]")


def _acknowledge_function_findings(function: lambda_.CfnFunction, *, in_vpc: bool) -> None:
    """The reviewed findings of the packager and the framework function (see docs/security.md)."""
    acknowledge(function, (
        "Invoked once per ModelArtifact change during a deployment, and every failure is reported to "
        "CloudFormation as a FAILED reason that rolls the stack back; a dead-letter queue would hold events "
        "nobody replays (the framework invokes the packager synchronously, where a DLQ does not apply)."),
        "NIST.800.53.R5-LambdaDLQ", "HIPAA.Security-LambdaDLQ", "Serverless-LambdaDLQ")
    acknowledge(function, (
        "Runs only while CloudFormation deploys the stack, at most one invocation per model; reserving "
        "concurrency would take it from the account's unreserved pool and fails the deployment in accounts "
        "whose concurrency quota is at the minimum."),
        "NIST.800.53.R5-LambdaConcurrency", "HIPAA.Security-LambdaConcurrency")
    acknowledge(function, (
        "One streaming run per model and deployment; its progress, throughput and every failure go to its own "
        "encrypted log group. X-Ray would add a Resource::* permission to the role for no further insight."),
        "Serverless-LambdaTracing")
    if not in_vpc:
        acknowledge(function, (
            "No VPC was given (vpcSubnetIds): the function reaches S3, the Lambda API and the weight sources "
            "(Hugging Face, URLs) through Lambda's managed network and accepts no inbound connection. Give "
            "subnets to place it in a VPC (docs/security.md lists the endpoints it then needs)."),
            "NIST.800.53.R5-LambdaInsideVPC", "HIPAA.Security-LambdaInsideVPC", "PCI.DSS.321-LambdaInsideVPC")


class ModelArtifact(Construct):
    """One TorchServe model archive ``<prefix><name>-<digest16>.tar.gz``, built at deploy time.

    Props:

    * ``model_store`` (:class:`ModelStore`): where archives go (the multi-model endpoint's
      ``ModelDataUrl``) and the key they are encrypted with;
    * ``model_name``: the archive's name stem (``sam``);
    * ``source_dirs``: folders merged at the archive root, e.g. ``model_sources/sam`` and
      ``model_sources/common`` (each becomes a CDK zip asset; caches, hidden files and
      ``weights.yaml`` are left out). Checked at synth: together they hold ``handler.py`` at their
      root, no file under ``weights/`` or ``MAR-INF/`` (the packager writes those), no path twice;
      one ``ValueError`` names the folders and the rule (docs/constructs.md shows the formats);
    * ``weights_spec``: the weights spec mapping (or a parsed ``WeightsSpec``), validated at
      synth time (docs/constructs.md, "Model source and weights formats");
    * ``gzip_level``: default 0 (stored; measured in docs/performance.md);
    * ``packager``: the :class:`ModelPackager` that builds it, default ``ModelPackager.of`` (the
      stack's packager for ``model_store``);
    * ``on_delete``: ``"retire"`` (default) or ``"delete"``: what happens to the archive when the
      resource goes away (replaced by a changed model, or removed with the stack). A retired
      archive stays loadable, tagged ``archive-state=retired``, until the bucket's lifecycle rule
      expires it (``ModelBucket``: ``retired_archive_expiration``, default 14 days), so a client
      still holding its ``TargetModel``, or an instance that scales out during the deploy, keeps
      working;
    * ``target_model_parameter_name``: an SSM parameter (String) that holds the current
      ``TargetModel``, for apps that read it without CloudFormation outputs; default none.

    Attributes (CloudFormation tokens): ``target_model`` (the ``TargetModel`` to invoke),
    ``sha256``, ``size_bytes`` (a string), ``key``, ``s3_uri``; plus ``resource`` (the
    ``CustomResource``), ``provider`` (the ``ModelPackager``), ``spec``, ``sources`` (the assets),
    ``target_model_parameter`` (``ssm.StringParameter`` or ``None``).
    """

    def __init__(self, scope: Construct, construct_id: str, *, model_store: ModelStore, model_name: str,
                 source_dirs: Sequence[str | Path], weights_spec: Mapping | WeightsSpec | None,
                 gzip_level: int = 0, packager: "ModelPackager | None" = None, on_delete: str = "retire",
                 target_model_parameter_name: str | None = None) -> None:
        spec = _check_artifact_props(model_name, source_dirs, weights_spec, gzip_level, on_delete,
                                     target_model_parameter_name)
        if packager is not None and not packager.model_store.is_same_as(model_store):
            raise ValueError(f"ModelArtifact {model_name}: packager: {packager.node.path} writes to another model "
                             "store; give the packager of this model_store")
        super().__init__(scope, construct_id)
        self.model_name = model_name
        self.spec = spec
        self.model_store = model_store
        self.provider = packager or ModelPackager.of(self, model_store=model_store)
        self.sources = [
            s3_assets.Asset(self, f"Source{i}", path=str(Path(d).resolve()), exclude=list(SOURCE_EXCLUDE_GLOBS))
            for i, d in enumerate(source_dirs)
        ]
        self.provider.grant_model(model_name, self.sources, spec)
        properties = {
            "ModelName": model_name,
            "Bucket": model_store.bucket.bucket_name,
            "Prefix": self.provider.model_prefix,
            "Sources": [{"Bucket": a.s3_bucket_name, "Key": a.s3_object_key} for a in self.sources],
            "WeightsSpec": spec.to_json(),
            "GzipLevel": str(gzip_level),
            "PackagerFormat": PACKAGER_FORMAT,
            "OnDelete": on_delete,
        }
        if model_store.encryption_key is not None:
            properties["KmsKeyId"] = model_store.encryption_key.key_arn
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.provider.service_token,
            resource_type="Custom::ModelArtifact",
            service_timeout=SERVICE_TIMEOUT,
            properties=properties,
        )
        self.resource.node.add_dependency(self.provider.policy)
        if on_delete == "retire":
            self.node.add_validation(_RetiredArchivesExpire(self))
        self.target_model_parameter = None if target_model_parameter_name is None else ssm.StringParameter(
            self, "TargetModelParameter", parameter_name=target_model_parameter_name, string_value=self.target_model,
            description=f"TargetModel of {model_name}: the archive a multi-model endpoint loads for it")

    def grant_read_target_model(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read the ``TargetModel`` parameter (``target_model_parameter_name``)."""
        if self.target_model_parameter is None:
            raise ValueError(f"{self.node.path}: grant_read_target_model: the artifact has no "
                             "target_model_parameter_name")
        return self.target_model_parameter.grant_read(grantee)

    @classmethod
    def from_model_sources(cls, scope: Construct, construct_id: str, *, model_sources_dir: str | Path,
                           model_name: str, model_store: ModelStore, gzip_level: int = 0,
                           shared_code_dir: str | None = "common", **props) -> "ModelArtifact":
        """``<model_sources_dir>/<name>`` + ``<model_sources_dir>/<shared_code_dir>`` (default ``common``;
        ``None``: none) with ``<name>/weights.yaml`` as the spec (none: ``kind: none``); ``props`` as
        for the constructor (``packager``, ``on_delete``, ``target_model_parameter_name``)."""
        root = Path(model_sources_dir)
        spec_file = root / model_name / "weights.yaml"
        try:
            spec = load_spec_file(spec_file) if spec_file.exists() else parse_spec({"kind": "none"})
        except SpecError as err:
            raise ValueError(f"ModelArtifact {model_name}: {spec_file}: {err}") from None
        dirs = [root / model_name]
        if shared_code_dir is not None:
            shared = root / shared_code_dir
            if not shared.is_dir():
                raise ValueError(f"ModelArtifact {model_name}: shared_code_dir: {shared} is not a folder (give "
                                 "shared_code_dir=None for a model without shared code)")
            dirs.append(shared)
        return cls(scope, construct_id, model_store=model_store, model_name=model_name, source_dirs=dirs,
                   weights_spec=spec, gzip_level=gzip_level, **props)

    @property
    def target_model(self) -> str:
        """``<name>-<digest16>.tar.gz``: the ``TargetModel`` of an ``InvokeEndpoint`` call."""
        return self.resource.get_att_string("TargetModel")

    @property
    def sha256(self) -> str:
        """sha256 of the archive's bytes."""
        return self.resource.get_att_string("Sha256")

    @property
    def size_bytes(self) -> str:
        """Size of the archive in bytes (a string, as CloudFormation attributes are)."""
        return self.resource.get_att_string("SizeBytes")

    @property
    def key(self) -> str:
        """The archive's object key (``<prefix><target model>``)."""
        return self.resource.get_att_string("Key")

    @property
    def s3_uri(self) -> str:
        """``s3://<bucket>/<key>`` of the archive."""
        return self.resource.get_att_string("S3Uri")


def _check_artifact_props(model_name: str, source_dirs: Sequence[str | Path],
                          weights_spec: Mapping | WeightsSpec | None, gzip_level: int, on_delete: str,
                          parameter_name: str | None) -> WeightsSpec:
    """The parsed weights spec; every invalid prop of a ModelArtifact, named, in one ``ValueError``."""
    errors = []
    if not MODEL_NAME.match(model_name or ""):
        errors.append(f"model_name {model_name!r}: 1-63 letters, digits, '_' or '-'")
    if not 0 <= gzip_level <= 9:
        errors.append(f"gzip_level must be 0-9, got {gzip_level}")
    if on_delete not in ON_DELETE:
        errors.append(f"on_delete must be one of {', '.join(ON_DELETE)}, got {on_delete!r}")
    if parameter_name is not None and not Token.is_unresolved(parameter_name) and not _PARAMETER_NAME.match(parameter_name):
        errors.append(f"target_model_parameter_name {parameter_name!r}: an SSM parameter name (letters, digits, "
                      "'.', '-', '_' and '/' levels, at most 1011 characters)")
    errors += _source_errors(source_dirs)
    spec = None
    try:
        spec = weights_spec if isinstance(weights_spec, WeightsSpec) else parse_spec(
            weights_spec, where=f"{model_name} weights")
    except SpecError as err:
        errors.append(f"weights_spec: {err}")
    if spec is not None and spec.kind == "local":
        errors.append(f"weights_spec: {model_name} weights: kind 'local' only works with `mme package`")
    if errors:
        raise ValueError(f"ModelArtifact {model_name}: " + "; ".join(errors))
    return spec


def _source_errors(source_dirs: Sequence[str | Path]) -> list[str]:
    """What the packager would refuse in the merged folders, found at synth (not in the deploy)."""
    if not source_dirs:
        return ["source_dirs: give the model's source folder (and the shared code folder)"]
    missing = [f"source_dirs: {d} does not exist" for d in source_dirs if not Path(d).is_dir()]
    if missing:
        return missing
    try:
        check_sources(SourceTree.from_dirs(source_dirs))
    except PackagingError as err:
        return [f"source_dirs ({', '.join(str(d) for d in source_dirs)}): {err}"]
    return []


def _omit_role_from_depends_on(function: lambda_.Function, role: iam.Role) -> None:
    """Keep every ``DependsOn`` CDK gives ``function`` except ``role``'s own ``AWS::IAM::Role``.

    ``lambda.Function`` makes its resource depend on the whole role construct (or on the role a
    ``without_policy_updates()`` view wraps): the role's policies (wanted, see above) and the
    ``CfnRole`` itself, which the function's ``Role: Fn::GetAtt`` already orders (cfn-lint W3005). Construct dependencies become
    CloudFormation ones only at synthesis and cannot be removed before, so the list is produced
    then, from CDK's own list: a dependency added later by anyone is kept.
    """
    cfn = function.node.default_child
    cfn.add_override("DependsOn", Lazy.uncached_list(
        _DependsOnWithout(cfn, role.node.default_child), omit_empty=True))


@jsii.implements(IListProducer)
class _DependsOnWithout:
    """``DependsOn`` of ``resource`` as CDK renders it (sorted by construct path), minus ``omitted``."""

    def __init__(self, resource: CfnResource, omitted: CfnResource) -> None:
        self._resource = resource
        self._omitted_path = omitted.node.path

    def produce(self, context: IResolveContext) -> list[str]:  # noqa: ARG002 - the producer interface
        kept = [d for d in self._resource.obtain_dependencies()
                if CfnResource.is_cfn_resource(d) and d.node.path != self._omitted_path]
        return [d.logical_id for d in sorted(kept, key=lambda d: d.node.path)]
