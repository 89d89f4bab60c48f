"""Client library of the image-editing endpoint: one interface, two backends.

>>> from mme.client import EditingClient, SageMakerBackend, LocalBackend
>>> client = EditingClient(SageMakerBackend.from_stack("ImageEditingMme"))  # deployed stack
>>> client = EditingClient(LocalBackend.from_state())                        # `mme local up`
>>> sel = client.select("photo.jpg", [(120, 80)])          # SAM: click -> mask
>>> client.erase("photo.jpg", sel.mask).save("erased.png")   # LaMa
>>> client.replace("photo.jpg", sel.mask, "a red vase").save("vase.png")  # SD2 inpaint

Errors: :mod:`mme.client.errors` (``InputError``, ``ModelInputError``, ``ModelServerError``,
``EndpointError``, ``ConfigurationError``; all are ``MmeError``).
"""

from __future__ import annotations

from ..models import MODELS
from .editing import Backend, EditingClient, SelectResult
from .errors import (
    ConfigurationError,
    EndpointError,
    InputError,
    MmeError,
    ModelError,
    ModelInputError,
    ModelServerError,
)
from .retry import RetryPolicy
from .sagemaker import SageMakerBackend
from ..stack_outputs import DEFAULT_STACK_NAME, target_models_from_outputs
from .stack import read_stack_outputs

__all__ = [
    "MODELS", "Backend", "EditingClient", "SelectResult", "SageMakerBackend", "LocalBackend", "RetryPolicy",
    "MmeError", "InputError", "ConfigurationError", "EndpointError", "ModelError", "ModelInputError",
    "ModelServerError", "DEFAULT_STACK_NAME", "read_stack_outputs", "target_models_from_outputs",
]


def __getattr__(name: str):
    # LocalBackend pulls in the local-serving helpers; load it only when asked for.
    if name == "LocalBackend":
        from .local import LocalBackend

        return LocalBackend
    raise AttributeError(name)
