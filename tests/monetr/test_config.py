"""monetr's config files and MONETR_* variables -> MonetrInstance: defaults, overrides, merge,
case, TLS, storage, wrong values (named, never quoting a secret), and real backups from it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

import monetr_backup as mb
from monetr_backup._s3 import client as s3_client_module
from monetr_backup.testing import PostgresServer, TemporarySeaweedS3

from support.env import Sources
from support.samples import Sample
from support.secrets import full_text
from support.targets import names_in

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "monetr"
DOCUMENTED = FIXTURES / "config.yaml"
S3_OVERRIDE = FIXTURES / "s3-override.yaml"

#: What a deployment's config may hold that must never show in an error or a repr.
SECRET = "s3cr3t-Kq7-never-shown"

pytestmark = pytest.mark.anyio


def write(directory: Path, text: str, name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def read(directory: Path, text: str, env: dict[str, str] | None = None) -> mb.MonetrInstance:
    return mb.MonetrInstance.from_config([write(directory, text)], env=env or {})


def secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def config_error(directory: Path, text: str, env: dict[str, str] | None = None) -> mb.ConfigError:
    with pytest.raises(mb.ConfigError) as caught:
        read(directory, text, env)
    return caught.value


# --- sample files and defaults ---------------------------------------------------------


def test_the_documented_config_file() -> None:
    """Every setting of a config shaped like monetr's documented one, read as monetr reads it."""
    instance = mb.MonetrInstance.from_config([DOCUMENTED], env={})
    database = instance.database
    assert (database.host, database.port, database.user, database.database) == (
        "postgres.internal",
        5432,
        "monetr",
        "monetr",
    )
    assert secret(database.password) == "fixture-password-9Qx"
    assert database.sslmode == "verify-full"
    assert database.sslrootcert == Path("/etc/monetr/tls/ca.cert")
    assert database.sslcert == Path("/etc/monetr/tls/tls.cert")
    assert database.sslkey == Path("/etc/monetr/tls/tls.key")
    assert database.bin_dir is None
    assert instance.storage == mb.DirectoryStorage(path=Path("/var/lib/monetr/storage"))
    assert instance.kms_provider == "vault"
    assert instance.private_key_path == Path("/etc/monetr/keys/ed25519.key")
    assert instance.config_files == (DOCUMENTED,)


NOTHING_SET = {
    "no file at all": None,
    "an empty file": "",
    "comments only": "# postgresql:\n#   port: 6432\n",
    "empty sections": "postgreSql:\nstorage:\nsecurity:\nkeyManagement:\n",
    "every value null": """
        postgreSql: {address: ~, port: ~, username: ~, password: ~, database: ~,
                     insecureSkipVerify: ~, caCertificatePath: ~, certificatePath: ~, keyPath: ~}
        storage: {enabled: ~, provider: ~, s3: ~, filesystem: {basePath: ~}}
        security: {privateKey: ~}
        keyManagement: {provider: ~}
    """,
    "every value empty": """
        postgreSql: {address: "", port: "", username: "", password: "", database: "",
                     caCertificatePath: "", certificatePath: "", keyPath: ""}
        storage: {enabled: "", provider: ""}
        security: {privateKey: ""}
        keyManagement: {provider: ""}
    """,
}


@pytest.mark.parametrize("text", NOTHING_SET.values(), ids=NOTHING_SET.keys())
def test_every_default(tmp_path: Path, text: str | None) -> None:
    """monetr's defaults, not this library's: no TLS (sslmode=disable), no storage, the
    plaintext KMS, the key in /etc/monetr."""
    paths = [] if text is None else [write(tmp_path, text)]
    instance = mb.MonetrInstance.from_config(paths, env={})
    assert instance.database == mb.PostgresConfig(
        host="localhost",
        port=5432,
        user="postgres",
        password=None,
        database="postgres",
        sslmode="disable",
    )
    assert instance.storage is None
    assert instance.kms_provider == "plaintext"
    assert instance.private_key_path == Path("/etc/monetr/ed25519.key")
    assert instance.config_files == tuple(paths)


