"""monetr's ``files`` rows in the dump's snapshot -> the storage keys to take, and their account.

The dump is one snapshot; storage is read afterwards, and monetr keeps changing it
meanwhile (an upload's object is deleted about an hour after processing, its row kept).
Reading the rows in the dump's own snapshot (see ``_postgres/snapshot.py``) fixes which
objects belong with the dump. In mode ``referenced`` exactly those are backed up; in
mode ``all`` the whole storage is, and what no row references is counted. Either way the
manifest says, per kind, what is missing or differs: nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from ._config import StorageMode
from ._format.documents import FileSet, FileSetKind, SizeDiffers
from ._postgres.snapshot import FileRow
from ._protocols import Member

__all__ = ["FileSetAccount", "object_key"]

#: How many keys each list of the account names; the counts cover the rest.
LIST_LIMIT = 1000


def _segment(prefixed_id: str) -> str:
    # monetr spreads objects over folders named by the id's first byte, in hex.
    return f"{prefixed_id.encode()[0]:02x}"


def _bare(prefixed_id: str) -> str:
    return prefixed_id.split("_", 1)[-1]


def object_key(row: FileRow) -> str:
    """The storage key monetr gives the object of ``row``.

    ``data/<kind>/<hex>/<account id>/<hex>/<file id>``, ids without their prefix, each
    hex the first byte of the prefixed id (``61`` for ``acct_...``, ``66`` for ``file_...``).
    """
    account, file = row.account_id, row.file_id
    return f"data/{row.kind}/{_segment(account)}/{_bare(account)}/{_segment(file)}/{_bare(file)}"


def _kind_of(key: str) -> str:
    """The kind an unreferenced key's path names (``data/<kind>/<hex>/...``), if any."""
    parts = key.split("/")
    return "/".join(parts[1:-4]) if len(parts) > 5 and parts[0] == "data" else "(other)"


class FileSetAccount:
    """Which objects the rows expect, which the archive got, and the manifest's summary."""

    def __init__(self, mode: StorageMode, rows: list[FileRow], prefix: str = "") -> None:
        self.mode = mode
        # A source's prefix filters keys (monetr's own keys sit at the bucket's root): a
        # row whose key is outside it is expected all the same, and counted as missing.
        self._prefix = prefix
        self._expected = {object_key(row): row for row in rows}
        self._seen: dict[str, int] = {}

    def keys(self) -> list[tuple[str, int]]:
        """Mode ``referenced``: every key the live rows reference, with the rows' sizes."""
        return [
            (key, row.size) for key, row in self._expected.items() if key.startswith(self._prefix)
        ]

    async def observe(self, members: AsyncIterable[Member]) -> AsyncIterator[Member]:
        """``members`` unchanged, each key and size noted as it goes into the archive."""
        async for member in members:
            self._seen[member.name] = member.size
            yield member

    def summary(self) -> FileSet:
        """The manifest's account of the objects against the rows, per kind."""
        counts: dict[str, dict[str, int]] = {}
        lists: dict[str, dict[str, list[object]]] = {}

        def add(kind: str, field: str, item: object | None = None) -> None:
            counts.setdefault(kind, {}).setdefault(field, 0)
            counts[kind][field] += 1
            if item is not None:
                items = lists.setdefault(kind, {}).setdefault(field, [])
                if len(items) < LIST_LIMIT:
                    items.append(item)

        for key, row in self._expected.items():
            add(row.kind, "rows")
            if key not in self._seen:
                add(row.kind, "missing", key)
            elif self._seen[key] != row.size:
                found = SizeDiffers(key=key, row_size=row.size, object_size=self._seen[key])
                add(row.kind, "size_differs", found)
        for key in self._seen:
            referenced = self._expected.get(key)
            kind = referenced.kind if referenced else _kind_of(key)
            add(kind, "objects")
            if referenced is None:
                add(kind, "unreferenced", key)
        kinds = {
            kind: FileSetKind(
                rows=number.get("rows", 0),
                objects=number.get("objects", 0),
                missing=lists.get(kind, {}).get("missing", []),
                missing_count=number.get("missing", 0),
                size_differs=lists.get(kind, {}).get("size_differs", []),
                size_differs_count=number.get("size_differs", 0),
                unreferenced=lists.get(kind, {}).get("unreferenced", []),
                unreferenced_count=number.get("unreferenced", 0),
            )
            for kind, number in sorted(counts.items())
        }
        return FileSet(mode=self.mode, kinds=kinds)
