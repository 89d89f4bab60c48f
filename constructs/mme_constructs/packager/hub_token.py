"""The Hugging Face Hub token of a weights spec, read from a Secrets Manager secret."""

from __future__ import annotations

import json
from typing import Callable

from .errors import SourceError, aws_error_message


def secret_token_provider(secrets_client, secret_arn: str) -> Callable[[], str]:
    """A cached provider of the Hub token stored in a Secrets Manager secret.

    The secret string is either the token itself or JSON with a ``token``/``HF_TOKEN`` key.
    """
    cache: dict[str, str] = {}

    def provider() -> str:
        if "token" not in cache:
            try:
                value = secrets_client.get_secret_value(SecretId=secret_arn)["SecretString"]
            except Exception as err:  # noqa: BLE001 - any failure is the same for the user
                raise SourceError(f"cannot read the Hub token secret {secret_arn}: {aws_error_message(err)}") from None
            token = value.strip()
            if token.startswith("{"):
                try:
                    doc = json.loads(token)
                except json.JSONDecodeError:
                    doc = {}
                token = next((str(doc[k]) for k in ("token", "HF_TOKEN", "hf_token") if k in doc), "")
            if not token:
                raise SourceError(f"the secret {secret_arn} holds no Hub token")
            cache["token"] = token
        return cache["token"]

    return provider