def test_storage_defaults(tmp_path: Path) -> None:
    """Enabled storage is the filesystem provider at /etc/monetr/storage; S3 with only a
    bucket and keys uses virtual-host addressing (monetr's forcePathStyle default), AWS's
    own endpoint, this library's region, and the bucket's root."""
    instance = read(tmp_path, "storage: {enabled: true}")
    assert instance.storage == mb.DirectoryStorage(path=Path("/etc/monetr/storage"))

    instance = read(
        tmp_path,
        "storage: {enabled: true, provider: s3, s3: {bucket: b, accessKey: a, secretKey: s}}",
    )
    assert isinstance(instance.storage, mb.S3Storage)
    assert (instance.storage.bucket, instance.storage.prefix) == ("b", "")
    s3 = instance.storage.s3
    assert s3.force_path_style is False
    assert mb.S3Config().force_path_style is True, "the library's own default differs"
    assert (s3.endpoint_url, s3.region) == (None, "us-east-1")
    assert (s3.access_key, secret(s3.secret_key)) == ("a", "s")


def test_a_single_path_and_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One path need not be in a list; ``env=None`` reads the process environment."""
    path = write(tmp_path, "postgreSql: {address: from-file}")
    monkeypatch.setenv("MONETR_PG_USERNAME", "from-os-environ")
    for given in (path, str(path)):
        instance = mb.MonetrInstance.from_config(given)
        assert instance.database.host == "from-file"
        assert instance.database.user == "from-os-environ"
        assert instance.config_files == (path,)


# --- the environment -------------------------------------------------------------------

#: A file that sets every setting a variable can override, each to something else.
EVERY_VARIABLE_FILE = """
    postgreSql:
      address: file-host
      port: 5432
      username: file-user
      password: file-password
      database: file-db
      insecureSkipVerify: false
      caCertificatePath: /file/ca.pem
      certificatePath: /file/cert.pem
      keyPath: /file/key.pem
    storage:
      enabled: false
      provider: s3
      s3: {bucket: b, accessKey: a, secretKey: s}
    keyManagement: {provider: plaintext}
