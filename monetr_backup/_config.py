"""Settings: how to reach PostgreSQL and S3, and how a backup or restore behaves.

Where things are (the archive, the storage files) is in ``_locations``.

Every model is frozen and rejects unknown fields, so a typo in an option is an error
rather than a silently ignored setting. Passwords and secret keys are ``SecretStr``:
they print as ``**********`` and reach subprocesses only through the environment.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator

from ._keys import parse_recipient
from ._units import MIB

__all__ = [
    "BackupOptions",
    "Codec",
    "DumpFormat",
    "Overwrite",
    "PostgresConfig",
    "RestoreOptions",
    "S3Config",
    "StorageMode",
    "UploadChecksum",
]


class _Model(BaseModel):
    # hide_input_in_errors: a value that fails validation must not be quoted back in the
    # error's text, where a mistyped password would end up in a log.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


def _text(value: object) -> object:
    # YAML and environment parsers hand a password of digits over as a number; it is
    # still the password, not a type error that would quote it.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


#: A password or secret key: never printed, and numbers are taken as their digits.
Secret = Annotated[SecretStr, BeforeValidator(_text)]


class DumpFormat(StrEnum):
    """Which ``pg_dump`` output format goes into the archive."""

    #: ``pg_dump -Fc -Z0``: restorable with ``pg_restore``; compressed by the archive codec.
    CUSTOM = "custom"
    #: ``pg_dump -Fp``: plain SQL, restorable with ``psql``.
    PLAIN = "plain"


class Codec(StrEnum):
    """How the tar stream is compressed."""

    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"


class StorageMode(StrEnum):
    """Which storage objects a backup of a monetr database takes."""

    #: Exactly the objects the live ``files`` rows of the dump's snapshot reference: the
    #: files that go with the dump, and no leftovers monetr is about to delete.
    REFERENCED = "referenced"
    #: Every object in the bucket or directory; the ones no row references are counted.
    ALL = "all"


class UploadChecksum(StrEnum):
    """How the server checks each uploaded part (and single PutObject) it receives."""

    #: ``x-amz-checksum-crc32`` per part, COMPOSITE on the object: ISA-L computes it at
    #: ~10 GB/s, so it costs nothing next to compression. AWS S3 supports it, and so do
    #: S3-compatible servers with flexible checksums (tested here: SeaweedFS). A server
    #: that does not echo the checksum back fails the upload rather than storing the
    #: bytes unchecked.
    CRC32 = "crc32"
    #: ``Content-MD5`` per part, for servers without flexible checksums; MD5 runs at
    #: ~0.6 GB/s, about 6% of our process's CPU in a backup (benchmarks/cpu_costs.py).
    MD5 = "md5"


class PostgresConfig(_Model):
    """How to reach the monetr database (mirrors monetr's ``postgreSql`` settings)."""

    host: str = "localhost"
    port: int = Field(5432, ge=1, le=65535)
    user: str = "postgres"
    password: Secret | None = None
    database: str = "postgres"
    #: Passed to libpq as PGSSLMODE (``disable``, ``prefer``, ``require``, ``verify-full`` ...).
    sslmode: str | None = None
    #: CA certificate to verify the server with (monetr's ``caCertificatePath``).
    sslrootcert: Path | None = None
    #: Client certificate and key (monetr's ``certificatePath`` and ``keyPath``).
    sslcert: Path | None = None
    sslkey: Path | None = None
    #: Where ``pg_dump``/``pg_restore``/``psql`` live; ``None`` takes the newest version
    #: installed (Debian's ``/usr/lib/postgresql/<v>/bin`` folders and ``PATH``). One older
    #: than the server is refused with ``ClientVersionError``.
    bin_dir: Path | None = None
    connect_timeout: float = Field(10.0, gt=0)

    @classmethod
    def from_dsn(cls, dsn: str, **overrides: object) -> PostgresConfig:
        """Settings from a ``postgresql://user:password@host:port/database?sslmode=...`` URL.

        ``overrides`` set any other field (``bin_dir``, ``connect_timeout``).
        """
        url = urlsplit(dsn)
        if url.scheme not in {"postgres", "postgresql"}:
            raise ValueError("a DSN starts with postgresql:// (the password is not shown)")
        # An unescaped '/', '?' or '#' in the password ends the host part early: the rest
        # of the password would become the port, the database name or the query, and be
        # quoted by every error that names them.
        if "@" in url.path + url.query + url.fragment:
            raise ValueError(
                "a DSN has '@' after its host: percent-encode '/', '?', '#' and '@' in the "
                "user name and password (%2F, %3F, %23, %40), and '@' in the database name "
                "(the DSN is not shown)"
            )
        try:
            port, bad_port = url.port, False
        except ValueError:
            # urllib's message quotes the text, which may be part of the password: raised
            # here, it would also be the new error's context.
            port, bad_port = None, True
        if bad_port:
            raise ValueError("a DSN's port must be a number from 0 to 65535 (the DSN is not shown)")
        query = parse_qs(url.query)
        fields: dict[str, object] = {
            "host": url.hostname or "localhost",
            "port": port or 5432,
            "user": unquote(url.username) if url.username else "postgres",
            "password": SecretStr(unquote(url.password)) if url.password else None,
            "database": unquote(url.path.lstrip("/")) or "postgres",
        }
        for name in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
            if name in query:
                fields[name] = query[name][-1]
        return cls.model_validate({**fields, **overrides})


class S3Config(_Model):
    """An S3-compatible endpoint and credentials (mirrors monetr's ``storage.s3``)."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: Secret | None = None
    #: Path-style addressing (``endpoint/bucket/key``), needed by most self-hosted stores.
    force_path_style: bool = True
    #: Whether request bodies are SHA-256 signed. ``None``: only over plain http, where
    #: the signature is the only tamper check, for a server that compares it with the
    #: body (AWS S3 does; SeaweedFS 4.48 does not); parts and objects are hashed in a
    #: worker thread. Over https, TLS and each part's server-checked CRC32 cover them.
    #: ``False``: never, for a trusted network (e.g. loopback, or a private link you
    #: control): saves one SHA-256 pass over the archive (~0.8 CPU-s per GB of it), but
    #: over plain http anyone on the path can then change the bytes and recompute the
    #: CRC32 undetected. ``True``: sign even over https.
    payload_signing: bool | None = None


class Overwrite(StrEnum):
    """What a restore does when an object's key already exists at the target."""

    #: Report it as a conflict and leave the existing object alone.
    NEVER = "never"
    #: Leave the existing object and move on, without calling it a conflict.
    SKIP = "skip"
    #: Replace it.
    ALWAYS = "always"


class RestoreOptions(_Model):
    """What a restore does and how careful it is."""

    #: Read and check everything, and check the targets, but write nothing.
    dry_run: bool = False
    #: Create the target database if it does not exist (dropped again if the restore fails).
    create_database: bool = False
    #: Replace the target database's objects (``pg_restore --clean --if-exists``) in the
    #: same transaction; without it a target that has tables is refused.
    clean: bool = False
    #: Do not restore object ownership (``pg_restore --no-owner``): for a target whose
    #: roles differ from the source's.
    no_owner: bool = False
    #: Role to restore as (``pg_restore --role`` / ``SET ROLE``).
    role: str | None = None
    #: What happens to a storage object whose key already exists at the target.
    overwrite: Overwrite = Overwrite.NEVER
    #: Replace a file already at a path ``instance_files`` names; otherwise one is an
    #: error, raised before any target is touched.
    replace_instance_files: bool = False
    #: Least seconds between two progress snapshots (phase changes always get one).
    progress_interval: float = Field(0.5, ge=0)
    #: What opens an encrypted archive (docs/keys.md): age secret keys
    #: (``AGE-SECRET-KEY-1...``), the text of identity files, or unencrypted SSH private
    #: keys. Needed only for an encrypted archive; one of them must match its recipients.
    #: Their form is checked when the restore starts, before any target is touched: a
    #: ValueError naming the wrong one by index. Not here, because a pydantic error keeps
    #: the value it refused in ``errors()`` and ``json()``, where a key with a typo in it
    #: would reach a log.
    identities: tuple[Secret, ...] = ()


class BackupOptions(_Model):
    """How the archive is made."""

    dump_format: DumpFormat = DumpFormat.CUSTOM
    #: Each dump part is read whole into memory before it is written: this bounds memory.
    dump_part_size: int = Field(2 * MIB, ge=1)
    codec: Codec = Codec.GZIP
    #: ``None`` picks the codec's default (gzip: 2 with ISA-L; zstd: 3).
    level: int | None = None
    #: Threads compressing at once. gzip: batches deflated independently (each primed
    #: with the 32 KiB before it) and joined into one standard gzip member, as pigz does;
    #: zstd: its own workers, one frame. ``None``: half the cores, at most 4, which is 1
    #: (one stream) on a 2-core machine, where the backup has no idle core to give.
    compress_threads: int | None = Field(None, ge=1, le=64)
    #: monetr's KMS provider (``plaintext``, ``aws``, ``openbao``, ``vault``), recorded in the
    #: manifest so whoever restores knows which key service the secrets table needs.
    kms_provider: str | None = None
    #: Read sizes from the database first so progress can show a total.
    estimate_size: bool = True
    #: ``None``: ``referenced`` for a monetr database (it has the ``files`` table), else
    #: ``all``. ``referenced`` needs a monetr database and a bucket or directory source.
    storage_mode: StorageMode | None = None
    #: Replace an existing archive at the location; otherwise one is an error (checked
    #: before the backup starts and again, atomically, when it is committed).
    replace_archive: bool = False
    #: Least seconds between two progress snapshots (phase changes always get one).
    progress_interval: float = Field(0.5, ge=0)
    #: Encrypt the archive to these age recipients (docs/keys.md): ``age1...`` public keys
    #: or SSH public keys (``ssh-ed25519 ...``, ``ssh-rsa ...``). The compressed stream is
    #: encrypted (age v1), header and manifest included; any one recipient's identity
    #: opens it. Empty: not encrypted.
    recipients: tuple[str, ...] = ()

    @field_validator("recipients")
    @classmethod
    def _check_recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, text in enumerate(value):
            try:
                parse_recipient(text)
            except ValueError as exc:
                raise ValueError(f"recipients[{index}]: {exc}") from None
        return tuple(text.strip() for text in value)
