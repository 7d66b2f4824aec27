"""The files beside the database: on disk -> archive members; members -> staged -> in place.

A backup reads monetr's private key and config files whole (they are a few kilobytes,
bounded by ``MAX_INSTANCE_FILE_SIZE``) before the archive is opened, so a missing key
fails before anything is written. A restore writes each to a hidden sibling of the path
the caller named (mode 0600, as monetr keeps its key) and renames it into place only at
commit; an abort removes what it staged, and nothing else is ever touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from .._errors import InstanceFileError
from .._format.documents import Header, InstanceFileEntry, InstanceFileKind
from .._format.layout import MAX_INSTANCE_FILE_SIZE, PRIVATE_KEY_NAME, config_file_name
from .._locations import InstanceFiles
from .._protocols import StoredObject
from .safe_paths import Owner, fsync_folder, owner_of

__all__ = ["InstanceFilesTarget", "open_instance_target", "read_instance_files"]

_WHAT = {InstanceFileKind.PRIVATE_KEY: "private key", InstanceFileKind.CONFIG: "config file"}


def _planned(files: InstanceFiles) -> list[tuple[InstanceFileEntry, Path]]:
    """The members ``files`` stands for, in the format's order, with their paths."""
    planned: list[tuple[InstanceFileEntry, Path]] = []
    if files.private_key is not None:
        entry = InstanceFileEntry(
            name=PRIVATE_KEY_NAME, kind=InstanceFileKind.PRIVATE_KEY, source=str(files.private_key)
        )
        planned.append((entry, files.private_key))
    for number, path in enumerate(files.config_files, start=1):
        entry = InstanceFileEntry(
            name=config_file_name(number), kind=InstanceFileKind.CONFIG, source=str(path)
        )
        planned.append((entry, path))
    return planned


def _read(path: Path, what: str) -> bytes:
    # Symlinks are followed: Kubernetes mounts a secret as a link into its data folder.
    try:
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InstanceFileError(f"the {what} {path} is not a regular file", path=path)
            data = file.read(MAX_INSTANCE_FILE_SIZE + 1)
    except OSError as exc:
        raise InstanceFileError(
            f"cannot read the {what} {path}: {exc.strerror or exc}", path=path
        ) from exc
    if len(data) > MAX_INSTANCE_FILE_SIZE:
        raise InstanceFileError(
            f"the {what} {path} is over {MAX_INSTANCE_FILE_SIZE} bytes: not a key or a config file",
            path=path,
        )
    return data


async def read_instance_files(files: InstanceFiles) -> tuple[list[InstanceFileEntry], list[bytes]]:
    """The header entries and the contents of the files ``files`` names, in member order."""
    entries: list[InstanceFileEntry] = []
    contents: list[bytes] = []
    for entry, path in _planned(files):
        contents.append(await anyio.to_thread.run_sync(_read, path, _WHAT[entry.kind]))
        entries.append(entry)
    return entries, contents


@dataclass(slots=True)
class _Staged:
    temporary: Path
    destination: Path