"""

Check = Callable[[mb.MonetrInstance], object]
#: variable -> (its value, what to look at, what it must be then, variables set around it).
OVERRIDES: dict[str, tuple[str, Check, object, dict[str, str]]] = {
    "MONETR_PG_ADDRESS": ("env-host", lambda i: i.database.host, "env-host", {}),
    "MONETR_PG_PORT": ("6543", lambda i: i.database.port, 6543, {}),
    "MONETR_PG_USERNAME": ("env-user", lambda i: i.database.user, "env-user", {}),
    "MONETR_PG_PASSWORD": (
        "env-password",
        lambda i: secret(i.database.password),
        "env-password",
        {},
    ),
    "MONETR_PG_DATABASE": ("env-db", lambda i: i.database.database, "env-db", {}),
    "MONETR_PG_INSECURE_SKIP_VERIFY": (
        "true",
        lambda i: (i.database.sslmode, i.database.sslrootcert),
        ("require", None),
        {},
    ),
    "MONETR_PG_CA_PATH": (
        "/env/ca.pem",
        lambda i: i.database.sslrootcert,
        Path("/env/ca.pem"),
        {},
    ),
    "MONETR_PG_CERT_PATH": (
        "/env/cert.pem",
        lambda i: i.database.sslcert,
        Path("/env/cert.pem"),
        {},
    ),
    "MONETR_PG_KEY_PATH": ("/env/key.pem", lambda i: i.database.sslkey, Path("/env/key.pem"), {}),
    "MONETR_STORAGE_ENABLED": ("true", lambda i: type(i.storage), mb.S3Storage, {}),
    "MONETR_STORAGE_PROVIDER": (
        "filesystem",
        lambda i: i.storage,
        mb.DirectoryStorage(path=Path("/etc/monetr/storage")),
        {"MONETR_STORAGE_ENABLED": "true"},
    ),
    "MONETR_KMS_PROVIDER": ("aws", lambda i: i.kms_provider, "aws", {}),
}


@pytest.mark.parametrize(("variable", "case"), OVERRIDES.items(), ids=OVERRIDES.keys())
def test_each_variable_wins_over_the_file(
    tmp_path: Path, variable: str, case: tuple[str, Check, object, dict[str, str]]
) -> None:
    value, check, expected, around = case
    assert check(read(tmp_path, EVERY_VARIABLE_FILE, around)) != expected
    assert check(read(tmp_path, EVERY_VARIABLE_FILE, {**around, variable: value})) == expected
    # viper ignores a variable that is set but empty.
    assert check(read(tmp_path, EVERY_VARIABLE_FILE, {**around, variable: ""})) != expected


def test_variables_alone_and_together(tmp_path: Path) -> None:
    """No file at all (monetr started without -c): the variables and the defaults; the
    storage provider variable with the storage switch."""
    env = {
        "MONETR_PG_ADDRESS": "db",
        "MONETR_PG_PORT": "6432",
        "MONETR_PG_PASSWORD": "123456",
        "MONETR_PG_CA_PATH": "/ca.pem",
        "MONETR_STORAGE_ENABLED": "1",
        "MONETR_STORAGE_PROVIDER": "filesystem",
        "MONETR_KMS_PROVIDER": "openbao",
        "MONETR_UNRELATED": "ignored",
    }
    instance = mb.MonetrInstance.from_config([], env=env)
    assert (instance.database.host, instance.database.port) == ("db", 6432)
    assert secret(instance.database.password) == "123456"
    assert (instance.database.sslmode, instance.database.sslrootcert) == (
        "verify-full",
        Path("/ca.pem"),
    )
    assert instance.storage == mb.DirectoryStorage(path=Path("/etc/monetr/storage"))
    assert instance.kms_provider == "openbao"
    s3_file = "storage: {s3: {bucket: b, accessKey: a, secretKey: s}}"
    env = {"MONETR_STORAGE_ENABLED": "true", "MONETR_STORAGE_PROVIDER": "s3"}
    assert isinstance(read(tmp_path, s3_file, env).storage, mb.S3Storage)


# --- merging and case ------------------------------------------------------------------


def test_two_files_merge_in_order() -> None:
    """The second file's sections merge into the first's, key by key, whatever the case
    of either; what it does not name stays as the first file set it."""
    instance = mb.MonetrInstance.from_config([DOCUMENTED, S3_OVERRIDE], env={})
    assert instance.database.port == 6432  # PostgreSQL.Port over postgresql.port
    assert instance.database.host == "postgres.internal"  # from the first file
    assert instance.database.sslmode == "verify-full"
    assert instance.kms_provider == "vault"
    assert isinstance(instance.storage, mb.S3Storage)  # storage.enabled from the first file
    assert instance.storage.bucket == "monetr-uploads"
    s3 = instance.storage.s3
    assert (s3.endpoint_url, s3.force_path_style) == ("http://minio.internal:9000", True)
    assert (s3.access_key, secret(s3.secret_key)) == ("AKIAFIXTURE", "fixture-secret-key-7Rw")
    assert instance.config_files == (DOCUMENTED, S3_OVERRIDE)

    # The other way round, the documented file wins wherever both speak.
    reverse = mb.MonetrInstance.from_config([S3_OVERRIDE, DOCUMENTED], env={})
    assert reverse.database.port == 5432
    assert reverse.storage == mb.DirectoryStorage(path=Path("/var/lib/monetr/storage"))
    # And a variable wins over both.
    env = {"MONETR_PG_PORT": "7000", "MONETR_STORAGE_PROVIDER": "filesystem"}
    over = mb.MonetrInstance.from_config([DOCUMENTED, S3_OVERRIDE], env=env)
    assert over.database.port == 7000
    assert over.storage == mb.DirectoryStorage(path=Path("/var/lib/monetr/storage"))


def test_a_later_null_brings_back_the_default(tmp_path: Path) -> None:
    """viper's merge: a null replaces the earlier value, then the default applies; an
    empty section changes nothing."""
    first = write(
        tmp_path, "postgreSql: {address: db, port: 6432}\nstorage: {enabled: true}", "a.yaml"
    )
    second = write(tmp_path, "postgreSql: {port: ~}\nstorage:\n", "b.yaml")
    instance = mb.MonetrInstance.from_config([first, second], env={})
    assert (instance.database.host, instance.database.port) == ("db", 5432)
    assert instance.storage == mb.DirectoryStorage(path=Path("/etc/monetr/storage"))


#: The same settings, spelt as monetr does, then in capitals, in lower case, and mixed.
SPELLINGS = [
    "postgreSql: {address: h, caCertificatePath: /ca}\nstorage: {enabled: true, "
    "filesystem: {basePath: /s}}\nsecurity: {privateKey: /k}\nkeyManagement: {provider: aws}",
    "POSTGRESQL: {ADDRESS: h, CACERTIFICATEPATH: /ca}\nSTORAGE: {ENABLED: true, "
    "FILESYSTEM: {BASEPATH: /s}}\nSECURITY: {PRIVATEKEY: /k}\nKEYMANAGEMENT: {PROVIDER: aws}",
    "postgresql: {address: h, cacertificatepath: /ca}\nstorage: {enabled: true, "
    "filesystem: {basepath: /s}}\nsecurity: {privatekey: /k}\nkeymanagement: {provider: aws}",
    "PostgreSQL: {Address: h, CaCertificatePath: /ca}\nStorage: {Enabled: true, "
    "FileSystem: {BasePath: /s}}\nSecurity: {PrivateKey: /k}\nKeyManagement: {Provider: aws}",
]


@pytest.mark.parametrize("text", SPELLINGS, ids=["monetr", "upper", "lower", "mixed"])
def test_keys_match_without_regard_to_case_at_every_level(tmp_path: Path, text: str) -> None:
    instance = read(tmp_path, text)
    assert instance.database.host == "h"
    assert instance.database.sslrootcert == Path("/ca")
    assert instance.storage == mb.DirectoryStorage(path=Path("/s"))
    assert instance.private_key_path == Path("/k")
    assert instance.kms_provider == "aws"


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    """monetr has many settings this library does not need, of every shape; even ones
    given twice in different case (viper would pick one) are none of its business."""
    instance = read(
        tmp_path,
        """
        server: {listenPort: [4000, 4001], cookies: {Name: a, name: b}}
        cors: {allowedOrigins: [https://a.example]}
        backgroundJobs: {engine: postgresql, scheduler: internal}
        stripe: {plans: [{name: free, price: 0}]}
        sentry: 5
        12345: numeric key
        true: boolean key
        postgreSql: {migrate: true, poolSize: {min: 1}, address: kept}
        storage: {enabled: true, gcs: {bucket: elsewhere}, filesystem: {basePath: /s, mode: 0700}}
        keyManagement: {provider: aws, aws: {keyID: k, region: us-west-2}}
        """,
    )
    assert instance.database.host == "kept"
    assert instance.storage == mb.DirectoryStorage(path=Path("/s"))
    assert instance.kms_provider == "aws"


# --- TLS ---------------------------------------------------------------------------------

TLS_CASES: dict[str, tuple[str, dict[str, str], dict[str, object]]] = {
    "no CA: no TLS, client certificate ignored": (
        "postgreSql: {certificatePath: /c, keyPath: /k, insecureSkipVerify: true}",
        {},
        {"sslmode": "disable", "sslrootcert": None, "sslcert": None, "sslkey": None},
    ),
    "CA: verify-full": (
        "postgreSql: {caCertificatePath: /ca}",
        {},
        {"sslmode": "verify-full", "sslrootcert": Path("/ca"), "sslcert": None, "sslkey": None},
    ),
    "CA and client certificate": (
        "postgreSql: {caCertificatePath: /ca, certificatePath: /c, keyPath: /k}",
        {},
        {
            "sslmode": "verify-full",
            "sslrootcert": Path("/ca"),
            "sslcert": Path("/c"),
            "sslkey": Path("/k"),
        },
    ),
    "CA, insecureSkipVerify: require, nothing checked": (
        "postgreSql: {caCertificatePath: /ca, insecureSkipVerify: true, "
        "certificatePath: /c, keyPath: /k}",
        {},
        {"sslmode": "require", "sslrootcert": None, "sslcert": Path("/c"), "sslkey": Path("/k")},
    ),
    "CA from the environment": (
        "postgreSql: {address: db}",
        {"MONETR_PG_CA_PATH": "/env-ca", "MONETR_PG_INSECURE_SKIP_VERIFY": "false"},
        {"sslmode": "verify-full", "sslrootcert": Path("/env-ca")},
    ),
    "insecureSkipVerify from the environment": (
        "postgreSql: {caCertificatePath: /ca, insecureSkipVerify: false}",
        {"MONETR_PG_INSECURE_SKIP_VERIFY": "1"},
        {"sslmode": "require", "sslrootcert": None},
    ),
}


@pytest.mark.parametrize(("text", "env", "expected"), TLS_CASES.values(), ids=TLS_CASES.keys())
def test_tls_as_monetr_connects(
    tmp_path: Path, text: str, env: dict[str, str], expected: dict[str, object]
) -> None:
    database = read(tmp_path, text, env).database
    assert {name: getattr(database, name) for name in expected} == expected


@pytest.mark.parametrize("missing", ["keyPath", "certificatePath"])
def test_a_client_certificate_needs_both_halves(tmp_path: Path, missing: str) -> None:
    given = {"keyPath": "certificatePath", "certificatePath": "keyPath"}[missing]
    error = config_error(tmp_path, f"postgreSql: {{caCertificatePath: /ca, {given}: /x}}")
    assert error.key == f"postgreSql.{missing}"
    assert f"postgreSql.{missing} is not set" in str(error)


# --- storage ------------------------------------------------------------------------------


def test_s3_storage_as_documented(tmp_path: Path) -> None:
    instance = read(
        tmp_path,
        """
        storage:
          enabled: true
          provider: s3
          s3:
            accessKey: "AKIA1"
            secretKey: "secret-1"
            endpoint: minio.internal:9000
            region: eu-central-1
            bucket: "uploads"
            forcePathStyle: true
        """,
    )
    assert isinstance(instance.storage, mb.S3Storage)
    s3 = instance.storage.s3
    # An endpoint without a scheme: https, as the AWS SDKs assume.
    assert s3.endpoint_url == "https://minio.internal:9000"
    assert (s3.region, s3.force_path_style) == ("eu-central-1", True)
    assert (s3.access_key, secret(s3.secret_key)) == ("AKIA1", "secret-1")


ENV_CREDENTIALS: dict[str, tuple[dict[str, str], tuple[str | None, str | None]]] = {
    "botocore's names": (
        {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"},
        ("id", "key"),
    ),
    "the names monetr documents": (
        {"AWS_ACCESS_KEY": "id2", "AWS_SECRET_KEY": "key2"},
        ("id2", "key2"),
    ),
    "with a session token: botocore's chain": (
        {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key", "AWS_SESSION_TOKEN": "t"},
        (None, None),
    ),
    "half a pair: botocore's chain": ({"AWS_ACCESS_KEY": "id"}, (None, None)),
    "nothing: botocore's chain": ({}, (None, None)),
}


@pytest.mark.parametrize(("env", "keys"), ENV_CREDENTIALS.values(), ids=ENV_CREDENTIALS.keys())
def test_use_env_credentials(
    tmp_path: Path, env: dict[str, str], keys: tuple[str | None, str | None]
) -> None:
    """The file's keys are set aside; the pair comes from the environment as Go's AWS SDK
    reads it, or is left to botocore's default credential chain."""
    instance = read(
        tmp_path,
        """
        storage:
          enabled: true
          provider: s3
          s3: {bucket: b, useEnvCredentials: true, accessKey: file-id, secretKey: file-key}
        """,
        {**env, "AWS_REGION": "ap-south-1"},
    )
    assert isinstance(instance.storage, mb.S3Storage)
    s3 = instance.storage.s3
    assert (s3.access_key, secret(s3.secret_key)) == keys
    assert s3.region == "ap-south-1"  # no region in the file: the SDK's variable


def test_storage_disabled(tmp_path: Path) -> None:
    """A complete storage section does nothing while storage is not enabled, and the
    variable switches it either way."""
    text = """
        storage:
          enabled: false
          provider: s3
          s3: {bucket: b, accessKey: a, secretKey: s}
    """
    assert read(tmp_path, text).storage is None
    assert isinstance(
        read(tmp_path, text, {"MONETR_STORAGE_ENABLED": "TRUE"}).storage, mb.S3Storage
    )
    on = text.replace("enabled: false", "enabled: true")
    assert read(tmp_path, on, {"MONETR_STORAGE_ENABLED": "false"}).storage is None
    assert read(tmp_path, on, {"MONETR_STORAGE_ENABLED": "0"}).storage is None


MISSING_FOR_S3 = {
    "bucket": ("storage.s3.bucket", "s3: {accessKey: a, secretKey: s}"),
    "accessKey": ("storage.s3.accessKey", "s3: {bucket: b, secretKey: s}"),
    "secretKey": ("storage.s3.secretKey", "s3: {bucket: b, accessKey: a}"),
}


@pytest.mark.parametrize(("key", "section"), MISSING_FOR_S3.values(), ids=MISSING_FOR_S3.keys())
def test_s3_storage_needs_its_bucket_and_keys(tmp_path: Path, key: str, section: str) -> None:
    error = config_error(tmp_path, f"storage: {{enabled: true, provider: s3, {section}}}")
    assert error.key == key
    assert str(error).startswith(f"{key} is not set ({tmp_path / 'config.yaml'})")


# --- wrong values ------------------------------------------------------------------------

WRONG: dict[str, tuple[str, str, str]] = {
    "port as text": (
        "postgreSql: {port: abc}",
        "postgreSql.port",
        "whole number from 1 to 65535, not 'abc'",
    ),
    "port out of range": ("postgreSql: {port: 70000}", "postgreSql.port", "not 70000"),
    "port as a float": ("postgreSql: {port: 5432.5}", "postgreSql.port", "not 5432.5"),
    "port as a boolean": ("postgreSql: {port: true}", "postgreSql.port", "not true"),
    "port as a list": ("postgreSql: {port: [5432]}", "postgreSql.port", "single value, not a list"),
    "address as a mapping": (
        "postgreSql: {address: {host: db}}",
        "postgreSql.address",
        "single value, not a mapping",
    ),
    "enabled as a word": (
        "storage: {enabled: maybe}",
        "storage.enabled",
        "true or false, not 'maybe'",
    ),
    "enabled: yes (YAML 1.1)": (
        "storage: {enabled: yes}",
        "storage.enabled",
        "not 'yes' (monetr would read it as false)",
    ),
    "insecureSkipVerify: on": (
        "postgreSql: {caCertificatePath: /ca, insecureSkipVerify: on}",
        "postgreSql.insecureSkipVerify",
        "not 'on'",
    ),
    "insecureSkipVerify: 2": (
        "postgreSql: {insecureSkipVerify: 2}",
        "postgreSql.insecureSkipVerify",
        "true or false, not 2",
    ),
    "forcePathStyle unused but wrong": (
        "storage: {s3: {forcePathStyle: sometimes}}",
        "storage.s3.forcePathStyle",
        "not 'sometimes'",
    ),
    "a CA path as a number": (
        "postgreSql: {caCertificatePath: 5}",
        "postgreSql.caCertificatePath",
        "must be a path, not a number",
    ),
    "a section as a number": (
        "postgreSql: 5",
        "postgreSql",
        "must be a section of settings, not a number",
    ),
    "a section as text": (
        "storage: {s3: bucket-name}",
        "storage.s3",
        "section of settings, not text",
    ),
    "an unknown provider": (
        "storage: {enabled: true, provider: gcs}",
        "storage.provider",
        "must be filesystem or s3, not 'gcs'",
    ),
    "a key twice in different case": (
        "postgreSql: {port: 1, Port: 2}",
        "postgreSql.port",
        "given twice, as 'port' and 'Port'",
    ),
    "a binary address": (
        "postgreSql: {address: !!binary aGk=}",
        "postgreSql.address",
        "must be text, not a YAML bytes",
    ),
}


@pytest.mark.reliability(
    "hostile input",
    "a monetr config value of the wrong type or shape (port, boolean, path, section, provider)",
    "ConfigError naming the setting and the file",
)
@pytest.mark.parametrize(("text", "key", "problem"), WRONG.values(), ids=WRONG.keys())
def test_a_wrong_value_names_the_setting_and_the_file(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    error = config_error(tmp_path, text)
    path = str(tmp_path / "config.yaml")
    assert (error.key, error.source) == (key, path)
    assert str(error).startswith(f"{key} (file {path}): ")
    assert problem in str(error)


@pytest.mark.reliability(
    "hostile input",
    "a MONETR_* variable of the wrong type",
    "ConfigError naming the setting and the variable",
)
@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("MONETR_PG_PORT", "54 32", "postgreSql.port"),
        ("MONETR_PG_PORT", "0", "postgreSql.port"),
        ("MONETR_STORAGE_ENABLED", "yes", "storage.enabled"),
        ("MONETR_PG_INSECURE_SKIP_VERIFY", " true", "postgreSql.insecureSkipVerify"),
    ],
)
def test_a_wrong_variable_names_it(tmp_path: Path, variable: str, value: str, key: str) -> None:
    error = config_error(tmp_path, "postgreSql: {port: 5432}", {variable: value})
    assert (error.key, error.source) == (key, variable)
    assert str(error).startswith(f"{key} (environment variable {variable}): ")


@pytest.mark.reliability(
    "hostile input",
    "a monetr config file: missing, a folder, not UTF-8, not YAML, a list, a key given twice",
    "ConfigError naming the file",
)
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        ("folder", "cannot be read: Is a directory"),
        (b"postgreSql:\n  address: \xff\xfe\n", "is not UTF-8 text (byte 23)"),
        ("postgreSql:\n  address: db\n port: 1\n", "is not valid YAML, line 3, column 2"),
        ("- postgreSql\n- storage\n", "must hold a mapping of settings at the top, not a list"),
        (
            "postgreSql:\n  port: 1\n  port: 2\n",
            "line 3: the key 'port' is given twice in one mapping (first on line 2)",
        ),
    ],
    ids=["missing", "a folder", "not UTF-8", "not YAML", "a list", "a key twice"],
)
def test_a_file_monetr_could_not_read_either(
    tmp_path: Path, content: str | bytes | None, problem: str
) -> None:
    path = tmp_path / "config.yaml"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(mb.ConfigError) as caught:
        mb.MonetrInstance.from_config([DOCUMENTED, path], env={})
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)
    assert isinstance(caught.value, mb.BackupError)
    assert not isinstance(caught.value, mb.DatabaseError)


