"""Seeds -> the storage objects every storage source holds, and SQL for a rich database."""

from __future__ import annotations

import random

from .sizes import MIB

#: Added to a monetr-seeded database by the ``rich_template`` fixture: bytea (random,
#: empty, NUL, escapes), large unicode text, and ``events``, a table of several MB that
#: spans many 256 KiB dump parts (and keeps pg_dump busy long enough to interrupt it).
RICH_SEED_SQL = r"""
SET client_min_messages = warning;
BEGIN;
CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL);
INSERT INTO blobs SELECT i, gen_random_bytes(1 + i % 1024) FROM generate_series(1, 300) i;
INSERT INTO blobs
  SELECT 0, (SELECT string_agg(gen_random_bytes(1024), ''::bytea) FROM generate_series(1, 512));
INSERT INTO blobs VALUES (-1, '\x00'::bytea), (-2, ''::bytea), (-3, '\x5c0a0d0900ff'::bytea);

CREATE TABLE documents (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL);
INSERT INTO documents
  SELECT i, 'Dokument №' || i || ' — ünïcødé 日本語 🎉',
         repeat(E'Zeile mit Tab\tund Backslash \\ und "Quotes" — 中文 emoji 😀\r\n', 3000 + i)
  FROM generate_series(1, 6) i;

CREATE TABLE unicode_samples (id serial PRIMARY KEY, s text NOT NULL);
INSERT INTO unicode_samples (s) VALUES
  ('Zoë'), ('עברית'), ('العربية'), ('🏳️‍🌈'), (U&'e\0301'), (U&'\+01D518\+01D52B\+01D526'),
  (E'\\N'), ('NULL'), (E'line1\nline2\r\n'), (''), ('\.'), (repeat('ß', 10000));

CREATE TABLE events (
  id bigint PRIMARY KEY,
  account_id text NOT NULL,
  kind text NOT NULL,
  payload jsonb NOT NULL,
  at timestamptz NOT NULL
);
INSERT INTO events
  SELECT i, 'acct_' || (i % 3), (ARRAY['created', 'updated', 'deleted'])[i % 3 + 1],
         jsonb_build_object('n', i, 'md5', md5(i::text), 'note', 'Ünïcødé ☕ ' || i),
         timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second'
  FROM generate_series(1, 60000) i;
COMMIT;
ANALYZE;
"""


#: Keys a bucket may hold that must never become member names: they are skipped, and
#: listed in the manifest. (SeaweedFS itself normalises ``a//b`` and refuses ``.``/``..``,
#: so a "folder marker" is the unsafe key a real bucket can hold here.)
UNSAFE_S3_KEYS = ("data/folder-marker/",)


def make_storage_corpus() -> dict[str, bytes]:
    """Hundreds of small objects, one larger than a multipart part, unicode and >100-byte
    keys, S3-awkward characters, an empty object. Deterministic."""
    rng = random.Random(20240305)
    corpus: dict[str, bytes] = {}
    for i in range(300):
        kind = "imports" if i % 2 else "uploads"
        key = f"data/transactions/{kind}/{i % 7:02d}/file-{i:04d}.{('csv', 'ofx', 'bin')[i % 3]}"
        if i % 3 == 2:
            content = rng.randbytes(rng.randrange(1, 3000))
        else:
            lines = [
                f"2024-03-{d:02d},Café ☕ Ünïcødé 日本語 #{i},-{d * i}.{i % 100:02d}"
                for d in range(1, 29)
            ]
            content = "\r\n".join(lines[: rng.randrange(1, 29)]).encode()
        corpus[key] = content
    corpus["data/empty-file"] = b""
    # Larger than S3's minimum part: its bytes straddle a multipart part boundary.
    corpus["data/large/statement-archive.bin"] = rng.randbytes(6 * MIB + 4321)
    corpus["data/ünïcødé/日本語/明細 März.qfx"] = "明細 ✓\n".encode() * 50
    corpus["data/emoji/📄 receipt ☕.pdf"] = b"%PDF-1.4\n" + rng.randbytes(2000)
    corpus["data/special/space name+plus=eq&amp%25pct~tilde.txt"] = b"special\n"
    corpus["data/special/#hash;semi,comma@at!bang'quote(paren).txt"] = b"more special\n"
    # Keys longer than the 100-byte ustar name field (PAX 'path' records carry them).
    corpus["data/long/" + "k" * 150 + ".bin"] = rng.randbytes(777)
    corpus["data/" + "/".join(f"segment-{j:02d}" for j in range(15)) + "/deep.txt"] = b"deep\n"
    corpus["data/ünïcødé/" + "日本語" * 20 + ".txt"] = "長い名前\n".encode()
    assert sum(len(key.encode()) > 100 for key in corpus) >= 3
    return corpus
