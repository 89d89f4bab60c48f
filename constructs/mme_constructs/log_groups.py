"""Log groups the constructs own: named, with retention, encrypted with a KMS key whose policy
lets CloudWatch Logs use it for exactly those log groups.

CloudWatch Logs calls KMS with the encryption context ``aws:logs:arn`` = the log group's ARN
(``arn:<partition>:logs:<region>:<account>:log-group:<name>``, without the ``:*`` that the
``Arn`` attribute of ``AWS::Logs::LogGroup`` carries). The key policy statement added here allows
the regional CloudWatch Logs service principal only when that context names one log group
(``ArnEquals``), as "Encrypt log data in CloudWatch Logs using AWS Key Management Service" in the
CloudWatch Logs user guide describes; the actions are the ones behind that guide's wildcards
(``kms:Encrypt*``, ``kms:Decrypt*``, ``kms:ReEncrypt*``, ``kms:GenerateDataKey*``,
``kms:Describe*``), spelled out.

The log group's name must be known without referring to the log group itself: the key policy
would otherwise refer to the log group and the log group to the key (a dependency cycle).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from mme_constructs.key_policies import add_to_key_policy, owned_by

#: What CloudWatch Logs does with a log group's key (``kms:Describe*`` is ``kms:DescribeKey`` on a key).
LOGS_KEY_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
)


def log_group_arn(scope: Construct, log_group_name: str) -> str:
    """``arn:<partition>:logs:<region>:<account>:log-group:<name>`` (the encryption context value)."""
    return Stack.of(scope).format_arn(service="logs", resource="log-group", resource_name=log_group_name,
                                      arn_format=ArnFormat.COLON_RESOURCE_NAME)


def default_log_key(scope: Construct, key: kms.IKey | None) -> kms.IKey | None:
    """``key`` when the construct can add CloudWatch Logs to its policy (a key created in ``scope``'s
    stack); otherwise ``None``: an imported key's policy cannot be changed from here, and a log
    group encrypted with a key that does not allow CloudWatch Logs fails to deploy."""
    if key is not None and owned_by(scope, key):
        return key
    return None


def allow_cloudwatch_logs(key: kms.IKey, scope: Construct, log_group_name: str) -> bool:
    """Add the key policy statement for one log group; ``False`` for an imported key (unchanged, and
    a synth warning with the statement its owner must add)."""
    stack = Stack.of(scope)
    statement = iam.PolicyStatement(
        actions=list(LOGS_KEY_ACTIONS),
        principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
        resources=["*"],  # in a key policy "*" is the key itself
        conditions={"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arn(scope, log_group_name)}},
    )
    return add_to_key_policy(scope, key, statement, purpose=f"CloudWatch Logs encrypting log group {log_group_name}")


def owned_log_group(scope: Construct, construct_id: str, *, log_group_name: str, retention: logs.RetentionDays,
                    encryption_key: kms.IKey | None, removal_policy: RemovalPolicy) -> logs.LogGroup:
    """A ``logs.LogGroup`` named ``log_group_name`` (a literal or a token that does not refer to the
    log group); with ``encryption_key``, the key's policy allows CloudWatch Logs for it."""
    group = logs.LogGroup(scope, construct_id, log_group_name=log_group_name, retention=retention,
                          encryption_key=encryption_key, removal_policy=removal_policy)
    if encryption_key is not None:
        allow_cloudwatch_logs(encryption_key, group, log_group_name)
    return group
