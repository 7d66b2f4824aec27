"""monetr's settings -> the library's database and storage settings, the KMS and the key path."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .._config import PostgresConfig, S3Config
from .._locations import DirectoryStorage, InstanceFiles, S3Storage
from .config import Settings, read_settings

__all__ = ["DEFAULT_CONFIG_FILES", "MonetrInstance"]

#: Where monetr's documentation puts its config file.
DEFAULT_CONFIG_FILES = (Path("/etc/monetr/config.yaml"),)
#: monetr's defaults where they differ from this library's.
DEFAULT_PRIVATE_KEY = Path("/etc/monetr/ed25519.key")
DEFAULT_STORAGE_PATH = Path("/etc/monetr/storage")
DEFAULT_KMS_PROVIDER = "plaintext"


class MonetrInstance(BaseModel):
    """A monetr deployment, as this library needs it: its database, its file storage, the
    KMS its ``secrets`` rows need and the key that signs its sessions.

    Build one from monetr's own configuration with :meth:`from_config`; pass
    ``database`` and ``storage`` to :func:`~monetr_backup.backup` or
    :func:`~monetr_backup.restore`, and ``kms_provider`` to
    :class:`~monetr_backup.BackupOptions`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    #: monetr's ``postgreSql`` settings, with TLS as monetr uses it.
    database: PostgresConfig
    #: monetr's ``storage``; ``None`` when ``storage.enabled`` is false (monetr keeps no files).
    storage: Annotated[DirectoryStorage | S3Storage, Field(discriminator="kind")] | None = None
    #: ``keyManagement.provider``: the KMS that encrypted the ``secrets`` rows (``plaintext``:
    #: they are stored in clear).
    kms_provider: str = DEFAULT_KMS_PROVIDER
    #: ``security.privateKey``: the ed25519 key that signs session tokens. It is not in the
    #: database: without it every session is invalid after a restore.
    private_key_path: Path = DEFAULT_PRIVATE_KEY
    #: The files read, in the order they were merged.
    config_files: tuple[Path, ...] = ()

    @property
    def instance_files(self) -> InstanceFiles:
        """The private key and config files, as :func:`~monetr_backup.backup` takes them.

        They hold secrets (the key signs every session; a config file may hold the
        database password and S3 keys): an archive with them says so in its manifest's
        ``live_secrets``. Leave out either with ``model_copy``, e.g.
        ``instance.instance_files.model_copy(update={"config_files": ()})``.
        """
        return InstanceFiles(private_key=self.private_key_path, config_files=self.config_files)

    @classmethod
    def from_config(
        cls,
        paths: str | Path | Sequence[str | Path] = DEFAULT_CONFIG_FILES,
        env: Mapping[str, str] | None = None,
    ) -> MonetrInstance:
        """The instance monetr runs with ``-c`` each of ``paths``, in ``env`` (``None``:
        ``os.environ``).

        Read as monetr reads them: the first file, each later one merged over it (a later
        value wins, sections merge), then ``MONETR_PG_ADDRESS``, ``_PORT``, ``_USERNAME``,
        ``_PASSWORD``, ``_DATABASE``, ``_INSECURE_SKIP_VERIFY``, ``_CA_PATH``,
        ``_CERT_PATH``, ``_KEY_PATH``, ``MONETR_STORAGE_ENABLED``, ``_PROVIDER`` and
        ``MONETR_KMS_PROVIDER`` over both. Keys are matched without regard to case at
        every level; keys this library does not need are ignored. An absent, null or
        empty value takes monetr's default; no paths at all means variables and defaults
        only (monetr started without ``-c``).

        - TLS to PostgreSQL only with ``caCertificatePath``: ``sslmode=verify-full`` with
          that CA (the server's name is checked against ``address``), or ``require``
          without any check when ``insecureSkipVerify`` is true (the CA is then not
          passed either: libpq would check the chain, which monetr does not);
          ``certificatePath`` and ``keyPath`` are the client certificate. Without a CA
          path, ``sslmode=disable``, as monetr connects.
        - ``storage.provider`` ``filesystem`` (the default) is a :class:`DirectoryStorage`
          at ``storage.filesystem.basePath`` (default ``/etc/monetr/storage``); ``s3`` an
          :class:`S3Storage` of ``storage.s3.bucket``, path-style only if
          ``forcePathStyle`` is true (monetr's default, not this library's). An endpoint
          without a scheme gets ``https://``, as the AWS SDKs do. monetr has no default
          region: without ``storage.s3.region``, ``AWS_REGION`` or ``AWS_DEFAULT_REGION``
          from ``env``, else this library's ``us-east-1``, which self-hosted stores
          accept and from which botocore follows AWS to the bucket's region.
        - ``accessKey`` and ``secretKey`` are required unless ``useEnvCredentials`` is
          true. Then the pair comes from ``env`` as monetr's AWS SDK reads it
          (``AWS_ACCESS_KEY_ID`` or ``AWS_ACCESS_KEY``, ``AWS_SECRET_ACCESS_KEY`` or
          ``AWS_SECRET_KEY``: botocore knows only the first names); with no pair there,
          or with ``AWS_SESSION_TOKEN``, the keys stay unset and botocore's default chain
          (this process's ``AWS_*`` variables, ``~/.aws``, instance roles) finds them.

        Raises :class:`~monetr_backup.ConfigError` for a missing or unreadable file, YAML
        monetr could not read either, or a value of the wrong type, naming the setting
        (``postgreSql.port``) and the file or variable; a password or secret key is never
        quoted. The result's settings are frozen: change one with ``model_copy``, e.g.
        ``instance.database.model_copy(update={"bin_dir": Path(...)})``.
        """
        if isinstance(paths, str | Path):
            paths = [paths]
        files = tuple(Path(path) for path in paths)
        environ = os.environ if env is None else env
        settings = read_settings(files, environ)
        database = _database(settings)
        storage = _storage(settings, environ)
        return cls(
            database=database,
            storage=storage,
            kms_provider=settings.text("keyManagement.provider") or DEFAULT_KMS_PROVIDER,
            private_key_path=settings.path("security.privateKey") or DEFAULT_PRIVATE_KEY,
            config_files=files,
        )


