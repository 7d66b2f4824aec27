"""A dump size and an object count -> a monetr-like database and a bucket of objects."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from monetr_backup.testing import PostgresServer, seed_monetr_like

from .settings import MIB

__all__ = ["DUMP_BYTES_PER_ROW", "create_database", "upload_objects"]

#: ``pg_dump -Fc -Z0`` bytes per generated transaction row (measured).
DUMP_BYTES_PER_ROW = 256
BANK_ACCOUNTS = 60
SPENDING = 600

_MERCHANTS = [
    ("Starbucks", "Starbucks"),
    ("Café ☕ Mokka", "Mokka"),
    ("ローソン", "Lawson"),
    ("Ärzte GmbH", "Ärzte GmbH"),
    ("Amazon.com*2K4", "Amazon"),
    ("Netflix.com", "Netflix"),
    ("Shell Oil 5744", "Shell"),
    ("Trader Joe's", "Trader Joe's"),
    ("REWE Markt", "REWE"),
    ("Uber *Trip", "Uber"),
    ("Lyft", "Lyft"),
    ("Whole Foods", "Whole Foods"),
    ("Spotify", "Spotify"),
    ("Apple.com/bill", "Apple"),
    ("Deutsche Bahn", "DB"),
    ("セブンイレブン", "7-Eleven"),
    ("Target", "Target"),
    ("Walmart", "Walmart"),
    ("Costco", "Costco"),
    ("O'Reilly Auto", "O'Reilly"),
    ("Payroll ACME Corp", None),
    ("Zelle to José", None),
    ("Venmo", "Venmo"),
    ("Chipotle", "Chipotle"),
    ("McDonald's", "McDonald's"),
    ("IKEA", "IKEA"),
    ("Lidl", "Lidl"),
    ("Aldi Süd", "Aldi"),
    ("Comcast", "Comcast"),
    ("AT&T", "AT&T"),
    ("Ünïcødé Bäckerei", "Bäckerei"),
    ("ファミリーマート", "FamilyMart"),
    ("Home Depot", "Home Depot"),
    ("CVS Pharmacy", "CVS"),
    ("Walgreens", "Walgreens"),
    ("Delta Air Lines", "Delta"),
    ("Airbnb", "Airbnb"),
    ("Steam Games", "Steam"),
    ("PayPal *Ebay", "eBay"),
    ("Rent - back\\slash\ttab", None),
]


def _sql_literal(value: str | None) -> str:
    if value is None:
        return "NULL"
    return "E'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\t", "\\t") + "'"


_HELPERS_SQL = r"""
SET client_min_messages = warning;
-- ULID-like: 10 hex digits of the millisecond timestamp, 16 base32-ish random characters.
CREATE FUNCTION bench_ulid(ts timestamptz, salt text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT upper(lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 10, '0'))
      || translate(upper(substr(encode(decode(md5(salt), 'hex'), 'base64'), 1, 16)),
                   '+/ILOU', '0123WY') $$;

CREATE TABLE bench_merchants (n int PRIMARY KEY, name text NOT NULL, merchant text);
INSERT INTO bench_merchants VALUES :merchants;

CREATE TABLE bench_bank_accounts AS
SELECT b AS n,
       'bac_' || bench_ulid(timestamptz '2018-06-01' + b * interval '17 minutes', 'bac' || b)
         AS bank_account_id,
       l.account_id, l.link_id
FROM generate_series(1, :n_bank) b
JOIN (SELECT row_number() OVER (ORDER BY link_id) - 1 AS i, link_id, account_id FROM links) l
  ON l.i = b % (SELECT count(*) FROM links);
CREATE UNIQUE INDEX ON bench_bank_accounts (n);
INSERT INTO bank_accounts
SELECT bank_account_id, account_id, link_id,
       (ARRAY['Checking', 'Savings', 'Credit Card', 'Girokonto', '普通預金'])[n % 5 + 1]
         || ' ' || n,
       lpad((n * 7919 % 10000)::text, 4, '0'), CASE WHEN n % 4 = 1 THEN 'EUR' ELSE 'USD' END,
       (random() * 10000000)::bigint, (random() * 10000000)::bigint,
       timestamptz '2024-06-01' + n * interval '3 minutes'
FROM bench_bank_accounts;

CREATE TABLE bench_spending AS
SELECT s AS n,
       'spnd_' || bench_ulid(timestamptz '2018-07-01' + s * interval '7 minutes', 'spnd' || s)
         AS spending_id,
       ba.account_id, ba.bank_account_id
