"""An S3Archive's object settings -> the checks S3 would make, and the arguments of a put.

Server-side encryption, storage class, tags and user metadata are set when the object is
created (CreateMultipartUpload, or PutObject for a small archive); :func:`put_args` is
the one place that spells them as S3 request arguments, for the archive and for anything
written beside it (its catalog entry).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from .._locations import S3Archive

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_TAGS",
    "UPLOAD_TOKEN_KEY",
    "ServerSideEncryption",
    "StorageClass",
    "check_metadata",
    "check_tags",
    "object_args",
    "put_args",
]

#: SSE-S3 (keys managed by S3) or SSE-KMS (a KMS key: ``sse_kms_key_id``, else the
#: bucket's default one).
ServerSideEncryption = Literal["AES256", "aws:kms"]
#: S3's storage classes. An archive in GLACIER or DEEP_ARCHIVE must be restored (S3's
#: RestoreObject) before ``restore()`` or ``verify()`` can read it.
StorageClass = Literal[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
]

#: S3's limits on object tags.
MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
#: Letters, digits and spaces in any script, and ``+ - = . _ : / @`` (S3's tag alphabet).
_TAG_TEXT = re.compile(r"[\w\s+\-=.:/@]*")
#: User metadata: keys and values together, as UTF-8 (here ASCII) bytes.
MAX_METADATA_BYTES = 2048
#: Set by every archive upload to a random token of its own, so that a commit whose answer
#: was lost can recognise its object (see ``S3Upload._landed``): its room is reserved.
UPLOAD_TOKEN_KEY = "monetr-backup-upload"
UPLOAD_TOKEN_BYTES = len(UPLOAD_TOKEN_KEY) + 32
#: An HTTP header name's characters (the key goes out as ``x-amz-meta-<key>``).
_METADATA_KEY = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
#: Printable ASCII: header values outside it are mangled or refused on the way.
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")


def check_tags(tags: Mapping[str, str]) -> Mapping[str, str]:
    """Refuse tags S3 would refuse (at the upload's start, after the backup began)."""
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags per object, not {len(tags)}")
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_TAG_KEY:
            raise ValueError(f"a tag key has 1 to {MAX_TAG_KEY} characters, not {len(key)}")
        if len(value) > MAX_TAG_VALUE:
            raise ValueError(f"tag {key!r}: a value has at most {MAX_TAG_VALUE} characters")
        if key.lower().startswith("aws:"):
            raise ValueError(f"tag {key!r}: the aws: prefix is reserved for AWS")
        for text in (key, value):
            if not _TAG_TEXT.fullmatch(text):
                raise ValueError(
                    f"tag {key!r}: only letters, digits, spaces and + - = . _ : / @ are allowed"
                )
    return tags


def check_metadata(metadata: Mapping[str, str]) -> Mapping[str, str]:
    """Refuse user metadata S3 would refuse, or that HTTP headers would mangle."""
    seen: set[str] = set()
    for key, value in metadata.items():
        if not _METADATA_KEY.fullmatch(key):
            raise ValueError(
                f"metadata key {key!r}: ASCII letters, digits and -_.!#$%&'*+^`|~ only"
            )
        if key.lower() in seen:
            # S3 lower-cases metadata keys: two that differ in case would be one.
            raise ValueError(f"metadata key {key!r} is given twice (keys ignore case)")
        seen.add(key.lower())
        if key.lower() == UPLOAD_TOKEN_KEY:
            raise ValueError(f"metadata key {key!r} is the library's own (the upload's token)")
        if not _METADATA_VALUE.fullmatch(value):
            raise ValueError(f"metadata {key!r}: the value must be printable ASCII")
    size = sum(len(key) + len(value) for key, value in metadata.items())
    if size > MAX_METADATA_BYTES - UPLOAD_TOKEN_BYTES:
        raise ValueError(
            f"metadata is {size} bytes; S3 allows {MAX_METADATA_BYTES}, of which "
            f"{UPLOAD_TOKEN_BYTES} are the upload token's"
        )
    return metadata


def object_args(
    *,
    server_side_encryption: ServerSideEncryption | None = None,
    sse_kms_key_id: str | None = None,
    storage_class: StorageClass | None = None,
    tags: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """The keyword arguments of PutObject / CreateMultipartUpload for these settings."""
    args: dict[str, object] = {}
    if server_side_encryption is not None:
        args["ServerSideEncryption"] = server_side_encryption
    if sse_kms_key_id is not None:
        args["SSEKMSKeyId"] = sse_kms_key_id
    if storage_class is not None:
        args["StorageClass"] = storage_class
    if tags:
        # A query string: spaces as %20 (quote_plus's "+" is a literal plus to S3).
        args["Tagging"] = urlencode(dict(tags), quote_via=quote, safe="")
    if metadata:
        args["Metadata"] = dict(metadata)
    return args


def put_args(archive: S3Archive) -> dict[str, object]:
    """The extra arguments of every put of ``archive``'s object settings (the archive,
    and whatever is written beside it with the same settings)."""
    return object_args(
        server_side_encryption=archive.server_side_encryption,
        sse_kms_key_id=archive.sse_kms_key_id,
        storage_class=archive.storage_class,
        tags=archive.tags,
        metadata=archive.metadata,
    )
