"""Tests marked ``reliability`` -> docs/reliability.md: what was tried, what came out, how to rerun.

Every fault, hostile input and cancellation test carries
``@pytest.mark.reliability(kind, what, outcome)``; each of its parametrized cases counts
as one case tried. The document is rendered from the collected tests, so it cannot
drift from them: ``tests/test_reliability_doc.py`` fails when it differs, and
``python tests/support/reliability.py`` writes it anew.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"

#: The kinds of trouble, in the order the document lists them.
KINDS = {
    "fault": "Faults",
    "hostile input": "Bad and hostile input",
    "cancellation": "Cancellation",
}

#: What "nothing left" means in an outcome: what its cases compared before and after.
NOTHING_LEFT = (
    "no archive object or file, no incomplete multipart upload, no temporary file, no "
    "database it created, no changed database (pg_dump before and after), no changed "
    "directory (every file and folder, with modes), no object it wrote, no child process"
)


@dataclass(frozen=True)
class Case:
    """One collected test case and its marker."""

    nodeid: str
    kind: str
    what: str
    outcome: str

    @property
    def function(self) -> str:
        """``file::test`` without the parameters: the command that reruns every case."""
        return self.nodeid.split("[", 1)[0]


def cases_of(items: Iterable[pytest.Item]) -> list[Case]:
    """The reliability cases among collected items; a marker must be complete."""
    found = []
    for item in items:
        marker = item.get_closest_marker("reliability")
        if marker is None:
            continue
        kind, what, outcome = marker.args
        if kind not in KINDS:
            raise ValueError(
                f"{item.nodeid}: reliability kind {kind!r} is not one of {list(KINDS)}"
            )
        found.append(Case(item.nodeid, kind, what, outcome))
    return found


def render(cases: list[Case]) -> str:
    """The whole document."""
    lines = [
        "# What was tried, and what was lost: nothing",
        "",
        "<!-- Generated from the tests marked `reliability`; do not edit by hand. -->",
        "<!-- Regenerate: python tests/support/reliability.py -->",
        "",
        "Every case below runs in CI (`nox -s tests`) against real servers (PostgreSQL, "
        "SeaweedFS, behind a fault-injecting proxy of the tests' own where a row says so), "
        "real files and a small tmpfs. The outcome of a row is what each of its cases "
        "asserts. The contract: an operation returns its result, or raises a typed error "
        f"and leaves nothing, which the cases check as: {NOTHING_LEFT}; past the point of "
        "no return it finishes shielded and returns, even when cancelled.",
        "",
        "| kind | cases tried |",
        "|---|---|",
    ]
    for kind, title in KINDS.items():
        lines.append(f"| {title} | {sum(case.kind == kind for case in cases)} |")
    lines.append(f"| **all** | **{len(cases)}** |")
    for kind, title in KINDS.items():
        lines += ["", f"## {title}", "", "| what | outcome | cases | rerun |", "|---|---|---|---|"]
        groups: dict[tuple[str, str, str], int] = {}
        for case in cases:
            if case.kind == kind:
                key = (case.what, case.outcome, case.function)
                groups[key] = groups.get(key, 0) + 1
        for (what, outcome, function), count in groups.items():
            lines.append(f"| {what} | {outcome} | {count} | `python -m pytest '{function}'` |")
    return "\n".join(lines) + "\n"


def collected() -> list[Case]:
    """Collect the whole suite in a subprocess (no test runs) and read its cases."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "cases.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "--collect-only",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--reliability-json={out}",
                str(ROOT / "tests"),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        return [Case(**case) for case in json.loads(out.read_text())]


if __name__ == "__main__":
    DOC.write_text(render(collected()))
    print(f"wrote {DOC}")
