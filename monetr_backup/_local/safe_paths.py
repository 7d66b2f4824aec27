"""Object keys -> paths under a root that no symlink or ``..`` can lead out of.

Every step opens the next folder relative to the previous one's descriptor with
``O_NOFOLLOW``, so a symlink planted anywhere on the way is refused rather than followed.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import aiofiles
import anyio

from .._errors import UnsafeMemberError
from .._format.layout import unsafe_path_reason

__all__ = ["Owner", "dir_fd", "exists", "fsync_folder", "key_parts", "open_shielded", "owner_of"]


def key_parts(key: str) -> list[str]:
    """Split an object key into path components, refusing any that could escape."""
    reason = unsafe_path_reason(key)
    if reason is not None:
        raise UnsafeMemberError(f"unsafe storage key: {reason}", member=key)
    return key.split("/")


#: A uid and gid for what a restore creates.
Owner = tuple[int, int]


def _open_dir(parent_fd: int, name: str, create: bool, owner: Owner | None) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(name, flags, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    except FileExistsError:
        pass
    else:
        # mkdir's mode is filtered by the umask; monetr's 0700 is exact.
        os.chmod(name, 0o700, dir_fd=parent_fd, follow_symlinks=False)
        if owner is not None:
            os.chown(name, *owner, dir_fd=parent_fd, follow_symlinks=False)
    return os.open(name, flags, dir_fd=parent_fd)


def dir_fd(root: Path, folders: list[str], create: bool, owner: Owner | None = None) -> int:
    """A descriptor of ``root/folders...``; O_NOFOLLOW at each step refuses symlinks.

    Folders it creates are 0700 and, given ``owner``, owned by it.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in folders:
            child = _open_dir(fd, name, create, owner)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def fsync_folder(folder: Path) -> None:
    """Blocking: fsync ``folder``, so a rename or link made in it survives a crash."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def owner_of(path: Path) -> Owner:
    """The uid and gid of ``path``, or of its nearest ancestor that exists."""
    while not path.exists() and path.parent != path:
        path = path.parent
    info = path.stat()
    return info.st_uid, info.st_gid


def exists(root: Path, parts: list[str]) -> bool:
    """Whether a file is at ``root/parts...``; refuses a path the restore could not write.

    A parent that is a file or a symlink, or a folder where the file should be, is an
    :class:`UnsafeMemberError` now, before anything is written, not at commit.
    """
    key = "/".join(parts)
    try:
        fd = dir_fd(root, parts[:-1], create=False)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno in {errno.ENOTDIR, errno.ELOOP}:
            raise UnsafeMemberError("a parent of this key is not a folder", member=key) from exc
        raise
    try:
        info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)
    if stat.S_ISDIR(info.st_mode):
        raise UnsafeMemberError("a folder is where this key's file would go", member=key)
    return True


async def open_shielded(file: str | Path | int, mode: str, **kwargs: Any) -> Any:
    """``aiofiles.open``, shielded from cancellation.

    aiofiles opens in an executor thread that a cancellation does not stop: cancelled
    while it runs, the file would be opened anyway with nobody left to close it (and a
    descriptor, or a temporary file, would leak from a cancelled backup or restore).
    """
    with anyio.CancelScope(shield=True):
        return await aiofiles.open(file, mode, **kwargs)  # type: ignore[call-overload]
