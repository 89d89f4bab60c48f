"""Fixtures of the serving image's tests (``make test-image``): the container engine, the built image,
and one container of it started as SageMaker starts it on a multi-model endpoint instance.

The tests marked ``image`` skip only where no container engine is usable and none could be
installed (``make container-engine`` says why); with an engine, a missing image fails them with
the command that builds it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "client"))

from image_support import assert_stopped_cleanly  # noqa: E402

from mme.local.image_container import ImageContainer  # noqa: E402
from mme.serving_image.engine import find_engine  # noqa: E402
from mme.serving_image.layout import DEV_IMAGE  # noqa: E402


@pytest.fixture(scope="session")
def engine():
    found = find_engine()
    if found is None:
        pytest.skip("no container engine here, and `make container-engine` could not install one (it needs root "
                    "or password-less sudo for Debian's podman, or a running Docker engine)")
    return found


@pytest.fixture(scope="session")
def serving_image(engine) -> str:
    """The image under test: ``$MME_IMAGE`` (``make test-image`` sets it), else ``localhost/mme-serving:dev``."""
    reference = os.environ.get("MME_IMAGE") or DEV_IMAGE
    assert engine.image_exists(reference), f"{reference} is not built: run `make image` (or `make test-image`)"
    return reference


@pytest.fixture(scope="session")
def image_container(engine, serving_image, tmp_path_factory):
    """One container of the image, run as SageMaker runs it (``serve``, its environment, the models
    folder at /opt/ml/models, one port); at the end stopped, with no container and no process of
    it left."""
    workdir = tmp_path_factory.mktemp("image-container")
    container = ImageContainer(workdir / "server", image=serving_image, engine=engine,
                               models_dir=workdir / "models", sagemaker_exact=True).start()
    init_pid = container.pgid
    yield container
    assert_stopped_cleanly(container, engine, init_pid)
