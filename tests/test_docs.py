"""README.md, CONTRIBUTING.md and docs/format.md -> checked against the code they describe.

Docs drift silently: docs/format.md gave 8 MiB as the default part size long after the
code's default became 2 MiB, and the README kept naming classes that no longer existed.
"""

from __future__ import annotations

import builtins
import re
from pathlib import Path

import pytest

import monetr_backup
from monetr_backup import BackupOptions, stages, testing

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
FORMAT = ROOT / "docs" / "format.md"

PUBLIC = set(monetr_backup.__all__)
STAGES = set(stages.__all__)

#: The sentence of docs/format.md that states the writer's default part size.
DEFAULT_SENTENCE = re.compile(
    r"The default dump part size is (?P<mib>\d+) MiB \((?P<bytes>\d+) bytes\)\."
)
_UNITS = {"byte": 1, "bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
#: A size with its unit, or a bare byte count (six digits or more, not a count of parts).
_SIZE = re.compile(
    r"(?P<number>\d[\d,]*(?:\.\d+)?)\s*(?P<unit>bytes?|KiB|MiB|GiB|TiB)\b"
    r"|\b(?P<bare>\d{6,})\b(?!\s*parts?\b)"
)
#: Past this many parts the part numbers outgrow their six-digit padding.
_PADDED_PARTS = 999_999


def _sentences(markdown: str) -> list[str]:
    """Table rows one by one; prose paragraphs joined and cut at sentence ends."""
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n", markdown):
        lines = block.splitlines()
        if all(line.lstrip().startswith("|") for line in lines):
            sentences.extend(lines)
        else:
            sentences.extend(re.split(r"(?<=[.;:])\s+", " ".join(lines)))
    return sentences


def _stated(number: str, decimals: int, size: float) -> bool:
    return round(size, decimals) == float(number)


def default_part_size_problems(markdown: str, default: int) -> list[str]:
    """Every way ``markdown`` misstates ``default`` as the default dump part size."""
    problems: list[str] = []
    found = DEFAULT_SENTENCE.findall(markdown)
    if len(found) != 1:
        problems.append(f"{len(found)} sentences say 'The default dump part size is ...'")
    for mib, count in found:
        if int(mib) * _UNITS["MiB"] != default or int(count) != default:
            problems.append(f"the default is stated as {mib} MiB ({count} bytes)")
    for sentence in _sentences(markdown):
        if "default" not in sentence or not re.search(r"part.size", sentence):
            continue
        for match in _SIZE.finditer(sentence):
            if match["bare"]:
                ok = int(match["bare"]) == default
            else:
                number = match["number"].replace(",", "")
                decimals = len(number.partition(".")[2])
                unit = _UNITS[match["unit"]]
                # The only other size worth stating next to the default: how much dump
                # fits in parts that still sort as plain names.
                ok = any(
                    _stated(number, decimals, size / unit)
                    for size in (default, default * _PADDED_PARTS)
                )
            if not ok:
                problems.append(f"{match[0]!r} in: {sentence}")
    return problems


def test_format_doc_states_the_code_default_part_size() -> None:
    """docs/format.md states ``BackupOptions().dump_part_size`` and nothing else as the default."""
    text = FORMAT.read_text(encoding="utf-8")
    assert default_part_size_problems(text, BackupOptions().dump_part_size) == []


@pytest.mark.parametrize(
    ("stale", "fresh", "flagged"),
    [
        # The statement itself, as it stood before the default became 2 MiB.
        ("is 2 MiB (2097152 bytes)", "is 8 MiB (8388608 bytes)", "8388608"),
        # A figure derived from the default, left from the old default.
        ("about 1.9 TiB", "about 7.6 TiB", "7.6 TiB"),
        ("(the default is 2097152)", "(the default is 8388608)", "'8388608'"),
    ],
)
def test_the_part_size_check_catches_a_stale_default(stale: str, fresh: str, flagged: str) -> None:
    """The check fails on the doc with one old figure put back (so it can fail at all)."""
    text = FORMAT.read_text(encoding="utf-8")
    assert stale in text
    problems = default_part_size_problems(text.replace(stale, fresh), 2 * _UNITS["MiB"])
    assert any(flagged in problem for problem in problems), problems


def _code_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


#: What each namespace a sample may use exports (the package: its own names or a stage's).
EXPORTS = {"monetr_backup": PUBLIC | STAGES, "stages": STAGES, "testing": set(testing.__all__)}


def _names_in_code(code: str) -> set[tuple[str, str]]:
    """(namespace, name) of every library name the code uses."""
    used: set[tuple[str, str]] = set()
    imports = re.findall(r"from monetr_backup(?:\.(stages|testing))? import \(?([\w\s,]+)", code)
    for module, names in imports:
        for name in re.findall(r"\w+", re.sub(r"\bas\s+\w+", "", names)):
            if name not in EXPORTS:  # ``from monetr_backup import stages``
                used.add((module or "monetr_backup", name))
    for first, second in re.findall(r"\b(?:mb|monetr_backup)\.(\w+)(?:\.(\w+))?", code):
        if first not in EXPORTS:
            used.add(("monetr_backup", first))
        elif second:  # ``mb.stages`` alone names the module, not a name in it
            used.add((first, second))
    for module, name in re.findall(r"(?<![.\w])(stages|testing)\.(\w+)", code):
        used.add((module, name))
    return used


def test_readme_code_uses_only_public_names() -> None:
    """Every ``mb.X`` / ``monetr_backup.X`` in the README's code is in an ``__all__``."""
    used = set()
    for block in _code_blocks(README.read_text(encoding="utf-8")):
        used |= _names_in_code(block)
    assert ("monetr_backup", "backup") in used, "no library names found: is the parser broken?"
    missing = sorted(f"{space}.{name}" for space, name in used if name not in EXPORTS[space])
    assert missing == []


#: Backticked names that look like the library's classes (``S3Archive``, ``ArchiveWriteError``).
_API_NAME = re.compile(
    r"`(?P<name>[A-Z]\w*(?:Error|Archive|Storage|Destination|Options|Config|Sink|Target))"
    r"(?:[.(][^`]*)?`"
)


@pytest.mark.parametrize("doc", [README, CONTRIBUTING], ids=lambda path: path.name)
def test_class_names_in_the_text_exist(doc: Path) -> None:
    """Inline class names (the errors table, the locations, the protocols) are exported."""
    names = {match["name"] for match in _API_NAME.finditer(doc.read_text(encoding="utf-8"))}
    names -= set(dir(builtins))
    assert names, "no class names found: is the pattern broken?"
    assert sorted(names - PUBLIC - STAGES) == []


def test_the_name_checks_catch_a_removed_name() -> None:
    """A name that went away (``S3Destination``) is found in code and in text alike."""
    code = 'await mb.backup(mb.S3Destination(s3=s3, bucket="b", key="k"))'
    assert ("monetr_backup", "S3Destination") in _names_in_code(code)
    imported = "from monetr_backup import stages, FileDestination as Sink\nstages.open_sink()"
    assert _names_in_code(imported) == {
        ("monetr_backup", "FileDestination"),
        ("stages", "open_sink"),
    }
    assert "S3Destination" not in PUBLIC | STAGES
    text = "| `DestinationError` | writing the archive failed |"
    assert [m["name"] for m in _API_NAME.finditer(text)] == ["DestinationError"]


#: Each public namespace -> its reference page, which mkdocs expands from ``__all__``
#: (docs/_ext/api_groups.py), so a new export is in the reference with no page to edit.
REFERENCE_PAGES = {
    "monetr_backup": "api/monetr_backup.md",
    "monetr_backup.stages": "api/stages.md",
    "monetr_backup.testing": "api/testing.md",
}


@pytest.mark.parametrize(("module", "page"), REFERENCE_PAGES.items())
def test_reference_pages_are_generated_from_all(module: str, page: str) -> None:
    """Every public namespace has a reference page in the site's navigation, generated
    from its ``__all__`` rather than a hand-kept list that could miss a name."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert f"<!-- api: {module} -->" in text.splitlines()
    assert f": {page}" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert not re.search(rf"^::: {re.escape(module)}\.\w", text, re.MULTILINE), (
        "list no names by hand: the marker brings every one"
    )