def _database(settings: Settings) -> PostgresConfig:
    ca = settings.path("postgreSql.caCertificatePath")
    skip_verify = settings.boolean("postgreSql.insecureSkipVerify", False)
    cert = settings.path("postgreSql.certificatePath")
    key = settings.path("postgreSql.keyPath")
    password = settings.text("postgreSql.password")
    tls: dict[str, object] = {"sslmode": "disable"}
    if ca is not None:
        if (cert is None) != (key is None):
            missing = "postgreSql.keyPath" if key is None else "postgreSql.certificatePath"
            raise settings.error(missing, "a client certificate needs both its certificate and key")
        tls = {
            "sslmode": "require" if skip_verify else "verify-full",
            "sslrootcert": None if skip_verify else ca,
            "sslcert": cert,
            "sslkey": key,
        }
    return PostgresConfig.model_validate(
        {
            "host": settings.text("postgreSql.address", "localhost"),
            "port": settings.integer("postgreSql.port", 5432, 1, 65535),
            "user": settings.text("postgreSql.username", "postgres"),
            "password": SecretStr(password) if password is not None else None,
            "database": settings.text("postgreSql.database", "postgres"),
            **tls,
        }
    )


def _storage(settings: Settings, env: Mapping[str, str]) -> DirectoryStorage | S3Storage | None:
    # Every setting is read, used or not, so a wrong value is an error whichever provider.
    enabled = settings.boolean("storage.enabled", False)
    provider = settings.text("storage.provider", "filesystem")
    base_path = settings.path("storage.filesystem.basePath", DEFAULT_STORAGE_PATH)
    use_env = settings.boolean("storage.s3.useEnvCredentials", False)
    force_path_style = settings.boolean("storage.s3.forcePathStyle", False)
    access_key = settings.text("storage.s3.accessKey")
    secret_key = settings.text("storage.s3.secretKey")
    endpoint = settings.text("storage.s3.endpoint")
    region = settings.text("storage.s3.region")
    bucket = settings.text("storage.s3.bucket")
    if not enabled:
        return None
    if provider == "filesystem":
        assert base_path is not None
        return DirectoryStorage(path=base_path)
    if provider != "s3":
        raise settings.error("storage.provider", f"must be filesystem or s3, not {provider!r}")
    if bucket is None:
        raise settings.error("storage.s3.bucket", "monetr's s3 storage needs a bucket")
    s3: dict[str, object] = {"force_path_style": force_path_style}
    if use_env:
        s3 |= _env_credentials(env)
    else:
        for name, value in (("accessKey", access_key), ("secretKey", secret_key)):
            if value is None:
                raise settings.error(
                    f"storage.s3.{name}",
                    "needed unless storage.s3.useEnvCredentials is true",
                )
        s3["access_key"] = access_key
        s3["secret_key"] = SecretStr(secret_key or "")
    if endpoint is not None:
        s3["endpoint_url"] = endpoint if "://" in endpoint else f"https://{endpoint}"
    region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        s3["region"] = region
    return S3Storage(s3=S3Config.model_validate(s3), bucket=bucket)


def _env_credentials(env: Mapping[str, str]) -> dict[str, object]:
    """The key pair monetr's AWS SDK for Go would take from ``env``, if it has one.

    Go's AWS SDKs read ``AWS_ACCESS_KEY_ID`` or ``AWS_ACCESS_KEY``, and
    ``AWS_SECRET_ACCESS_KEY`` or ``AWS_SECRET_KEY`` (the names monetr's documentation
    gives); botocore reads only the first of each. A pair found in ``env`` is passed as
    it is; without one (or with a session token, which ``S3Config`` cannot carry) the
    keys stay unset and botocore's default chain finds them in this process.
    """
    access = env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY")
    secret = env.get("AWS_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_KEY")
    if not access or not secret or env.get("AWS_SESSION_TOKEN"):
        return {}
    return {"access_key": access, "secret_key": SecretStr(secret)}
