"""Archive bytes -> an S3 object through a multipart upload.

Bytes are cut into parts; a bounded queue hands them to ``concurrency`` upload tasks.
When the queue is full, :meth:`S3Upload.write` waits, and that wait is what slows
pg_dump down to the upload's pace, so memory stays bounded by::

    largest part size x (queue_depth + concurrency + 1)

The part size doubles after every tenth of ``max_parts``, so a stream of unknown length
does not run out of part numbers: with 5 MiB parts and 10,000 parts the first ~5 GB go
up in 5 MiB parts and the ceiling is about S3's 5 TiB object limit. A stream that still
does not fit is refused with :class:`ArchiveWriteError` rather than buffered.

Nothing is visible at the key until CompleteMultipartUpload (or, for an archive smaller
than one part, a single PutObject), which only :meth:`S3Upload.commit` sends. Every other
way out aborts the multipart upload under a shielded cancel scope.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from isal import isal_zlib

from .._config import UploadChecksum
from .._errors import ArchiveWriteError, single_errors
from .._units import S3_MAX_PART_SIZE, S3_MIN_PART_SIZE
from .client import S3Client
from .errors import S3_ERRORS, describe_error, is_not_found, is_precondition_failed
from .object_settings import UPLOAD_TOKEN_KEY

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

__all__ = ["S3Upload", "open_s3_upload", "part_size_for"]

#: How long cleanup may take before we give up on aborting (and say so).
ABORT_TIMEOUT = 60.0
#: How long starting the upload may hold off a cancellation.
CREATE_TIMEOUT = 60.0
#: Seconds of slack when telling the uploads a create request made from older ones.
STRAY_MARGIN = 2.0


def part_size_for(number: int, base: int, max_parts: int) -> int:
    """Size of part ``number`` (from 1): ``base``, doubling every ``max_parts // 10`` parts."""
    step = max(1, max_parts // 10)
    return min(base << ((number - 1) // step), S3_MAX_PART_SIZE)


def _content_md5(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _crc32(data: bytes | memoryview) -> str:
    return base64.b64encode(isal_zlib.crc32(data).to_bytes(4, "big")).decode()


#: Below this, CRC32 runs on the event loop (~1.5 ms at 16 MiB): cheaper than a thread hop.
_CRC32_INLINE = 16 * 1024 * 1024


async def _checksum(kind: UploadChecksum, data: bytes | memoryview) -> dict[str, str]:
    """The request parameter that makes the server verify ``data`` as it receives it."""
    if kind is UploadChecksum.CRC32:
        if len(data) <= _CRC32_INLINE:
            return {"ChecksumCRC32": _crc32(data)}
        return {"ChecksumCRC32": await anyio.to_thread.run_sync(_crc32, data)}
    return {"ContentMD5": await anyio.to_thread.run_sync(_content_md5, data)}


def _confirm(checksum: dict[str, str], response: Mapping[str, object], what: str) -> None:
    """Refuse a CRC32 the server did not echo: it may have stored the bytes unchecked."""
    sent = checksum.get("ChecksumCRC32")
    if sent is not None and response.get("ChecksumCRC32") != sent:
        raise ArchiveWriteError(
            f"{what}: the server did not confirm the part's CRC32 (does it support "
            "x-amz-checksum-crc32?); use checksum=UploadChecksum.MD5 for this server"
        )


def _multipart_etag(parts: list[CompletedPartTypeDef]) -> str | None:
    """The ETag S3 gives an object completed from ``parts``, if theirs are MD5s."""
    digests = []
    for part in parts:
        etag = part["ETag"].strip('"')
        if len(etag) != 32:
            return None
        try:
            digests.append(bytes.fromhex(etag))
        except ValueError:
            return None
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(parts)}"


@dataclass(frozen=True, slots=True)
class _Part:
    number: int
    #: A buffer of the part's own: botocore sends a file-like body as it is, where it
    #: would wrap bytes in a BytesIO that aiohttp then copies whole to read from.
    data: io.BytesIO
    size: int


class S3Upload:
    """An :class:`~monetr_backup.stages.ArchiveSink` writing one S3 object.

    See :func:`open_s3_upload`.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        *,
        part_size: int,
        max_parts: int,
        concurrency: int,
        queue_depth: int,
        overwrite: bool,
        checksum: UploadChecksum,
        on_stored: Callable[[int], None] | None,
        object_args: Mapping[str, object] | None = None,
    ) -> None:
        if part_size < S3_MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {S3_MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.key = key
        self._client = client
        self._part_size = part_size
        self._max_parts = max_parts
        self._concurrency = concurrency
        self._overwrite = overwrite
        self._checksum = checksum
        self._on_stored = on_stored
        #: Encryption, storage class, tags, metadata: set when the object is created.
        self._object_args = dict(object_args or {})
        # A token of this upload's own in the object's metadata: how a commit whose answer
        # was lost knows the object at the key is its own when ETags prove nothing (SSE-KMS).
        self._token = secrets.token_hex(16)
        metadata = dict(cast("Mapping[str, str]", self._object_args.get("Metadata") or {}))
        metadata[UPLOAD_TOKEN_KEY] = self._token
        self._object_args["Metadata"] = metadata
        # Written chunks not yet cut into a part: a list, so cutting copies each byte once.
        self._pending: deque[bytes] = deque()
        self._pending_size = 0
        self._next_number = 1
        self._upload_id: str | None = None
        self._completed: dict[int, CompletedPartTypeDef] = {}
        self._send: MemoryObjectSendStream[_Part]
        self._receive: MemoryObjectReceiveStream[_Part]
        self._send, self._receive = anyio.create_memory_object_stream[_Part](queue_depth)
        self._workers_left = concurrency
        self._workers_done = anyio.Event()
        self._state = "open"
        # One per worker, never the task group's own scope: cancelling that would also
        # cancel the task that called abort() while it unwinds, losing its error.
        self._worker_scopes: list[anyio.CancelScope] = []
        #: Compressed bytes accepted by :meth:`write` so far.
        self.bytes_written = 0

    @property
    def upload_id(self) -> str | None:
        """The multipart upload's id, once the first full part has been cut."""
        return self._upload_id

    @property
    def url(self) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{self.key}"

    def _start(self, tg: TaskGroup) -> None:
        for _ in range(self._concurrency):
            tg.start_soon(self._worker, self._receive.clone())
        self._receive.close()

    async def _worker(self, parts: MemoryObjectReceiveStream[_Part]) -> None:
        scope = anyio.CancelScope()
        self._worker_scopes.append(scope)
        if self._state == "aborted":
            scope.cancel()  # aborted before this worker first ran: upload nothing
        try:
            with scope:
                async with parts:
                    async for part in parts:
                        await self._upload_part(part)
        finally:
            self._workers_left -= 1
            if self._workers_left == 0:
                self._workers_done.set()

    async def _upload_part(self, part: _Part) -> None:
        assert self._upload_id is not None
        with part.data.getbuffer() as view:
            checksum = await _checksum(self._checksum, view)
        try:
            response = await self._client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=part.number,
                Body=part.data,
                **checksum,  # type: ignore[arg-type]
            )
        except S3_ERRORS as exc:
            raise ArchiveWriteError(
                f"uploading part {part.number} of {self.url} failed: {describe_error(exc)}"
            ) from exc
        _confirm(checksum, response, f"uploading part {part.number} of {self.url}")
        # CompleteMultipartUpload must repeat each part's checksum.
        completed: CompletedPartTypeDef = {"PartNumber": part.number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in checksum:
            completed["ChecksumCRC32"] = checksum["ChecksumCRC32"]
        self._completed[part.number] = completed
        if self._on_stored is not None:
            self._on_stored(part.size)

    async def _check_target(self) -> None:
        if self._overwrite:
            return
        try:
            await self._client.head_object(Bucket=self.bucket, Key=self.key)
        except S3_ERRORS as exc:
            if is_not_found(exc):
                return
            raise ArchiveWriteError(f"cannot check {self.url}: {describe_error(exc)}") from exc
        raise ArchiveWriteError(
            f"{self.url} already exists (BackupOptions.replace_archive replaces it)"
        )

    async def _create(self) -> None:
        """CreateMultipartUpload, leaving no upload behind that this call made.

        Shielded (and bounded): once the request is out the server may create the upload,
        and a cancellation before its answer arrives would leave an upload nobody knows
        of. A retried request (botocore retries when an answer is lost) may have created
        more than one; :meth:`_abort_strays` finds and aborts the others.
        """
        algorithm = {"ChecksumAlgorithm": "CRC32"} if self._checksum is UploadChecksum.CRC32 else {}
        started = time.monotonic()
        failure: BaseException | None = None
        upload_id: str | None = None
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(CREATE_TIMEOUT):
                try:
                    created = await self._client.create_multipart_upload(
                        Bucket=self.bucket,
                        Key=self.key,
                        ContentType="application/octet-stream",
                        **algorithm,  # type: ignore[arg-type]
                        **self._object_args,  # type: ignore[arg-type]
                    )
                    upload_id = created["UploadId"]
                except S3_ERRORS as exc:
                    failure = exc
            await self._abort_strays(time.monotonic() - started, keep=upload_id)
        if upload_id is None:
            reason = describe_error(failure) if failure is not None else "timed out"
            raise ArchiveWriteError(
                f"starting the upload to {self.url} failed: {reason}"
            ) from failure
        self._upload_id = upload_id

    async def _abort_strays(self, elapsed: float, *, keep: str | None) -> None:
        """Abort uploads at this key that the create request just made, except ``keep``.

        "Just made" is judged on the server's clock alone (the listing's Date header, and
        the uploads' Initiated times), as within the ``elapsed`` seconds the request took,
        so the client's clock, which may be minutes off, does not matter. Writing one key
        from two backups at once is refused anyway (If-None-Match): an upload at this key
        that new is ours.
        """
        with anyio.move_on_after(ABORT_TIMEOUT):
            try:
                listing = await self._client.list_multipart_uploads(
                    Bucket=self.bucket, Prefix=self.key
                )
                now = email.utils.parsedate_to_datetime(
                    listing["ResponseMetadata"]["HTTPHeaders"]["date"]
                )
                since = now - timedelta(seconds=elapsed + STRAY_MARGIN)
                for upload in listing.get("Uploads", []):
                    if (
                        upload.get("Key") == self.key
                        and upload.get("UploadId") != keep
                        and upload.get("Initiated", since) >= since
                    ):
                        await self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=self.key, UploadId=upload["UploadId"]
                        )
            except (*S3_ERRORS, KeyError, ValueError, TypeError):
                # Best effort: a server without ListMultipartUploads, or a listing
                # without a Date, leaves only what a lifecycle rule would clean up.
                return

    async def _enqueue(self, data: io.BytesIO, size: int) -> None:
        number = self._next_number
        if number > self._max_parts:
            raise ArchiveWriteError(
                f"{self.url}: the archive needs more than max_parts={self._max_parts} parts"
            )
        if self._upload_id is None:
            await self._create()
        self._next_number += 1
        await self._send.send(_Part(number, data, size))

    async def write(self, data: bytes) -> None:
        """Buffer ``data``; each time a part is full, queue it (waiting if the queue is full)."""
        if self._state != "open":
            raise ArchiveWriteError(f"{self.url}: write after {self._state}")
        self._pending.append(data)
        self._pending_size += len(data)
        self.bytes_written += len(data)
        while True:
            size = part_size_for(self._next_number, self._part_size, self._max_parts)
            if self._next_number == self._max_parts:
                # The last allowed part takes whatever remains, but no more than a part:
                # beyond that the archive cannot fit, and memory would grow without bound.
                if self._pending_size > size:
                    raise ArchiveWriteError(
                        f"{self.url}: the archive does not fit in max_parts={self._max_parts} "
                        "parts; raise max_parts or part_size"
                    )
                break
            if self._pending_size < size:
                break
            await self._enqueue(*self._take_part(size))

    def _take_part(self, size: int) -> tuple[io.BytesIO, int]:
        """The first ``size`` pending bytes as a part's buffer (copied into it once), and
        how many they are."""
        part = io.BytesIO()
        for piece in self._pieces(size):
            part.write(piece)
        taken = part.tell()
        part.seek(0)
        return part, taken

    def _take(self, size: int) -> bytes:
        """Join the first ``size`` pending bytes (the only part of a small archive)."""
        return b"".join(self._pieces(size))

    def _pieces(self, size: int) -> list[bytes]:
        """The written chunks that make up the first ``size`` pending bytes."""
        pieces: list[bytes] = []
        need = min(size, self._pending_size)
        self._pending_size -= need
        while need:
            chunk = self._pending.popleft()
            if len(chunk) > need:
                self._pending.appendleft(chunk[need:])
                chunk = chunk[:need]
            pieces.append(chunk)
            need -= len(chunk)
        return pieces

    async def commit(self) -> None:
        """Upload what is left and make the object visible at its key.

        If the final request fails but the object at the key is the one it wrote (its
        answer was lost, and the retry failed against it), the commit succeeded.
        """
        if self._state != "open":
            raise ArchiveWriteError(f"{self.url}: commit after {self._state}")
        self._state = "committing"
        # IfNoneMatch makes the final write fail rather than replace an object that
        # appeared at the key while the backup ran.
        condition = {} if self._overwrite else {"IfNoneMatch": "*"}
        try:
            if self._upload_id is None:
                # No part was ever cut: the workers have nothing to do but stop.
                self._send.close()
                data = self._take(self._pending_size)
                checksum = await _checksum(self._checksum, data)
                try:
                    response = await self._client.put_object(
                        Bucket=self.bucket,
                        Key=self.key,
                        Body=data,
                        **checksum,  # type: ignore[arg-type]
                        **condition,  # type: ignore[arg-type]
                        **self._object_args,  # type: ignore[arg-type]
                    )
                except S3_ERRORS:
                    if not await self._landed(hashlib.md5(data).hexdigest(), len(data)):
                        raise
                else:
                    try:
                        _confirm(checksum, response, f"writing {self.url}")
                    except ArchiveWriteError:
                        # Already visible, possibly unchecked: take it back.
                        with anyio.CancelScope(shield=True):
                            await self._client.delete_object(Bucket=self.bucket, Key=self.key)
                        raise
                if self._on_stored is not None:
                    self._on_stored(len(data))
            else:
                if self._pending_size:
                    await self._enqueue(*self._take_part(self._pending_size))
                self._send.close()
                await self._workers_done.wait()
                if len(self._completed) != self._next_number - 1:
                    # A worker that died without its error reaching us (a cancellation a
                    # task group swallowed) must not make a truncated archive visible.
                    raise ArchiveWriteError(
                        f"{self.url}: {self._next_number - 1 - len(self._completed)} part(s) "
                        "were not uploaded; the upload is not completed"
                    )
                parts = [self._completed[number] for number in sorted(self._completed)]
                try:
                    await self._client.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=self.key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": parts},
                        **condition,  # type: ignore[arg-type]
                    )
                except S3_ERRORS:
                    if not await self._landed(_multipart_etag(parts), self.bytes_written):
                        raise
        except S3_ERRORS as exc:
            if is_precondition_failed(exc):
                raise ArchiveWriteError(f"{self.url} appeared while the backup ran") from exc
            raise ArchiveWriteError(
                f"completing the upload to {self.url} failed: {describe_error(exc)}"
            ) from exc
        self._state = "committed"

    async def _landed(self, etag: str | None, size: int) -> bool:
        """Whether the object now at the key is the one this commit wrote.

        The final request can succeed and its answer be lost; botocore's retry then meets
        our own object (412 from If-None-Match, or NoSuchUpload once the upload is
        complete). Raising then would tell the caller "failed" about an archive that is
        visible. The object is ours if its size is ours and it carries this upload's
        token in its metadata (set when it was created; what SSE-KMS needs, whose ETags
        are not MD5s), or, from a server that drops metadata, its ETag is that of our
        bytes (MD5, or for a multipart upload the MD5 of the parts' MD5s).
        """
        with anyio.CancelScope(shield=True), anyio.move_on_after(ABORT_TIMEOUT):
            try:
                head = await self._client.head_object(Bucket=self.bucket, Key=self.key)
            except S3_ERRORS:
                return False
            if head.get("ContentLength") != size:
                return False
            if head.get("Metadata", {}).get(UPLOAD_TOKEN_KEY) == self._token:
                return True
            return etag is not None and head.get("ETag", "").strip('"') == etag
        return False

    async def abort(self) -> None:
        """Give the upload up: nothing will be committed. Idempotent.

        In-flight part uploads are cancelled; AbortMultipartUpload is sent when the
        ``open_s3_upload`` block exits, once no part upload can still be running, so no
        part lands after the abort.
        """
        if self._state in {"committed", "aborted"}:
            return
        self._state = "aborted"
        self._pending.clear()
        self._send.close()
        for scope in self._worker_scopes:
            scope.cancel()

    async def _abort_upload(self) -> None:
        """Send AbortMultipartUpload (shielded, bounded in time) unless committed."""
        if self._state == "committed" or self._upload_id is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(ABORT_TIMEOUT) as scope:
            for _attempt in range(3):
                try:
                    await self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
                    )
                except S3_ERRORS as exc:
                    if is_not_found(exc):
                        return
                    await anyio.sleep(0.5)
                    continue
                return
        reason = "timed out" if scope.cancelled_caught else "kept failing"
        raise ArchiveWriteError(
            f"aborting upload {self._upload_id} to {self.url} {reason}; "
            "remove it with AbortMultipartUpload or a bucket lifecycle rule"
        )