# --- passwords and secrets ---------------------------------------------------------------

PASSWORDS = {
    "digits (an int to YAML)": ("password: 123456", "123456"),
    "zero": ("password: 0", "0"),
    "a float, as Go prints it": ("password: 1.50", "1.5"),
    "a boolean, as Go prints it": ("password: true", "true"),
    "yes stays text": ("password: yes", "yes"),
    "12:30 stays text (not 750)": ("password: 12:30", "12:30"),
    "a date stays text": ("password: 2024-01-31", "2024-01-31"),
    "quoted digits": ('password: "007"', "007"),
}


@pytest.mark.parametrize(("line", "expected"), PASSWORDS.values(), ids=PASSWORDS.keys())
def test_a_password_is_taken_as_monetr_takes_it(tmp_path: Path, line: str, expected: str) -> None:
    """YAML hands some passwords over as numbers or booleans; they are still passwords,
    as the text monetr (viper over go-yaml) turns them into."""
    instance = read(tmp_path, f"postgreSql:\n  {line}\n")
    assert secret(instance.database.password) == expected
    value = line.split(": ", 1)[1]
    s3 = read(
        tmp_path,
        f"storage: {{enabled: true, provider: s3, s3: {{bucket: b, accessKey: a, "
        f"secretKey: {value}}}}}",
    ).storage
    assert isinstance(s3, mb.S3Storage)
    assert secret(s3.s3.secret_key) == expected


