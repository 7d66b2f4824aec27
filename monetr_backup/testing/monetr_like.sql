-- The schema and rows of seed_monetr_like(), which fills in the transaction count.
SET client_min_messages = warning;
BEGIN;
-- monetr's schema needs pgcrypto; servers built without it (the PostgreSQL wheels the
-- tests use for 16 and 18) get the rest of the schema, which uses only built-ins.
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pgcrypto') THEN
    CREATE EXTENSION IF NOT EXISTS pgcrypto;
  END IF;
END
$$;

-- As in monetr: random ULIDs for new rows. Seeded rows use seed_id() instead so that
-- two seeded databases dump identically. monetr's takes its 16 random bytes from
-- pgcrypto's gen_random_bytes(); a v4 UUID's (built in since PostgreSQL 13) serve here.
CREATE FUNCTION generate_ulid() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000);
  rnd bytea := uuid_send(gen_random_uuid());
  result text := '';
BEGIN
  FOR i IN 1..10 LOOP
    result := substr(alphabet, (ms % 32)::int + 1, 1) || result;
    ms := ms / 32;
  END LOOP;
  FOR i IN 0..15 LOOP
    result := result || substr(alphabet, get_byte(rnd, i) % 32 + 1, 1);
  END LOOP;
  RETURN result;
END
$$;

CREATE FUNCTION pg_temp.seed_id(prefix text, n bigint) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$ SELECT prefix || '_01' || upper(lpad(to_hex(n), 24, '0')) $$;

CREATE TYPE user_role AS ENUM ('owner', 'member');

CREATE TABLE logins (
  login_id      text PRIMARY KEY DEFAULT 'lgn_' || generate_ulid(),
  email         text NOT NULL UNIQUE,
  first_name    text NOT NULL,
  last_name     text,
  password_hash text,
  totp          text,
  totp_recovery bytea,
  is_enabled    boolean NOT NULL DEFAULT true,
  created_at    timestamptz NOT NULL
);

CREATE TABLE accounts (
  account_id          text PRIMARY KEY DEFAULT 'acct_' || generate_ulid(),
  timezone            text NOT NULL,
  locale              text NOT NULL,
  subscription_status text,
  created_at          timestamptz NOT NULL
);

CREATE TABLE users (
  user_id    text PRIMARY KEY DEFAULT 'user_' || generate_ulid(),
  login_id   text NOT NULL REFERENCES logins (login_id) ON DELETE CASCADE,
  account_id text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
  role       user_role NOT NULL DEFAULT 'member',
  created_at timestamptz NOT NULL,
  UNIQUE (login_id, account_id)
);

