"""Where the serving image's files are, and the names the build, the tests and ``mme local`` share."""

from __future__ import annotations

from pathlib import Path

from mme import paths

CONTAINER_DIR = paths.REPO_ROOT / "container"
DOCKERFILE = CONTAINER_DIR / "Dockerfile"
#: TorchServe's logging in the image (in place of the toolkit's ``etc/log4j2.xml``) and in ``mme local``
LOG_CONFIG = CONTAINER_DIR / "log4j2.xml"
#: The image ``make image`` builds and ``mme local up --image`` / the image tests run by default.
DEV_IMAGE = "localhost/mme-serving:dev"

#: Exact pins, one file per layer group (see container/Dockerfile).
TORCH_REQUIREMENTS = CONTAINER_DIR / "requirements-torch.txt"
SERVER_REQUIREMENTS = CONTAINER_DIR / "requirements-server.txt"
HANDLER_REQUIREMENTS = CONTAINER_DIR / "requirements.txt"
REQUIREMENT_FILES = (TORCH_REQUIREMENTS, SERVER_REQUIREMENTS, HANDLER_REQUIREMENTS)
#: The hashed locks the Dockerfile installs (``make lock`` writes them).
TORCH_LOCK = CONTAINER_DIR / "requirements-torch.lock"
FULL_LOCK = CONTAINER_DIR / "requirements.lock"
#: The test environment's pins: the image's packages must agree with them.
TEST_CONSTRAINTS = paths.REPO_ROOT / "constraints.txt"
#: Where the image keeps the locks (the record of what it installed).
IMAGE_LOCK_DIR = "/opt/mme"

#: The platform the image runs on and the Python of its Debian release (the locks are for them).
LOCK_PYTHON_VERSION = "3.13"
LOCK_PLATFORM = "x86_64-manylinux_2_28"



def relative(path: Path) -> str:
    """``path`` relative to the repository (for messages), or as given when outside it."""
    try:
        return str(path.resolve().relative_to(paths.REPO_ROOT))
    except ValueError:
        return str(path)


def dockerfile_base_image(dockerfile: Path = DOCKERFILE) -> str:
    """The Dockerfile's default ``BASE_IMAGE`` (``ARG BASE_IMAGE=<reference>``)."""
    from mme_constructs.dockerfile import dockerfile_base_image as declared

    reference = declared(dockerfile)
    if reference is None:
        raise ValueError(f"{relative(dockerfile)} declares no ARG BASE_IMAGE=<reference>")
    return reference
