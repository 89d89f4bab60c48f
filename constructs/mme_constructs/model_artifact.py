"""``ModelArtifact``: a custom resource that packages one TorchServe model into the model bucket.

Each ``ModelArtifact`` is a ``Custom::ModelArtifact`` resource served by one shared
:class:`ModelArtifactProvider` per stack (a ``custom_resources.Provider`` whose onEvent Lambda is
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

from collections.abc import Mapping, Sequence
from pathlib import Path

import jsii
from aws_cdk import (
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
)
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import custom_resources as cr
from constructs import Construct

from mme_constructs._nag import acknowledge, acknowledge_wildcards
from mme_constructs._network import network_errors, resolve_network
from mme_constructs.log_groups import default_log_key, owned_log_group
from mme_constructs.model_store import ModelStore
from mme_constructs.packager import PACKAGER_FORMAT
from mme_constructs.packager.core import MODEL_NAME
from mme_constructs.packager.errors import SpecError
from mme_constructs.packager.sources import SOURCE_EXCLUDE_GLOBS
from mme_constructs.packager.specs import WeightsSpec, load_spec_file, parse_spec
from mme_constructs.packager.upload import DEFAULT_MAX_IN_FLIGHT, DEFAULT_PART_SIZE

PACKAGER_DIR = Path(__file__).resolve().parent / "packager"

PACKAGER_RUNTIME = lambda_.Runtime.PYTHON_3_14
"""The newest Python runtime aws-cdk-lib 2.275 knows; the packager also runs on 3.11-3.13."""
PACKAGER_MEMORY_MB = 3008
"""Lambda CPU scales with memory (1 vCPU at 1769 MB): ~1.7 vCPU lets the two sha256 passes
(weights check, archive digest), the network reads and 4 concurrent part uploads overlap.
3008 MB is also the largest size every account may use (new accounts' quota). The packager
itself needs ~100 MB plus (4 in flight + 1) x 16 MiB parts (``DEFAULT_MAX_IN_FLIGHT``,
``DEFAULT_PART_SIZE`` of ``packager.upload``). Ephemeral storage stays at the default 512 MB:
the packager streams, /tmp is not used (the source zips are read in memory)."""
PACKAGER_TIMEOUT = Duration.minutes(14)
"""Under the Provider framework's own 15-minute function timeout, so the framework always
outlives the packager and reports its result; the packager stops itself earlier still
(remaining time minus a safety margin)."""
FRAMEWORK_MEMORY_MB = 128
"""The Provider framework only relays one event to the packager and its answer to CloudFormation:
the Lambda minimum (and CDK's default) is plenty; set explicitly, as a reviewed choice."""
VPC_ACCESS_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"
"""The AWS managed policy Lambda documents for a function's network interfaces in a VPC."""
SERVICE_TIMEOUT = Duration.minutes(20)
"""CloudFormation's wait for a response (default one hour): a lost response fails the
resource after 20 minutes (framework 15 min + margin) instead of hanging the stack."""


class ModelArtifactProvider(Construct):
    """The packager Lambda + the Provider framework, shared by every ``ModelArtifact`` of a stack.

    Get it with :meth:`of` (found or created at the stack's root, id ``ModelArtifactProvider``).
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

    Props: ``model_store`` (required); ``vpc`` + ``vpc_subnets`` + ``security_groups`` (as for
    :class:`MultiModelEndpoint`; default none): both functions run in those subnets, with the
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
    def of(cls, scope: Construct, *, model_store: ModelStore, **props) -> "ModelArtifactProvider":
        """The stack's provider, created on first use (with ``props``: ``vpc``, ``vpc_subnets``,
        ``security_groups``, ``log_retention``, ``log_encryption_key``, ``log_removal_policy``;
        giving props once it exists is an error); every caller must name the same model store."""
        stack = Stack.of(scope)
        existing = stack.node.try_find_child(cls.CONSTRUCT_ID)
        if existing is None:
            return cls(stack, cls.CONSTRUCT_ID, model_store=model_store, **props)
        if not isinstance(existing, ModelArtifactProvider):
            raise ValueError(f"{existing.node.path} exists and is not a ModelArtifactProvider")
        if props:
            raise ValueError(f"{existing.node.path} exists already: give {', '.join(sorted(props))} on its first use "
                             "(before the first ModelArtifact of the stack)")
        if not existing.model_store.is_same_as(model_store):
            raise ValueError("model_store: all ModelArtifacts of a stack share one provider: "
                             "use the same bucket, key and prefix")
        return existing

    def __init__(self, scope: Construct, construct_id: str, *, model_store: ModelStore,
                 vpc: ec2.IVpc | None = None, vpc_subnets: ec2.SubnetSelection | None = None,
                 security_groups: Sequence[ec2.ISecurityGroup] | None = None,
                 log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
                 log_encryption_key: kms.IKey | None = None,
                 log_removal_policy: RemovalPolicy = RemovalPolicy.DESTROY) -> None:
        errors = network_errors(vpc, vpc_subnets, security_groups)
        if errors:
            raise ValueError(f"ModelArtifactProvider {construct_id}: " + "; ".join(errors))
        super().__init__(scope, construct_id)
        self.model_store = model_store
        self.model_prefix = model_store.model_prefix
        self._models: set[str] = set()
        self.security_groups, subnet_ids = resolve_network(
            self, vpc=vpc, vpc_subnets=vpc_subnets, security_groups=security_groups,
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
            architecture=lambda_.Architecture.ARM_64,
            handler="packager.lambda_handler.handler",
            code=lambda_.Code.from_asset(str(PACKAGER_DIR.parent), exclude=["*", "!packager", "!packager/*.py"]),
            memory_size=PACKAGER_MEMORY_MB,
            timeout=PACKAGER_TIMEOUT,
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
      ``weights.yaml`` are left out);
    * ``weights_spec``: the weights spec mapping (or a parsed ``WeightsSpec``), validated at
      synth time (see ``mme_constructs.packager.specs``);
    * ``gzip_level``: default 0 (stored; measured in docs/performance.md).

    Attributes (CloudFormation tokens): ``target_model`` (the ``TargetModel`` to invoke),
    ``sha256``, ``size_bytes`` (a string), ``key``, ``s3_uri``; plus ``resource`` (the
    ``CustomResource``), ``provider``, ``spec``, ``sources`` (the assets).

    Changing the sources or the spec changes the archive's name: CloudFormation runs an Update
    that writes the new archive, then deletes the old one. Deleting the resource (or the stack)
    deletes the archive.
    """

    def __init__(self, scope: Construct, construct_id: str, *, model_store: ModelStore, model_name: str,
                 source_dirs: Sequence[str | Path], weights_spec: Mapping | WeightsSpec | None,
                 gzip_level: int = 0) -> None:
        spec = _check_artifact_props(model_name, source_dirs, weights_spec, gzip_level)
        super().__init__(scope, construct_id)
        self.model_name = model_name
        self.spec = spec
        self.model_store = model_store
        self.provider = ModelArtifactProvider.of(self, model_store=model_store)
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

    @classmethod
    def from_model_sources(cls, scope: Construct, construct_id: str, *, model_sources_dir: str | Path,
                           model_name: str, model_store: ModelStore, gzip_level: int = 0) -> "ModelArtifact":
        """``model_sources/<name>`` + ``model_sources/common`` with ``<name>/weights.yaml`` as the spec."""
        root = Path(model_sources_dir)
        spec_file = root / model_name / "weights.yaml"
        try:
            spec = load_spec_file(spec_file) if spec_file.exists() else parse_spec({"kind": "none"})
        except SpecError as err:
            raise ValueError(str(err)) from None
        dirs = [root / model_name] + ([root / "common"] if (root / "common").is_dir() else [])
        return cls(scope, construct_id, model_store=model_store, model_name=model_name, source_dirs=dirs,
                   weights_spec=spec, gzip_level=gzip_level)

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
                          weights_spec: Mapping | WeightsSpec | None, gzip_level: int) -> WeightsSpec:
    """The parsed weights spec; every invalid prop of a ModelArtifact, named, in one ``ValueError``."""
    errors = []
    if not MODEL_NAME.match(model_name or ""):
        errors.append(f"model_name {model_name!r}: 1-63 letters, digits, '_' or '-'")
    if not 0 <= gzip_level <= 9:
        errors.append(f"gzip_level must be 0-9, got {gzip_level}")
    if not source_dirs:
        errors.append("source_dirs: give the model's source folder (and the common folder)")
    errors += [f"source_dirs: {d} does not exist" for d in source_dirs or () if not Path(d).is_dir()]
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
