"""S3 settings -> an aiobotocore client set up for throughput (its errors: ``errors.py``)."""

from __future__ import annotations

import email.utils
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiobotocore
import botocore
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.utils import parse_timestamp

from .._config import S3Config
from .._threads import StageThread
from .._version import __version__

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
else:
    S3Client = object

__all__ = ["S3Client", "client_for", "open_s3_client"]

#: Sent with every S3 request.
USER_AGENT = (
    f"monetr-backup/{__version__} aiobotocore/{aiobotocore.__version__} "
    f"botocore/{botocore.__version__}"
)


def _parse_timestamp(value: str) -> datetime:
    """S3's timestamps: ISO 8601 in XML bodies, RFC 1123 in headers; else botocore's way."""
    parsed: datetime | None = None
    if isinstance(value, str):
        try:
            if value.endswith("GMT"):
                parsed = email.utils.parsedate_to_datetime(value)
            elif "T" in value:
                parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
    if parsed is None or parsed.tzinfo is None:
        # Anything else (epoch seconds, no zone) keeps botocore's reading of it.
        return parse_timestamp(value)
    return parsed


@functools.cache
def _session() -> AioSession:
    # A session loads botocore's service models (~0.5-1 s); clients made from one share them.
    session = get_session()
    # botocore parses every timestamp with dateutil (120-170 us a call), ~5% of the CPU
    # of fetching small objects: each GET's Last-Modified, each listed key's
    # LastModified. The stdlib parsers read S3's two formats in 1-9 us.
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=_parse_timestamp
    )
    return session


@asynccontextmanager
async def open_s3_client(config: S3Config) -> AsyncIterator[S3Client]:
    """An S3 client for ``config``, set up for throughput.

    - Request checksums only where the API requires them: uploads carry their own CRC32
      (see the uploader), and botocore's default checksum, computed in Python on the
      event loop for every request, costs 10-20% of PUT throughput.
    - Over TLS, payloads are not SHA-256 signed: TLS and the part's CRC32, which the
      server checks, cover them. botocore would otherwise hash every part on the event
      loop, since it skips that only for checksums it computed itself or Content-MD5.
      Over plain HTTP the payload signature is the only protection against tampering on
      the way, so it stays, and parts and objects are signed in a worker thread
      (``_sign_bodies_in_threads``). ``S3Config.payload_signing`` overrides both.
    - A fixed User-Agent: botocore otherwise rebuilds a metrics User-Agent for every
      request, ~4% of the CPU of fetching small objects.
    """
    aio_config = AioConfig(
        s3={"addressing_style": "path" if config.force_path_style else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=32,
        user_agent=USER_AGENT,
    )
    async with _session().create_client(
        "s3",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        aws_access_key_id=config.access_key,
        aws_secret_access_key=(config.secret_key.get_secret_value() if config.secret_key else None),
        config=aio_config,
    ) as client:
        # Decided from the endpoint the client resolved: without endpoint_url it may come
        # from AWS_ENDPOINT_URL or the config file, and be plain http. The signer reads
        # this client's config for every request.
        sign = config.payload_signing
        if sign is None:
            sign = not client.meta.endpoint_url.lower().startswith("https:")
        settings: Any = client.meta.config  # botocore's Config is untyped
        settings.s3["payload_signing_enabled"] = sign
        if sign and settings.signature_version == "s3v4":
            # One thread signs every body: the signer's reads of them stay in one arena.
            signer = StageThread("monetr-backup-sign")
            try:
                _sign_bodies_in_threads(client, signer)
                yield client
            finally:
                signer.close()
        else:
            yield client


#: Operations whose bodies are archive parts or whole objects, megabytes each.
_LARGE_BODIES = ("UploadPart", "PutObject")
#: Request-context key: the signature version a request is to be signed with in a thread.
_DEFERRED = "monetr_backup.sign_in_thread"


def _sign_bodies_in_threads(client: S3Client, signer: StageThread) -> None:
    """Make ``client`` sign UploadPart and PutObject in ``signer``'s thread.

    botocore's SigV4 signer hashes the whole body (~0.3 CPU-s per GB) inside
    ``add_auth``, which aiobotocore calls on the event loop, and it always replaces an
    ``X-Amz-Content-SHA256`` given to it with its own hash. So these requests are
    handed to aiobotocore as unsigned (``choose-signer``) and signed in ``before-sign``
    by the same signer class, with the same credentials, region and signing name
    aiobotocore would use, only in a thread: the request on the wire is the one
    botocore makes. Any other signature version (a custom ``signature_version``,
    SigV4a, S3 Express's session credentials) is left to aiobotocore as it is.
    """
    # Typed as taking handlers that return None: choose-signer's answer is the return
    # value, and aiobotocore awaits a handler's coroutine.
    events: Any = client.meta.events
    for operation in _LARGE_BODIES:
        # More specific than botocore's own ``choose-signer`` handlers, so asked first.
        events.register(f"choose-signer.s3.{operation}", _defer_signing)
    # After botocore's ``before-sign.s3`` handlers, which may still adjust the request.
    events.register_last("before-sign.s3", functools.partial(_sign_in_thread, signer))


def _defer_signing(
    signing_name: str, signature_version: object, context: dict[str, Any], **_: Any
) -> object:
    """``choose-signer``: take plain SigV4 requests out of aiobotocore's hands."""
    signing = context.get("signing", {})
    if (
        signing_name != "s3"
        or signature_version != "v4"
        or "request_credentials" in signing
        or "identity_cache" in signing
    ):
        return None
    context[_DEFERRED] = "s3v4"
    return botocore.UNSIGNED


async def _sign_in_thread(
    signer: StageThread, request: Any, request_signer: Any, region_name: str | None, **_: Any
) -> None:
    """``before-sign``: sign a request :func:`_defer_signing` took, in a worker thread."""
    version = request.context.pop(_DEFERRED, None)
    if version is None:
        return
    signing = request.context.get("signing", {})
    auth = await request_signer.get_auth_instance(
        signing_name=signing.get("signing_name", "s3"),
        region_name=signing.get("region") or region_name,
        signature_version=version,
    )
    await signer.run(auth.add_auth, request)


@asynccontextmanager
async def client_for(config: S3Config, given: S3Client | None = None) -> AsyncIterator[S3Client]:
    """``given`` if the caller brought a client, else a new one for ``config``."""
    if given is not None:
        yield given
    else:
        async with open_s3_client(config) as client:
            yield client