LEAKY: dict[str, str | bytes] = {
    "password as a list": f"postgreSql:\n  password: [{SECRET}]\n",
    "secretKey as a mapping": f"storage:\n  s3:\n    secretKey: {{{SECRET}: 1}}\n",
    "password in a section given as text": f"postgreSql: {SECRET}\n",
    "password twice": f"postgreSql:\n  password: {SECRET}\n  password: {SECRET}\n",
    "password twice in other case": f"postgreSql:\n  password: {SECRET}\n  Password: {SECRET}\n",
    "a YAML error on the password's line": f"postgreSql:\n  password: {SECRET}: [\n",
    "a bad escape inside the password": f'postgreSql:\n  password: "{SECRET}\\q"\n',
    "an unclosed quote": f"postgreSql:\n  password: '{SECRET}\n",
    "a tab before the password": f"postgreSql:\n\tpassword: {SECRET}\n",
    "not UTF-8 beside the password": f"postgreSql:\n  password: {SECRET}".encode() + b"\xff\n",
    "a binary password": f"postgreSql:\n  password: !!binary {SECRET.replace('-', '')}\n",
    "a wrong type elsewhere": f"postgreSql:\n  password: {SECRET}\n  port: nope\n",
}


@pytest.mark.reliability(
    "hostile input",
    "a broken monetr config holding a password or secret key (wrong shape, YAML error, bad bytes)",
    "ConfigError; the secret in no error text, cause or traceback",
)
@pytest.mark.parametrize("content", LEAKY.values(), ids=LEAKY.keys())
def test_a_secret_is_never_in_an_error(tmp_path: Path, content: str | bytes) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(mb.ConfigError) as caught:
        mb.MonetrInstance.from_config([path], env={"MONETR_PG_PASSWORD": ""})
    text = full_text(caught.value)
    assert str(path) in text
    for part in (SECRET, SECRET[:8], SECRET[-8:], SECRET.replace("-", "")[:12]):
        assert part not in text


