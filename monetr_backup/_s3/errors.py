"""botocore's and aiohttp's errors -> ours: the one place S3 error codes are spelled."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from .._errors import BackupError

__all__ = [
    "S3_ERRORS",
    "describe_error",
    "error_code",
    "is_not_found",
    "is_precondition_failed",
    "mapped",
]

#: What an S3 call can raise besides our own errors.
S3_ERRORS = (ClientError, BotoCoreError, aiohttp.ClientError, OSError)

# HEAD answers with a bare status (no body to carry a code); GET and friends with a code.
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})
_PRECONDITION_FAILED = frozenset({"412", "PreconditionFailed"})


def error_code(exc: BaseException) -> str | None:
    """The S3 error code (``NoSuchKey``, ``PreconditionFailed`` ...) of a ClientError."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def is_not_found(exc: BaseException) -> bool:
    """The key (or multipart upload) does not exist."""
    return error_code(exc) in _NOT_FOUND


def is_precondition_failed(exc: BaseException) -> bool:
    """A conditional request (``If-None-Match``, ``If-Match``) was refused."""
    return error_code(exc) in _PRECONDITION_FAILED


def describe_error(exc: BaseException) -> str:
    """A one-line description of an S3 failure; botocore never puts secrets in these."""
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def mapped(error: type[BackupError], what: str) -> Iterator[None]:
    """Raise any S3 failure inside the block as ``error("<what> failed: ...")``."""
    try:
        yield
    except S3_ERRORS as exc:
        raise error(f"{what} failed: {describe_error(exc)}") from exc
