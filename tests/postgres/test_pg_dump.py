"""pg_dump -> dump parts of exact sizes; its failures as PgDumpError, never with the password."""

from __future__ import annotations

import os
import random
import threading

import pytest

from monetr_backup import DatabaseConnectionError, DumpFormat
from monetr_backup._postgres.pg_dump import BLOCK, read_part
from monetr_backup.stages import open_pg_dump

from support.chunks import pieces
from support.env import Env
from support.processes import pg_dump_children
from support.secrets import WRONG_PASSWORD, full_text
from support.sizes import DUMP_PART_SIZE


@pytest.mark.parametrize("part_size", [1, 1000, BLOCK, 2 * BLOCK + 7])
def test_read_part_cuts_a_pipe_into_exact_parts(part_size: int) -> None:
    """Parts hold exactly ``part_size`` bytes whatever sizes the writer used (the last
    may be short), as blocks of at most BLOCK bytes; then an empty list at EOF."""
    data = random.Random(part_size).randbytes(3 * BLOCK + 12345 if part_size > 1 else 3000)
    read_fd, write_fd = os.pipe()

    def writer() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            for chunk in pieces(data, part_size):
                out.write(chunk)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        parts: list[list[bytes | bytearray]] = []
        while part := read_part(read_fd, part_size):
            parts.append(part)
            if sum(map(len, part)) < part_size:
                break
        assert read_part(read_fd, part_size) == []
    finally:
        thread.join()
        os.close(read_fd)
    sizes = [sum(map(len, part)) for part in parts]
    assert all(size == part_size for size in sizes[:-1])
    assert 0 < sizes[-1] <= part_size
    assert all(0 < len(block) <= BLOCK for part in parts for block in part)
    assert b"".join(b"".join(part) for part in parts) == data


@pytest.mark.anyio
@pytest.mark.usefixtures("password_auth")
async def test_open_pg_dump_bad_password(env: Env, source_db: str) -> None:
    """The pg_dump stage alone checks the server first: wrong credentials are a
    DatabaseConnectionError before pg_dump starts, naming neither password."""
    config = env.pg.config(source_db, password=WRONG_PASSWORD)
    with pytest.raises(DatabaseConnectionError, match="password authentication failed") as info:
        async with open_pg_dump(config, DumpFormat.CUSTOM, part_size=DUMP_PART_SIZE):
            pytest.fail("pg_dump started")
    assert pg_dump_children() == []
    assert WRONG_PASSWORD not in full_text(info.value)
    assert env.pg.password not in full_text(info.value)