@asynccontextmanager
async def open_s3_upload(
    client: S3Client,
    bucket: str,
    key: str,
    *,
    part_size: int = S3_MIN_PART_SIZE,
    max_parts: int = 10_000,
    concurrency: int = 2,
    queue_depth: int = 1,
    overwrite: bool = False,
    checksum: UploadChecksum = UploadChecksum.CRC32,
    on_stored: Callable[[int], None] | None = None,
    check_first: bool = True,
    object_args: Mapping[str, object] | None = None,
) -> AsyncIterator[S3Upload]:
    """Upload an archive to ``s3://bucket/key``.

    The object appears only if :meth:`S3Upload.commit` is called inside the block;
    leaving the block any other way aborts the upload. ``on_stored`` is told the size of
    every part the server has accepted. Unless ``overwrite`` is set, an existing object
    is an error: checked up front (skip with ``check_first=False`` when the caller just
    did) and again, atomically, by the final conditional write. ``checksum`` picks how
    the server verifies each part (see :class:`~monetr_backup.UploadChecksum`).
    ``object_args`` (see ``object_settings.object_args``) go with the request that
    creates the object: encryption, storage class, tags, user metadata.
    """
    upload = S3Upload(
        client,
        bucket,
        key,
        part_size=part_size,
        max_parts=max_parts,
        concurrency=concurrency,
        queue_depth=queue_depth,
        overwrite=overwrite,
        checksum=checksum,
        on_stored=on_stored,
        object_args=object_args,
    )
    if check_first:
        try:
            await upload._check_target()
        except BaseException:
            # No worker ever started: close the part queue they would have drained.
            upload._send.close()
            upload._receive.close()
            raise
    try:
        # The caller sees a worker's error as itself, not wrapped in an ExceptionGroup.
        with single_errors():
            async with anyio.create_task_group() as tg:
                upload._start(tg)
                try:
                    yield upload
                finally:
                    # Not committed: stop the workers so the task group can end.
                    await upload.abort()
    finally:
        await upload._abort_upload()