def test_a_secret_is_never_in_a_repr(tmp_path: Path) -> None:
    instance = read(
        tmp_path,
        f"postgreSql: {{password: {SECRET}}}\n"
        f"storage: {{enabled: true, provider: s3, s3: {{bucket: b, accessKey: a, "
        f"secretKey: {SECRET}}}}}",
    )
    assert SECRET not in repr(instance) + str(instance) + instance.model_dump_json()
    assert secret(instance.database.password) == SECRET


# --- real servers ------------------------------------------------------------------------


async def test_a_backup_from_monetrs_config(
    pg: PostgresServer, sample: Sample, tmp_path: Path
) -> None:
    """A config file pointing at the session's PostgreSQL and a storage folder, plus a
    variable for the password as a container would have it: backup() and verify() of
    what it describes, with the KMS recorded."""
    config = write(
        tmp_path,
        f"""
        postgresql:
          address: {pg.host}
          port: {pg.port}
          username: {pg.user}
          database: {sample.database}
        storage:
          enabled: true
          provider: filesystem
          filesystem:
            basePath: {sample.storage}
        keyManagement:
          provider: plaintext
        """,
    )
    monetr = mb.MonetrInstance.from_config([config], env={"MONETR_PG_PASSWORD": pg.password})
    archive = mb.FileArchive(path=tmp_path / "monetr.tar.gz")
    manifest = await mb.backup(
        archive,
        database=monetr.database,
        storage=monetr.storage,
        options=mb.BackupOptions(kms_provider=monetr.kms_provider),
    )
    # monetr's default file set: the sample's files that live rows reference.
    assert manifest.file_set is not None
    assert manifest.file_set.mode == mb.StorageMode.REFERENCED
    taken = [
        entry.name.split("/storage/", 1)[1]
        for entry in manifest.members
        if "/storage/" in entry.name
    ]
    assert 0 < len(taken) < len(sample.files)
    assert set(taken) <= set(sample.files)
    assert manifest.object_count == sum(kind.objects for kind in manifest.file_set.kinds.values())
    assert manifest.object_bytes == sum(len(sample.files[key]) for key in taken)
    assert manifest.dump_bytes > 0
    assert manifest.kms_provider == "plaintext"
    assert manifest.live_secrets is not None
    report = await mb.verify(archive)
    assert report.ok, report.problems
    info = await mb.inspect(archive)
    assert info.manifest.object_count == len(taken)


