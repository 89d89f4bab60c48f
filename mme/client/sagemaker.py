"""SageMaker backend: ``InvokeEndpoint`` on the multi-model endpoint with ``TargetModel``.

The ``TargetModel`` of each model comes from the stack outputs (:mod:`.stack`) or from explicit
overrides, never from a guess. boto3's own retries are turned off so that one documented policy
(:mod:`.retry`) decides: throttling and "model is loading" (``ModelNotReadyException``) are
retried with exponential backoff and full jitter; the model's own 4xx answer is raised at once as
:class:`~mme.client.errors.ModelInputError` with the model's code and message (boto3 reports it as
a ``ModelError`` whose ``OriginalStatusCode``/``OriginalMessage`` carry the container's answer).

Standard AWS settings apply (profile, region, ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` / ``AWS_ENDPOINT_URL_CLOUDFORMATION``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping

from .errors import ConfigurationError, EndpointError, ModelInputError, ModelServerError, model_error
from .retry import MODEL_LOADING, THROTTLED, UNAVAILABLE, RetryPolicy
from ..stack_outputs import DEFAULT_STACK_NAME, ENDPOINT_OUTPUT, target_models_from_outputs
from .stack import read_stack_outputs

#: InvokeEndpoint's payload limit for real-time endpoints (request body), bytes.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024

_THROTTLING_CODES = {"ThrottlingException", "ThrottledException", "Throttling", "TooManyRequestsException",
                     "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "SlowDown"}
_UNAVAILABLE_CODES = {"ServiceUnavailable", "ServiceUnavailableException", "InternalFailure",
                      "InternalServerError", "InternalDependencyException", "InternalError"}
#: container statuses worth retrying: 503 = no free worker / model not ready inside TorchServe,
#: 507 = out of (GPU) memory, which makes SageMaker unload cold models.
_RETRYABLE_MODEL_STATUS = {503, 507}

RetryCallback = Callable[[str, int, float, str], None]
"""``on_retry(kind, attempt, delay_seconds, message)``, called before each backoff sleep."""


def _session(profile: str | None = None, region: str | None = None, session=None):
    if session is not None:
        return session
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise ConfigurationError(str(exc)) from None
    if session.region_name is None and os.environ.get("AWS_REGION"):
        # boto3 reads AWS_DEFAULT_REGION and the profile; other SDKs and AWS runtimes set AWS_REGION
        session = boto3.Session(profile_name=profile, region_name=os.environ["AWS_REGION"])
    return session


def _client(session, service: str, **config):
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    try:
        return session.client(service, config=Config(**config))
    except NoRegionError:
        raise ConfigurationError("no AWS region configured: pass --region, or set AWS_DEFAULT_REGION / AWS_REGION or a profile region") from None


class SageMakerBackend:
    """Invoke models on a SageMaker multi-model endpoint.

    ``target_models`` maps model names (``sam``, ``lama``, ``sd``) to their ``TargetModel``.
    ``client``: a ``sagemaker-runtime`` boto3 client (default: one from ``session``/``profile``/
    ``region`` with boto3 retries off, 70 s read timeout as AWS recommends for 60 s models).
    ``on_retry`` is told about every backoff (the CLI shows it on a terminal).
    """

    def __init__(self, endpoint_name: str, target_models: Mapping[str, str], *, client=None, session=None,
                 profile: str | None = None, region: str | None = None, retry: RetryPolicy | None = None,
                 on_retry: RetryCallback | None = None, read_timeout: float = 70.0,
                 max_payload_bytes: int = MAX_PAYLOAD_BYTES, sleep: Callable[[float], None] = time.sleep):
        if not endpoint_name:
            raise ConfigurationError("no endpoint name")
        self.endpoint_name = endpoint_name
        self.target_models = dict(target_models)
        if client is None:
            client = _client(_session(profile, region, session), "sagemaker-runtime",
                             retries={"total_max_attempts": 1}, read_timeout=read_timeout, connect_timeout=10,
                             tcp_keepalive=True)
        self.client = client
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self.max_payload_bytes = max_payload_bytes
        self._sleep = sleep

    @classmethod
    def from_stack(cls, stack_name: str = DEFAULT_STACK_NAME, *, endpoint_name: str | None = None,
                   target_models: Mapping[str, str] | None = None, session=None, profile: str | None = None,
                   region: str | None = None, cloudformation=None, models: tuple[str, ...] | None = None,
                   **kwargs) -> "SageMakerBackend":
        """Build the backend from the stack's outputs (``EndpointName``, ``TargetModel<Name>``).

        ``endpoint_name`` and ``target_models`` override what the stack says; when both are given
        for every model in ``models`` (default: only the ones overridden), the stack is not read.
        """
        overrides = dict(target_models or {})
        needed = set(models or ()) - set(overrides)
        if endpoint_name and not needed and overrides:
            outputs: dict[str, str] = {}
        else:
            sess = _session(profile, region, session)
            cfn = cloudformation or _client(sess, "cloudformation", retries={"mode": "standard", "max_attempts": 5})
            outputs = read_stack_outputs(stack_name, cfn)
            session = sess
        endpoint = endpoint_name or outputs.get(ENDPOINT_OUTPUT)
        if not endpoint:
            raise ConfigurationError(f"stack {stack_name} has no {ENDPOINT_OUTPUT} output: pass --endpoint NAME")
        found = target_models_from_outputs(outputs)
        found.update(overrides)
        missing = sorted(m for m in needed if m not in found)
        if missing:
            raise ConfigurationError(
                f"stack {stack_name} has no TargetModel output for {', '.join(missing)} (not enabled or not "
                f"packaged?); pass --target-model {missing[0]}=<archive>.tar.gz")
        return cls(endpoint, found, session=session, profile=profile, region=region, **kwargs)

    @classmethod
    def from_parameters(cls, endpoint_name: str, parameter_prefix: str, models: tuple[str, ...], *, session=None,
                        profile: str | None = None, region: str | None = None, ssm=None,
                        **kwargs) -> "SageMakerBackend":
        """Build the backend for ``endpoint_name`` with each model's TargetModel read from the SSM
        parameters ``<parameter_prefix>/<model>`` (what the stack publishes, for apps that do not
        read CloudFormation)."""
        from .stack import read_target_model_parameters

        sess = _session(profile, region, session)
        client = ssm or _client(sess, "ssm", retries={"mode": "standard", "max_attempts": 5})
        found = read_target_model_parameters(parameter_prefix, models, client)
        return cls(endpoint_name, found, session=sess, profile=profile, region=region, **kwargs)

    def describe(self) -> str:
        region = getattr(getattr(self.client, "meta", None), "region_name", None)
        return f"SageMaker endpoint {self.endpoint_name}" + (f" ({region})" if region else "")

    def target_model(self, model: str) -> str:
        """The ``TargetModel`` of ``model`` (raises ConfigurationError when unknown)."""
        try:
            return self.target_models[model]
        except KeyError:
            known = ", ".join(sorted(self.target_models)) or "none"
            raise ConfigurationError(f"no TargetModel known for model {model!r} (known: {known}); "
                                     f"pass --target-model {model}=<archive>.tar.gz") from None

    # ------------------------------------------------------------------ invoke
    def invoke(self, model: str, payload: dict) -> dict:
        """Send one request to ``model``; return its JSON answer (see the module docstring)."""
        target = self.target_model(model)
        body = json.dumps(payload, separators=(",", ":")).encode()
        if len(body) > self.max_payload_bytes:
            raise ModelInputError(model, 413, "payload_too_large",
                                  f"the request is {len(body) / 1e6:.1f} MB; InvokeEndpoint accepts at most "
                                  f"{self.max_payload_bytes / 1e6:.1f} MB: use a smaller image (or JPEG)")
        started = time.monotonic()
        failures: dict[str, int] = {}  # each kind of failure has its own budget
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.client.invoke_endpoint(EndpointName=self.endpoint_name, TargetModel=target,
                                                       ContentType="application/json", Accept="application/json",
                                                       Body=body)
                raw = response["Body"].read()
                try:
                    return json.loads(raw)
                except ValueError:
                    raise EndpointError(f"{model} answered with something that is not JSON: {raw[:100]!r}") from None
            except Exception as exc:  # noqa: BLE001 - classified below
                kind, error = self._classify(model, exc)
                if kind is None:
                    raise error from None
                failures[kind] = failures.get(kind, 0) + 1
                delay = self.retry.delay(failures[kind])
                if not self.retry.should_retry(kind, failures[kind], time.monotonic() - started, delay):
                    raise self._exhausted(model, kind, attempt, started, error) from None
                if self.on_retry is not None:
                    self.on_retry(kind, attempt, delay, str(error))
                self._sleep(delay)

    def _exhausted(self, model: str, kind: str, attempts: int, started: float, error: Exception) -> Exception:
        if isinstance(error, ModelServerError):
            return error
        elapsed = time.monotonic() - started
        what = {MODEL_LOADING: f"{model} was still loading on {self.endpoint_name}",
                THROTTLED: "the calls were throttled",
                UNAVAILABLE: f"{self.endpoint_name} was unavailable"}[kind]
        return EndpointError(f"{what} after {attempts} attempts in {elapsed:.0f}s: {error}")

    def _classify(self, model: str, exc: Exception) -> tuple[str | None, Exception]:
        """``(retry kind or None, the exception to raise)`` for a failed call."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            ReadTimeoutError,
        )

        if isinstance(exc, (ModelInputError, EndpointError)):
            return None, exc
        if isinstance(exc, ClientError):
            response = exc.response
            error = response.get("Error", {})
            code = error.get("Code", "")
            message = " ".join(str(error.get("Message") or response.get("Message") or exc).split())
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code == "ModelError":
                original_status = int(response.get("OriginalStatusCode") or 0)
                original = response.get("OriginalMessage")
                if original is None:
                    original = message
                err = model_error(model, original_status or 500, original, response.get("LogStreamArn"))
                if original_status in _RETRYABLE_MODEL_STATUS:
                    return UNAVAILABLE, err
                return None, err
            if code == "ModelNotReadyException":
                return MODEL_LOADING, EndpointError(f"{model} is loading on {self.endpoint_name}: {message}")
            if code in _THROTTLING_CODES or status == 429:
                return THROTTLED, EndpointError(f"throttled ({code or status}): {message}")
            if code in _UNAVAILABLE_CODES or status >= 500:
                return UNAVAILABLE, EndpointError(f"{code or status}: {message}")
            if code == "ValidationError" and "not found" in message.lower() and "endpoint" in message.lower():
                return None, EndpointError(f"endpoint {self.endpoint_name} not found: {message}")
            return None, EndpointError(f"{self.endpoint_name} refused the call ({code or status}): {message}")
        if isinstance(exc, (NoCredentialsError, NoRegionError)):
            return None, ConfigurationError(f"{exc}: configure AWS credentials/region (aws configure, AWS_PROFILE)")
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)):
            return UNAVAILABLE, EndpointError(f"cannot reach {self.endpoint_name}: {exc}")
        if isinstance(exc, BotoCoreError):
            return None, EndpointError(f"{type(exc).__name__}: {exc}")
        raise exc