FROM generate_series(1, :n_spending) s
JOIN bench_bank_accounts ba ON ba.n = s % :n_bank + 1;
CREATE UNIQUE INDEX ON bench_spending (n);
INSERT INTO spending
SELECT spending_id, account_id, bank_account_id, NULL, n % 2,
       (ARRAY['Rent', 'Groceries', 'Café ☕', 'Ünïcødé 日本語', 'Netflix', 'Car insurance',
              'Vacation 🏖', 'Kita-Gebühr'])[n % 8 + 1] || ' ' || n,
       CASE WHEN n % 3 = 0 THEN 'Saved for ' || md5(n::text) END,
       (random() * 500000)::bigint, (random() * 250000)::bigint,
       timestamptz '2024-07-01' + n * interval '1 hour'
FROM bench_spending;

-- Load without per-row index and foreign-key work; added back by _FINISH_SQL.
ALTER TABLE transactions
  DROP CONSTRAINT transactions_pkey,
  DROP CONSTRAINT transactions_account_id_fkey,
  DROP CONSTRAINT transactions_bank_account_id_fkey,
  DROP CONSTRAINT transactions_spending_id_fkey;
DROP INDEX ix_transactions_account_date;
"""

_TRANSACTIONS_SQL = r"""
SET client_min_messages = warning;
INSERT INTO transactions
SELECT 'txn_' || bench_ulid(g.d, 'txn' || g.t), ba.account_id, ba.bank_account_id,
       CASE WHEN g.t % 4 = 0 THEN sp.spending_id END,
       CASE WHEN g.t % 7 = 0 THEN (random() * 500000)::bigint
            ELSE -(random() * 25000)::bigint END,
       g.d,
       m.name || CASE WHEN g.t % 3 = 0 THEN ' #' || (g.t % 9973) ELSE '' END,
       upper(m.name) || ' ' || (random() * 99999)::int || ' '
         || (ARRAY['CHICAGO IL', 'BERLIN DE', 'TOKYO JP', 'AUSTIN TX', 'KÖLN DE',
                   'SEATTLE WA'])[g.t % 6 + 1]
         || ' POS ' || substr(md5(g.t::text || 'p'), 1, 12),
       CASE WHEN g.t % 5 <> 0 THEN m.merchant END,
       CASE WHEN g.t % 4 <> 0 THEN string_to_array((ARRAY[
         'Food and Drink|Restaurants', 'Shops|Supermarkets and Groceries', 'Travel|Taxi',
         'Transfer|Payroll', 'Service|Subscription'])[g.t % 5 + 1], '|') END,
       g.t % 97 = 0, g.d + (random() * 86400) * interval '1 second'
FROM (SELECT t, timestamptz '2019-01-01 00:00:00+00' + t * interval '41 seconds' AS d,
             (t * 2654435761) % :n_bank + 1 AS b, (t * 40503) % :n_spending + 1 AS s,
             (t * 97) % :n_merchants + 1 AS mi
      FROM generate_series(:lo::bigint, :hi::bigint) t) g
JOIN bench_bank_accounts ba ON ba.n = g.b
JOIN bench_spending sp ON sp.n = g.s
JOIN bench_merchants m ON m.n = g.mi;
"""

_FINISH_SQL = r"""
SET client_min_messages = warning;
SET maintenance_work_mem = '256MB';
ALTER TABLE transactions ADD CONSTRAINT transactions_pkey PRIMARY KEY (transaction_id);
CREATE INDEX ix_transactions_account_date
  ON transactions (account_id, bank_account_id, date DESC);
ALTER TABLE transactions
  ADD CONSTRAINT transactions_account_id_fkey FOREIGN KEY (account_id)
    REFERENCES accounts (account_id) ON DELETE CASCADE,
  ADD CONSTRAINT transactions_bank_account_id_fkey FOREIGN KEY (bank_account_id)
    REFERENCES bank_accounts (bank_account_id) ON DELETE CASCADE,
  ADD CONSTRAINT transactions_spending_id_fkey FOREIGN KEY (spending_id)
    REFERENCES spending (spending_id) ON DELETE SET NULL;
