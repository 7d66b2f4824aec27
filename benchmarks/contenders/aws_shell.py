"""awscli in a venv of its own -> ``aws s3 cp`` commands for the shell pipelines."""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.log import log
from harness.machine import first_line
from harness.measure import clean_env
from harness.settings import Settings

from monetr_backup.testing import TemporarySeaweedS3

__all__ = ["AWSCLI_VENV", "AwsCli", "backup_pipelines"]

AWSCLI_VENV = Path(__file__).resolve().parents[1] / ".awscli-venv"


def backup_pipelines(pg_dump: str, *, quick: bool) -> list[tuple[str, str, str]]:
    """(name, slug, producer) of each shell baseline ``producer | aws s3 cp -``."""
    pipelines = [
        ("pg_dump -Fc -Z0 | aws s3 cp -", "fc-z0", f"{pg_dump} -Fc -Z0"),
        ("pg_dump -Fc | aws s3 cp -", "fc", f"{pg_dump} -Fc"),
        ("pg_dump | gzip -1 | aws s3 cp -", "gzip-1", f"{pg_dump} | gzip -1"),
        ("pg_dump | gzip | aws s3 cp -", "gzip-6", f"{pg_dump} | gzip"),
    ]
    if quick:
        # Not among the three shell baselines; saves time in the smoke run.
        pipelines = [p for p in pipelines if p[1] != "gzip-1"]
    return pipelines


class AwsCli:
    """The ``aws`` program a user would run against the S3 server, installed on first use."""

    def __init__(self, settings: Settings, s3: TemporarySeaweedS3) -> None:
        self.settings = settings
        self.s3 = s3
        #: The ``aws`` program once installed; None when its contenders do not run.
        self.path: Path | None = None
        #: Its environment: credentials and the path-style config file, like a user's.
        self.env: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._logged = False

    def start(self) -> None:
        """Install awscli (if needed) in the background while data is generated."""
        if self.settings.aws and self._thread is None:
            self._thread = threading.Thread(target=self.install, daemon=True)
            self._thread.start()

    def wait(self) -> None:
        """Finish :meth:`start` (or run it now); nothing is timed while it runs."""
        if self._thread is None:
            self.install()
        else:
            self._thread.join()
        if not self._logged:
            self._logged = True
            log(f"  awscli: {self.version()}")

    def install(self) -> None:
        """Create the venv with awscli unless it works already, then set :attr:`path`."""
        if not self.settings.aws or self.path is not None:
            return
        aws = AWSCLI_VENV / "bin" / "aws"
        started = time.perf_counter()
        if (
            not aws.exists()
            or subprocess.run([aws, "--version"], capture_output=True, check=False).returncode
        ):
            log(f"creating {AWSCLI_VENV} with awscli from PyPI (once)")
            try:
                subprocess.run(
                    [sys.executable, "-m", "venv", "--clear", str(AWSCLI_VENV)],
                    check=True,
                    capture_output=True,
                )
                # Keeps git, ruff and friends out of it (Python >= 3.13 writes this itself).
                (AWSCLI_VENV / ".gitignore").write_text("*\n", encoding="utf-8")
                subprocess.run(
                    [
                        str(AWSCLI_VENV / "bin" / "python"),
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "awscli",
                    ],
                    check=True,
                    capture_output=True,
                )
            except subprocess.CalledProcessError as exc:
                detail = (exc.stderr or b"").decode(errors="replace")[-800:]
                log(f"WARNING: cannot install awscli, skipping its contenders:\n{detail}")
                self.settings.aws = False
                return
            log(f"  awscli installed in {time.perf_counter() - started:.1f} s")
        config = AWSCLI_VENV / "aws-config"
        config.write_text(
            "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n", encoding="utf-8"
        )
        self.path = aws
        self.env = clean_env() | {
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_DEFAULT_REGION": self.s3.region,
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        }

    def version(self) -> str:
        """``aws --version``, or ``not used``."""
        if self.path is None:
            return "not used"
        return first_line([str(self.path), "--version"])

    def cp(self, source: str, target: str) -> str:
        """``aws s3 cp SOURCE TARGET`` against the S3 server (``-`` is stdin or stdout)."""
        assert self.path is not None
        return shlex.join(
            [
                str(self.path),
                "s3",
                "cp",
                source,
                target,
                "--endpoint-url",
                self.s3.endpoint_url,
                "--only-show-errors",
                "--no-progress",
            ]
        )
