"""monetr's own rules, written out again independently of the library: storage keys, live rows."""

from __future__ import annotations

from monetr_backup.testing import PostgresServer

LIVE_ROWS_SQL = (
    "SELECT file_id || ' ' || account_id || ' ' || kind || ' ' || size FROM files"
    " WHERE reconciled_at IS NULL AND deleted_at IS NULL ORDER BY file_id"
)


def monetr_key(file_id: str, account_id: str, kind: str) -> str:
    """The key monetr stores a file under: ids without prefix, each after its first byte in hex."""

    def hexed(prefixed: str) -> str:
        return prefixed[:1].encode().hex()

    return (
        f"data/{kind}/{hexed(account_id)}/{account_id.split('_', 1)[1]}"
        f"/{hexed(file_id)}/{file_id.split('_', 1)[1]}"
    )


def live_rows(pg: PostgresServer, database: str) -> dict[str, tuple[str, int]]:
    """key -> (kind, size) of the live files rows."""
    rows = {}
    for line in pg.psql(LIVE_ROWS_SQL, database).splitlines():
        file_id, account_id, kind, size = line.split(" ")
        rows[monetr_key(file_id, account_id, kind)] = (kind, int(size))
    return rows
