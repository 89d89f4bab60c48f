"""Error types of the packager: every failure surfaces as one short line."""

from __future__ import annotations

MAX_MESSAGE_CHARS = 600


class PackagingError(Exception):
    """A packaging failure with a one-line, user-facing reason (no traceback needed)."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class SpecError(PackagingError):
    """The weights spec (or a custom-resource property) is invalid."""


class SourceError(PackagingError):
    """A model source file or a weight file could not be read (HTTP/S3 error, dropped stream...)."""


class DigestMismatch(PackagingError):
    """A downloaded file's digest or size differs from the pinned value."""


class UploadError(PackagingError):
    """Writing the archive to its destination failed."""


class BudgetExceeded(PackagingError):
    """The time budget (the Lambda's remaining time minus a safety margin) ran out."""


def one_line(message: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Collapse whitespace/newlines and cut to ``limit`` characters."""
    text = " ".join(str(message).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def describe(exc: BaseException) -> str:
    """One line for any exception: our own messages as they are, others prefixed by their type."""
    if isinstance(exc, PackagingError):
        return str(exc)
    text = one_line(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def aws_error_message(err: BaseException) -> str:
    """One line for an AWS SDK error of any service (S3, Secrets Manager...): ``Code: message`` of a
    botocore ``ClientError``, else the exception's type and text."""
    error = (getattr(err, "response", None) or {}).get("Error", {})
    if error.get("Code"):
        return f"{error['Code']}: {error['Message']}" if error.get("Message") else str(error["Code"])
    return f"{type(err).__name__}: {err}"