class InstanceFilesTarget:
    """Instance files from an archive -> hidden siblings of their paths -> renamed at commit.

    Follows the commit protocol of the storage targets: ``write`` as members arrive,
    then ``commit`` (every file renamed into place) or ``abort`` (every staged file
    removed; safe to call twice).
    """

    def __init__(self, destinations: dict[str, Path], owner: Owner | None, dry_run: bool) -> None:
        self._destinations = destinations
        self._owner = owner
        self._dry_run = dry_run
        self._staged: list[_Staged] = []
        #: The paths written, once committed.
        self.restored: list[Path] = []

    async def write(self, entry: InstanceFileEntry, item: StoredObject) -> None:
        """Stage ``item`` if the caller named a path for it (otherwise it is only checked)."""
        destination = self._destinations.get(entry.name)
        if destination is None or self._dry_run:
            return
        data = b"".join([chunk async for chunk in item.chunks])
        # Not abandoned on cancellation: the thread finishes, and what it staged is
        # already listed for abort.
        await anyio.to_thread.run_sync(self._stage, destination, data, _WHAT[entry.kind])

    def _stage(self, destination: Path, data: bytes, what: str) -> None:
        temporary = destination.with_name(
            f".{destination.name}.monetr-restore.{secrets.token_hex(4)}"
        )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(temporary, flags, 0o600)
        except OSError as exc:
            raise InstanceFileError(
                f"cannot write the {what} to {destination.parent}: {exc.strerror or exc}",
                path=destination,
            ) from exc
        self._staged.append(_Staged(temporary, destination))
        try:
            # The umask may have taken bits from 0600 but never adds any; set it exactly.
            os.fchmod(fd, 0o600)
            owner = self._owner or _default_owner(destination)
            if owner is not None:
                os.fchown(fd, *owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise InstanceFileError(
                f"cannot write the {what} {destination}: {exc.strerror or exc}", path=destination
            ) from exc
        finally:
            os.close(fd)

    async def commit(self) -> None:
        """Rename every staged file into place."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._commit)

    def _commit(self) -> None:
        while self._staged:
            staged = self._staged[0]
            try:
                os.replace(staged.temporary, staged.destination)
            except OSError as exc:
                error = InstanceFileError(
                    f"cannot move the restored file into place at {staged.destination}: "
                    f"{exc.strerror or exc}",
                    path=staged.destination,
                )
                if self.restored:
                    # Renames cannot be undone: say which files are already in place.
                    error.add_note(
                        "already in place: " + ", ".join(str(path) for path in self.restored)
                    )
                raise error from exc
            del self._staged[0]
            self.restored.append(staged.destination)
            try:
                fsync_folder(staged.destination.parent)
            except OSError as exc:
                raise InstanceFileError(
                    f"{staged.destination} is in place, but its folder could not be synced: "
                    f"{exc.strerror or exc}",
                    path=staged.destination,
                ) from exc

    async def abort(self) -> None:
        """Remove every file staged and not yet renamed."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._abort)

    def _abort(self) -> None:
        for staged in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged.temporary)
        self._staged.clear()


def _default_owner(destination: Path) -> Owner | None:
    # As for a directory restore: run as root, the files get the folder's owner, so the
    # monetr user that owns /etc/monetr can read its key; otherwise they are ours anyway.
    return owner_of(destination.parent) if os.geteuid() == 0 else None


def _destinations(files: InstanceFiles, announced: Sequence[InstanceFileEntry]) -> dict[str, Path]:
    """member name -> path, refusing a path asked for that the archive cannot fill."""
    has_key = any(entry.kind is InstanceFileKind.PRIVATE_KEY for entry in announced)
    configs = [entry for entry in announced if entry.kind is InstanceFileKind.CONFIG]
    if files.private_key is not None and not has_key:
        raise InstanceFileError(
            "the archive holds no private key (it was backed up without the instance's "
            "private key)",
            path=files.private_key,
        )
    if files.config_files and len(files.config_files) != len(configs):
        raise InstanceFileError(
            f"the archive holds {len(configs)} config files, in merge order: name a path "
            f"for each, or none ({len(files.config_files)} given)"
        )
    return {entry.name: path for entry, path in _planned(files)}


def _check_destination(path: Path, replace: bool) -> None:
    try:
        folder = path.parent.stat()
    except OSError as exc:
        raise InstanceFileError(
            f"cannot restore to {path}: its folder {exc.strerror or 'cannot be read'}", path=path
        ) from exc
    if not stat.S_ISDIR(folder.st_mode):
        raise InstanceFileError(
            f"cannot restore to {path}: {path.parent} is not a folder", path=path
        )
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        raise InstanceFileError(f"cannot restore to {path}: a folder is there", path=path)
    if not replace:
        raise InstanceFileError(
            f"{path} exists; restore with replace_instance_files=True to replace it", path=path
        )


async def open_instance_target(
    files: InstanceFiles, header: Header, *, replace: bool, dry_run: bool
) -> InstanceFilesTarget:
    """A target for the archive's instance files at the paths ``files`` names.

    Everything that can be known from the header and the paths is checked now, before
    any other target is touched: a file asked for that the archive lacks, a folder that
    does not exist, a file in the way (unless ``replace``).
    """
    destinations = _destinations(files, header.instance_files)
    for path in destinations.values():
        await anyio.to_thread.run_sync(_check_destination, path, replace)
    return InstanceFilesTarget(destinations, files.owner, dry_run)
