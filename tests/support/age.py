"""age keys and the stock ``age`` CLI -> keys made the operator's way, files (de|en)crypted by it.

The CLI is Debian's ``age`` package (.ci/run installs it); without it (outside CI) the
tests that need it are skipped, in CI they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

import monetr_backup as mb
from monetr_backup.testing import PostgresServer

from .samples import PART_SIZE, Sample

#: The name of the thread that runs an age call (monetr_backup._format.age_stream).
AGE_THREAD = "monetr-backup-age"


def age_threads() -> list[threading.Thread]:
    """The age threads of this process that are still running."""
    return [t for t in threading.enumerate() if t.name == AGE_THREAD and t.is_alive()]


def need_tool(name: str) -> str:
    """The path of the program ``name``; skips the test without it, except in CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing (.ci/run installs it)")
        pytest.skip(f"{name} is not installed (Debian package age / openssh-client)")
    return path


@dataclass(frozen=True)
class AgeKey:
    """An identity file made by ``age-keygen``: its path, secret text and public key."""

    path: Path
    secret: str
    recipient: str

    @property
    def identity(self) -> SecretStr:
        """The identity file's text, as the library takes it."""
        return SecretStr(self.secret)


def age_keygen(path: Path) -> AgeKey:
    """``age-keygen -o path``, as the docs tell an operator to make a key."""
    keygen = need_tool("age-keygen")
    subprocess.run([keygen, "-o", str(path)], check=True, capture_output=True)
    text = path.read_text()
    recipient = next(
        line.split(":", 1)[1].strip() for line in text.splitlines() if "public key:" in line
    )
    return AgeKey(path=path, secret=text, recipient=recipient)


def ssh_keygen(path: Path) -> AgeKey:
    """An unencrypted ed25519 SSH key pair (``ssh-keygen``) at ``path`` and ``path.pub``."""
    keygen = need_tool("ssh-keygen")
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "backup@test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return AgeKey(
        path=path, secret=path.read_text(), recipient=Path(f"{path}.pub").read_text().strip()
    )


def age_decrypt(path: Path, key: Path, out: Path) -> None:
    """``age -d -i key -o out path``, asserting it exits 0."""
    age = need_tool("age")
    proc = subprocess.run(
        [age, "-d", "-i", str(key), "-o", str(out), str(path)], capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def age_decrypt_fails(path: Path, key: Path) -> str:
    """``age -d`` of ``path``, asserting it fails; its stderr."""
    age = need_tool("age")
    proc = subprocess.run(
        [age, "-d", "-i", str(key), "-o", os.devnull, str(path)], capture_output=True, check=False
    )
    assert proc.returncode != 0
    return proc.stderr.decode(errors="replace")


def age_encrypt(path: Path, recipients: list[str], out: Path) -> None:
    """``age -r R... -o out path`` (binary, not armored), asserting it exits 0."""
    age = need_tool("age")
    args = [arg for recipient in recipients for arg in ("-r", recipient)]
    proc = subprocess.run([age, *args, "-o", str(out), str(path)], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


async def encrypted_sample_backup(
    pg: PostgresServer, sample: Sample, path: Path, recipients: list[str], **options: Any
) -> mb.Manifest:
    """The sample's database and storage folder backed up to ``path``, encrypted to
    ``recipients`` (every file of the folder, small dump parts as for the sample)."""
    return await mb.backup(
        mb.FileArchive(path=path),
        database=pg.config(sample.database),
        storage=mb.DirectoryStorage(path=sample.storage),
        options=mb.BackupOptions(
            recipients=tuple(recipients),
            dump_part_size=PART_SIZE,
            storage_mode=mb.StorageMode.ALL,
            **options,
        ),
    )
