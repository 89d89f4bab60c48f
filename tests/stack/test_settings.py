"""Context validation: every bad value stops synth with one line naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mme_constructs.instance_types import GPU_INSTANCE_TYPES, SUPPORTED_INSTANCE_TYPES, GpuInstanceType
from stacks.settings import SettingsError, StackSettings, settings_from_context

from stack_helpers import REPO_ROOT


def parse(**context):
    return settings_from_context(context.get)


def test_defaults_are_the_documented_ones():
    s = parse()
    assert s == StackSettings()
    assert s.instance_type == "ml.g5.2xlarge" and s.gpu_instance_type is GPU_INSTANCE_TYPES["ml.g5.2xlarge"]
    assert s.allow_undocumented_instance_type is False and s.instance_type_facts is None
    assert s.enabled_models == ("sam", "lama", "sd")
    assert s.endpoint_name == "image-editing-mme"
    assert s.network_isolation is True


def test_values_from_cli_strings_are_parsed():
    s = parse(
        instanceType=" ml.g4dn.4xlarge ",
        initialInstanceCount="2",
        minInstanceCount="1",
        maxInstanceCount="4",
        enabledModels="sam,lama",
        networkIsolation="false",
        vpcSubnetIds='["subnet-0123456789abcdef0"]',
        vpcSecurityGroupIds="sg-0123456789abcdef0",
        gpuUtilizationTarget="55.5",
    )
    assert s.instance_type == "ml.g4dn.4xlarge"
    assert (s.initial_instance_count, s.min_instance_count, s.max_instance_count) == (2, 1, 4)
    assert s.enabled_models == ("sam", "lama")
    assert s.network_isolation is False
    assert s.vpc_subnet_ids == ("subnet-0123456789abcdef0",)
    assert s.vpc_security_group_ids == ("sg-0123456789abcdef0",)
    assert s.gpu_utilization_target == 55.5


def test_archive_writer_arns_are_role_or_user_arns():
    sso = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_ModelOps_*"
    s = parse(archiveWriterArns=f"arn:aws:iam::111122223333:user/release-bot, {sso}")
    assert s.archive_writer_arns == ("arn:aws:iam::111122223333:user/release-bot", sso)
    assert parse().archive_writer_arns == ()
    for bad in ("arn:aws:sts::111122223333:assumed-role/ops/alice", "arn:aws:iam::1111:role/x", "ops-role"):
        with pytest.raises(SettingsError) as err:
            parse(archiveWriterArns=[bad])
        assert str(err.value).startswith(f"context archiveWriterArns: {bad!r} is not an IAM role or user ARN")
        assert "\n" not in str(err.value)


def test_operations_keys_are_parsed_and_off_leaves_an_alarm_out():
    s = parse(alarmTopicArn="arn:aws:sns:eu-west-1:111122223333:on-call", alarm5xxErrorRatePercent="2.5",
              alarmGpuMemoryPercent="off", alarmInstancesAtMaxMinutes="45", logRetentionDays="90",
              retainLogGroups="yes")
    assert s.alarm_topic_arn == "arn:aws:sns:eu-west-1:111122223333:on-call"
    assert dict(s.alarm_thresholds) == {"server_error_rate_percent": 2.5, "gpu_memory_utilization_percent": None,
                                        "instances_at_max_for": 45}
    assert (s.log_retention_days, s.retain_log_groups) == (90, True)
    assert parse(alarmEmail='["a@example.com", "b@example.org"]').alarm_emails == ("a@example.com", "b@example.org")
    defaults = parse()
    assert (defaults.alarm_thresholds, defaults.alarm_emails, defaults.alarm_topic_arn) == ((), (), "")
    assert (defaults.log_retention_days, defaults.retain_log_groups) == (365, False)


@pytest.mark.parametrize(
    ("context", "key", "fragment"),
    [
        ({"instanceType": "ml.m5.xlarge"}, "instanceType", "not a GPU instance type"),
        ({"instanceType": "ml.g5.3xlarge"}, "instanceType", "not a GPU instance type"),
        ({"instanceType": "ml.g5.12xlarge"}, "instanceType", "has 4 GPUs; GPU multi-model endpoints run on single-GPU"),
        ({"instanceType": "ml.p3.16xlarge"}, "instanceType", "has 8 GPUs"),
        ({"instanceType": "ml.p2.xlarge"}, "instanceType", "compute capability 3.7) cannot run the serving image"),
        ({"instanceType": "ml.g6.2xlarge"}, "instanceType", "set allowUndocumentedInstanceType=true and instanceTypeFacts"),
        ({"instanceType": "ml.g6.2xlarge", "instanceTypeFacts": {"gpuMemoryGiB": 24, "instanceStorage": True}},
         "instanceType", "not a GPU instance type AWS documents"),
        ({"instanceType": "ml.g6.2xlarge", "allowUndocumentedInstanceType": True}, "instanceTypeFacts", "required"),
        ({"instanceType": "ml.g6.12xlarge", "allowUndocumentedInstanceType": True,
          "instanceTypeFacts": {"gpuMemoryGiB": 24, "instanceStorage": True}}, "instanceType", "has 4 GPUs"),
        ({"instanceType": "ml.g5.24xlarge", "allowUndocumentedInstanceType": True}, "instanceType", "has 4 GPUs"),
        ({"instanceType": "ml.inf2.xlarge", "allowUndocumentedInstanceType": True,
          "instanceTypeFacts": {"gpuMemoryGiB": 32, "instanceStorage": False}}, "instanceType", "not an NVIDIA GPU family"),
        ({"instanceType": "ml.g6.2xlarge", "allowUndocumentedInstanceType": "perhaps"},
         "allowUndocumentedInstanceType", "true or false"),
        ({"instanceType": "ml.g6.2xlarge", "allowUndocumentedInstanceType": True, "instanceTypeFacts": "{24}"},
         "instanceTypeFacts", "invalid JSON object"),
        ({"instanceType": "ml.g6.2xlarge", "allowUndocumentedInstanceType": True, "instanceTypeFacts": {"gpuMemoryGiB": 24}},
         "instanceTypeFacts", "give an object with gpuMemoryGiB and instanceStorage"),
        ({"instanceType": "ml.g6.2xlarge", "allowUndocumentedInstanceType": True,
          "instanceTypeFacts": {"gpuMemoryGiB": 24, "instanceStorage": True, "gpuCount": 1}},
         "instanceTypeFacts", "unknown field 'gpuCount'"),
        ({"instanceType": "ml.g6.2xlarge", "allowUndocumentedInstanceType": True,
          "instanceTypeFacts": {"gpuMemoryGiB": "lots", "instanceStorage": True}},
         "instanceTypeFacts.gpuMemoryGiB", "whole number"),
        ({"instanceType": "ml.g6.2xlarge", "allowUndocumentedInstanceType": True,
          "instanceTypeFacts": {"gpuMemoryGiB": 24, "instanceStorage": "nvme"}},
         "instanceTypeFacts.instanceStorage", "true or false"),
        ({"instanceType": "ml.g5.2xlarge", "instanceTypeFacts": {"gpuMemoryGiB": 48, "instanceStorage": True}},
         "instanceTypeFacts", "documented type whose facts come from the catalog"),
        ({"minInstanceCount": 3, "maxInstanceCount": 2, "initialInstanceCount": 3}, "maxInstanceCount", "below"),
        ({"initialInstanceCount": -1}, "initialInstanceCount", ">= 1"),
        ({"minInstanceCount": 0}, "minInstanceCount", ">= 1"),
        ({"maxInstanceCount": "many"}, "maxInstanceCount", "whole number"),
        ({"initialInstanceCount": 5}, "initialInstanceCount", "between"),
        ({"enabledModels": ["sam", "dalle"]}, "enabledModels", "unknown model 'dalle'"),
        ({"enabledModels": []}, "enabledModels", "at least one"),
        ({"enabledModels": ["sam", "sam"]}, "enabledModels", "duplicate"),
        ({"gpuUtilizationTarget": 150}, "gpuUtilizationTarget", "(0, 100]"),
        ({"invocationsPerInstanceTarget": 0}, "invocationsPerInstanceTarget", "must be in"),
        ({"scaleInCooldownSeconds": 10, "scaleOutCooldownSeconds": 60}, "scaleInCooldownSeconds", "slower"),
        ({"scaleOutCooldownSeconds": -5}, "scaleOutCooldownSeconds", ">= 0"),
        ({"endpointNamePrefix": "bad_name!"}, "endpointNamePrefix", "letters, digits"),
        ({"vpcSubnetIds": ["subnet-0123456789abcdef0"]}, "vpcSecurityGroupIds", "required"),
        ({"vpcSubnetIds": ["vpc-123"], "vpcSecurityGroupIds": ["sg-0123456789abcdef0"]}, "vpcSubnetIds", "subnet-"),
        ({"networkIsolation": "maybe"}, "networkIsolation", "true or false"),
        ({"modelPrefix": "models/*"}, "modelPrefix", "plain S3 key prefix"),
        ({"alarmTopicArn": "arn:aws:sqs:eu-west-1:111122223333:q"}, "alarmTopicArn", "not an SNS topic ARN"),
        ({"alarmEmail": "oncall@example.com,nobody"}, "alarmEmail", "'nobody' is not an email address"),
        ({"alarmEmail": "a@example.com", "alarmTopicArn": "arn:aws:sns:eu-west-1:111122223333:t"}, "alarmEmail",
         "leave alarmTopicArn out"),
        ({"alarm5xxErrorRatePercent": 0}, "alarm5xxErrorRatePercent", "(0, 100]"),
        ({"alarmCacheHitRatioMin": 80}, "alarmCacheHitRatioMin", "(0, 1]"),
        ({"alarmModelLatencyP90Ms": "fast"}, "alarmModelLatencyP90Ms", "expected a number"),
        ({"alarmInstancesAtMaxMinutes": 2.5}, "alarmInstancesAtMaxMinutes", "whole number"),
        ({"alarmInstancesAtMaxMinutes": 2000}, "alarmInstancesAtMaxMinutes", "<= 1440"),
        ({"logRetentionDays": 10}, "logRetentionDays", "not a period CloudWatch Logs accepts"),
        ({"retainLogGroups": "sometimes"}, "retainLogGroups", "true or false"),
        ({"modelCacheEnabled": "2"}, "modelCacheEnabled", "true or false"),
    ],
)
def test_invalid_context_names_the_key(context, key, fragment):
    with pytest.raises(SettingsError) as info:
        parse(**context)
    message = str(info.value)
    assert message.startswith(f"context {key}:")
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["ml.t3.medium", "ml.g5.24xlarge", "ml.g4dn.12xlarge", "ml.p2.xlarge", "ml.g6e.xlarge"])
def test_refused_instance_types_name_the_supported_list_on_one_line(name):
    with pytest.raises(SettingsError) as info:
        parse(instanceType=name)
    message = str(info.value)
    assert "\n" not in message
    assert "supported: " + ", ".join(SUPPORTED_INSTANCE_TYPES) in message


def test_undocumented_type_with_the_flag_and_its_facts():
    s = parse(instanceType="ml.g6e.2xlarge", allowUndocumentedInstanceType="true",
              instanceTypeFacts='{"gpuModel": "NVIDIA L40S", "gpuMemoryGiB": "48", "instanceStorage": "true"}')
    assert s.instance_type == "ml.g6e.2xlarge" and s.allow_undocumented_instance_type is True
    assert s.gpu_instance_type == GpuInstanceType("ml.g6e.2xlarge", "NVIDIA L40S", 48, True)
    assert not s.gpu_instance_type.documented
    # the flag changes nothing for a documented type
    s = parse(instanceType="ml.g4dn.xlarge", allowUndocumentedInstanceType=True)
    assert s.gpu_instance_type is GPU_INSTANCE_TYPES["ml.g4dn.xlarge"] and s.instance_type_facts is None
    # gpuModel is optional; the facts come from cdk.json as an object
    s = parse(instanceType="ml.g6.xlarge", allowUndocumentedInstanceType=True,
              instanceTypeFacts={"gpuMemoryGiB": 24, "instanceStorage": False})
    assert (s.gpu_instance_type.gpu_memory_gib, s.gpu_instance_type.instance_storage) == (24, False)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"instanceType": "ml.c5.xlarge"}, "error: context instanceType: 'ml.c5.xlarge' is not a GPU instance type"),
        ({"minInstanceCount": "4", "initialInstanceCount": "4"}, "error: context maxInstanceCount: 2 is below"),
        ({"enabledModels": "sam,gpt"}, "error: context enabledModels: unknown model 'gpt'"),
    ],
)
def test_app_exits_with_one_line_not_a_stack_trace(context, expected, tmp_path):
    # `cdk synth -c key=value` hands the values to the app in CDK_CONTEXT_JSON, as strings.
    proc = subprocess.run(
        [sys.executable, "app.py"],
        cwd=REPO_ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(expected), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
