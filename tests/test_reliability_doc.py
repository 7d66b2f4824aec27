"""docs/reliability.md says exactly what the reliability-marked tests try."""

from __future__ import annotations

from support.reliability import DOC, KINDS, collected, render


def test_reliability_doc_matches_the_tests() -> None:
    cases = collected()
    assert {case.kind for case in cases} == set(KINDS), "every kind of trouble is tried"
    assert DOC.read_text() == render(cases), (
        "docs/reliability.md is out of date: run python tests/support/reliability.py"
    )