CREATE TABLE secrets (
  secret_id  text PRIMARY KEY DEFAULT 'scrt_' || generate_ulid(),
  account_id text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
  kind       text NOT NULL CHECK (kind IN ('plaid', 'lunchflow')),
  key_id     text,
  version    text,
  secret     text NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

CREATE TABLE links (
  link_id          text PRIMARY KEY DEFAULT 'link_' || generate_ulid(),
  account_id       text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
  link_type        smallint NOT NULL,
  secret_id        text REFERENCES secrets (secret_id) ON DELETE SET NULL,
  institution_name text,
  description      text,
  created_by       text NOT NULL REFERENCES users (user_id),
  created_at       timestamptz NOT NULL
);

CREATE TABLE bank_accounts (
  bank_account_id   text PRIMARY KEY DEFAULT 'bac_' || generate_ulid(),
  account_id        text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
  link_id           text NOT NULL REFERENCES links (link_id) ON DELETE CASCADE,
  name              text NOT NULL,
  mask              text,
  currency          text NOT NULL DEFAULT 'USD',
  available_balance bigint NOT NULL,
  current_balance   bigint NOT NULL,
  last_updated      timestamptz NOT NULL
);

CREATE TABLE funding_schedules (
  funding_schedule_id text PRIMARY KEY DEFAULT 'fund_' || generate_ulid(),
  account_id          text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
  bank_account_id     text NOT NULL REFERENCES bank_accounts (bank_account_id) ON DELETE CASCADE,
  name                text NOT NULL,
  description         text,
  rule_set            text NOT NULL,
  next_recurrence     timestamptz NOT NULL,
  estimated_deposit   bigint
);

CREATE TABLE spending (
  spending_id         text PRIMARY KEY DEFAULT 'spnd_' || generate_ulid(),
  account_id          text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
  bank_account_id     text NOT NULL REFERENCES bank_accounts (bank_account_id) ON DELETE CASCADE,
  funding_schedule_id text REFERENCES funding_schedules (funding_schedule_id) ON DELETE SET NULL,
  spending_type       smallint NOT NULL,
  name                text NOT NULL,
  description         text,
  target_amount       bigint NOT NULL,
  current_amount      bigint NOT NULL DEFAULT 0,
  next_recurrence     timestamptz
);

CREATE TABLE files (
  file_id       text PRIMARY KEY DEFAULT 'file_' || generate_ulid(),
  account_id    text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
  name          text NOT NULL,
  content_type  text NOT NULL,
  kind          text NOT NULL,
  size          bigint NOT NULL,
  sha256        bytea,
  created_by    text REFERENCES users (user_id),
  created_at    timestamptz NOT NULL,
  reconciled_at timestamptz,
  deleted_at    timestamptz
);

CREATE TABLE transactions (
  transaction_id  text PRIMARY KEY DEFAULT 'txn_' || generate_ulid(),
  account_id      text NOT NULL REFERENCES accounts (account_id) ON DELETE CASCADE,
  bank_account_id text NOT NULL REFERENCES bank_accounts (bank_account_id) ON DELETE CASCADE,
  spending_id     text REFERENCES spending (spending_id) ON DELETE SET NULL,
  amount          bigint NOT NULL,
  date            timestamptz NOT NULL,
  name            text NOT NULL,
  original_name   text NOT NULL,
  merchant_name   text,
  categories      text[],
  is_pending      boolean NOT NULL DEFAULT false,
  created_at      timestamptz NOT NULL
);
CREATE INDEX ix_transactions_account_date ON transactions (account_id, bank_account_id, date DESC);

INSERT INTO accounts
SELECT pg_temp.seed_id('acct', a), (ARRAY['America/Chicago', 'Europe/Berlin', 'Asia/Tokyo'])[a],
       (ARRAY['en_US', 'de_DE', 'ja_JP'])[a], CASE WHEN a = 1 THEN 'active' END,
       timestamptz '2024-01-01 00:00:00+00' + a * interval '1 day'
FROM generate_series(1, 3) a;

INSERT INTO logins
SELECT pg_temp.seed_id('lgn', l), format('user%s@example.com', l),
       (ARRAY['Zoë', 'José', '太郎', 'Ann'])[l], CASE WHEN l <> 4 THEN 'O''Brien-Łukasz' END,
       '$2a$10$' || encode(sha256(convert_to('pw' || l, 'UTF8')), 'hex'),
       CASE WHEN l = 1 THEN 'JBSWY3DPEHPK3PXP' END,
       -- pgcrypto's digest('recovery', 'sha1'), spelled out: there is no built-in SHA-1.
       CASE WHEN l = 1 THEN '\x8b60e9d739b5a5bfd87cbfe67501ab4fa6e4150400ff0a5c'::bytea END,
       l <> 4, timestamptz '2024-01-01 00:00:00+00' + l * interval '1 hour'
FROM generate_series(1, 4) l;

-- Login 4 is a second member of account 1.
INSERT INTO users
SELECT pg_temp.seed_id('user', u), pg_temp.seed_id('lgn', u),
       pg_temp.seed_id('acct', CASE WHEN u = 4 THEN 1 ELSE u END),
       (CASE WHEN u = 4 THEN 'member' ELSE 'owner' END)::user_role,
       timestamptz '2024-01-01 00:00:00+00' + u * interval '1 hour'
FROM generate_series(1, 4) u;

INSERT INTO secrets
SELECT pg_temp.seed_id('scrt', s), pg_temp.seed_id('acct', s),
       CASE WHEN s = 3 THEN 'lunchflow' ELSE 'plaid' END,
       CASE WHEN s = 2 THEN 'arn:aws:kms:us-east-1:000000000000:key/seed' END,
       CASE WHEN s = 2 THEN '1' END,
       CASE WHEN s = 2 THEN encode(sha512(convert_to('secret' || s, 'UTF8')), 'base64')
            ELSE 'access-sandbox-' || md5('secret' || s) END,
       timestamptz '2024-01-02 00:00:00+00', timestamptz '2024-01-03 00:00:00+00'
FROM generate_series(1, 3) s;

-- Links 1-3 belong to accounts 1-3 (with secrets); link 4 is a manual link of account 1.
INSERT INTO links
SELECT pg_temp.seed_id('link', k), pg_temp.seed_id('acct', CASE WHEN k = 4 THEN 1 ELSE k END),
       CASE WHEN k = 4 THEN 2 ELSE 1 END,
       CASE WHEN k <= 3 THEN pg_temp.seed_id('scrt', k) END,
       (ARRAY['First Bank', 'Sparkasse Köln', 'みずほ銀行', NULL])[k],
       CASE WHEN k = 4 THEN 'Manual - cash ☕' END,
       pg_temp.seed_id('user', k), timestamptz '2024-01-04 00:00:00+00'
FROM generate_series(1, 4) k;

INSERT INTO bank_accounts
SELECT pg_temp.seed_id('bac', b), a.account_id, l.link_id,
       (ARRAY['Checking', 'Savings'])[(b - 1) % 2 + 1] || ' ' || b, lpad((b * 37)::text, 4, '0'),
       CASE WHEN b % 3 = 2 THEN 'EUR' ELSE 'USD' END, b * 100000, b * 100000 + 4321,
       timestamptz '2024-01-05 00:00:00+00'
FROM generate_series(1, 6) b
JOIN links l ON l.link_id = pg_temp.seed_id('link', (b - 1) % 4 + 1)
JOIN accounts a ON a.account_id = l.account_id;

INSERT INTO funding_schedules
SELECT pg_temp.seed_id('fund', f), ba.account_id, ba.bank_account_id,
       (ARRAY['Payday', 'Zahltag', '給料日'])[(f - 1) % 3 + 1], NULL,
       'DTSTART:20240101T000000Z' || chr(10) || 'RRULE:FREQ=MONTHLY;BYMONTHDAY=15,-1',
       timestamptz '2024-02-15 00:00:00+00', CASE WHEN f % 2 = 0 THEN 250000 END
FROM generate_series(1, 6) f
JOIN bank_accounts ba ON ba.bank_account_id = pg_temp.seed_id('bac', f);

INSERT INTO spending
SELECT pg_temp.seed_id('spnd', s), fs.account_id, fs.bank_account_id,
       CASE WHEN s % 5 <> 0 THEN fs.funding_schedule_id END, s % 2,
       (ARRAY['Rent', 'Groceries', 'Café ☕', 'Ünïcødé 日本語', 'Netflix'])[(s - 1) % 5 + 1]
         || ' ' || s,
       CASE WHEN s % 3 = 0 THEN E'multi\nline "quoted" \\ back\tslash' END,
       s * 1500, s * 700, timestamptz '2024-02-01 00:00:00+00' + s * interval '1 day'
FROM generate_series(1, 30) s
JOIN funding_schedules fs ON fs.funding_schedule_id = pg_temp.seed_id('fund', (s - 1) % 6 + 1);

INSERT INTO files
SELECT pg_temp.seed_id('file', f), pg_temp.seed_id('acct', (f - 1) % 3 + 1),
       (ARRAY['export.csv', 'Kontoauszug März.ofx', '明細.qfx', 'statement.xlsx'])[(f - 1) % 4 + 1],
       (ARRAY['text/csv', 'application/x-ofx', 'application/x-qfx', 'application/vnd.'
              || 'openxmlformats-officedocument.spreadsheetml.sheet'])[(f - 1) % 4 + 1],
       CASE WHEN f % 2 = 0 THEN 'transactions/imports' ELSE 'transactions/uploads' END,
       f * 1024, sha256(convert_to('file' || f, 'UTF8')),
       pg_temp.seed_id('user', (f - 1) % 3 + 1),
       timestamptz '2024-03-01 00:00:00+00' + f * interval '1 hour',
       CASE WHEN f % 4 = 0 THEN timestamptz '2024-03-02 00:00:00+00' END,
       CASE WHEN f % 7 = 0 THEN timestamptz '2024-03-03 00:00:00+00' END
FROM generate_series(1, 20) f;

INSERT INTO transactions
SELECT pg_temp.seed_id('txn', t), ba.account_id, ba.bank_account_id,
       CASE WHEN t % 4 = 0 THEN pg_temp.seed_id('spnd', (t / 4 - 1) % 5 * 6 + (t - 1) % 6 + 1) END,
       ((t * 7919) % 200000) - 150000,
       timestamptz '2024-01-01 00:00:00+00' + t * interval '37 minutes',
       (ARRAY['Café ☕', 'Ünïcødé 日本語', 'Grocery Store #' || t, 'O''Reilly Auto',
              E'Tab\there', 'NULL', E'back\\slash', 'Amazon.com*2K4', 'Rent'])[t % 9 + 1],
       'ORIG ' || t || ' ' || md5(t::text),
       CASE WHEN t % 3 <> 0 THEN (ARRAY['Starbucks', 'Ärzte GmbH', 'ローソン'])[t % 3 + 1] END,
       CASE WHEN t % 5 = 0 THEN ARRAY['Food and Drink', 'Coffee'] END,
       t % 50 = 0, timestamptz '2024-01-01 00:00:00+00' + t * interval '37 minutes'
FROM generate_series(1, :n_transactions) t
JOIN bank_accounts ba ON ba.bank_account_id = pg_temp.seed_id('bac', (t - 1) % 6 + 1);

COMMIT;
ANALYZE;