@pytest.fixture
def fresh_aws_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No AWS settings of the machine's, and a botocore session that has not yet
    resolved (and cached) credentials, before and after the test."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONFIG_FILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3_client_module._session.cache_clear()
    yield
    s3_client_module._session.cache_clear()


def s3_config_file(directory: Path, s3: TemporarySeaweedS3, bucket: str, **keys: object) -> Path:
    """monetr's s3 storage settings for the session's server, with ``keys`` added."""
    settings = {"endpoint": s3.endpoint_url, "bucket": bucket, "forcePathStyle": True, **keys}
    lines = "".join(f"    {name}: {value}\n" for name, value in settings.items())
    return write(directory, f"storage:\n  enabled: true\n  provider: s3\n  s3:\n{lines}")


async def test_s3_storage_from_monetrs_config(
    s3: TemporarySeaweedS3, sources: Sources, tmp_path: Path
) -> None:
    """monetr's s3 storage settings reach the bucket: every object of the corpus is in the
    archive."""
    config = s3_config_file(
        tmp_path, s3, sources.bucket, accessKey=s3.access_key, secretKey=s3.secret_key
    )
    monetr = mb.MonetrInstance.from_config([config], env={})
    manifest = await mb.backup(mb.FileArchive(path=tmp_path / "s3.tar"), storage=monetr.storage)
    assert manifest.object_count == len(sources.corpus)


