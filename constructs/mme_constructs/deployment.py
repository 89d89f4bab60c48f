"""How an update of a multi-model endpoint (a new image, instance type, AMI or environment: a new
endpoint configuration) rolls out: SageMaker's deployment guardrails, with automatic rollback on
CloudWatch alarms.

SageMaker (API reference: ``DeploymentConfig``, ``BlueGreenUpdatePolicy``, ``RollingUpdatePolicy``,
``TrafficRoutingConfig``; CloudFormation ``AWS::SageMaker::Endpoint DeploymentConfig``):

* **blue/green**: a new fleet is provisioned next to the old one; traffic moves to it all at once,
  in a canary step then the rest, or in linear steps (``wait`` between steps); after the last
  shift SageMaker bakes for ``bake`` (``TerminationWaitInSeconds``) watching the alarms, then
  terminates the old fleet. Costs one whole extra fleet for the length of the deploy. Canary and
  linear steps are at most 50% of the variant's instances, so they need two or more.
* **rolling**: the new fleet comes in batches of ``batch`` (5-50% of the variant's instances:
  two or more instances), each baking for ``wait`` with the alarms watched, the old capacity
  terminated batch by batch. Costs one batch of extra instances at a time.
* **rollback**: an alarm of the rollback list in ALARM during a bake stops the deploy and puts
  the old fleet back (the old endpoint configuration stays in force). Deployment guardrails exclude
  marketplace containers and Inf1 instances, and rolling updates serverless and multi-variant
  endpoints; a GPU multi-model endpoint with one variant is none of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Duration, Token

_WAIT_RANGE_S = (0, 3600)
#: The default bake of the blue/green policies: EndpointAlarms' default 5xx-rate alarm needs 2 and its
#: latency alarm 3 five-minute periods to fire, plus CloudWatch's few minutes of reporting delay.
DEFAULT_BAKE = Duration.minutes(20)
_TIMEOUT_RANGE_S = (600, 28800)


@dataclass(frozen=True)
class CapacitySize:
    """A step of a deployment: ``instances`` (an instance count) or ``percent`` (of the variant's)."""

    instances: int | None = None
    percent: int | None = None

    def __post_init__(self) -> None:
        if (self.instances is None) == (self.percent is None):
            raise ValueError("CapacitySize: give instances or percent, one of them")
        value = self.instances if self.instances is not None else self.percent
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (self.percent is not None and value > 100):
            raise ValueError(f"CapacitySize: a whole number >= 1 (percent <= 100), got {value!r}")

    def render(self) -> dict:
        if self.instances is not None:
            return {"Type": "INSTANCE_COUNT", "Value": self.instances}
        return {"Type": "CAPACITY_PERCENT", "Value": self.percent}

    def share_of(self, instance_count: int) -> float:
        """This step as a share of ``instance_count`` instances."""
        return self.percent / 100 if self.percent is not None else self.instances / instance_count


@dataclass(frozen=True)
class EndpointDeployment:
    """A deployment policy for ``MultiModelEndpoint(deployment=...)``; make one with a factory.

    Attributes: ``kind`` (``all-at-once``, ``canary``, ``linear``, ``rolling``), ``step`` (the
    canary, linear or rolling step), ``wait`` (between traffic steps, or each rolling batch's
    bake), ``bake`` (blue/green: after the last shift), ``rollback_step`` (rolling),
    ``maximum_execution_timeout``.
    """

    kind: str
    step: CapacitySize | None = None
    wait: Duration = field(default_factory=lambda: Duration.minutes(0))
    bake: Duration | None = None
    rollback_step: CapacitySize | None = None
    maximum_execution_timeout: Duration | None = None

    @classmethod
    def all_at_once(cls, *, bake: Duration = DEFAULT_BAKE,
                    maximum_execution_timeout: Duration | None = None) -> "EndpointDeployment":
        """Blue/green, all traffic at once, then ``bake`` with the alarms watched (any instance count)."""
        return cls("all-at-once", bake=bake, maximum_execution_timeout=maximum_execution_timeout)

    @classmethod
    def canary(cls, *, step: CapacitySize = CapacitySize(instances=1), wait: Duration = Duration.minutes(10),
               bake: Duration = DEFAULT_BAKE,
               maximum_execution_timeout: Duration | None = None) -> "EndpointDeployment":
        """Blue/green: ``step`` of the traffic first, the rest after ``wait``, then ``bake``."""
        return cls("canary", step=step, wait=wait, bake=bake, maximum_execution_timeout=maximum_execution_timeout)

    @classmethod
    def linear(cls, *, step: CapacitySize = CapacitySize(percent=25), wait: Duration = Duration.minutes(5),
               bake: Duration = DEFAULT_BAKE,
               maximum_execution_timeout: Duration | None = None) -> "EndpointDeployment":
        """Blue/green: traffic moves in steps of ``step``, ``wait`` apart, then ``bake``."""
        return cls("linear", step=step, wait=wait, bake=bake, maximum_execution_timeout=maximum_execution_timeout)

    @classmethod
    def rolling(cls, *, batch: CapacitySize = CapacitySize(instances=1), wait: Duration = Duration.minutes(10),
                rollback_batch: CapacitySize | None = None,
                maximum_execution_timeout: Duration | None = None) -> "EndpointDeployment":
        """New capacity in batches of ``batch``, each baking ``wait``; a rollback restores
        ``rollback_batch`` at a time (default: all at once)."""
        return cls("rolling", step=batch, wait=wait, rollback_step=rollback_batch,
                   maximum_execution_timeout=maximum_execution_timeout)

    # --- checks and rendering ---------------------------------------------------------------

    def errors(self, instance_count) -> list[str]:
        """What SageMaker would refuse, for a variant of ``instance_count`` instances (a token: not
        checked), one line each, naming ``deployment``."""
        errors = []
        for name, duration in (("wait", self.wait), ("bake", self.bake)):
            if duration is not None and not _WAIT_RANGE_S[0] <= duration.to_seconds() <= _WAIT_RANGE_S[1]:
                errors.append(f"deployment: {name} must be between 0 and 1 hour, got {duration.to_human_string()}")
        timeout = self.maximum_execution_timeout
        if timeout is not None and not _TIMEOUT_RANGE_S[0] <= timeout.to_seconds() <= _TIMEOUT_RANGE_S[1]:
            errors.append(f"deployment: maximum_execution_timeout must be between 10 minutes and 8 hours, got "
                          f"{timeout.to_human_string()}")
        if self.step is not None and not Token.is_unresolved(instance_count):
            share = self.step.share_of(instance_count)
            low = 0.05 if self.kind == "rolling" else 0.0
            if not low <= share <= 0.5:
                errors.append(
                    f"deployment: a {self.kind} step must be {'5% to ' if low else 'at most '}50% of the variant's "
                    f"instances; {self.step.render()['Value']} {'%' if self.step.percent else 'instance(s)'} of "
                    f"{instance_count} is {share:.0%}: use EndpointDeployment.all_at_once() for fewer than 2 instances")
        return errors

    def render(self, alarm_names: list[str]) -> dict:
        """The ``DeploymentConfig`` of ``AWS::SageMaker::Endpoint``."""
        config: dict = {}
        timeout = {"MaximumExecutionTimeoutInSeconds": int(self.maximum_execution_timeout.to_seconds())} \
            if self.maximum_execution_timeout is not None else {}
        if self.kind == "rolling":
            policy = {"MaximumBatchSize": self.step.render(), "WaitIntervalInSeconds": int(self.wait.to_seconds()),
                      **timeout}
            if self.rollback_step is not None:
                policy["RollbackMaximumBatchSize"] = self.rollback_step.render()
            config["RollingUpdatePolicy"] = policy
        else:
            routing = {"Type": self.kind.upper().replace("-", "_")}
            if self.kind != "all-at-once":
                routing["CanarySize" if self.kind == "canary" else "LinearStepSize"] = self.step.render()
                routing["WaitIntervalInSeconds"] = int(self.wait.to_seconds())
            config["BlueGreenUpdatePolicy"] = {"TrafficRoutingConfiguration": routing,
                                               "TerminationWaitInSeconds": int(self.bake.to_seconds()), **timeout}
        if alarm_names:
            config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": n} for n in alarm_names]}
        return config
