"""Deterministic monetr-like sample data: a seeded database and a storage folder."""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

from ._postgres import PostgresServer


def _ulid_like(prefix: str, n: int) -> str:
    """Python twin of the SQL ``seed_id`` function in ``monetr_like.sql``."""
    return f"{prefix}_01{n:024X}"


def seed_monetr_like(server: PostgresServer, database: str, *, scale: int = 1) -> None:
    """Fill the empty ``database`` with a small monetr-like schema and data.

    Creates the pgcrypto extension (where the server has it), a ``generate_ulid()``
    function, the enum ``user_role`` and the tables logins, accounts, users, secrets, links,
    bank_accounts, funding_schedules, spending, files and transactions with foreign
    keys and prefixed ids (``acct_01…``). Values include unicode, NULLs, tabs,
    newlines and backslashes, bytea (``files.sha256``, ``logins.totp_recovery``) and
    ``secrets.secret`` text. ``scale`` multiplies the 1,000 transactions; the other
    tables stay small. The content is deterministic: two seeded databases give
    identical ``pg_dump`` output. Files rows 1-20 match :func:`seed_storage_dir`.
    The script is ``monetr_like.sql``, shipped in this package.

    monetr itself needs pgcrypto (its ``generate_ulid()`` calls ``gen_random_bytes()``),
    but servers built without it (the PostgreSQL 16 and 18 wheels,
    :meth:`TemporaryPostgres.from_wheel`) must be seedable too: nothing else in the
    script uses the extension (``generate_ulid()`` draws on ``gen_random_uuid()``, the
    digests are the built-in ``sha256()``/``sha512()``/``md5()``), so the rows are the same
    on every server and only the extension itself is missing from the dump where the
    server lacks it.
    """
    if scale < 1:
        raise ValueError("scale must be at least 1")
    sql = resources.files("monetr_backup.testing").joinpath("monetr_like.sql")
    script = sql.read_text("utf-8").replace(":n_transactions", str(1000 * scale))
    server.psql(script, database)


def seed_storage_dir(path: str | Path, *, count: int = 20) -> dict[str, bytes]:
    """Write ``count`` monetr-style storage files under ``path``; return key → content.

    Keys look like ``data/transactions/uploads/61/<account>/66/<file>`` (ids without
    prefix, same scheme as :func:`seed_monetr_like`); directories get mode 0700 and
    files 0600, as monetr creates them. The set includes an empty file, text with
    unicode and binary files up to 192 KiB; the content is deterministic.
    """
    root = Path(path)
    if not root.exists():
        root.mkdir(parents=True, mode=0o700)
    result: dict[str, bytes] = {}
    for i in range(1, count + 1):
        kind = "transactions/imports" if i % 2 == 0 else "transactions/uploads"
        account = _ulid_like("acct", (i - 1) % 3 + 1).removeprefix("acct_")
        file_id = _ulid_like("file", i).removeprefix("file_")
        key = f"data/{kind}/61/{account}/66/{file_id}"
        if i == 1:
            content = b""
        elif i % 5 == 0:
            size = 64 * 1024 * (i % 3 + 1)
            blocks = (hashlib.sha256(f"{i}:{n}".encode()).digest() for n in range(size // 32))
            content = b"".join(blocks)
        else:
            lines = ["Date,Description,Amount"]
            lines += [
                f"2024-03-{d:02d},Café ☕ Ünïcødé 日本語 #{d},-{d * i}.{i:02d}"
                for d in range(1, 29)
            ]
            content = ("\r\n".join(lines) + "\r\n").encode("utf-8") * i
        target = root / key
        _make_private_dirs(root, target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(content)
        result[key] = content
    return result


def _make_private_dirs(root: Path, directory: Path) -> None:
    missing: list[Path] = []
    current = directory
    while current != root and not current.exists():
        missing.append(current)
        current = current.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
        # mkdir's mode is filtered by the umask; monetr's 0700 is exact.
        d.chmod(0o700)