@pytest.mark.usefixtures("fresh_aws_session")
async def test_use_env_credentials_reaches_botocores_default_chain(
    s3: TemporarySeaweedS3, sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``useEnvCredentials`` and no key pair in ``env``, S3Config carries no keys and
    botocore finds them itself: here in a shared credentials file named by the process
    environment, which ``env`` does not even contain."""
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {s3.access_key}\naws_secret_access_key = {s3.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    config = s3_config_file(tmp_path, s3, sources.bucket, useEnvCredentials="true")
    monetr = mb.MonetrInstance.from_config([config], env={})
    assert isinstance(monetr.storage, mb.S3Storage)
    assert (monetr.storage.s3.access_key, monetr.storage.s3.secret_key) == (None, None)
    manifest = await mb.backup(mb.FileArchive(path=tmp_path / "chain.tar"), storage=monetr.storage)
    assert manifest.object_count == len(sources.corpus)


@pytest.mark.reliability(
    "fault",
    "useEnvCredentials, and the AWS default chain finds wrong keys",
    "StorageSourceError; no archive file",
)
@pytest.mark.usefixtures("fresh_aws_session")
async def test_wrong_keys_in_the_default_chain_fail_the_backup(
    s3: TemporarySeaweedS3, sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the test above: the chain's keys are the ones used."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-key")
    config = s3_config_file(tmp_path, s3, sources.bucket, useEnvCredentials="true")
    monetr = mb.MonetrInstance.from_config([config], env={})
    with pytest.raises(mb.StorageSourceError):
        await mb.backup(mb.FileArchive(path=tmp_path / "wrong.tar"), storage=monetr.storage)
    assert names_in(tmp_path) == ["config.yaml"]
