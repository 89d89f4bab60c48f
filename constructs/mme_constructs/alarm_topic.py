"""``AlarmTopic``: an SNS topic for CloudWatch alarms, encrypted with a customer-managed key, TLS only."""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import ArnFormat, Stack, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from mme_constructs._nag import acknowledge
from mme_constructs.key_policies import add_to_key_policy

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AlarmTopic(Construct):
    """An SNS topic that CloudWatch alarms of this account and region may publish to.

    * Encrypted with ``encryption_key`` (SSE-KMS). SNS's AWS-managed key cannot be used: its
      policy does not let CloudWatch use it. For a key of this stack, its policy gets one
      statement: ``cloudwatch.amazonaws.com`` may ``kms:GenerateDataKey`` and ``kms:Decrypt``
      only with the encryption context ``aws:sns:topicArn`` of this topic. An imported key's
      policy cannot be changed here: synth warns (``mme-constructs:keyPolicyNotChanged``) with the
      statement its owner must add.
    * TLS only (``enforce_ssl``: the topic policy denies requests without ``aws:SecureTransport``).
    * The topic policy allows ``cloudwatch.amazonaws.com`` to ``sns:Publish`` only for alarms of
      this account and region (``aws:SourceArn``).
    * ``emails``: each gets an email subscription (the recipient confirms it once). cdk-nag's
      Serverless pack asks for a redrive policy (dead-letter queue) on each; that finding is
      acknowledged on the subscription: SNS retries email delivery itself, and the alarm's state
      stays in CloudWatch whether or not a message arrives.

    Props: ``encryption_key`` (required), ``topic_name`` (required, a literal or a token that
    does not refer to the topic: the key policy names the topic's ARN, and the topic refers to
    the key), ``emails`` (default none), ``display_name`` (default none).

    Attributes: ``topic`` (``sns.Topic``), ``topic_arn``, ``encryption_key``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, encryption_key: kms.IKey, topic_name: str,
                 emails: Sequence[str] = (), display_name: str | None = None) -> None:
        errors = []
        if not Token.is_unresolved(topic_name) and not _TOPIC_NAME.match(topic_name):
            errors.append(f"topic_name {topic_name!r}: 1-256 letters, digits, '-' or '_'")
        errors += [f"emails: {e!r} is not an email address" for e in emails
                   if not Token.is_unresolved(e) and not _EMAIL.match(e)]
        if errors:
            raise ValueError(f"AlarmTopic {construct_id}: " + "; ".join(errors))
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.encryption_key = encryption_key
        topic_arn = stack.format_arn(service="sns", resource=topic_name)  # no reference to the topic
        self.topic = sns.Topic(self, "Topic", topic_name=topic_name, display_name=display_name,
                               master_key=encryption_key, enforce_ssl=True)
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsOfThisAccount",
            actions=["sns:Publish"],
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            resources=[self.topic.topic_arn],
            conditions={"ArnLike": {"aws:SourceArn": stack.format_arn(
                service="cloudwatch", resource="alarm", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME)},
                        "StringEquals": {"aws:SourceAccount": stack.account}},
        ))
        add_to_key_policy(self, encryption_key, iam.PolicyStatement(
            actions=["kms:GenerateDataKey", "kms:Decrypt"],
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            resources=["*"],  # in a key policy "*" is the key itself
            conditions={"StringEquals": {"kms:EncryptionContext:aws:sns:topicArn": topic_arn}},
        ), purpose=f"CloudWatch alarms publishing to the encrypted topic {topic_name}")
        self.topic_arn = self.topic.topic_arn
        for email in emails:
            subscription = self.topic.add_subscription(subscriptions.EmailSubscription(email))
            acknowledge(subscription.node.default_child, (
                "An email subscription of an alarm topic: SNS retries email delivery by its own policy, and "
                "the alarm's state and history stay in CloudWatch whether or not a message arrives; a "
                "dead-letter queue would hold notifications nobody reads."),
                "Serverless-SNSRedrivePolicy")
