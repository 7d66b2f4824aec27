"""Development sessions (``nox -s NAME``): tests, lint, mypy, docs, demo, examples, benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "mypy", "tests"]

PYTHON = "3.11"
PG_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
EXAMPLES_DIR = Path(__file__).parent / "examples"


def ensure_postgres(session: nox.Session) -> None:
    """Install PostgreSQL 15 with apt if its ``initdb`` is missing and we run as root."""
    if (PG_BIN_DIR / "initdb").exists():
        return
    if os.geteuid() != 0:
        session.warn(f"{PG_BIN_DIR / 'initdb'} is missing; install postgresql-15 (needs root)")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", external=True, env=env)
    session.run("apt-get", "install", "-y", "postgresql-15", external=True, env=env)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (needs PostgreSQL 15 binaries and root, to run it as ``postgres``)."""
    ensure_postgres(session)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and check formatting with ruff."""
    session.install("ruff==0.17.6")  # pinned: formatting changes between releases
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def mypy(session: nox.Session) -> None:
    """Type-check the package and the tests (strict; configured in pyproject.toml)."""
    session.install("-e", ".[test,typing]")
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/, strictly: a broken link or reference fails.

    Extra arguments go to ``mkdocs build`` (``-- --site-dir /tmp/site``).
    """
    session.install("-e", ".[docs]")
    # Material's banner about MkDocs 2 is printed on every build, and says nothing of ours.
    env = {"NO_MKDOCS_2_WARNING": "1"}
    session.run("mkdocs", "build", "--strict", *session.posargs, env=env)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Back up a throwaway PostgreSQL and a directory to a local archive, then restore it."""
    ensure_postgres(session)
    session.install("-e", ".")
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session(python=PYTHON)
def examples(session: nox.Session) -> None:
    """Run every script in examples/ (each starts its own servers); any failing one fails."""
    ensure_postgres(session)
    session.install("-e", ".[test]")  # the test extra brings SeaweedFS for the S3 example
    scripts = sorted(EXAMPLES_DIR.glob("*.py"))
    if not scripts:
        session.error(f"no examples found in {EXAMPLES_DIR}")
    for script in scripts:
        session.log(f"example {script.name}")
        session.run("python", str(script))


@nox.session(python=PYTHON)
def benchmarks(session: nox.Session) -> None:
    """Run the quick benchmark suite; extra arguments go to benchmarks/run.py."""
    ensure_postgres(session)
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/run.py", "--quick", *session.posargs)
