"""Folders, buckets and archive destinations -> what they hold, to compare before and after."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from monetr_backup.testing import TemporarySeaweedS3

from .names import unique_name

# --- folders ---------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Everything under ``root``, folders included: path -> (kind, mode, content).

    :func:`tree` sees files only; "as it was" also means no folder appeared or went.
    """
    found: dict[str, tuple[str, int, bytes]] = {}
    if not root.exists():
        return found
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
        content = path.read_bytes() if kind == "file" else b""
        found[path.relative_to(root).as_posix()] = (kind, stat.S_IMODE(info.st_mode), content)
    return found


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (relative POSIX path -> content).

    Anything else but folders (a symlink, a FIFO) fails the test: a restore never makes one.
    """
    files: dict[str, bytes] = {}
    if not root.exists():
        return files
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            continue
        assert stat.S_ISREG(mode), f"unexpected non-regular file {path}"
        files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def modes(root: Path) -> dict[str, int]:
    """Permission bits of every file and folder under ``root`` (relative path -> mode)."""
    return {
        path.relative_to(root).as_posix(): stat.S_IMODE(path.lstat().st_mode)
        for path in sorted(root.rglob("*"))
    }


def partial_files(root: Path) -> list[str]:
    """Temporary ``.partial`` files a restore may have left behind."""
    return [path.as_posix() for path in root.rglob("*.partial")]


def write_files(root: Path, files: dict[str, bytes], mode: int = 0o600) -> None:
    """Write ``files`` (key -> content) under ``root`` (new folders 0700), each with ``mode``."""
    root.mkdir(parents=True, exist_ok=True)
    for key, content in files.items():
        target = root / key
        folder = root
        for part in Path(key).parent.parts:
            folder /= part
            if not folder.exists():
                folder.mkdir(parents=True)
                folder.chmod(0o700)
        target.write_bytes(content)
        target.chmod(mode)


#: A folder mtime no operation sets (2001): while a folder still has it, nothing was
#: created in it or removed from it, not even a temporary file for a moment.
UNTOUCHED_NS = 1_000_000_000 * 10**9


def quiet_folder(path: Path) -> Path:
    """A new empty folder at ``path`` with mtime :data:`UNTOUCHED_NS`."""
    path.mkdir()
    os.utime(path, ns=(UNTOUCHED_NS, UNTOUCHED_NS))
    return path


def names_in(directory: Path) -> list[str]:
    """Sorted names of the entries in ``directory``."""
    return sorted(path.name for path in directory.iterdir())


def read_bytes(path: Path) -> bytes:
    """``path.read_bytes()``, kept out of async test bodies."""
    return path.read_bytes()


def write_bytes(path: Path, data: bytes) -> None:
    """``path.write_bytes(data)``, kept out of async test bodies."""
    path.write_bytes(data)


def file_mode(path: Path) -> int:
    """Permission bits of ``path``."""
    return path.stat().st_mode & 0o777


# --- buckets ---------------------------------------------------------------------------


def new_bucket(s3: TemporarySeaweedS3, prefix: str = "restore") -> str:
    """A new, empty bucket with a name no other test has used."""
    name = unique_name(prefix)
    s3.create_bucket(name)
    return name


def delete_bucket(s3: TemporarySeaweedS3, bucket: str) -> None:
    """Empty ``bucket`` (objects and unfinished uploads) and delete it.

    SeaweedFS gives every bucket volumes of its own and ``weed mini`` has room for
    about 75 of them: a bucket that holds data keeps its volumes until it is deleted.
    """
    client = s3.client()
    for upload in multipart_uploads(client, bucket):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for listed in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=listed["Key"])
    client.delete_bucket(Bucket=bucket)


def bucket_objects(s3: TemporarySeaweedS3, bucket: str) -> dict[str, bytes]:
    """Every object in ``bucket`` (key -> content)."""
    client = s3.client()
    objects: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for listed in page.get("Contents", []):
            key = listed["Key"]
            objects[key] = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return objects


def put_objects(s3: TemporarySeaweedS3, bucket: str, objects: dict[str, bytes]) -> None:
    """Put ``objects`` (key -> content) into ``bucket``."""
    client = s3.client()
    for key, content in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=content)


def object_keys(client: Any, bucket: str) -> list[str]:
    """Keys of the objects in ``bucket`` (first page of the listing)."""
    response = client.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in response.get("Contents", [])]


def multipart_uploads(client: Any, bucket: str) -> list[dict[str, Any]]:
    """The unfinished multipart uploads in ``bucket``."""
    uploads: list[dict[str, Any]] = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return uploads


def empty_bucket(client: Any, bucket: str) -> None:
    """Delete every object in ``bucket`` and abort its unfinished multipart uploads."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for listed in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=listed["Key"])
    for upload in multipart_uploads(client, bucket):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def assert_nothing_at(client: Any, bucket: str, key: str) -> None:
    """No object at ``key`` (nor anywhere in the bucket) and no unfinished upload."""
    assert key not in object_keys(client, bucket)
    assert object_keys(client, bucket) == []
    assert multipart_uploads(client, bucket) == []
