"""An archive in S3 -> its bytes, as a stream of resumable GETs."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from .._errors import ArchiveReadError
from .._units import MIB
from .client import S3Client
from .errors import S3_ERRORS, describe_error, error_code, is_not_found, is_precondition_failed

__all__ = ["s3_bytes"]

READ_SIZE = MIB


async def s3_bytes(
    client: S3Client,
    bucket: str,
    key: str,
    *,
    max_resumes: int = 5,
    read_size: int = READ_SIZE,
    on_size: Callable[[int], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """Yield the bytes of ``s3://bucket/key`` from one streaming GET.

    If the connection drops mid-body, the download continues with a ranged GET from the
    last byte received, at most ``max_resumes`` times. ``IfMatch`` pins every resumed
    request to the ETag of the first, so bytes of two versions of an object are never
    spliced together. ``on_size`` is told the object's size when the first GET answers.
    """
    url = f"s3://{bucket}/{key}"
    received = 0
    etag: str | None = None
    size: int | None = None
    resumes = 0
    while True:
        started_at = received
        try:
            if etag is None:
                response = await client.get_object(Bucket=bucket, Key=key)
                etag, size = response["ETag"], response["ContentLength"]
                if on_size is not None:
                    on_size(size)
            else:
                response = await client.get_object(
                    Bucket=bucket, Key=key, Range=f"bytes={received}-", IfMatch=etag
                )
            async with response["Body"] as body:
                while chunk := await body.read(read_size):
                    received += len(chunk)
                    yield chunk
        except S3_ERRORS as exc:
            if is_not_found(exc):
                raise ArchiveReadError(f"no archive at {url}") from exc
            if is_precondition_failed(exc):
                raise ArchiveReadError(f"{url} changed while it was downloaded") from exc
            # A coded error is the server's answer, which asking again will not change;
            # a request that got no byte at all was already retried by botocore, so only
            # a connection that broke off mid-body is resumed.
            stalled = received == started_at
            if error_code(exc) is not None or stalled or resumes >= max_resumes:
                raise ArchiveReadError(f"downloading {url} failed: {describe_error(exc)}") from exc
            resumes += 1
            continue
        if size is not None and received < size:
            # The body ended early without an error: treat it like a dropped connection.
            if resumes >= max_resumes:
                raise ArchiveReadError(f"downloading {url} ended at byte {received} of {size}")
            resumes += 1
            continue
        return