DROP TABLE bench_bank_accounts, bench_spending, bench_merchants;
DROP FUNCTION bench_ulid(timestamptz, text);
VACUUM (FREEZE, ANALYZE);
"""


def create_database(pg: PostgresServer, name: str, dump_mib: float, *, sessions: int = 2) -> int:
    """Create database ``name`` whose ``pg_dump -Fc -Z0`` is about ``dump_mib`` MiB.

    It starts from :func:`monetr_backup.testing.seed_monetr_like` (the schema, enums,
    foreign keys and a few hand-written rows), then grows server-side with
    ``generate_series``: bank accounts, spending and, for nearly all of the bytes,
    transactions with ULID-like ids (a time prefix and a random tail), timestamps,
    amounts, unicode merchant names, card-terminal strings and categories. The dump
    compresses about like real data, at any size (measured: gzip -6 ~4.0x, ISA-L level 1
    ~3.3x and level 2 ~3.5x, zlib level 1 ~3.2x), not 100x.

    The transactions table is loaded without its indexes and foreign keys, by
    ``sessions`` psql sessions in parallel, and they are added back afterwards (one index
    build and one validation query each, instead of per-row work), then
    ``VACUUM (FREEZE, ANALYZE)`` sets hint bits so that the first ``pg_dump`` does not
    write to the heap. Returns the number of generated transaction rows.
    """
    rows = max(1000, int(dump_mib * MIB / DUMP_BYTES_PER_ROW))
    # A self-hosted instance: a few households' bank accounts and budgets, however many
    # years of transactions. Fixed counts keep the compression ratio independent of the
    # size (gzip -6 ~4x, ISA-L level 2 ~3.5x, like the measurements).
    n_bank = BANK_ACCOUNTS
    n_spending = SPENDING
    pg.create_database(name)
    seed_monetr_like(pg, name)
    merchants = ", ".join(
        f"({i}, {_sql_literal(shown)}, {_sql_literal(merchant)})"
        for i, (shown, merchant) in enumerate(_MERCHANTS, start=1)
    )
    pg.psql(
        _HELPERS_SQL.replace(":merchants", merchants)
        .replace(":n_bank", str(n_bank))
        .replace(":n_spending", str(n_spending)),
        name,
    )
    # The seed already has transactions 1..1000 under other ids; start after them.
    first, last = 1001, 1000 + rows
    step = -(-rows // sessions)
    errors: list[BaseException] = []

    def load(lo: int, hi: int) -> None:
        try:
            pg.psql(
                _TRANSACTIONS_SQL.replace(":n_bank", str(n_bank))
                .replace(":n_spending", str(n_spending))
                .replace(":n_merchants", str(len(_MERCHANTS)))
                .replace(":lo", str(lo))
                .replace(":hi", str(hi)),
                name,
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=load, args=(lo, min(lo + step - 1, last)))
        for lo in range(first, last + 1, step)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    pg.psql(_FINISH_SQL, name)
    return rows


def _object_key(i: int) -> str:
    # monetr's storage layout: data/<kind>/<account id>/<file id>, ids without prefix.
    account = f"01H{(i % 37):023X}"
    file_id = f"01J{hashlib.md5(str(i).encode()).hexdigest()[:9].upper()}{i:014X}"
    kind = "transactions/uploads" if i % 3 else "transactions/imports"
    return f"data/{kind}/{account}/{file_id}"


def _csv_object(rng: random.Random, size: int) -> bytes:
    lines = ["Date,Description,Amount,Balance,Reference"]
    total = len(lines[0]) + 2
    names = [shown for shown, _ in _MERCHANTS]
    while total < size:
        line = (
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},"
            f'"{rng.choice(names)}",{rng.randint(-99999, 99999) / 100:.2f},'
            f"{rng.randint(0, 9999999) / 100:.2f},{rng.getrandbits(64):016x}"
        )
        lines.append(line)
        total += len(line.encode()) + 2
    data = ("\r\n".join(lines) + "\r\n").encode()
    return data[:size]


def upload_objects(
    client: Any,
    bucket: str,
    *,
    count: int,
    size: int,
    large: list[int],
    threads: int = 16,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Put ``count`` text objects of ``size`` bytes and one object per ``large`` size.

    Keys follow monetr's layout; the large objects (random bytes, like scanned PDFs)
    land among the small ones in the listing. Returns (objects, bytes).
    """
    rng = random.Random(20261126)
    jobs: list[tuple[str, bytes]] = []
    large_at = {(k + 1) * count // (len(large) + 1): s for k, s in enumerate(large)}
    for i in range(count):
        jobs.append((_object_key(i), _csv_object(rng, size)))
        if i in large_at:
            jobs.append((_object_key(i) + "-scan.pdf", rng.randbytes(large_at[i])))
    done = 0
    lock = threading.Lock()

    def put(job: tuple[str, bytes]) -> None:
        nonlocal done
        client.put_object(Bucket=bucket, Key=job[0], Body=job[1])
        with lock:
            done += 1
            if progress is not None and done % 1000 == 0:
                progress(done)

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(put, jobs):
            pass
    return len(jobs), sum(len(body) for _, body in jobs)
